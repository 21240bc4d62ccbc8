"""Paper bruvik's networks: Deep Koalarization (table 4), the Inception-GAN generator (table 1), the embedding (5.3.3).

Parameter counts are computed from the tables' layer lists, so the tests check
the architecture, not a copied number. A tiny stand-in with the embedding's
interface keeps most tests fast; the real Inception-ResNet-v2 (random
weights) runs in one test.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from chroma.models.blocks import keras_weights_cache
from chroma.models.inception_embedding import KERAS_WEIGHTS_FILE, InceptionEmbedding
from chroma.models.koalarization import KoalarizationGenerator
from chroma.models.loading import assets_provided
from chroma.models.segmentation_prior import SegmentationPrior
from helpers import ab_of, assert_reloads_identically, conv, photo_lab, trainable_count

pytestmark = pytest.mark.xdist_group("bruvik_models")  # the Koalarization generators: built once, on one worker


@keras.saving.register_keras_serializable(package="chroma_tests")
class TinyEmbedding(keras.layers.Layer):
    """InceptionEmbedding's interface at test size: scaled L -> a frozen `classes`-d probability vector."""

    def __init__(self, classes=1001, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.dense = keras.layers.Dense(classes, activation="softmax")
        self.trainable = False

    def build(self, input_shape):
        # Its weights must exist once built: a reloaded generator builds it from its config, then loads them.
        self.dense.build((input_shape[0], input_shape[-1]))

    def call(self, scaled_l):
        return self.dense(self.pool(scaled_l))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.classes)

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}


class TinyClassifier(tf.Module):
    """A TF2 SavedModel like TF-Hub's classifiers: RGB in [0, 1] -> 1001 logits (a linear map of the mean colour)."""

    def __init__(self):
        super().__init__()
        self.kernel = tf.Variable(tf.random.stateless_normal((3, 1001), seed=(1, 2)))

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
    def __call__(self, images):
        return tf.reduce_mean(images, axis=(1, 2)) @ self.kernel


@pytest.fixture
def hub_classifier(tmp_path):
    module = TinyClassifier()
    path = tmp_path / "classifier"
    tf.saved_model.save(module, str(path))
    return str(path), module.kernel.numpy()


def black_gray_white():
    """Scaled L of a black, a mid-gray (L* = 50) and a white image, 16x24."""
    return tf.constant([-1.0, 0.0, 1.0])[:, None, None, None] * tf.ones((3, 16, 24, 1))


def shape(tensor):
    return tuple(tensor.shape[1:])


ENCODER = [(1, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 256)]
DECODER = conv(3, 256, 128) + conv(3, 128, 64) + conv(3, 64, 64) + conv(3, 64, 32) + conv(3, 32, 2)


def layer_shapes(network, tensor):
    shapes = []
    for layer in network.layers:
        tensor = layer(tensor)
        shapes.append(shape(tensor))
    return shapes


# Deep Koalarization (table 4) and the Inception-GAN generator (table 1)


@pytest.fixture(scope="module")
def generators():
    """generators(classes, segmenter): a KoalarizationGenerator with TinyEmbedding(classes) (None: no embedding)
    and the random SegmentationPrior or none, built once per module. Shared: tests that change weights build
    their own."""
    built = {}

    def generator(classes, segmenter):
        if (classes, segmenter) not in built:
            built[classes, segmenter] = KoalarizationGenerator(
                None if classes is None else TinyEmbedding(classes),
                segmenter=SegmentationPrior() if segmenter else None,
            )
        return built[classes, segmenter]

    return generator


def test_koalarization_matches_table_4_at_256(generators):
    """6,574,050 trainable parameters: encoder 5,827,200 + fusion 322,048 (1257 -> 256) + decoder 424,802."""
    model = generators(1001, segmenter=False)
    encoder = sum(conv(3, inputs, outputs) for inputs, outputs in ENCODER)
    fusion = conv(1, 256 + 1001, 256)
    assert trainable_count(model.encoder) == encoder == 5_827_200
    assert trainable_count(model.fusion) == fusion == 322_048
    assert trainable_count(model.decoder) == DECODER == 424_802
    assert trainable_count(model) == encoder + fusion + DECODER == 6_574_050
    assert trainable_count(model.embedding) == 0

    encoded = layer_shapes(model.encoder, keras.KerasTensor((1, 256, 256, 1)))
    assert encoded == [
        (128, 128, 64), (128, 128, 128), (64, 64, 128), (64, 64, 256),
        (32, 32, 256), (32, 32, 512), (32, 32, 512), (32, 32, 256),
    ]  # fmt: skip
    assert model.fusion.kernel.shape == (1, 1, 1257, 256)  # 5.3.4: H/8 x W/8 x 1257 before the 1x1 convolution
    assert layer_shapes(model.decoder, keras.KerasTensor((1, 32, 32, 256))) == [
        (32, 32, 128), (64, 64, 128), (64, 64, 64), (64, 64, 64),
        (128, 128, 64), (128, 128, 32), (128, 128, 2), (256, 256, 2),
    ]  # fmt: skip
    assert shape(ab_of(model, keras.KerasTensor((1, 256, 256, 1)))) == (256, 256, 2)


