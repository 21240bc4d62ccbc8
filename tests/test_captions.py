"""Paper villarenteria's caption side: the 1500-word vocabulary (section 5), Model B's caption channel
(4.2.3) and Model C's bidirectional LSTM and FiLM (section 2, 4.2.4)."""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from chroma.data import coco, make_dataset, samples
from chroma.models.caption_conditioning import CaptionChannel, CaptionEncoder, FiLM
from chroma.models.caption_tokenizer import CaptionTokenizer, build_vocabulary
from helpers import assert_reloads_identically

# Word counts: a 7, red 4, cat 3, on 2, mat 1, thing 1.
CAPTIONS = ["A red cat on a mat.", "a red cat", "A red cat, on a red thing?", "a a"]


def small_tokenizer(sequence_length=6):
    """The three most frequent words of CAPTIONS."""
    tokenizer = CaptionTokenizer(max_tokens=3, sequence_length=sequence_length)
    tokenizer.adapt(CAPTIONS)
    return tokenizer


@functools.cache
def sample_vocabulary():
    """The 59 words of the bundled photos' captions."""
    return tuple(build_vocabulary(samples()).get_vocabulary())


def token_ids(captions, sequence_length=16):
    return CaptionTokenizer(sample_vocabulary(), sequence_length=sequence_length)(tf.constant(captions))


# CaptionTokenizer


def test_vocabulary_is_the_most_frequent_words_after_padding_and_unknown():
    tokenizer = small_tokenizer()
    assert tokenizer.get_vocabulary() == ["a", "red", "cat"]
    assert tokenizer.vocabulary_size == 5
    ids = tokenizer(tf.constant(["A CAT, on a red mat!", "", "cat " * 10])).numpy()
    np.testing.assert_array_equal(
        ids,
        [
            [2, 4, 1, 2, 3, 1],  # lowercased, punctuation gone, "on" and "mat" unknown
            [0, 0, 0, 0, 0, 0],  # all padding
            [4, 4, 4, 4, 4, 4],  # cut at sequence_length
        ],
    )


def test_default_vocabulary_holds_1500_words():
    words = [f"word{i}" for i in range(1600)]
    # word i appears 1600 - i times, so the first 1500 are the most frequent.
    tokenizer = build_vocabulary([" ".join(words[: 1600 - i]) for i in range(1600)])
    assert tokenizer.get_vocabulary() == words[:1500]
    np.testing.assert_array_equal(tokenizer(["word0 word1499 word1500"])[0, :4], [2, 1501, 1, 0])


def test_tokenizer_without_vocabulary_refuses_to_run():
    with pytest.raises(ValueError, match="adapt"):
        CaptionTokenizer()(["a cat"])


def test_tokens_are_the_same_eagerly_in_tf_data_and_in_a_saved_model(tmp_path):
    tokenizer = small_tokenizer()
    captions = tf.constant(["a red cat on a mat", "the cat", ""])
    expected = tokenizer(captions).numpy()

    batched = tf.data.Dataset.from_tensor_slices(captions).batch(3).map(tokenizer)
    np.testing.assert_array_equal(next(iter(batched)), expected)
    one_by_one = tf.data.Dataset.from_tensor_slices(captions).map(tokenizer)
    np.testing.assert_array_equal(np.stack(list(one_by_one.as_numpy_iterator())), expected)

    module = tf.Module()
    module.tokenizer = tokenizer
    module.tokenize = tf.function(tokenizer, input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, str(tmp_path / "tokenizer"))
    loaded = tf.saved_model.load(str(tmp_path / "tokenizer"))
    np.testing.assert_array_equal(loaded.tokenize(captions), expected)


