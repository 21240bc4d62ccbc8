"""Paper villarenteria's caption-conditioned ChromaGAN generators: Model B (4.2.3) and Model C (4.2.4).

Parameter counts are computed from the layer sizes of the parts (ChromaGAN's
ab branch as tests/test_chromagan.py derives it, the caption layers), so the
tests check the structure. VGG-16 networks have random weights.
"""

import contextlib
import io

import keras
import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

from chroma.export import export_saved_model
from chroma.losses import caption_cross_entropy
from chroma.models.caption_chromagan import FILM_BLOCKS, CaptionChromaGANGenerator
from chroma.models.caption_conditioning import FiLM
from chroma.models.chromagan import ChromaGANGenerator
from chroma.models.chromagan_critic import ChromaGANCritic
from chroma.training import AuxiliaryLoss, ConditionalGAN
from helpers import assert_reloads_identically, batch_norm, conv, dense, trainable_count

pytestmark = pytest.mark.xdist_group("caption_chromagan")  # the generators and captioners: built once, on one worker

SMALL = 32
VOCABULARY = ["a", "red", "cat", "on", "blue", "sky", "over", "green", "field"]
CAPTIONS = tf.constant(["a red cat on a mat", "a blue sky over a green field"])
CAPTION_IDS = 1500 + 2  # the tokenizer's default 1500 words, padding and the unknown word


