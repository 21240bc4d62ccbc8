"""Paper villarenteria's caption-conditioned ChromaGAN generators: Model B (4.2.3) and Model C (4.2.4).

Both are ChromaGAN's generator (chroma.models.chromagan, Model A) without
its class head: Model B "removes the class labels, both generation in the
generator, [...] and their loss contribution" and Model C replaces the class
distribution loss with the caption LSTM's. Without a captioner they output
ab alone, so ConditionalGAN's reconstruction and adversarial losses apply as
they are; Model C's captioner adds the caption logits its loss reads.
"""

import keras
from keras import ops

from chroma.models.caption_conditioning import CaptionChannel, CaptionDecoder, CaptionEncoder, FiLM
from chroma.models.caption_tokenizer import SEQUENCE_LENGTH, VOCABULARY_WORDS, CaptionTokenizer
from chroma.models.chromagan import (
    check_image_size,
    check_input_size,
    colorization_network,
    fuse,
    global_features_network,
    global_vector_network,
    gray_input,
    mid_level_network,
    rebuilt_with_random_vgg,
    vgg16_trunk,
)
from chroma.models.generator import BatchInput, Generator

MODES = ("channel", "film")
# Model C's two flavours (4.2.4): the captioner reads the colorized image (C.1) or the gray one (C.2).
CAPTIONING = (None, "colour", "gray")

# Model C's blocks Z_n (section 2: [4] modulates "the n-th convolutional block"): ChromaGAN's groups of
# convolutions, each ending where the resolution changes or a sub-network ends, as (FiLM attribute,
# sub-network's name, the name of the block's last layer, channels).
FILM_BLOCKS = (
    ("film_vgg_block1", "vgg16_trunk", "block1_conv2", 64),  # block1_conv1-2, at S
    ("film_vgg_block2", "vgg16_trunk", "block2_conv2", 128),  # block2_conv1-2, at S/2
    ("film_vgg_block3", "vgg16_trunk", "block3_conv3", 256),  # block3_conv1-3, at S/4
    ("film_vgg_block4", "vgg16_trunk", "block4_conv3", 512),  # block4_conv1-3, at S/8
    ("film_global_features", "global_features", "global4_bn", 512),  # its 4 convolutions, at S/32
    ("film_mid_level", "mid_level", "mid2_bn", 256),  # its 2 convolutions, at S/8
    ("film_colorization1", "colorization", "decoder_conv1", 128),  # 1x1 conv 256, conv 128, at S/8
    ("film_colorization2", "colorization", "decoder_conv3", 64),  # conv 64, conv 64, at S/4
    ("film_colorization3", "colorization", "decoder_conv4", 32),  # conv 32, at S/2; ab stays unmodulated
)


def colorized_image_encoder():
    """Scaled L and ab (S, S, 3) -> a 256 vector: four 3x3 stride-2 Conv-ReLU (32 to 256), global average pooling.

    Model C.1's captioner reads the colorized image through it. A loss head,
    so a few strided convolutions, cheap next to the generator; the pooling
    serves any image size.
    """
    convolutions = [keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")
                    for filters in (32, 64, 128, 256)]  # fmt: skip
    return keras.Sequential(convolutions + [keras.layers.GlobalAveragePooling2D()], name="colorized_image_encoder")


