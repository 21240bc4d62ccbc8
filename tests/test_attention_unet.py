"""Attention U-Net generator of paper 002 (section 3.3.1): gate equations 4-5, sizes, saving, mixed precision."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from chroma.models.attention_unet import AttentionGate, AttentionUNetGenerator
from helpers import ab_of, assert_reloads_identically, photo_lab, trainable_count

pytestmark = pytest.mark.xdist_group("attention_unet")  # the paper-size generator: built once, on one worker


def photo_l(size, names=("astronaut", "coffee")):
    scaled_l, _ = photo_lab(size, names)
    return scaled_l


def gate_count(skip_channels, gating_channels, intermediate_channels):
    """W_x (no bias), W_g + b_g, psi + b_psi: equation 4's parameters."""
    return (skip_channels * intermediate_channels + gating_channels * intermediate_channels
            + intermediate_channels + intermediate_channels + 1)


def conv_block_count(in_channels, out_channels):
    """Two bias-free 3x3 convs, each with batch norm's gamma and beta."""
    return 9 * in_channels * out_channels + 9 * out_channels * out_channels + 2 * (2 * out_channels)


@pytest.fixture(scope="module")
def papers_generator():
    return AttentionUNetGenerator()


# Attention gate, equations 4-5


def test_attention_gate_computes_equations_4_and_5():
    gate = AttentionGate(3)
    rng = np.random.default_rng(0)
    skip = rng.normal(0, 10, (2, 5, 7, 6)).astype("float32")
    gating = rng.normal(0, 10, (2, 5, 7, 10)).astype("float32")
    gate.build([skip.shape, gating.shape])
    assert trainable_count(gate) == gate_count(6, 10, 3) == 55
    # Seeded weights of a gate that has learnt something: at its N(0, 0.02) initialisation (unseeded, so
    # depending on test order) alpha stays within a percent of 0.5, too flat to tell the equations apart.
    gate.set_weights([rng.normal(0, 0.1, weight.shape).astype("float32") for weight in gate.get_weights()])
    gated_skip, alpha = gate([skip, gating], return_attention=True)

    assert alpha.shape == (2, 5, 7, 1)
    alpha = alpha.numpy()
    assert np.all((alpha > 0) & (alpha < 1)) and alpha.std() > 0.05 and alpha.max() - alpha.min() > 0.5
    np.testing.assert_array_equal(gated_skip.numpy(), skip * alpha)
    np.testing.assert_array_equal(gate([skip, gating]).numpy(), gated_skip.numpy())

    assert gate.skip_projection.bias is None  # b_g is the only bias inside the ReLU
    w_x = gate.skip_projection.kernel.numpy()[0, 0]
    w_g, b_g = gate.gating_projection.kernel.numpy()[0, 0], gate.gating_projection.bias.numpy()
    psi, b_psi = gate.coefficient_projection.kernel.numpy()[0, 0], gate.coefficient_projection.bias.numpy()
    q_att = np.maximum(skip @ w_x + gating @ w_g + b_g, 0) @ psi + b_psi
    np.testing.assert_allclose(alpha, 1 / (1 + np.exp(-q_att)), rtol=1e-5)


def test_attention_gate_follows_the_gating_signal():
    gate = AttentionGate(4)
    rng = np.random.default_rng(1)
    skip = rng.normal(0, 10, (1, 8, 8, 8)).astype("float32")
    _, alpha = gate([skip, rng.normal(0, 10, (1, 8, 8, 8)).astype("float32")], return_attention=True)
    _, other_alpha = gate([skip, rng.normal(0, 10, (1, 8, 8, 8)).astype("float32")], return_attention=True)
    assert not np.allclose(alpha.numpy(), other_alpha.numpy())

    # A gate that has learnt to switch a region off prunes it (b_psi << 0): x_hat -> 0.
    gate.coefficient_projection.bias.assign([-30.0])
    gated_skip = gate([skip, np.zeros((1, 8, 8, 8), "float32")])
    assert np.abs(gated_skip.numpy()).max() < 1e-6 * np.abs(skip).max()


def test_attention_gate_config_round_trips():
    gate = AttentionGate(5, name="gate2")
    copy = AttentionGate.from_config(gate.get_config())
    assert (copy.intermediate_channels, copy.name) == (5, "gate2")


# Generator


