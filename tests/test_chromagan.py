"""ChromaGAN's networks and losses, paper villarenteria's reference model (sections 2, 4.2.1).

Parameter counts are computed here from the layer sizes of ChromaGAN's
architecture (the public release's colorization_model and discriminator),
so the tests check the structure, not a copied number. VGG-16 networks are
built with random weights, once per module: they cost seconds each.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from chroma.losses import kl_class_loss, wasserstein_gradient_penalty
from chroma.models.chromagan import ChromaGANGenerator
from chroma.models.chromagan_critic import ChromaGANCritic
from chroma.models.blocks import keras_weights_cache
from chroma.models.vgg_oracle import VGGClassOracle
from helpers import assert_reloads_identically, batch_norm, conv, dense, trainable_count

pytestmark = pytest.mark.xdist_group("chromagan")  # the generators and the VGG-16 oracle: built once, on one worker

SMALL = 32  # the smallest image_size VGG-16 (>= 32) and the global branch (multiple of 32) accept


VGG16_CONVS = ((3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
               (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512))  # fmt: skip
# The generator's trunk: VGG-16's first 10 convolutions, up to block4_conv3.
TRUNK = sum(conv(3, inputs, outputs) for inputs, outputs in VGG16_CONVS[:10])


def scaled_l(size, batch=2, seed=0):
    return tf.random.stateless_uniform((batch, size, size, 1), seed=(seed, 1), minval=-1.0, maxval=1.0)


@pytest.fixture(scope="module")
def generator224():
    return ChromaGANGenerator()


@pytest.fixture(scope="module")
def small_generator(tmp_path_factory):
    """A SMALL generator whose trunk came from a local VGG-16 weights file, deleted once it is built.

    Returns (generator, the network the file was saved from).
    """
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(SMALL, SMALL, 3))
    path = tmp_path_factory.mktemp("vgg") / "vgg16_notop.weights.h5"
    vgg.save_weights(path)
    generator = ChromaGANGenerator(image_size=SMALL, vgg_weights=str(path))
    os.remove(path)
    return generator, vgg


@pytest.fixture(scope="module")
def oracle():
    return VGGClassOracle()


# Generator


def test_generator_at_224_gives_ab_and_class_logits(generator224):
    outputs = generator224({"L": scaled_l(224, batch=1)}, training=False)
    assert set(outputs) == {"ab", "class_logits"}
    assert outputs["ab"].shape == (1, 224, 224, 2) and outputs["ab"].dtype == tf.float32
    assert outputs["class_logits"].shape == (1, 1000) and outputs["class_logits"].dtype == tf.float32
    assert np.all(np.abs(outputs["ab"]) <= 1.0)  # tanh: chroma's scaled ab
    assert generator224.trunk.output.shape == (None, 28, 28, 512)  # block4_conv3, H/8
    assert generator224.trunk.layers[-1].name == "block4_conv3"


def test_generator_parameter_count_at_224(generator224):
    """171,171,722 parameters (171,166,090 trainable + 5,632 batch-norm statistics)."""
    flat = 7 * 7 * 512
    global_features = 4 * (conv(3, 512, 512) + batch_norm(512))
    global_vector = dense(flat, 1024) + dense(1024, 512) + dense(512, 256)
    classifier = dense(flat, 4096) + dense(4096, 4096) + dense(4096, 1000)
    mid_level = conv(3, 512, 512) + batch_norm(512) + conv(3, 512, 256) + batch_norm(256)
    colorization = (conv(1, 256 + 256, 256) + conv(3, 256, 128) + conv(3, 128, 64) + conv(3, 64, 64)
                    + conv(3, 64, 32) + conv(3, 32, 2))
    assert generator224.trunk.count_params() == TRUNK == 7_635_264
    assert generator224.global_features.count_params() == global_features
    assert generator224.global_vector.count_params() == global_vector
    assert generator224.classifier.count_params() == classifier
    assert generator224.mid_level.count_params() == mid_level
    assert generator224.colorization.count_params() == colorization
    total = TRUNK + global_features + global_vector + classifier + mid_level + colorization
    assert generator224.count_params() == total == 171_171_722
    assert trainable_count(generator224) == total - 2 * (4 * 512 + 512 + 256) == 171_166_090


def test_generator_trunk_reads_l_over_100_tiled_to_three_channels(small_generator):
    """As the release: OpenCV's 8-bit L / 255 (= L / 100) in all three channels, black 0, mid-gray 0.5, white 1."""
    generator = small_generator[0]
    levels = tf.constant([-1.0, 0.0, 1.0])[:, None, None, None]
    trunk_input = tf.constant([0.0, 0.5, 1.0])[:, None, None, None] * tf.ones((3, SMALL, SMALL, 3))
    expected = generator.classifier(generator.global_features(generator.trunk(trunk_input)))
    logits = generator({"L": levels * tf.ones((3, SMALL, SMALL, 1))})["class_logits"]
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