def test_inception_gan_generator_adds_table_1s_24_kernel_layer_for_the_prior(generators):
    """6,592,506 trainable parameters: conv 24 on 5.3.2's 24 channels (three gray copies + 21 classes), then
    table 4's encoder reading 24 channels."""
    model = generators(1001, segmenter=True)
    encoder = conv(3, 3 + 21, 24) + conv(3, 24, 64) + sum(conv(3, inputs, outputs) for inputs, outputs in ENCODER[1:])
    assert trainable_count(model.encoder) == encoder == 5_845_656
    assert trainable_count(model) == encoder + conv(1, 1257, 256) + DECODER == 6_592_506
    encoded = layer_shapes(model.encoder, keras.KerasTensor((1, 256, 256, 24)))
    assert encoded[:3] == [(256, 256, 24), (128, 128, 64), (128, 128, 128)]  # layers 2, 4, 6 have stride 2
    assert encoded[-1] == (32, 32, 256)

    assert trainable_count(model.segmenter) == 0
    scaled_l, _ = photo_lab(32)
    ab = ab_of(model, scaled_l)  # the prior comes from the segmenter: the generator still reads L alone
    assert ab.shape == (2, 32, 32, 2) and np.isfinite(ab.numpy()).all()


def test_without_inception_the_fusion_reads_the_encoder_alone(generators):
    """Table 2's "GAN without Inception": 6,317,794 parameters, the 1x1 fusion convolution 256 -> 256."""
    model = generators(None, segmenter=False)
    assert model.fusion.kernel.shape == (1, 1, 256, 256)
    assert trainable_count(model) == 5_827_200 + conv(1, 256, 256) + DECODER == 6_317_794
    scaled_l, _ = photo_lab(32)
    assert ab_of(model, scaled_l).shape == (2, 32, 32, 2)


def test_the_embedding_reaches_every_pixel():
    """The vector is copied to every position of the fused volume: changing it changes ab everywhere."""
    model = KoalarizationGenerator(TinyEmbedding(16))
    scaled_l, _ = photo_lab(32, names=("astronaut",))
    before = ab_of(model, scaled_l).numpy()
    bias = model.embedding.dense.bias
    bias.assign(tf.one_hot(3, 16) * 30.0)  # the probabilities become (almost) one-hot
    after = ab_of(model, scaled_l).numpy()
    assert (np.abs(after - before).max(axis=-1) > 0).all()


def test_output_spans_scaled_ab():
    """tanh output: the last convolution's bias saturates it at -1 and 1, gray at 0."""
    model = KoalarizationGenerator(TinyEmbedding(8))
    last_conv = model.decoder.layers[-2]
    scaled_l, _ = photo_lab(32)
    last_conv.kernel.assign(tf.zeros_like(last_conv.kernel))
    for bias, ab in ((-20.0, -1.0), (0.0, 0.0), (20.0, 1.0)):
        last_conv.bias.assign(tf.fill(last_conv.bias.shape, bias))
        np.testing.assert_allclose(ab_of(model, scaled_l), ab, atol=1e-6)


def test_rejects_inputs_it_cannot_read(generators):
    model = generators(None, segmenter=True)
    with pytest.raises(ValueError, match="reads scaled L with 1 channel"):
        ab_of(model, tf.zeros((1, 32, 32, 3)))
    with pytest.raises(ValueError, match="divisible by 8"):
        ab_of(generators(None, segmenter=False), tf.zeros((1, 36, 36, 1)))


@pytest.mark.parametrize("with_segmenter", [False, True])
def test_reloads_identically(generators, with_segmenter, tmp_path):
    """The frozen stand-ins' random weights travel in the .keras file like any other weight."""
    scaled_l, _ = photo_lab(32)
    model = generators(8, segmenter=with_segmenter)
    reloaded = assert_reloads_identically(model, {"L": scaled_l}, tmp_path)
    assert isinstance(reloaded.embedding, TinyEmbedding)
    assert isinstance(reloaded.segmenter, SegmentationPrior) if with_segmenter else reloaded.segmenter is None
    assert trainable_count(reloaded.embedding) == 0
    assert reloaded.embedding.weights  # the weights exist, frozen