def test_generator_matches_the_papers_network_at_256(papers_generator):
    model = papers_generator
    filters = [64, 128, 256, 512, 1024]
    encoder = sum(conv_block_count(in_channels, out_channels)
                  for in_channels, out_channels in zip([1] + filters[:-1], filters))
    decoder = sum(
        9 * filters[level + 1] * filters[level] + 2 * filters[level]  # upsampling conv + batch norm
        + gate_count(filters[level], filters[level], filters[level] // 2)
        + conv_block_count(2 * filters[level], filters[level])
        for level in range(4)
    ) + filters[0] * 2 + 2  # 1x1 conv to ab
    assert trainable_count(model.encoder) == encoder
    assert trainable_count(model.decoder) == decoder
    # Built before seeing any data; batch norm's moving statistics are as many as its gamma and beta.
    batch_norm_channels = 2 * sum(filters) + sum(filters[:-1]) + 2 * sum(filters[:-1])
    assert model.count_params() == encoder + decoder + 2 * batch_norm_channels

    levels = model.encoder(keras.KerasTensor((1, 256, 256, 1)))
    assert [tuple(level.shape[1:]) for level in levels] == [
        (256, 256, 64), (128, 128, 128), (64, 64, 256), (32, 32, 512), (16, 16, 1024)
    ]
    gates = [layer for layer in model.decoder.layers if isinstance(layer, AttentionGate)]
    assert [gate.intermediate_channels for gate in gates] == [256, 128, 64, 32]

    ab = ab_of(model, photo_l(256, names=("astronaut",)))
    assert ab.shape == (1, 256, 256, 2) and ab.dtype == "float32"
    assert np.abs(ab.numpy()).max() <= 1.0


def test_generator_initialisation_is_n_0_002_and_differs_between_layers(papers_generator):
    deepest = papers_generator.encoder.get_layer("down4").layers[3].kernel.numpy()  # (3, 3, 1024, 1024)
    assert abs(deepest.mean()) < 1e-3 and deepest.std() == pytest.approx(0.02, rel=0.02)
    gate = papers_generator.decoder.get_layer("gate3")
    assert not np.allclose(gate.skip_projection.kernel.numpy(), gate.gating_projection.kernel.numpy())


def test_small_generator_colours_photos_at_its_size():
    ab = ab_of(AttentionUNetGenerator(base_filters=8, depth=4), photo_l(64), training=True)
    assert ab.shape == (2, 64, 64, 2) and ab.dtype == "float32"
    assert np.all(np.abs(ab.numpy()) <= 1.0) and np.isfinite(ab.numpy()).all()


def test_generator_rejects_sizes_it_cannot_halve_and_too_shallow_networks():
    model = AttentionUNetGenerator(base_filters=4, depth=4)
    with pytest.raises(ValueError, match="divisible by 8"):
        ab_of(model, tf.zeros((1, 36, 36, 1)))
    assert ab_of(model, tf.zeros((1, 40, 24, 1))).shape == (1, 40, 24, 2)
    with pytest.raises(ValueError, match="depth >= 2"):
        AttentionUNetGenerator(depth=1)


def test_generator_reloads_identically(tmp_path):
    model = AttentionUNetGenerator(base_filters=4, depth=3)
    reloaded = assert_reloads_identically(model, {"L": photo_l(16)}, tmp_path)
    assert (reloaded.base_filters, reloaded.depth) == (4, 3)


def test_generator_output_is_float32_under_mixed_bfloat16(mixed_bfloat16):
    model = AttentionUNetGenerator(base_filters=4, depth=3)
    assert model.dtype_policy.compute_dtype == "bfloat16"
    assert ab_of(model, tf.random.uniform((1, 32, 32, 1), -1.0, 1.0), training=True).dtype == "float32"


def test_a_tensorflow_checkpoint_restores_every_weight(tmp_path):
    trained, fresh = AttentionUNetGenerator(base_filters=4, depth=3), AttentionUNetGenerator(base_filters=4, depth=3)
    ab_of(trained, tf.random.uniform((2, 32, 32, 1), -1.0, 1.0), training=True)  # moves the batch norm statistics
    path = tf.train.Checkpoint(model=trained).save(tmp_path / "checkpoint")
    tf.train.Checkpoint(model=fresh).restore(path).assert_existing_objects_matched()
    # 3 encoder blocks of 10 variables; 2 decoder levels: up 5, gate 5, conv block 10; the 1x1 conv 2.
    assert len(trained.weights) == len(fresh.weights) == 3 * 10 + 2 * (5 + 5 + 10) + 2
    for a, b in zip(trained.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
