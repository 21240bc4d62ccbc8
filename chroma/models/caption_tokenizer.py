"""Paper villarenteria's caption vocabulary: caption strings -> token ids (section 5).

"For captions we chose one of the human captions for each image as the
reference caption in a one-time pre processing to generate the vocabulary
[...] and created a vocabulary with 1500 words, replacing others with an
<UNK> token." CaptionTokenizer is that vocabulary as a Keras layer over
keras.layers.TextVectorization: plain TensorFlow ops, so the same layer runs
eagerly, inside tf.data and inside an exported SavedModel. The vocabulary is
part of the layer's config, so a saved model keeps it.
"""

import keras
import tensorflow as tf

PADDING_ID = 0  # and 1 is the unknown word
# Section 5: the 1500 most frequent words.
VOCABULARY_WORDS = 1500
# COCO reference captions are about 10 words long. The CS231N formulation the
# paper took (section 5) stores each as 17 ids with <START> and <END>, so at
# most 15 words; 16 ids hold those, and longer captions are cut.
SEQUENCE_LENGTH = 16


@keras.saving.register_keras_serializable(package="chroma")
class CaptionTokenizer(keras.layers.Layer):
    """Caption strings (B,) -> int64 token ids (B, sequence_length); one string -> (sequence_length,).

    Id 0 is padding, 1 the unknown word, 2 .. max_tokens + 1 the vocabulary
    words, most frequent first. Captions are lowercased, stripped of
    punctuation and split on whitespace (TextVectorization's defaults).
    `vocabulary`: the words alone (no padding or unknown token), as `adapt`
    finds them and `get_config` returns them; None until adapted.
    """

    def __init__(self, vocabulary=None, max_tokens=VOCABULARY_WORDS, sequence_length=SEQUENCE_LENGTH, **kwargs):
        super().__init__(**kwargs)
        self.max_tokens = max_tokens
        self.sequence_length = sequence_length
        # TextVectorization's max_tokens counts the padding and unknown tokens too.
        self.vectorizer = keras.layers.TextVectorization(
            max_tokens=max_tokens + 2,
            output_sequence_length=sequence_length,
            vocabulary=None if vocabulary is None else list(vocabulary),
            name="vectorizer",
        )
        self.adapted = vocabulary is not None
        # String ops: no XLA, and inputs are strings, never cast to the dtype policy.
        self.supports_jit = False
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True

    @property
    def vocabulary_size(self):
        """Ids the tokenizer can emit (max_tokens + 2): the input size of a caption Embedding.

        Fixed by max_tokens, not by the words adapt found, so a model's
        weights do not depend on the captions it was adapted on.
        """
        return self.max_tokens + 2

    def adapt(self, captions):
        """Builds the vocabulary from the most frequent words of `captions`, once.

        `captions`: a list or array of strings, an iterable of string batches,
        or a tf.data.Dataset of strings (batched or not).
        """
        if isinstance(captions, tf.data.Dataset) and captions.element_spec.shape.rank == 0:
            captions = captions.batch(1024)
        self.vectorizer.adapt(captions)
        self.adapted = True

    def get_vocabulary(self):
        """The words, most frequent first; word i has id i + 2."""
        return [str(word) for word in self.vectorizer.get_vocabulary(include_special_tokens=False)]

    def build(self, captions_shape):
        self.vectorizer.build(captions_shape)

    def call(self, captions):
        if not self.adapted:
            raise ValueError("CaptionTokenizer has no vocabulary: call adapt() or pass vocabulary=")
        captions = tf.convert_to_tensor(captions, tf.string)
        if captions.shape.rank == 0:
            # TextVectorization pads a lone caption to a multiple of the length,
            # which leaves "" at length 0: as a batch of one it pads to the length.
            return self.vectorizer(captions[None])[0]
        return self.vectorizer(captions)

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary": self.get_vocabulary() if self.adapted else None,
            "max_tokens": self.max_tokens,
            "sequence_length": self.sequence_length,
        }


def build_vocabulary(captions, max_tokens=VOCABULARY_WORDS, sequence_length=SEQUENCE_LENGTH):
    """A CaptionTokenizer adapted on `captions`: strings, a chroma Source, or a tf.data.Dataset.

    A Source (chroma.data.sources) gives one caption per record, as section 5
    does; records without a caption ("") add no words. A dataset holds
    strings or chroma.data.make_dataset's dicts, read by their "caption"
    (which decodes every image: a Source is faster when there is one).
    """
    if hasattr(captions, "records"):
        captions = [record.caption for record in captions.records]
    elif isinstance(captions, tf.data.Dataset) and isinstance(captions.element_spec, dict):
        captions = captions.map(lambda element: element["caption"])
    tokenizer = CaptionTokenizer(max_tokens=max_tokens, sequence_length=sequence_length)
    tokenizer.adapt(captions)
    if not tokenizer.get_vocabulary():
        raise ValueError("these images have no captions to build a vocabulary from: a caption model trains on COCO "
                         "with its captions_<split>.json, or on TFRecords built from such a COCO")
    return tokenizer
