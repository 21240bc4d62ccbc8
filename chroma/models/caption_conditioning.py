"""Paper villarenteria's two ways of feeding a caption to the generator (sections 2, 4.2.3, 4.2.4).

Model B (4.2.3): the caption is "embedded into a 50 dimensional caption word
vector, and transformed and reshaped to the same size as an image channel
(224x224), then added to the first layer of the generator (so the first
layer of convolutions learns how to weigh and embed them)": CaptionChannel.

Model C (4.2.4) follows Manjunatha et al. [4] (section 2): a bidirectional
LSTM's last hidden state h encodes the caption (CaptionEncoder), and each
modulated convolution block Z becomes Z' = (1 + gamma) * Z + beta with
gamma = W_gamma h and beta = W_beta h (FiLM).

Model C's loss replaces ChromaGAN's class distribution loss "by the LSTM's
classification loss across the entire caption" (4.2.4): CaptionDecoder is
that LSTM, a captioner.

CaptionChannel, CaptionEncoder and CaptionDecoder read the token ids of
chroma.models.caption_tokenizer, where 0 is padding; their default
vocabulary_size is that tokenizer's (1500 words, padding and the unknown
token).
"""

import keras
import tensorflow as tf
from keras import ops

from .caption_tokenizer import PADDING_ID, VOCABULARY_WORDS

VOCABULARY_SIZE = VOCABULARY_WORDS + 2