VGG16_TRUNK_CONVS = ((3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
                     (256, 512), (512, 512), (512, 512))  # fmt: skip
# ChromaGAN's networks at 224 but its class head, which both models drop.
CHROMAGAN_AB_BRANCH = {
    "trunk": sum(conv(3, inputs, outputs) for inputs, outputs in VGG16_TRUNK_CONVS),
    "global_features": 4 * (conv(3, 512, 512) + batch_norm(512)),
    "global_vector": dense(7 * 7 * 512, 1024) + dense(1024, 512) + dense(512, 256),
    "mid_level": conv(3, 512, 512) + batch_norm(512) + conv(3, 512, 256) + batch_norm(256),
    "colorization": (conv(1, 256 + 256, 256) + conv(3, 256, 128) + conv(3, 128, 64) + conv(3, 64, 64)
                     + conv(3, 64, 32) + conv(3, 32, 2)),
}  # fmt: skip
BATCH_NORM_STATISTICS = 2 * (4 * 512 + 512 + 256)


def scaled_l(size=SMALL, batch=2, seed=0):
    return tf.random.stateless_uniform((batch, size, size, 1), seed=(seed, 1), minval=-1.0, maxval=1.0)


@pytest.fixture(scope="module")
def generators224():
    return {mode: CaptionChromaGANGenerator(VOCABULARY, mode=mode) for mode in ("channel", "film")}


@pytest.fixture(scope="module")
def small():
    """Small generators by mode, shared: a test that changes weights puts them back."""
    return {mode: CaptionChromaGANGenerator(VOCABULARY, mode=mode, image_size=SMALL) for mode in ("channel", "film")}


@pytest.fixture(scope="module")
def captioners():
    """Small Model C generators with a captioner, by flavour, shared: a test that changes weights puts them back."""
    return {
        flavour: CaptionChromaGANGenerator(VOCABULARY, mode="film", captioning=flavour, image_size=SMALL)
        for flavour in ("colour", "gray")
    }


@contextlib.contextmanager
def nonzero_film(generator, seed=0):
    """Random FiLM weights inside the block (they start at zero), zero again after it."""
    rng = np.random.default_rng(seed)
    films = [getattr(generator, name) for name, *_ in FILM_BLOCKS]
    for film in films:
        film.set_weights([rng.normal(scale=0.05, size=weight.shape).astype("float32") for weight in film.weights])
    try:
        yield
    finally:
        for film in films:
            film.set_weights([np.zeros(weight.shape, "float32") for weight in film.weights])


@contextlib.contextmanager
def weights_put_back(generator):
    """Every weight of the generator (batch norm's statistics too) as before the block, after it: a shared
    generator trained in a test, for the others."""
    saved = generator.get_weights()
    try:
        yield
    finally:
        generator.set_weights(saved)


# Model B


def test_model_b_at_224_adds_a_caption_channel_and_drops_the_class_head(generators224):
    """47,644,526 parameters: ChromaGAN's ab branch, a 4th block1_conv1 input channel and the caption channel."""
    generator = generators224["channel"]
    ab = generator({"L": scaled_l(224, batch=1), "caption": CAPTIONS[:1]})["ab"]
    assert ab.shape == (1, 224, 224, 2) and ab.dtype == tf.float32
    assert np.all(np.abs(ab) <= 1.0)
    assert generator.trunk.input.shape == (None, 224, 224, 4)
    assert generator.trunk.get_layer("block1_conv1").kernel.shape == (3, 3, 4, 64)
    assert not hasattr(generator, "classifier")
    caption_channel = CAPTION_IDS * 50 + dense(50, 28 * 28)  # 50-d word vectors, a 28x28 map
    assert generator.caption_channel.count_params() == caption_channel
    caption_kernel_slice = 3 * 3 * 64
    assert generator.trunk.count_params() == CHROMAGAN_AB_BRANCH["trunk"] + caption_kernel_slice
    for name in ("global_features", "global_vector", "mid_level", "colorization"):
        assert getattr(generator, name).count_params() == CHROMAGAN_AB_BRANCH[name]
    total = sum(CHROMAGAN_AB_BRANCH.values()) + caption_kernel_slice + caption_channel
    assert generator.count_params() == total == 47_644_526
    assert trainable_count(generator) == total - BATCH_NORM_STATISTICS


def test_model_b_output_follows_the_caption(small):
    generator = small["channel"]
    same_image = tf.repeat(scaled_l(batch=1), 2, axis=0)
    ab = generator({"L": same_image, "caption": CAPTIONS})["ab"].numpy()
    assert np.abs(ab[0] - ab[1]).max() > 1e-6


def test_model_b_trunk_takes_a_local_vgg_file_but_for_the_caption_slice(tmp_path):
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(SMALL, SMALL, 3))
    path = tmp_path / "vgg16_notop.weights.h5"
    vgg.save_weights(path)
    trunk = CaptionChromaGANGenerator(VOCABULARY, image_size=SMALL, vgg_weights=str(path)).trunk
    kernel, bias = trunk.get_layer("block1_conv1").get_weights()
    vgg_kernel, vgg_bias = vgg.get_layer("block1_conv1").get_weights()
    np.testing.assert_array_equal(kernel[:, :, :3], vgg_kernel)
    np.testing.assert_array_equal(bias, vgg_bias)
    assert np.abs(kernel[:, :, 3]).max() > 0.0  # the caption's slice starts random
    loaded, saved = trunk.get_layer("block4_conv3").get_weights(), vgg.get_layer("block4_conv3").get_weights()
    for loaded_weight, saved_weight in zip(loaded, saved):
        np.testing.assert_array_equal(loaded_weight, saved_weight)


# Model C


def test_model_c_at_224_modulates_nine_blocks(generators224):
    """49,691,866 parameters: ChromaGAN's ab branch, the bidirectional LSTM and 9 FiLM layers (no bias)."""
    generator = generators224["film"]
    ab = generator({"L": scaled_l(224, batch=1), "caption": CAPTIONS[:1]})["ab"]
    assert ab.shape == (1, 224, 224, 2) and ab.dtype == tf.float32
    assert not hasattr(generator, "classifier")
    ends = [layer for _, network, layer, _ in FILM_BLOCKS if network == generator.trunk.name]
    assert ends == ["block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3"]
    # Each block's last layer is one of its sub-network's, with as many channels as its FiLM modulates.
    networks = {network.name: network for network in
                (generator.trunk, generator.global_features, generator.mid_level, generator.colorization)}
    for _, network, layer, channels in FILM_BLOCKS:
        assert networks[network].get_layer(layer).output.shape[-1] == channels, layer
    encoder = CAPTION_IDS * 300 + 2 * 4 * 150 * (300 + 150 + 1)  # 300-d words, 150 LSTM units a direction
    assert generator.caption_encoder.count_params() == encoder
    films = 0
    for name, _, _, channels in FILM_BLOCKS:
        film = getattr(generator, name)
        assert isinstance(film, FiLM) and film.count_params() == 2 * 300 * channels
        films += film.count_params()
    assert films == 2 * 300 * (64 + 128 + 256 + 512 + 512 + 256 + 128 + 64 + 32)
    for name, count in CHROMAGAN_AB_BRANCH.items():
        assert getattr(generator, name).count_params() == count
    total = sum(CHROMAGAN_AB_BRANCH.values()) + encoder + films
    assert generator.count_params() == total == 49_691_866
    assert trainable_count(generator) == total - BATCH_NORM_STATISTICS