def test_generator_loads_a_local_vgg_file_and_reloads_without_it(small_generator, tmp_path):
    generator, vgg = small_generator
    for name in ("block1_conv1", "block4_conv3"):
        for loaded, saved in zip(generator.trunk.get_layer(name).get_weights(), vgg.get_layer(name).get_weights()):
            np.testing.assert_array_equal(loaded, saved)
    assert not os.path.exists(generator.vgg_weights)
    path = tmp_path / "chromagan.keras"
    generator.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded) is ChromaGANGenerator and reloaded.get_config() == generator.get_config()
    assert reloaded.vgg_weights == generator.vgg_weights
    # Both outputs reload the same, the class head's too.
    expected, actual = generator({"L": scaled_l(SMALL)}), reloaded({"L": scaled_l(SMALL)})
    for key in ("ab", "class_logits"):
        np.testing.assert_allclose(actual[key], expected[key], atol=1e-6)


def test_small_generator_shapes(small_generator):
    outputs = small_generator[0]({"L": scaled_l(SMALL)})
    assert outputs["ab"].shape == (2, SMALL, SMALL, 2)
    assert outputs["class_logits"].shape == (2, 1000)


def test_generator_rejects_sizes_it_cannot_read(small_generator):
    with pytest.raises(ValueError, match="divisible by 32"):
        ChromaGANGenerator(image_size=100)
    with pytest.raises(ValueError, match=f"needs {SMALL}x{SMALL}"):
        small_generator[0]({"L": scaled_l(96)})


# Critic


