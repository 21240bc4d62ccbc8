"""Paper nampouri's networks (appendix A): sizes of figures 10-15, behaviour, saving, pretrained weights."""

import json
import shutil

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from chroma.models.blocks import SwitchableDropout
from chroma.models.generator import Generator
from chroma.models.patchgan import PatchDiscriminator
from chroma.models.resnet18 import KERAS_HUB_CONFIG
from chroma.models.resnet_unet import ResNetUNetGenerator
from chroma.models.unet import UNetGenerator
from helpers import ab_of, assert_reloads_identically, photo_lab, trainable_count

pytestmark = pytest.mark.xdist_group("nampouri_models")  # the ResNet-18 generator, its encoder file: built once


def symbolic_shapes(tensors):
    return [tuple(tensor.shape[1:]) for tensor in tensors]


def blocks(network):
    """The Sequential blocks of an encoder, decoder or discriminator, input side first."""
    return [layer for layer in network.layers if isinstance(layer, keras.Sequential)]


# U-Net generator, appendix A.1


def test_unet_matches_figures_10_and_11_at_256():
    model = UNetGenerator()
    assert trainable_count(model.encoder) == 19_536_128  # figure 10
    assert trainable_count(model.decoder) == 34_874_242  # figure 11
    # Built before seeing any data; batch norm's moving statistics are as many as its trainable parameters.
    assert model.count_params() == 19_536_128 + 34_874_242 + 9_856

    encoder = model.encoder(keras.KerasTensor((1, 256, 256, 1)))
    assert symbolic_shapes(encoder) == [
        (128, 128, 64), (64, 64, 128), (32, 32, 256), (16, 16, 512),
        (8, 8, 512), (4, 4, 512), (2, 2, 512), (1, 1, 512),
    ]
    assert symbolic_shapes(model.decoder(encoder)) == [
        (2, 2, 512), (4, 4, 512), (8, 8, 512), (16, 16, 512),
        (32, 32, 256), (64, 64, 128), (128, 128, 64), (256, 256, 2),
    ]
    # CD512-CD1024-CD1024: dropout in the three innermost decoder blocks only.
    decoder_blocks = blocks(model.decoder)
    has_dropout = [any(isinstance(layer, SwitchableDropout) for layer in block.layers) for block in decoder_blocks]
    assert has_dropout == [True, True, True] + [False] * 5

    scaled_l, _ = photo_lab(256, names=("astronaut",))
    ab = ab_of(model, scaled_l)
    assert ab.shape == (1, 256, 256, 2) and ab.dtype == "float32"
    assert np.abs(ab.numpy()).max() <= 1.0


def test_unet_initialisation_is_n_0_002_and_differs_between_layers():
    model = UNetGenerator(base_filters=32, depth=7)
    encoder_blocks = blocks(model.encoder)
    kernels = [block.layers[-2].kernel.numpy() for block in encoder_blocks[4:6]]  # two (4, 4, 256, 256) convs
    assert kernels[0].shape == kernels[1].shape
    assert not np.allclose(kernels[0], kernels[1])
    for kernel in kernels:
        assert abs(kernel.mean()) < 1e-3 and kernel.std() == pytest.approx(0.02, rel=0.05)
    norm = encoder_blocks[4].layers[-1]
    assert norm.synchronized and norm.momentum == 0.9 and norm.epsilon == 1e-5
    assert norm.gamma.numpy().std() == pytest.approx(0.02, rel=0.3)
    assert norm.gamma.numpy().mean() == pytest.approx(1.0, abs=0.01)


def test_small_unet_colours_a_photo_at_its_size():
    scaled_l, _ = photo_lab(32)
    ab = ab_of(UNetGenerator(base_filters=8, depth=5), scaled_l, training=True)
    assert ab.shape == (2, 32, 32, 2) and ab.dtype == "float32"
    assert np.all(np.abs(ab.numpy()) <= 1.0) and np.isfinite(ab.numpy()).all()


def test_unet_rejects_sizes_it_cannot_halve_depth_times():
    model = UNetGenerator(base_filters=4, depth=4)
    with pytest.raises(ValueError, match="divisible by 16"):
        ab_of(model, tf.zeros((1, 24, 24, 1)))


@pytest.mark.parametrize("at_inference", [True, False])
def test_unet_dropout_at_inference_is_an_option(at_inference):
    scaled_l, _ = photo_lab(32)
    model = UNetGenerator(base_filters=8, depth=5, dropout_at_inference=at_inference)
    first, second = ab_of(model, scaled_l).numpy(), ab_of(model, scaled_l).numpy()
    assert np.array_equal(first, second) != at_inference
    assert not np.array_equal(ab_of(model, scaled_l, training=True).numpy(),
                              ab_of(model, scaled_l, training=True).numpy())