def test_model_c_with_zero_film_is_chromagan_then_follows_the_caption(small):
    generator = small["film"]
    reference = ChromaGANGenerator(image_size=SMALL, num_classes=None)  # the ab branch alone, as Model C
    for name in CHROMAGAN_AB_BRANCH:
        getattr(reference, name).set_weights(getattr(generator, name).get_weights())
    same_image = tf.repeat(scaled_l(batch=1), 2, axis=0)
    ab = generator({"L": same_image, "caption": CAPTIONS})["ab"]
    np.testing.assert_array_equal(ab, reference({"L": same_image})["ab"])
    with nonzero_film(generator):
        ab = generator({"L": same_image, "caption": CAPTIONS})["ab"].numpy()
    assert np.abs(ab[0] - ab[1]).max() > 1e-6


def test_checkpoints_hold_every_film_weight(small, tmp_path):
    """Sub-layers are attributes, never lists, so tf.train.Checkpoint saves all of them."""
    generator = small["film"]
    path = tf.train.Checkpoint(generator=generator).write(str(tmp_path / "checkpoint"))
    saved = [name for name, _ in tf.train.list_variables(path) if name.startswith("generator/")]
    assert len(saved) == len(generator.weights)
    assert sum(f"generator/{name}/" in variable for name, *_ in FILM_BLOCKS for variable in saved) == 2 * 9


# Model C's captioner

# The captioner's image features: the pooled 256 of concat(L, ab) (C.1) or block4_conv3's pooled 512 (C.2).
CAPTIONER_FEATURES = {"colour": 256, "gray": 512}
COLOUR_ENCODER = conv(3, 3, 32) + conv(3, 32, 64) + conv(3, 64, 128) + conv(3, 128, 256)


def decoder_count(features):
    """CaptionDecoder at its defaults: 256-d word vectors, 512 LSTM units, its initial state from the features."""
    return CAPTION_IDS * 256 + dense(features, 512) + 4 * 512 * (256 + 512 + 1) + dense(512, CAPTION_IDS)


def ab_output_conv(generator):
    return generator.colorization.layers[-2]


def caption_loss(generator, inputs, training=False):
    logits = generator(inputs, training=training)["caption_logits"]
    return caption_cross_entropy(inputs["tokens"], logits)


@pytest.mark.parametrize("flavour", ["colour", "gray"])
def test_captioner_predicts_every_word_from_the_words_before(small, captioners, flavour):
    """caption_logits[:, t] predicts tokens[:, t] and reads tokens before t only."""
    generator = captioners[flavour]
    inputs = generator.complete({"L": scaled_l(), "caption": CAPTIONS})
    outputs = generator(inputs)
    assert set(outputs) == {"ab", "caption_logits"}
    assert outputs["ab"].shape == (2, SMALL, SMALL, 2)
    assert outputs["caption_logits"].shape == (2, 16, CAPTION_IDS) and outputs["caption_logits"].dtype == tf.float32
    decoder = decoder_count(CAPTIONER_FEATURES[flavour])
    assert generator.caption_decoder.count_params() == decoder
    encoder = COLOUR_ENCODER if flavour == "colour" else 0
    assert generator.count_params() == small["film"].count_params() + encoder + decoder
    changed = inputs["tokens"].numpy()
    changed[:, 3] = 4  # the 4th word becomes "cat"
    logits = generator({**inputs, "tokens": tf.constant(changed)})["caption_logits"].numpy()
    np.testing.assert_array_equal(logits[:, :4], outputs["caption_logits"][:, :4])
    assert np.abs(logits[:, 4:] - outputs["caption_logits"][:, 4:]).max() > 1e-6