def test_critic_gives_28x28_float32_patch_scores_at_224():
    """2,764,737 parameters: C64 - C128 - C256 - C512 - C1, 4x4 convolutions, no normalisation."""
    critic = ChromaGANCritic()
    scores = critic(tf.zeros((2, 224, 224, 3)))
    assert scores.shape == (2, 28, 28, 1) and scores.dtype == tf.float32
    layers = ((3, 64), (64, 128), (128, 256), (256, 512), (512, 1))
    expected = sum(conv(4, inputs, outputs) for inputs, outputs in layers)
    assert critic.count_params() == trainable_count(critic) == expected == 2_764_737
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in critic.network.layers)
    assert critic(tf.zeros((1, SMALL, SMALL, 3))).shape == (1, SMALL // 8, SMALL // 8, 1)


def test_critic_reloads_identically(tmp_path):
    assert_reloads_identically(ChromaGANCritic(base_filters=8), tf.random.uniform((2, SMALL, SMALL, 3)), tmp_path)


# Oracle


def test_oracle_is_a_frozen_vgg16_giving_class_probabilities(oracle):
    """138,357,544 parameters (the full VGG-16), none trainable; any input size is resized to 224."""
    assert not oracle.trainable_weights
    full_vgg16 = sum(conv(3, inputs, outputs) for inputs, outputs in VGG16_CONVS) + (
        dense(7 * 7 * 512, 4096) + dense(4096, 4096) + dense(4096, 1000)
    )
    assert oracle.count_params() == full_vgg16 == 138_357_544
    assert oracle.network.input_shape == (None, 224, 224, 3)
    probabilities = oracle(scaled_l(SMALL))
    assert probabilities.shape == (2, 1000) and probabilities.dtype == tf.float32
    np.testing.assert_allclose(tf.reduce_sum(probabilities, axis=-1), 1.0, atol=1e-5)
    assert np.all(probabilities.numpy() >= 0.0)


def test_oracle_reads_the_gray_image_with_vgg_caffe_preprocessing(oracle):
    """Three equal channels in [0, 255], then BGR with the ImageNet mean subtracted."""
    mean_bgr = np.array([103.939, 116.779, 123.68])
    images = oracle.network_input(tf.constant([-1.0, 0.0, 1.0])[:, None, None, None] * tf.ones((3, 8, 8, 1)))
    assert images.shape == (3, 224, 224, 3)
    for image, gray in zip(images.numpy(), (0.0, 127.5, 255.0)):
        np.testing.assert_allclose(image, np.broadcast_to(gray - mean_bgr, image.shape), atol=1e-3)


def test_oracle_config_round_trips_without_the_weights_file(oracle, tmp_path, monkeypatch):
    """from_config (what loading a .keras file calls) starts from random weights: the file is not needed."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    config = {**oracle.get_config(), "weights": "imagenet"}
    assert VGGClassOracle.from_config(config).get_config() == config
    assert not os.listdir(tmp_path)


# Weights are never downloaded


def test_imagenet_weights_are_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    for build, file_name in (
        (lambda: ChromaGANGenerator(image_size=SMALL, vgg_weights="imagenet"),
         "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        (lambda: VGGClassOracle(weights="imagenet"), "vgg16_weights_tf_dim_ordering_tf_kernels.h5"),
    ):  # fmt: skip
        expected = tmp_path / "models" / file_name
        assert keras_weights_cache(file_name) == str(expected)
        with pytest.raises(FileNotFoundError, match="never downloads") as error:
            build()
        assert str(expected) in str(error.value)
    assert not os.listdir(tmp_path)


# Mixed precision


def test_outputs_are_float32_under_mixed_bfloat16(mixed_bfloat16):
    generator = ChromaGANGenerator(image_size=SMALL)
    assert generator.dtype_policy.compute_dtype == "bfloat16"
    outputs = generator({"L": scaled_l(SMALL)}, training=True)
    assert outputs["ab"].dtype == outputs["class_logits"].dtype == tf.float32
    assert ChromaGANCritic()(tf.zeros((1, SMALL, SMALL, 3))).dtype == tf.float32


# Losses


def test_kl_class_loss_matches_numpy():
    rng = np.random.default_rng(0)
    oracle_probabilities = rng.dirichlet(np.ones(10), size=4)
    oracle_probabilities[0] = np.eye(10)[3]  # zeros in the target: p log p is 0 there
    logits = rng.normal(size=(4, 10)) * 3.0
    log_q = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(oracle_probabilities > 0, oracle_probabilities * (np.log(oracle_probabilities) - log_q), 0.0)
    expected = terms.sum(axis=-1).mean()
    loss = kl_class_loss(oracle_probabilities.astype(np.float32), logits.astype(np.float32))
    assert loss.dtype == tf.float32 and expected > 0.0
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    # bfloat16 logits (mixed precision) are cast: the loss stays float32.
    assert kl_class_loss(oracle_probabilities, tf.constant(logits, tf.bfloat16)).dtype == tf.float32


def test_kl_class_loss_is_zero_when_the_softmax_is_the_oracle():
    oracle_probabilities = np.random.default_rng(1).dirichlet(np.ones(1000), size=3).astype(np.float32)
    logits = np.log(oracle_probabilities) + 7.0  # the softmax ignores a constant shift
    np.testing.assert_allclose(kl_class_loss(oracle_probabilities, logits), 0.0, atol=1e-5)


def test_kl_class_loss_direction_is_oracle_first():
    """KL(p || q) != KL(q || p): the oracle p is the target, the generator's q the model."""
    p = np.array([[0.9, 0.1]], np.float32)
    q = np.array([[0.5, 0.5]], np.float32)
    expected = 0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)
    np.testing.assert_allclose(kl_class_loss(p, np.log(q)), expected, rtol=1e-5)


def test_the_gradient_penalty_has_finite_gradients_where_the_critic_is_flat():
    """The release's penalty takes a bare sqrt, NaN at a zero gradient; chroma's adds epsilon inside the root."""
    critic_weight = tf.Variable(0.0)
    real, fake = tf.ones((2, 4, 4, 2)), tf.zeros((2, 4, 4, 2))
    with tf.GradientTape() as tape:
        penalty = wasserstein_gradient_penalty(lambda x: critic_weight * x, real, fake, keras.random.SeedGenerator(0))
    np.testing.assert_allclose(penalty, 1.0, atol=1e-4)  # (||0|| - 1)^2
    assert np.isfinite(tape.gradient(penalty, critic_weight).numpy())