def test_vocabulary_is_saved_with_the_model(tmp_path):
    tokenizer = small_tokenizer()
    captions = keras.Input((), dtype="string")
    model = keras.Model(captions, tokenizer(captions), name="tokens")
    reloaded = assert_reloads_identically(model, tf.constant(["a red cat on a mat", "cat"]), tmp_path)
    assert reloaded.layers[-1].get_vocabulary() == ["a", "red", "cat"]
    restored = CaptionTokenizer.from_config(tokenizer.get_config())
    np.testing.assert_array_equal(restored(["red mat a"]), tokenizer(["red mat a"]))


def test_bundled_photo_captions_tokenise_to_known_words():
    captions = [record.caption for record in samples().records]
    ids = token_ids(captions).numpy()
    lengths = [len(caption.split()) for caption in captions]
    # Every caption fits in 16 ids, and every word of it is in the vocabulary.
    assert max(lengths) <= 16
    np.testing.assert_array_equal((ids > 0).sum(axis=1), lengths)
    assert (ids != 1).all()


def test_vocabulary_from_pipeline_elements_equals_vocabulary_from_the_source():
    dataset = make_dataset(samples(), image_size=16, batch_size=3)
    assert tuple(build_vocabulary(dataset).get_vocabulary()) == sample_vocabulary()


def test_coco_vocabulary_uses_one_caption_per_image(fake_coco):
    # fake_coco's lowest annotation id of image n says "first caption n"; the other "second caption n".
    tokenizer = build_vocabulary(coco(fake_coco))
    assert sorted(tokenizer.get_vocabulary()) == sorted(["first", "caption", *map(str, range(1, 11))])


# CaptionChannel (Model B)


@pytest.mark.parametrize("size", [(224, 224), (12, 20)])
def test_caption_channel_is_one_image_channel_that_follows_the_caption(size):
    channel = CaptionChannel()
    image = tf.zeros((2, *size, 1))
    ids = token_ids(["a close up of a tabby cat", "a red motorcycle"])
    outputs = channel(ids, image).numpy()
    assert outputs.shape == (2, *size, 1)
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-4
    # The mean leaves padding out: a longer padded sequence gives the same channel.
    np.testing.assert_allclose(channel(token_ids(["a red motorcycle"], 24), image[:1]), outputs[1:], atol=1e-6)


def test_caption_channel_at_the_grid_size_is_the_dense_output_reshaped():
    channel = CaptionChannel(embedding_dim=4, grid_size=6)
    ids = token_ids(["a cat", ""])
    outputs = channel(ids, tf.zeros((2, 6, 6, 1))).numpy()
    kernel, bias = channel.projection.get_weights()
    vector = channel.embedding(ids[:1, :2]).numpy().mean(axis=1)
    np.testing.assert_allclose(outputs[0], (vector @ kernel + bias).reshape(6, 6, 1), atol=1e-5)
    # An empty caption is the zero vector: the map is the bias alone.
    np.testing.assert_allclose(outputs[1], bias.reshape(6, 6, 1), atol=1e-6)


# CaptionEncoder (Model C)


def test_caption_encoder_ignores_padding_and_follows_the_caption():
    encoder = CaptionEncoder(embedding_dim=8, units=5)
    captions = ["a white rocket on a launch pad", "a black night sky", ""]
    h = encoder(token_ids(captions)).numpy()
    assert h.shape == (3, 10)
    np.testing.assert_allclose(encoder(token_ids(captions, 24)), h, atol=1e-6)
    assert np.abs(h[0] - h[1]).max() > 1e-4
    assert np.isfinite(h[2]).all()


def test_caption_encoder_output_is_the_last_forward_and_backward_states():
    encoder = CaptionEncoder(embedding_dim=8, units=5)
    ids = token_ids(["a cup of coffee"])
    h = encoder(ids).numpy()
    words = encoder.embedding(ids[:, :4])
    forward = keras.layers.RNN(encoder.lstm.forward_layer.cell)(words)
    backward = keras.layers.RNN(encoder.lstm.backward_layer.cell)(words[:, ::-1])
    np.testing.assert_allclose(h, np.concatenate([forward, backward], axis=-1), atol=1e-5)