def test_colour_captioner_reads_the_colorization_and_gray_the_unmodulated_trunk(captioners):
    """C.1's logits follow the ab output convolution; C.2's follow neither it nor the caption's FiLM."""
    inputs = {"L": scaled_l(), "caption": CAPTIONS}
    before = {flavour: generator(inputs)["caption_logits"].numpy() for flavour, generator in captioners.items()}
    saved = {flavour: ab_output_conv(generator).get_weights() for flavour, generator in captioners.items()}
    for flavour, (kernel, bias) in saved.items():
        ab_output_conv(captioners[flavour]).set_weights([kernel + 0.1, bias])
    try:
        after = {flavour: generator(inputs)["caption_logits"].numpy() for flavour, generator in captioners.items()}
    finally:
        for flavour, weights in saved.items():
            ab_output_conv(captioners[flavour]).set_weights(weights)
    assert np.abs(after["colour"] - before["colour"]).max() > 1e-6
    np.testing.assert_array_equal(after["gray"], before["gray"])
    gray = captioners["gray"]
    with nonzero_film(gray):
        modulated = gray(inputs)
    assert np.abs(modulated["ab"] - gray(inputs)["ab"]).max() > 1e-6
    np.testing.assert_array_equal(modulated["caption_logits"], before["gray"])


@pytest.mark.parametrize("flavour", ["colour", "gray"])
def test_caption_loss_trains_what_its_flavour_reads(captioners, flavour):
    """Both train the VGG trunk; only C.1's loss reaches the ab output convolution and the FiLM layers."""
    generator = captioners[flavour]
    inputs = generator.complete({"L": scaled_l(), "caption": CAPTIONS})
    watched = {
        "decoder": generator.caption_decoder.trainable_weights,
        "trunk": generator.trunk.get_layer("block1_conv1").trainable_weights,
        "ab output": ab_output_conv(generator).trainable_weights,
        "film": generator.film_colorization3.trainable_weights,
    }
    with tf.GradientTape() as tape:
        loss = caption_loss(generator, inputs, training=True)
    gradients = tape.gradient(loss, watched)
    reached = {
        part: any(gradient is not None and np.abs(tf.convert_to_tensor(gradient)).max() > 0.0 for gradient in grads)
        for part, grads in gradients.items()
    }
    colour = flavour == "colour"
    assert reached == {"decoder": True, "trunk": True, "ab output": colour, "film": colour}


def test_captioner_leaves_the_colorization_unchanged(small, captioners):
    """With the same weights, captioning="gray" gives the ab of the generator without a captioner."""
    generator, reference = captioners["gray"], small["film"]
    saved = generator.get_weights()
    shared = ["caption_encoder", *(name for name, *_ in FILM_BLOCKS), *CHROMAGAN_AB_BRANCH]
    try:
        for name in shared:
            getattr(generator, name).set_weights(getattr(reference, name).get_weights())
        inputs = {"L": scaled_l(), "caption": CAPTIONS}
        with nonzero_film(generator), nonzero_film(reference):
            np.testing.assert_array_equal(generator(inputs)["ab"], reference(inputs)["ab"])
    finally:
        generator.set_weights(saved)


@pytest.mark.parametrize("flavour", ["colour", pytest.param("gray", marks=pytest.mark.slow(
    "a second .keras round trip of a VGG-16 captioner; the colour one, which has more layers, stays fast"))])
