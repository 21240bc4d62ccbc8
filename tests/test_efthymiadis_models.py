"""Paper efthymiadis's generators: the CNN baseline (3.1) and the CNN + classifier after Iizuka et al. (3.2).

Parameter counts are computed here from the layer lists the paper and its
references give, so the tests check the architecture, not a copied number.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from chroma.models.iizuka import IizukaColorizer
from chroma.models.resnet_cnn import ResNetCNN
from helpers import ab_of, assert_reloads_identically, photo_lab, trainable_count

pytestmark = pytest.mark.xdist_group("efthymiadis_models")  # Iizuka's network at 224: built once, on one worker


def conv(kernel_size, inputs, outputs, bias=True):
    return kernel_size * kernel_size * inputs * outputs + (outputs if bias else 0)


def dense(inputs, outputs):
    return inputs * outputs + outputs


def batch_norm(channels):
    return 2 * channels  # gamma and beta


def shape(tensor):
    return tuple(tensor.shape[1:])


# CNN baseline, section 3.1


def test_resnet_cnn_is_resnet18_cut_after_layer2_with_an_upsampling_head():
    """954,722 trainable parameters: encoder 676,800 + head 277,922 (plus 2,496 batch-norm statistics)."""
    model = ResNetCNN()
    # torchvision ResNet-18, conv1 on one channel, up to layer2; its convolutions have no bias.
    basic_block = 2 * (conv(3, 64, 64, bias=False) + batch_norm(64))
    downsampling_block = (conv(3, 64, 128, bias=False) + conv(3, 128, 128, bias=False)
                          + conv(1, 64, 128, bias=False) + 3 * batch_norm(128))
    encoder = (conv(7, 1, 64, bias=False) + batch_norm(64) + 2 * basic_block
               + downsampling_block + 2 * (conv(3, 128, 128, bias=False) + batch_norm(128)))
    assert trainable_count(model.encoder) == encoder == 676_800
    head = sum(conv(3, inputs, outputs) + batch_norm(outputs)
               for inputs, outputs in ((128, 128), (128, 64), (64, 64), (64, 32))) + conv(3, 32, 2)
    assert trainable_count(model.head) == head == 277_922
    assert not any(layer.name.startswith("stack2") for layer in model.encoder.layers)  # no layer3, layer4
    assert model.count_params() == encoder + head + 2_496

    for size in (224, 256):  # 3.1.3 trains at 224; 3.1.1 states 256
        features = model.encoder(keras.KerasTensor((1, size, size, 1)))
        assert [shape(tensor) for tensor in features] == [
            (size // 2, size // 2, 64), (size // 4, size // 4, 64), (size // 8, size // 8, 128)
        ]
        assert shape(ab_of(model, keras.KerasTensor((1, size, size, 1)))) == (size, size, 2)

    scaled_l, _ = photo_lab(224, names=("astronaut",))
    ab = ab_of(model, scaled_l, training=True)
    assert ab.shape == (1, 224, 224, 2) and ab.dtype == "float32" and np.isfinite(ab.numpy()).all()
    assert not getattr(model, "has_classifier", False)


def test_resnet_cnn_rejects_sizes_it_cannot_bring_back():
    with pytest.raises(ValueError, match="divisible by 8"):
        ab_of(ResNetCNN(), tf.zeros((1, 36, 36, 1)))


def test_resnet_cnn_reloads_identically(tmp_path):
    scaled_l, _ = photo_lab(32)
    assert_reloads_identically(ResNetCNN(), {"L": scaled_l}, tmp_path)


# CNN + classifier, section 3.2


@pytest.fixture(scope="module")
def iizuka_224():
    return IizukaColorizer(num_classes=27)


def test_iizuka_matches_section_3_2_1_at_224(iizuka_224):
    """42,308,093 parameters: low-level 2,287,488, mid-level 3,539,712, global 35,786,496,
    classifier 138,267, fusion 131,328, colorization 424,802."""
    model = iizuka_224
    expected = {
        "low_level": sum(conv(3, inputs, outputs) for inputs, outputs in
                         ((1, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512))),
        "mid_level": conv(3, 512, 512) + conv(3, 512, 256),
        "global_features": 4 * conv(3, 512, 512) + dense(7 * 7 * 512, 1024) + dense(1024, 512) + dense(512, 256),
        "classifier": dense(512, 256) + dense(256, 27),
        "fusion": conv(1, 512, 256),
        "colorization": conv(3, 256, 128) + conv(3, 128, 64) + conv(3, 64, 64) + conv(3, 64, 32) + conv(3, 32, 2),
    }
    assert {name: trainable_count(getattr(model, name)) for name in expected} == expected
    assert model.count_params() == sum(expected.values()) == 42_308_093

    low_level = model.low_level(keras.KerasTensor((1, 224, 224, 1)))
    mid_level = model.mid_level(low_level)
    for_classifier, for_fusion = model.global_features(low_level)
    assert [shape(tensor) for tensor in (low_level, mid_level, for_classifier, for_fusion)] == [
        (28, 28, 512), (28, 28, 256), (512,), (256,)
    ]
    assert shape(model.fusion([mid_level, for_fusion])) == (28, 28, 256)
    assert shape(model.classifier(for_classifier)) == (27,)

    scaled_l, _ = photo_lab(224, names=("astronaut",))
    outputs = model({"L": scaled_l})
    assert outputs["ab"].shape == (1, 224, 224, 2) and outputs["class_logits"].shape == (1, 27)
    assert outputs["ab"].dtype == outputs["class_logits"].dtype == "float32"
    assert model.has_classifier


def test_classification_loss_trains_only_classifier_global_and_low_level_networks():
    """Section 3.2.3: the cross-entropy reaches the classification, global and low-level networks;
    the L1 loss reaches every network but the classifier."""
    model = IizukaColorizer(num_classes=27, image_size=32)  # the networks' wiring, not their size, decides
    scaled_l, scaled_ab = photo_lab(32, names=("astronaut",))
    with tf.GradientTape(persistent=True) as tape:
        outputs = model({"L": scaled_l}, training=True)
        cross_entropy = keras.losses.sparse_categorical_crossentropy(
            tf.constant([5]), outputs["class_logits"], from_logits=True
        )
        l1 = tf.reduce_mean(tf.abs(scaled_ab - outputs["ab"]))

    def reached(loss, network):
        gradients = tape.gradient(loss, network.trainable_weights)
        return {weight.path: gradient is not None and bool(np.any(gradient.numpy() != 0))
                for weight, gradient in zip(network.trainable_weights, gradients)}

    only_to_fusion = {weight.path for weight in model.global_features.get_layer("to_fusion").trainable_weights}
    for name in ("low_level", "global_features", "classifier"):
        reached_weights = reached(cross_entropy, getattr(model, name))
        assert reached_weights == {path: path not in only_to_fusion for path in reached_weights}, name
    for name in ("mid_level", "fusion", "colorization"):
        assert not any(reached(cross_entropy, getattr(model, name)).values()), name

    for name in ("low_level", "mid_level", "global_features", "fusion", "colorization"):
        assert all(reached(l1, getattr(model, name)).values()), name
    assert not any(reached(l1, model.classifier).values())


def test_iizuka_rejects_sizes_its_global_network_cannot_read():
    with pytest.raises(ValueError, match="divisible by 32"):
        IizukaColorizer(num_classes=3, image_size=100)
    with pytest.raises(ValueError, match=r"needs 32x32 inputs, got \(64, 64\)"):
        ab_of(IizukaColorizer(num_classes=3, image_size=32), tf.zeros((1, 64, 64, 1)))


def assert_iizuka_reloads_identically(model, inputs, tmp_path):
    """assert_reloads_identically for a model whose outputs are a dict."""
    path = tmp_path / "iizuka.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded) is IizukaColorizer and reloaded.get_config() == model.get_config()
    expected, actual = model(inputs), reloaded(inputs)
    for key in ("ab", "class_logits"):
        np.testing.assert_allclose(actual[key], expected[key], atol=1e-6)
    return reloaded


def test_iizuka_reloads_identically(tmp_path):
    scaled_l, _ = photo_lab(32)
    reloaded = assert_iizuka_reloads_identically(IizukaColorizer(num_classes=5, image_size=32), {"L": scaled_l},
                                                 tmp_path)
    assert (reloaded.num_classes, reloaded.image_size) == (5, 32)


# Both


TINY_MODELS = {
    "resnet_cnn": lambda: ResNetCNN(),
    "iizuka": lambda: IizukaColorizer(num_classes=5, image_size=32),
}


@pytest.mark.parametrize("name", TINY_MODELS)
def test_output_spans_scaled_ab(name):
    """The last convolution's activation (tanh; Iizuka's sigmoid mapped by 2s - 1) covers [-1, 1], gray at 0."""
    model = TINY_MODELS[name]()
    network = model.head if name == "resnet_cnn" else model.colorization
    last_conv = [layer for layer in network.layers if isinstance(layer, keras.layers.Conv2D)][-1]
    scaled_l, _ = photo_lab(32)
    last_conv.kernel.assign(tf.zeros_like(last_conv.kernel))
    for bias, ab in ((-20.0, -1.0), (0.0, 0.0), (20.0, 1.0)):
        last_conv.bias.assign(tf.fill(last_conv.bias.shape, bias))
        np.testing.assert_allclose(ab_of(model, scaled_l), ab, atol=1e-6)


def assert_same_weights(first, second):
    assert len(first.weights) == len(second.weights)
    for a, b in zip(first.weights, second.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


@pytest.mark.parametrize("name", TINY_MODELS)
def test_a_tensorflow_checkpoint_restores_every_weight(name, tmp_path):
    trained, fresh = TINY_MODELS[name](), TINY_MODELS[name]()
    ab_of(trained, tf.random.uniform((2, 32, 32, 1), -1.0, 1.0), training=True)  # moves any batch norm statistics
    path = tf.train.Checkpoint(model=trained).save(tmp_path / "checkpoint")
    tf.train.Checkpoint(model=fresh).restore(path).assert_existing_objects_matched()
    assert_same_weights(trained, fresh)


@pytest.mark.parametrize("name", TINY_MODELS)
def test_outputs_are_float32_under_mixed_bfloat16(mixed_bfloat16, name):
    model = TINY_MODELS[name]()
    assert model.dtype_policy.compute_dtype == "bfloat16"
    outputs = model({"L": tf.random.uniform((1, 32, 32, 1), -1.0, 1.0)}, training=True)
    assert "ab" in outputs
    for output in outputs.values():
        assert output.dtype == "float32"