@keras.saving.register_keras_serializable(package="chroma")
class CaptionChromaGANGenerator(Generator):
    """{"L": scaled L (B,S,S,1), "caption": strings (B,) or "tokens": ids (B,T)} -> {"ab": scaled ab (B,S,S,2)}.

    `mode="channel"` is Model B (4.2.3): a CaptionChannel map joins the three
    gray channels as a fourth before the generator's first convolution,
    VGG-16's block1_conv1. The paper's "added to the first layer of the
    generator (so the first layer of convolutions learns how to weigh and
    embed them)" needs weights of its own for the caption, which a sum with
    the gray channels would not give, so it is concatenated.

    `mode="film"` is Model C (4.2.4): a CaptionEncoder's h modulates the output
    Z_n of each block listed in FILM_BLOCKS, Z'_n = (1 + gamma_n) Z_n + beta_n
    (section 2): VGG-16's four blocks, the global convolutions, the mid-level
    convolutions and the colorization network's three groups between
    upsamplings. The FiLM weights start at zero, so it starts as ChromaGAN's
    ab branch.

    `captioning` adds Model C's loss head, a CaptionDecoder: "the class
    distribution loss is replaced by the LSTM's classification loss across
    the entire caption. This model again has two sub flavors, (1) whether to
    go through the LSTM caption generation based on the colorized
    ground-truth, or (2) the grayscale representation" (4.2.4). Read here as:

    - "colour" (C.1): the captioner reads the colorized image, concat(L, the
      predicted ab), through colorized_image_encoder. Its loss reaches the
      generator through ab alone, so the colours must carry the caption's
      content; at the reconstruction optimum that image is the ground truth.
      The ab are caption-conditioned, so they may also carry the caption in
      colour differences the reconstruction loss barely sees; the paper's
      other losses are what bound that.
    - "gray" (C.2): the captioner reads the generator's own representation of
      the gray image, VGG-16's block4_conv3 averaged over positions, in a
      second pass of the trunk without FiLM. The modulated features carry the
      caption through FiLM's beta, so a captioner reading them could copy the
      caption from the encoder and its loss would ask nothing of the image;
      unmodulated, it asks the trunk what C.2 tests, whether "more contextual
      information [...] can be retrieved" from the grayscale (4.2.4). The
      trunk has no batch norm, so the second pass leaves no statistics
      behind; it costs a second trunk pass.

    None (the default) leaves the generator without a captioner.

    `vocabulary`: the caption words (CaptionTokenizer.get_vocabulary()); the
    generator tokenises strings itself and keeps the words in its config.
    `image_size` and `vgg_weights` are ChromaGANGenerator's. A batch without
    a caption is refused: the caption is an input wherever the generator
    runs, served too (its batch_inputs: "tokens", made from "caption").
    With a captioner the output is {"ab", "caption_logits": (B, T, vocabulary
    size) float32}: step t predicts word t of the caption, `tokens[:, t]` (step 0 reads
    padding as its start; 0 is padding, left out of the loss).
    """

    def __init__(
        self,
        vocabulary,
        mode="channel",
        captioning=None,
        image_size=224,
        vgg_weights=None,
        max_tokens=VOCABULARY_WORDS,
        sequence_length=SEQUENCE_LENGTH,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"CaptionChromaGANGenerator mode must be one of {MODES}, got {mode!r}")
        if captioning not in CAPTIONING:
            raise ValueError(f"CaptionChromaGANGenerator captioning must be one of {CAPTIONING}, got {captioning!r}")
        if captioning is not None and mode != "film":
            raise ValueError(f"captioning is Model C's loss head (mode='film'), got mode={mode!r}")
        check_image_size("CaptionChromaGANGenerator", image_size)
        self.mode = mode
        self.captioning = captioning
        self.image_size = image_size
        self.vgg_weights = vgg_weights
        self.tokenizer = CaptionTokenizer(vocabulary, max_tokens, sequence_length, name="tokenizer")
        if mode == "channel":
            self.caption_channel = CaptionChannel(self.tokenizer.vocabulary_size, name="caption_channel")
        else:
            self.caption_encoder = CaptionEncoder(self.tokenizer.vocabulary_size, name="caption_encoder")
            for name, _, _, channels in FILM_BLOCKS:
                setattr(self, name, FiLM(channels, name=name))
        self.trunk = vgg16_trunk(image_size, vgg_weights, channels=4 if mode == "channel" else 3)
        self.global_features = global_features_network()
        self.global_vector = global_vector_network()
        self.mid_level = mid_level_network()
        self.colorization = colorization_network()
        if captioning == "colour":
            self.colorized_image_encoder = colorized_image_encoder()
        if captioning is not None:
            self.caption_decoder = CaptionDecoder(self.tokenizer.vocabulary_size, name="caption_decoder")
        self.build({"L": (None, image_size, image_size, 1)})

    def batch_inputs(self):
        return {"tokens": BatchInput("caption", self.tokenizer)}

    def call(self, batch, training=False):
        inputs = self.complete(batch)
        scaled_l, tokens = inputs["L"], inputs["tokens"]
        check_input_size("CaptionChromaGANGenerator", self.image_size, scaled_l)
        trunk_input = gray_input(scaled_l)
        h = None
        if self.mode == "channel":
            caption = self.caption_channel(tokens, trunk_input)
            trunk_input = ops.concatenate([trunk_input, ops.cast(caption, trunk_input.dtype)], axis=-1)
        else:
            h = self.caption_encoder(tokens)
        trunk = self._run(self.trunk, trunk_input, h, training)
        global_vector = self.global_vector(self._run(self.global_features, trunk, h, training), training=training)
        fused = fuse(self._run(self.mid_level, trunk, h, training), global_vector)
        ab = self._run(self.colorization, fused, h, training)
        if self.captioning is None:
            return {"ab": ab}
        if self.captioning == "colour":
            colorized = ops.concatenate([scaled_l, ops.cast(ab, scaled_l.dtype)], axis=-1)
            image_features = self.colorized_image_encoder(colorized, training=training)
        else:
            image_features = ops.mean(self.trunk(trunk_input, training=training), axis=(1, 2))
        return {"ab": ab, "caption_logits": self.caption_decoder(image_features, tokens)}

    def _run(self, network, features, h, training):
        """One ChromaGAN sub-network; with a caption code h (Model C), FiLM after each of its blocks."""
        if h is None:
            return network(features, training=training)
        if not network.built:
            # Built whole, a Sequential gets the functional graph through which count_params and
            # tf.train.Checkpoint see its layers' weights; calling its layers one by one builds only them.
            network.build(features.shape)
        films = {layer: getattr(self, name) for name, net, layer, _ in FILM_BLOCKS if net == network.name}
        for layer in network.layers:
            if not isinstance(layer, keras.layers.InputLayer):
                features = layer(features, training=training)
            if layer.name in films:
                features = films.pop(layer.name)(features, h)
        if films:
            raise ValueError(f"{network.name} has no layers named {sorted(films)} for FiLM")
        return features

    @property
    def _default_save_signature(self):
        # TensorFlow's SavedModel writer traces Keras's default signature, which feeds scaled L alone and
        # fails here; chroma.export writes this model's signatures (image and caption) itself.
        return None

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary": self.tokenizer.get_vocabulary(),
            "mode": self.mode,
            "captioning": self.captioning,
            "image_size": self.image_size,
            "vgg_weights": self.vgg_weights,
            "max_tokens": self.tokenizer.max_tokens,
            "sequence_length": self.tokenizer.sequence_length,
        }

    @classmethod
    def from_config(cls, config):
        return rebuilt_with_random_vgg(cls, config)