def test_captioner_reloads_and_checkpoints_whole(captioners, flavour, tmp_path):
    generator = captioners[flavour]
    inputs = {"L": scaled_l(), "caption": CAPTIONS}
    with nonzero_film(generator):
        generator.save(tmp_path / "captioner.keras")
        reloaded = keras.saving.load_model(tmp_path / "captioner.keras")
        outputs, reloaded_outputs = generator(inputs), reloaded(inputs)
    assert reloaded.captioning == flavour and reloaded.get_config() == generator.get_config()
    for name in ("ab", "caption_logits"):
        np.testing.assert_allclose(reloaded_outputs[name], outputs[name], atol=1e-6)
    path = tf.train.Checkpoint(generator=generator).write(str(tmp_path / "checkpoint"))
    saved = [name for name, _ in tf.train.list_variables(path) if name.startswith("generator/")]
    assert len(saved) == len(generator.weights)


def eager_wgan_gp(generator, *auxiliary_losses):
    """`generator` against a small ChromaGAN critic, compiled as villarenteria's WGAN-GP and stepped eagerly."""
    model = ConditionalGAN(generator, ChromaGANCritic(base_filters=8))
    model.compile(g_optimizer=keras.optimizers.Adam(2e-5, beta_1=0.5),
                  d_optimizer=keras.optimizers.Adam(2e-5, beta_1=0.5), adversarial_loss="wgan-gp",
                  reconstruction_loss="mse", reconstruction_weight=1.0,
                  auxiliary_losses=auxiliary_losses, run_eagerly=True)
    return model


def test_one_conditional_gan_train_step_trains_the_captioner(captioners):
    generator = captioners["colour"]
    with weights_put_back(generator):
        before = [weight.numpy() for weight in generator.caption_decoder.weights]
        caption_term = AuxiliaryLoss("caption", "caption_logits", "tokens", caption_cross_entropy, 1.0)
        model = eager_wgan_gp(generator, caption_term)
        ab = tf.random.stateless_uniform((2, SMALL, SMALL, 2), seed=(1, 2), minval=-1.0, maxval=1.0)
        # The batch as chroma.training.train makes it in tf.data: the caption loss's target, the tokens, in it.
        batch = {**generator.complete({"L": scaled_l(), "caption": CAPTIONS}), "ab": ab}
        logs = model.train_on_batch(batch, return_dict=True)
        # An untrained captioner is near uniform over the caption ids: a cross-entropy near log(1502).
        assert abs(logs["g_caption_loss"] - np.log(CAPTION_IDS)) < 0.5
        after = [weight.numpy() for weight in generator.caption_decoder.weights]
    assert all(np.abs(new - old).max() > 0.0 for new, old in zip(after, before))


# Both


@pytest.mark.parametrize("mode", ["channel", "film"])
def test_strings_and_tokens_give_the_same_ab(small, mode):
    generator = small[mode]
    batch = {"L": scaled_l(), "caption": CAPTIONS}
    inputs = generator.complete(batch)
    assert set(inputs) == {"L", "tokens"}
    np.testing.assert_array_equal(inputs["tokens"], generator.tokenizer(CAPTIONS))
    assert inputs["tokens"].shape == (2, 16)
    with nonzero_film(generator) if mode == "film" else contextlib.nullcontext():
        np.testing.assert_array_equal(generator(inputs)["ab"], generator(batch)["ab"])


@pytest.mark.parametrize("mode", ["channel", "film"])
def test_one_conditional_gan_train_step_updates_the_caption_layers(small, mode):
    generator = small[mode]
    with weights_put_back(generator):
        # Model B's caption reaches the loss through its channel from the first step; Model C's through the FiLM
        # weights, which start at zero, so they learn first (the encoder follows on the next step).
        caption_layer = generator.caption_channel if mode == "channel" else generator.film_vgg_block1
        before = [weight.numpy() for weight in caption_layer.weights]
        model = eager_wgan_gp(generator)
        ab = tf.random.stateless_uniform((2, SMALL, SMALL, 2), seed=(1, 2), minval=-1.0, maxval=1.0)
        logs = model.train_on_batch({"L": scaled_l(), "ab": ab, "caption": CAPTIONS}, return_dict=True)
        assert all(np.isfinite(value) for value in logs.values())
        caption_layer_after = [weight.numpy() for weight in caption_layer.weights]
    assert any(np.abs(after - old).max() > 0.0 for after, old in zip(caption_layer_after, before))