# FiLM (Model C)


def test_film_starts_as_the_identity_and_then_follows_the_caption():
    film = FiLM(6)
    features = tf.random.normal((2, 5, 7, 6), seed=1)
    h = CaptionEncoder(embedding_dim=8, units=4)(token_ids(["a red saucer", "green eyes"]))
    np.testing.assert_array_equal(film(features, h), features)

    rng = np.random.default_rng(0)
    w_gamma, w_beta = rng.normal(size=(2, 8, 6)).astype("float32")
    film.gamma.set_weights([w_gamma])
    film.beta.set_weights([w_beta])
    outputs = film(features, h).numpy()
    gamma, beta = (h.numpy() @ w_gamma)[:, None, None], (h.numpy() @ w_beta)[:, None, None]
    np.testing.assert_allclose(outputs, (1 + gamma) * features.numpy() + beta, atol=1e-5)
    same_features = tf.concat([features[:1], features[:1]], axis=0)
    outputs = film(same_features, h).numpy()
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-3


def test_film_checks_the_channels():
    with pytest.raises(ValueError, match="4 channels"):
        FiLM(6)(tf.zeros((1, 2, 2, 4)), tf.zeros((1, 3)))


# Both models' pieces in one generator-like model


def captioned_model():
    """Strings and L in; Model B's channel joins L, a convolution, then FiLM from Model C's encoder."""
    captions, scaled_l = keras.Input((), dtype="string"), keras.Input((None, None, 1))
    ids = CaptionTokenizer(sample_vocabulary())(captions)
    features = keras.layers.Concatenate()([scaled_l, CaptionChannel(embedding_dim=4, grid_size=7)(ids, scaled_l)])
    features = keras.layers.Conv2D(3, 3, padding="same")(features)
    film = FiLM(3)
    outputs = film(features, CaptionEncoder(embedding_dim=4, units=2)(ids))
    film.set_weights([np.full((4, 3), 0.5, "float32"), np.full((4, 3), -0.25, "float32")])
    return keras.Model([captions, scaled_l], outputs, name="captioned")


def test_captioned_model_reloads_identically(tmp_path):
    inputs = [tf.constant(["a cat with green eyes", "a rocket at dusk"]), tf.random.uniform((2, 14, 14, 1), -1, 1)]
    assert_reloads_identically(captioned_model(), inputs, tmp_path)


def test_mixed_bfloat16_keeps_ids_exact_and_weights_float32(mixed_bfloat16):
    tokenizer = CaptionTokenizer(sample_vocabulary())
    captions = ["a cup of coffee", "an orange retina"]
    ids = tokenizer(captions)
    assert ids.dtype == tf.int64
    np.testing.assert_array_equal(ids, token_ids(captions))

    features = tf.random.normal((2, 4, 4, 3), dtype=tf.bfloat16)
    channel = CaptionChannel(embedding_dim=4, grid_size=2)(ids, features)
    film = FiLM(3)
    outputs = film(features, CaptionEncoder(embedding_dim=4, units=2)(ids))
    assert channel.shape == (2, 4, 4, 1) and channel.dtype == tf.bfloat16
    np.testing.assert_array_equal(outputs, features)  # the identity, exactly, in bfloat16 too
    assert {weight.dtype for weight in film.weights} == {"float32"}
    model = captioned_model()
    assert {weight.dtype for weight in model.weights} == {"float32"}
    assert model([tf.constant(captions), tf.zeros((2, 14, 14, 1))]).dtype == tf.bfloat16


def test_images_without_captions_say_what_a_caption_model_needs(fake_coco):
    (fake_coco / "annotations" / "captions_train2017.json").unlink()  # labels only: every caption is ""
    with pytest.raises(ValueError, match="no captions to build a vocabulary from.*captions_<split>.json"):
        build_vocabulary(coco(fake_coco))