def test_reloads_identically_without_embedding(generators, tmp_path):
    scaled_l, _ = photo_lab(32)
    assert assert_reloads_identically(generators(None, segmenter=False), {"L": scaled_l}, tmp_path).embedding is None


def test_a_tensorflow_checkpoint_restores_every_weight(generators, tmp_path):
    trained, fresh = generators(8, segmenter=False), KoalarizationGenerator(TinyEmbedding(8))
    path = tf.train.Checkpoint(model=trained).save(tmp_path / "checkpoint")
    tf.train.Checkpoint(model=fresh).restore(path).assert_existing_objects_matched()
    assert len(trained.weights) == len(fresh.weights) == 2 * (8 + 1 + 5) + 2  # every conv + the stand-in's dense
    for a, b in zip(trained.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


@pytest.mark.parametrize("embedding", [None, "tiny"])
def test_outputs_are_float32_under_mixed_bfloat16(mixed_bfloat16, embedding):
    model = KoalarizationGenerator(TinyEmbedding(8) if embedding else None)
    assert model.dtype_policy.compute_dtype == "bfloat16"
    ab = ab_of(model, tf.random.uniform((1, 32, 32, 1), -1.0, 1.0), training=True)
    assert ab.dtype == "float32"


# The embedding (section 5.3.3)


@pytest.mark.slow("builds the real Inception-ResNet-v2 (seconds); fast tier: the embedding's interface through "
                  "test_bruvik_training's stand-in and this file's SavedModel embeddings")
def test_inception_resnet_v2_embedding_with_random_weights():
    """The real network: any input size is resized to 299, 1000 probabilities out, nothing trainable."""
    embedding = InceptionEmbedding(weights=None)
    assert embedding.network.input_shape == (None, 299, 299, 3)
    assert not embedding.trainable_weights and embedding.non_trainable_weights
    scaled_l, _ = photo_lab(32, names=("astronaut",))
    probabilities = embedding(scaled_l)
    assert probabilities.shape == (1, 1000)
    np.testing.assert_allclose(tf.reduce_sum(probabilities, axis=-1), 1.0, atol=1e-4)
    # Keras's network reads [-1, 1] (preprocess_input's "tf" mode): black -1, white 1.
    images = embedding.network_input(black_gray_white()).numpy()
    np.testing.assert_allclose(images[[0, 2]].mean(axis=(1, 2, 3)), [-1.0, 1.0], atol=1e-5)

    generator = KoalarizationGenerator(embedding)
    assert generator.fusion.kernel.shape == (1, 1, 256 + 1000, 256)
    assert trainable_count(generator) == 5_827_200 + conv(1, 1256, 256) + DECODER
    assert generator.count_params() == trainable_count(generator) + embedding.count_params()


def test_savedmodel_input_is_the_gray_image_in_0_1(hub_classifier):
    """TF-Hub's classifiers read RGB in [0, 1]: three equal channels, 299x299, black 0 and white 1."""
    images = InceptionEmbedding(source=hub_classifier[0]).network_input(black_gray_white()).numpy()
    assert images.shape == (3, 299, 299, 3)
    np.testing.assert_allclose(images[0], 0.0, atol=1e-5)
    assert 0.46 < images[1].mean() < 0.47  # L* = 50 is sRGB 119/255
    np.testing.assert_allclose(images[2], 1.0, atol=1e-5)
    np.testing.assert_allclose(images[..., 0], images[..., 2], atol=1e-4)


def test_a_local_savedmodel_loads_through_tensorflow_hub(hub_classifier):
    """Its output size (1001) is the embedding's; logits are the module's, probabilities their softmax."""
    path, kernel = hub_classifier
    logits = InceptionEmbedding(source=path, probabilities=False)
    assert logits.classes == 1001 and not logits.trainable_weights
    white = tf.ones((1, 24, 40, 1))  # scaled L = 1: white, RGB (1, 1, 1) at the module's input
    np.testing.assert_allclose(logits(white)[0], kernel.sum(axis=0), rtol=1e-5, atol=1e-5)
    probabilities = InceptionEmbedding(source=path)(white)
    np.testing.assert_allclose(probabilities, tf.nn.softmax(kernel.sum(axis=0))[None], rtol=1e-5, atol=1e-7)


def test_a_generator_with_a_savedmodel_embedding_reloads_identically(hub_classifier, tmp_path):
    """The .keras file keeps the source it was built from; loaded, it runs the SavedModel the user passes as the
    asset inception (chroma.models.loading), here the same one."""
    generator = KoalarizationGenerator(InceptionEmbedding(source=hub_classifier[0]))
    assert generator.fusion.kernel.shape == (1, 1, 256 + 1001, 256)
    scaled_l, _ = photo_lab(32)
    with assets_provided({"inception": hub_classifier[0]}):
        reloaded = assert_reloads_identically(generator, {"L": scaled_l}, tmp_path)
    assert reloaded.embedding.source == hub_classifier[0]


def test_imagenet_weights_are_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    expected = tmp_path / "models" / "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels.h5"
    assert keras_weights_cache(KERAS_WEIGHTS_FILE) == str(expected)
    with pytest.raises(FileNotFoundError, match="weights=None") as error:
        InceptionEmbedding(weights="imagenet")
    assert str(expected) in str(error.value)
    assert not expected.exists()


def test_savedmodel_source_takes_no_keras_weights(hub_classifier):
    with pytest.raises(ValueError, match="is for source='keras'"):
        InceptionEmbedding(source=hub_classifier[0], weights="imagenet")


# The segmentation prior (sections 4.3 and 5.3.2)


class TinySegmenter(tf.Module):
    """A TF2 SavedModel like a DeepLabV3 export: RGB in [0, 1] -> 21 logits per pixel at half resolution."""

    def __init__(self):
        super().__init__()
        self.kernel = tf.Variable(tf.random.stateless_normal((3, 21), seed=(3, 4)))

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
    def __call__(self, images):
        return tf.nn.avg_pool2d(images, 2, 2, "VALID") @ self.kernel


def test_random_segmenter_gives_frozen_class_probabilities_at_any_size():
    prior = SegmentationPrior()
    maps = prior(black_gray_white())
    assert maps.shape == (3, 16, 24, 21) and not prior.trainable_weights
    np.testing.assert_allclose(tf.reduce_sum(maps, axis=-1), 1.0, atol=1e-5)
    # Seeded: every instance (the pretraining phase's, the GAN's, a reloaded one) is the same stand-in.
    np.testing.assert_array_equal(SegmentationPrior()(black_gray_white()), maps)


def test_a_savedmodel_segmenter_is_resized_to_the_image(tmp_path):
    module = TinySegmenter()
    tf.saved_model.save(module, str(tmp_path / "deeplab"))
    prior = SegmentationPrior(str(tmp_path / "deeplab"))
    white = tf.ones((1, 16, 24, 1))  # RGB (1, 1, 1) at the segmenter's input
    maps = prior(white)
    assert maps.shape == (1, 16, 24, 21) and prior.classes == 21
    np.testing.assert_allclose(maps[0, 5, 7], tf.nn.softmax(tf.reduce_sum(module.kernel, axis=0)), atol=1e-5)
    with pytest.raises(ValueError, match="gives 21 classes, not 5"):
        SegmentationPrior(str(tmp_path / "deeplab"), classes=5)


def test_the_prior_reaches_the_output(generators):
    model = generators(None, segmenter=True)
    scaled_l, _ = photo_lab(32)
    inputs = model.complete({"L": scaled_l})
    uniform = {**inputs, "prior": tf.fill(inputs["prior"].shape, 1 / 21)}
    np.testing.assert_allclose(model(inputs)["ab"], ab_of(model, scaled_l), atol=1e-6)
    assert np.abs(model(uniform)["ab"] - model(inputs)["ab"]).max() > 1e-6


@pytest.mark.slow("writes a SavedModel of a 6.6M-weight generator, tracing every serving signature; fast tier: "
                  "test_export's caption models, whose extra inputs are also computed inside the SavedModel")
def test_exported_inception_gan_colorizes_from_image_bytes_alone(tmp_path):
    """Embedding and prior are computed inside the SavedModel: serving needs only the photo."""
    from chroma.export import export_saved_model

    model = KoalarizationGenerator(TinyEmbedding(8), segmenter=SegmentationPrior())
    export_saved_model(model, tmp_path / "saved", image_size=32)
    colorize_lab = tf.saved_model.load(str(tmp_path / "saved")).signatures["colorize_lab"]
    scaled_l, _ = photo_lab(32)
    np.testing.assert_allclose(colorize_lab(scaled_l=scaled_l)["scaled_ab"], ab_of(model, scaled_l), atol=1e-5)