@pytest.mark.parametrize("mode", ["channel", pytest.param("film", marks=pytest.mark.slow(
    "a .keras round trip of a VGG-16 generator; test_captioner_reloads_and_checkpoints_whole[colour] reloads "
    "Model C with its captioner in the fast tier"))])
def test_reload_keeps_the_vocabulary_and_the_outputs(small, mode, tmp_path):
    generator = small[mode]
    inputs = {"L": scaled_l(), "caption": CAPTIONS}
    with nonzero_film(generator) if mode == "film" else contextlib.nullcontext():
        reloaded = assert_reloads_identically(generator, inputs, tmp_path)
    assert reloaded.tokenizer.get_vocabulary() == VOCABULARY
    assert reloaded.get_config()["vocabulary"] == VOCABULARY and reloaded.mode == mode


@pytest.mark.parametrize("mode, captioning", [("channel", None), pytest.param("film", None, marks=pytest.mark.slow(
    "builds a VGG-16 Model C under the policy; the film-colour case builds the same with its captioner, in the fast "
    "tier")), ("film", "colour")])
def test_outputs_are_float32_under_mixed_bfloat16(mixed_bfloat16, mode, captioning):
    generator = CaptionChromaGANGenerator(VOCABULARY, mode=mode, captioning=captioning, image_size=SMALL)
    assert generator.dtype_policy.compute_dtype == "bfloat16"
    outputs = generator({"L": scaled_l(), "caption": CAPTIONS}, training=True)
    assert set(outputs) == ({"ab", "caption_logits"} if captioning else {"ab"})
    for output in outputs.values():
        assert output.dtype == tf.float32


def test_generators_refuse_what_they_cannot_read(small):
    # The caption is an input wherever the generator runs: a batch with neither caption nor tokens is refused.
    with pytest.raises(ValueError, match="reads 'tokens', made from 'caption'; the batch has neither"):
        small["channel"]({"L": scaled_l()})
    with pytest.raises(ValueError, match=f"needs {SMALL}x{SMALL}"):
        small["film"]({"L": scaled_l(96), "caption": CAPTIONS})
    with pytest.raises(ValueError, match="divisible by 32"):
        CaptionChromaGANGenerator(VOCABULARY, image_size=100)
    with pytest.raises(ValueError, match="mode"):
        CaptionChromaGANGenerator(VOCABULARY, mode="sum")
    with pytest.raises(ValueError, match="mode='film'"):
        CaptionChromaGANGenerator(VOCABULARY, mode="channel", captioning="gray")
    with pytest.raises(ValueError, match="captioning must be one of"):
        CaptionChromaGANGenerator(VOCABULARY, mode="film", captioning="color")
    assert set(small["film"]({"L": scaled_l(), "caption": CAPTIONS})) == {"ab"}  # no captioner: ab alone


@pytest.mark.slow("exports Model C, a VGG-16 network with an LSTM, traced for every signature; "
                  "test_export.py::test_caption_models_are_served_with_a_caption serves a caption in the fast tier")
def test_exported_model_c_colorizes_image_bytes_by_their_caption(small, tmp_path):
    """Model C served as the paper runs it, image and caption in: a photo's bytes and its caption string."""
    generator = small["film"]
    with nonzero_film(generator):
        export_saved_model(generator, tmp_path / "model_c", image_size=SMALL)
    serve = tf.saved_model.load(str(tmp_path / "model_c")).signatures["serving_default"]
    png = io.BytesIO()
    Image.fromarray(skimage.data.coffee()).save(png, format="PNG")
    image_bytes = tf.constant([png.getvalue()])
    red = serve(image_bytes=image_bytes, caption=tf.constant(["a red cat on a mat"]))["colorized"][0].numpy()
    sky = serve(image_bytes=image_bytes, caption=tf.constant(["a blue sky over a green field"]))["colorized"][0]
    assert red.shape == skimage.data.coffee().shape
    assert np.abs(red.astype(int) - sky).max() > 0