def test_unet_reloads_identically(tmp_path):
    scaled_l, _ = photo_lab(16)
    model = UNetGenerator(base_filters=4, depth=3, dropout=0.25)
    reloaded = assert_reloads_identically(model, {"L": scaled_l}, tmp_path)
    assert (reloaded.base_filters, reloaded.depth, reloaded.dropout) == (4, 3, 0.25)


# ResNet-18 generator, appendix A.2


def test_resnet_unet_matches_figures_12_and_13_at_256():
    model = ResNetUNetGenerator()
    encoder = model.encoder
    assert trainable_count(encoder) == 11_176_512  # figure 12
    assert trainable_count(model.decoder) == 3_544_066  # figure 13

    def block_count(prefix):
        return trainable_count(*(layer for layer in encoder.layers if layer.name.startswith(prefix)))

    assert block_count("conv1_") == 9_408 + 128
    basic_blocks = [f"stack{stack}_block{block}_" for stack in range(4) for block in range(2)]
    assert [block_count(prefix) for prefix in basic_blocks] == [
        73_984, 73_984, 230_144, 295_424, 919_040, 1_180_672, 3_673_088, 4_720_640
    ]

    features = encoder(keras.KerasTensor((1, 256, 256, 3)))
    assert symbolic_shapes(features) == [(128, 128, 64), (64, 64, 64), (32, 32, 128), (16, 16, 256), (8, 8, 512)]
    assert symbolic_shapes(model.decoder(features)) == [
        (16, 16, 256), (32, 32, 128), (64, 64, 64), (128, 128, 64), (256, 256, 2)
    ]
    assert ab_of(model, keras.KerasTensor((1, 256, 256, 1))).shape == (1, 256, 256, 2)


def test_resnet_unet_colours_a_small_photo_at_its_size():
    scaled_l, _ = photo_lab(64)
    ab = ab_of(ResNetUNetGenerator(backbone_weights="none"), scaled_l, training=True)
    assert ab.shape == (2, 64, 64, 2) and ab.dtype == "float32"
    assert np.all(np.abs(ab.numpy()) <= 1.0) and np.isfinite(ab.numpy()).all()


@pytest.fixture(scope="module")
def source():
    """A ResNet-18 generator whose encoder the backbone tests save and load elsewhere; shared, never changed."""
    return ResNetUNetGenerator()


@pytest.fixture(scope="module")
def encoder_file(source, tmp_path_factory):
    """The shared generator's encoder saved as a .weights.h5 file."""
    path = tmp_path_factory.mktemp("encoder") / "encoder.weights.h5"
    source.encoder.save_weights(path)
    return path