@keras.saving.register_keras_serializable(package="chroma")
class CaptionChannel(keras.layers.Layer):
    """Model B: token ids (B, T) and the generator's input (B, H, W, C) -> a caption channel (B, H, W, 1).

    The channel is meant to be concatenated to L before the generator's first
    convolution. Embedding (embedding_dim = 50, section 4.2.3), then the mean
    over the caption's words (padding left out) gives the 50-d caption
    vector. A Dense layer "transforms and reshapes" it to a grid_size x
    grid_size map, resized bilinearly to H x W. A Dense straight to 224 x 224
    would hold 50 x 50176 = 2.5M weights and fix the image size; a 28 x 28
    map (the generator's 224 / 8) holds 39k and serves any size.
    grid_size=224 is the paper's literal reading at 224 x 224 (the resize is
    then the identity). An empty caption gives the zero vector, so its map is
    the Dense bias alone.
    """

    def __init__(self, vocabulary_size=VOCABULARY_SIZE, embedding_dim=50, grid_size=28, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.grid_size = grid_size
        self.embedding = keras.layers.Embedding(vocabulary_size, embedding_dim, name="embedding")
        self.projection = keras.layers.Dense(grid_size * grid_size, name="projection")

    def build(self, token_ids_shape, image_shape):
        self.embedding.build(token_ids_shape)
        self.projection.build((token_ids_shape[0], self.embedding_dim))

    def call(self, token_ids, image):
        words = ops.cast(ops.not_equal(token_ids, PADDING_ID), self.compute_dtype)[..., None]
        vectors = self.embedding(token_ids)
        caption = ops.sum(vectors * words, axis=1) / ops.maximum(ops.sum(words, axis=1), 1.0)
        grid = ops.reshape(self.projection(caption), (-1, self.grid_size, self.grid_size, 1))
        # tf.image.resize, as keras.ops' needs a static size: the image size may be known only at run time.
        resized = tf.image.resize(grid, tf.shape(image)[1:3], method="bilinear")
        return ops.cast(resized, self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "grid_size": self.grid_size,
        }


@keras.saving.register_keras_serializable(package="chroma")
class CaptionEncoder(keras.layers.Layer):
    """Model C: token ids (B, T) -> h (B, 2 * units), the last hidden states of a bidirectional LSTM.

    [4] (section 2) encodes the caption "by using the last hidden state of a
    bi-directional LSTM": the forward state after the last word joined to the
    backward state after the first. Padding is masked, so trailing padding
    changes nothing. Defaults as [4]'s reference code: 300-d word embeddings
    (learned here, where [4] starts from GloVe) and 150 units a direction.
    """

    def __init__(self, vocabulary_size=VOCABULARY_SIZE, embedding_dim=300, units=150, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.embedding = keras.layers.Embedding(vocabulary_size, embedding_dim, name="embedding")
        self.lstm = keras.layers.Bidirectional(keras.layers.LSTM(units), name="lstm")

    def build(self, token_ids_shape):
        self.embedding.build(token_ids_shape)
        self.lstm.build((*token_ids_shape, self.embedding_dim))

    def call(self, token_ids):
        # The first step always counts, so an empty caption reads as one padding
        # token: cuDNN's LSTM rejects a fully masked sequence (Keras's
        # _assert_valid_mask), and the mask stays right-padded as cuDNN needs.
        steps = ops.arange(ops.shape(token_ids)[1])
        mask = ops.logical_or(ops.not_equal(token_ids, PADDING_ID), ops.equal(steps, 0)[None, :])
        return self.lstm(self.embedding(token_ids), mask=mask)

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
        }


@keras.saving.register_keras_serializable(package="chroma")
class FiLM(keras.layers.Layer):
    """Feature maps Z (B, H, W, channels) and a caption code h (B, D) -> (1 + gamma) * Z + beta.

    gamma = W_gamma h and beta = W_beta h (section 2, no bias in the paper's
    formula), one value per channel, the same at every position (i, j).
    W_gamma and W_beta start at zero, so the block starts as the identity: a
    FiLM inserted into a (pretrained) ChromaGAN generator (4.2.4) leaves it
    unchanged until training finds where the caption helps. The weights
    still learn from the first step (their gradient is h times the
    gradient of gamma and beta); the caption encoder follows from the step
    after, once they are non-zero.
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.gamma = keras.layers.Dense(channels, use_bias=False, kernel_initializer="zeros", name="gamma")
        self.beta = keras.layers.Dense(channels, use_bias=False, kernel_initializer="zeros", name="beta")

    def build(self, features_shape, h_shape):
        if features_shape[-1] != self.channels:
            raise ValueError(f"FiLM({self.channels}) got feature maps with {features_shape[-1]} channels")
        self.gamma.build(h_shape)
        self.beta.build(h_shape)

    def call(self, features, h):
        gamma = self.gamma(h)[:, None, None, :]
        beta = self.beta(h)[:, None, None, :]
        return (1.0 + gamma) * features + beta

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@keras.saving.register_keras_serializable(package="chroma")
class CaptionDecoder(keras.layers.Layer):
    """Model C's captioner: image features (B, F) and token ids (B, T) -> word logits (B, T, vocabulary_size).

    The paper's captions follow "the 231N formulation from Assignment 3"
    (section 5), whose LSTM captioner is Show and Tell's: a Dense projection
    of the image features is the LSTM's initial hidden state (its cell state
    starts at zero, as CS231N's lstm_forward), and the LSTM reads the caption
    teacher-forced, step t reading word t - 1 and predicting word t.

    CaptionTokenizer's ids have no <START> token (words, then padding), so
    step 0 reads id 0: padding doubles as <START>. Past step 0 padding is
    read only after the caption has ended, at steps whose targets are
    padding too, which the loss leaves out; so id 0's embedding learns from
    step 0 alone, a learned start vector, and no LSTM mask is needed (the
    cuDNN kernel stays usable). The logits then predict every token, so the
    targets are the token ids themselves and the loss covers "the entire
    caption" (4.2.4), first word included, which predicting tokens[:, 1:]
    from tokens[:, :-1] would leave out. Without an <END> token the caption's
    length is not predicted.

    Defaults as CS231N's LSTM captioner: 256-d word vectors, 512 units. The
    logits are float32 whatever the dtype policy, for the softmax over the
    vocabulary.
    """

    def __init__(self, vocabulary_size=VOCABULARY_SIZE, embedding_dim=256, units=512, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.embedding = keras.layers.Embedding(vocabulary_size, embedding_dim, name="embedding")
        self.initial_state = keras.layers.Dense(units, name="initial_state")
        self.lstm = keras.layers.LSTM(units, return_sequences=True, name="lstm")
        self.logits = keras.layers.Dense(vocabulary_size, dtype="float32", name="logits")

    def build(self, features_shape, token_ids_shape):
        self.embedding.build(token_ids_shape)
        self.initial_state.build(features_shape)
        self.lstm.build((*token_ids_shape, self.embedding_dim))
        self.logits.build((*token_ids_shape, self.units))

    def call(self, features, token_ids):
        previous_words = ops.pad(token_ids[:, :-1], [[0, 0], [1, 0]], constant_values=PADDING_ID)
        h = self.initial_state(features)
        sequence = self.lstm(self.embedding(previous_words), initial_state=[h, ops.zeros_like(h)])
        return self.logits(sequence)

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
        }
