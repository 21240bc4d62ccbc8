"""Paper agosti's DCGAN critic (section VI): the PatchGAN's blocks without batch norm, one dense score per image."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from chroma.export import load_generator
from chroma.models.dcgan_critic import DCGANCritic
from chroma.models.patchgan import PatchDiscriminator
from chroma.models.unet import UNetGenerator
from chroma.training import ConditionalGAN, stack_batches
from helpers import assert_reloads_identically, photo_lab, trainable_count

FOUR_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
SIZE = 32


def photo_pairs(size=SIZE):
    scaled_l, scaled_ab = photo_lab(size, FOUR_PHOTOS)
    return tf.concat([scaled_l, scaled_ab], axis=-1)


def all_layers(model):
    """Every layer inside `model`, however deeply nested."""
    found = []
    for layer in getattr(model, "layers", []):
        found += [layer, *all_layers(layer)]
    return found


def test_critic_is_the_patchgan_with_a_dense_score_at_256():
    critic, patchgan = DCGANCritic(image_size=256), PatchDiscriminator()
    # The PatchGAN's C64-C128-C256-C512 (4x4 convs), each with a bias instead of batch norm.
    shapes = [(3, 64), (64, 128), (128, 256), (256, 512)]
    convs = sum(4 * 4 * inputs * outputs + outputs for inputs, outputs in shapes)
    dense = 31 * 31 * 512 + 1  # C512's 31x31 map, flattened, to one unit
    assert critic.count_params() == convs + dense == 2_756_544 + 492_033 == 3_248_577
    assert trainable_count(critic) == critic.count_params()  # no batch norm statistics

    # The PatchGAN: C64 with a bias, then gamma and beta instead of biases, and a 4x4 conv to one logit.
    normed = sum(4 * 4 * inputs * outputs + 2 * outputs for inputs, outputs in shapes[1:])
    patchgan_blocks = 4 * 4 * 3 * 64 + 64 + normed
    assert trainable_count(patchgan) == patchgan_blocks + 4 * 4 * 512 + 1 == 2_765_633
    # Blocks 896 parameters lighter (one bias for gamma and beta); the dense score weighs 483,840 more than the conv.
    assert critic.count_params() - trainable_count(patchgan) == -896 + 483_840 == 482_944

    x = keras.KerasTensor((1, 256, 256, 3))
    shapes = []
    for block in critic.network.layers:
        x = block(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(128, 128, 64), (64, 64, 128), (32, 32, 256), (31, 31, 512), (1,)]


def test_critic_has_no_batch_norm_anywhere():
    layers = all_layers(DCGANCritic(image_size=SIZE, base_filters=4))
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in layers) == 4
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in layers)


def test_each_image_gets_one_score_that_depends_on_that_image_alone():
    pairs = photo_pairs()
    changed = tf.tensor_scatter_nd_update(pairs, [[1]], -pairs[1:2])  # image 2 replaced
    critic = DCGANCritic(image_size=SIZE, base_filters=4)
    scores = critic(pairs, training=True)
    assert scores.shape == (4, 1) and scores.dtype == "float32"
    changed_scores = critic(changed, training=True).numpy()
    np.testing.assert_allclose(changed_scores[[0, 2, 3]], scores.numpy()[[0, 2, 3]], rtol=1e-6, atol=1e-6)
    assert changed_scores[1] != scores.numpy()[1]

    # Gulrajani et al.'s reason for no batch norm: in training mode the PatchGAN's couples the images.
    patchgan = PatchDiscriminator(base_filters=4)
    logits = patchgan(pairs, training=True).numpy()
    assert not np.allclose(patchgan(changed, training=True).numpy()[0], logits[0])


def test_critic_refuses_another_image_size():
    with pytest.raises(ValueError, match="scores 32x32 images, got \\(64, 64\\)"):
        DCGANCritic(image_size=SIZE, base_filters=4)(tf.zeros((1, 64, 64, 3)))


def test_critic_reloads_identically(tmp_path):
    critic = DCGANCritic(image_size=SIZE, base_filters=4, n_layers=2)
    reloaded = assert_reloads_identically(critic, photo_pairs(), tmp_path)
    assert (reloaded.image_size, reloaded.base_filters, reloaded.n_layers) == (SIZE, 4, 2)


def test_score_is_float32_under_mixed_bfloat16(mixed_bfloat16):
    critic = DCGANCritic(image_size=SIZE, base_filters=4)
    assert critic.dtype_policy.compute_dtype == "bfloat16"
    assert critic(photo_pairs(), training=True).dtype == "float32"


def test_critic_trains_a_wgan_gp_with_several_critic_steps(tmp_path):
    # 2 critic steps, not the recipe's 5: the same step at less tracing (test_training checks the 5:1 count).
    scaled_l, scaled_ab = photo_lab(SIZE, FOUR_PHOTOS)
    batch = {"L": scaled_l, "ab": scaled_ab}
    model = ConditionalGAN(
        UNetGenerator(base_filters=4, depth=4), DCGANCritic(image_size=SIZE, base_filters=4), seed=0, d_steps=2
    )
    model.compile(
        g_optimizer=keras.optimizers.Adam(1e-4, beta_1=0.5), d_optimizer=keras.optimizers.Adam(1e-4, beta_1=0.5),
        adversarial_loss="wgan-gp",
        run_eagerly=True,  # the step's graph is XLA-lowered in test_xla.py; eager skips seconds of tracing here
    )
    model({"L": scaled_l})  # builds the wrapper, so it saves without a warning
    batches = stack_batches(tf.data.Dataset.from_tensor_slices(batch).batch(2), 2)
    history = model.fit(batches, epochs=1, shuffle=False, verbose=0).history
    assert int(model.d_optimizer.iterations) == 2 and int(model.g_optimizer.iterations) == 1
    for name in ("d_loss", "gradient_penalty", "g_adversarial_loss", "g_reconstruction_loss"):
        assert np.isfinite(history[name]).all()
    # A trained WGAN-GP saves, and `chroma export` / `chroma colorize` find its generator.
    model.save(tmp_path / "wgan.keras")
    assert isinstance(load_generator(tmp_path / "wgan.keras"), UNetGenerator)