def assert_same_weights(first, second):
    assert len(first.weights) == len(second.weights)
    for a, b in zip(first.weights, second.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_encoder_weights_saved_from_a_generator_load_into_another(source, encoder_file):
    loaded = ResNetUNetGenerator(backbone_weights=str(encoder_file))
    assert_same_weights(source.encoder, loaded.encoder)
    assert not np.array_equal(source.decoder.weights[0].numpy(), loaded.decoder.weights[0].numpy())


def write_keras_hub_preset(encoder, directory, **config_changes):
    """A preset directory as keras-hub's ResNetBackbone.save_to_preset writes it for resnet_18_imagenet.

    keras-hub's backbone is a functional model with the encoder's graph, so
    Keras writes the same model.weights.h5 for it: layers/<class>[_<n>]/vars/<i>.
    """
    directory.mkdir()
    config = {"name": "res_net_backbone", "trainable": True, **KERAS_HUB_CONFIG, "image_shape": [None, None, 3]}
    (directory / "config.json").write_text(json.dumps({
        "module": "keras_hub.src.models.resnet.resnet_backbone", "class_name": "ResNetBackbone",
        "config": {**config, **config_changes}, "registered_name": "keras_hub>ResNetBackbone",
    }))
    encoder.save_weights(directory / "model.weights.h5")
    return directory


def test_keras_hub_preset_loads_into_the_encoder(source, tmp_path):
    preset = write_keras_hub_preset(source.encoder, tmp_path / "resnet_18_imagenet")
    assert_same_weights(source.encoder, ResNetUNetGenerator(backbone_weights=str(preset)).encoder)

    # Files written by older Keras versions record no layer names: the order of the entries is enough.
    with h5py.File(preset / "model.weights.h5", "a") as weights_file:
        for entry in weights_file["layers"].values():
            entry["vars"].attrs.pop("name", None)
    assert_same_weights(source.encoder, ResNetUNetGenerator(backbone_weights=str(preset)).encoder)


def test_keras_hub_preset_of_another_network_is_refused(source, tmp_path):
    preset = write_keras_hub_preset(source.encoder, tmp_path / "resnet_50", block_type="bottleneck_block")
    with pytest.raises(ValueError, match="block_type.*bottleneck_block"):
        ResNetUNetGenerator(backbone_weights=str(preset))


def test_keras_hub_weights_of_the_wrong_shape_name_the_entry(source, tmp_path):
    preset = write_keras_hub_preset(source.encoder, tmp_path / "resnet_18_imagenet")
    with h5py.File(preset / "model.weights.h5", "a") as weights_file:
        del weights_file["layers/conv2d_1/vars/0"]
        weights_file["layers/conv2d_1/vars"].create_dataset("0", data=np.zeros((3, 3, 64, 32), "float32"))
    with pytest.raises(ValueError, match=r"layers/conv2d_1/vars/0 has shape \(3, 3, 64, 32\).*stack0_block0_1_conv"):
        ResNetUNetGenerator(backbone_weights=str(preset))


def test_missing_backbone_weights_say_how_to_train_without_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="--asset resnet18=none") as missing:
        ResNetUNetGenerator(backbone_weights=str(tmp_path / "resnet_18_imagenet"))
    assert "resnet_18_imagenet" in str(missing.value) and "kagglehub" in str(missing.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        ResNetUNetGenerator(backbone_weights=str(tmp_path / "empty"))


def test_resnet_unet_reloads_without_its_backbone_file(encoder_file, tmp_path):
    path = tmp_path / "encoder.weights.h5"
    shutil.copyfile(encoder_file, path)
    model = ResNetUNetGenerator(backbone_weights=str(path))
    path.unlink()  # a saved generator carries its encoder: the pretrained file is not needed to load it
    scaled_l, _ = photo_lab(32)
    assert_reloads_identically(model, {"L": scaled_l}, tmp_path)


# PatchGAN discriminator, appendix A.3


def test_patchgan_matches_figure_15_at_256():
    model = PatchDiscriminator()
    assert trainable_count(model) == 2_765_633
    x = keras.KerasTensor((1, 256, 256, 3))
    shapes = []
    for block in model.network.layers:
        x = block(x)
        shapes.append(tuple(x.shape[1:]))
    # pix2pix's shapes: C512 has stride 1 (31x31, not figure 15's 16x16), so the logits are 30x30 as in figure 15.
    assert shapes == [(128, 128, 64), (64, 64, 128), (32, 32, 256), (31, 31, 512), (30, 30, 1)]
    # Logits: the losses apply the sigmoid.
    assert model.network.layers[-1].layers[-1].activation is keras.activations.linear


def test_each_patchgan_logit_sees_a_70x70_patch():
    model = PatchDiscriminator(base_filters=2)
    image = tf.random.uniform((1, 128, 128, 3), -1.0, 1.0)
    with tf.GradientTape() as tape:
        tape.watch(image)
        logits = model(image, training=False)
        centre = logits[0, 7, 7, 0]
    assert logits.shape == (1, 14, 14, 1)
    seen = np.abs(tape.gradient(centre, image).numpy()[0]).sum(axis=-1) > 0
    rows, cols = np.nonzero(seen.any(axis=1))[0], np.nonzero(seen.any(axis=0))[0]
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (70, 70)


def test_patchgan_judges_a_photo_pair_patch_by_patch(tmp_path):
    scaled_l, scaled_ab = photo_lab(64)
    model = PatchDiscriminator(base_filters=4, n_layers=2)
    pair = tf.concat([scaled_l, scaled_ab], axis=-1)
    assert model(pair, training=True).shape == (2, 14, 14, 1)
    reloaded = assert_reloads_identically(model, pair, tmp_path)
    assert (reloaded.base_filters, reloaded.n_layers) == (4, 2)


# All three


TINY_MODELS = {
    "unet": (lambda: UNetGenerator(base_filters=4, depth=3), 1),
    "resnet_unet": (lambda: ResNetUNetGenerator(), 1),
    "patchgan": (lambda: PatchDiscriminator(base_filters=4), 3),
}


def run(model, inputs, training):
    """A generator's ab for scaled L, or the discriminator's logits for an image."""
    return ab_of(model, inputs, training) if isinstance(model, Generator) else model(inputs, training=training)


@pytest.mark.parametrize("name", TINY_MODELS)
def test_a_tensorflow_checkpoint_restores_every_weight(name, tmp_path):
    build, channels = TINY_MODELS[name]
    trained, fresh = build(), build()
    inputs = tf.random.uniform((2, 32, 32, channels), -1.0, 1.0)
    run(trained, inputs, training=True)  # moves the batch norm statistics away from their initial values
    path = tf.train.Checkpoint(model=trained).save(tmp_path / "checkpoint")
    tf.train.Checkpoint(model=fresh).restore(path).assert_existing_objects_matched()
    assert_same_weights(trained, fresh)


@pytest.mark.parametrize("name", TINY_MODELS)
def test_outputs_are_float32_under_mixed_bfloat16(mixed_bfloat16, name):
    build, channels = TINY_MODELS[name]
    model = build()
    assert model.dtype_policy.compute_dtype == "bfloat16"
    outputs = run(model, tf.random.uniform((1, 32, 32, channels), -1.0, 1.0), training=True)
    assert outputs.dtype == "float32"
