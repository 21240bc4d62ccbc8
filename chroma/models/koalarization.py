"""Paper bruvik's generators: Deep Koalarization (table 4, section 5.1) and its Inception-GAN variant (table 1, 5.3).

Encoder, fusion and decoder as Baldassarre et al.'s reference implementation
builds them: 3x3 "same" convolutions with bias and ReLU, strides 2 at
encoder layers 1, 3 and 5 (2, 4 and 6 with the Inception-GAN's extra first
layer, 5.3.2), so the encoder ends at H/8 x W/8 x 256; the fusion appends the
embedding to every position (256 + 1001 = 1257 channels, 5.3.4) and a 1x1
convolution brings it to 256; the decoder upsamples by nearest neighbour
(5.3.5) and ends in 2 channels with tanh. No batch norm.
"""

import keras
from keras import ops

from chroma.models.blocks import same_conv, upsampling_decoder
from chroma.models.generator import BatchInput, Generator

# (filters, stride) of table 4's encoder.
ENCODER_LAYERS = ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 1), (256, 1))
# Table 1's first layer, the Inception-GAN's addition: 24 kernels of 3x3, stride 1, before the encoder of table 4.
# It reads 5.3.2's "tensor of dimensions 24 x 256 x 256": the gray image stacked three times and 21 class maps.
SEGMENTATION_LAYER_FILTERS = 24
FUSION_FILTERS = 256
REDUCTION = 8  # three stride-2 convolutions


def encoder_network(segmentation_layer):
    """L, or three L and the prior, -> 256@H/8: table 4's eight convolutions, after table 1's 24-kernel layer
    for the prior."""
    first = [same_conv(SEGMENTATION_LAYER_FILTERS)] if segmentation_layer else []
    return keras.Sequential(first + [same_conv(filters, strides) for filters, strides in ENCODER_LAYERS], name="encoder")


@keras.saving.register_keras_serializable(package="chroma")
class KoalarizationGenerator(Generator):
    """{"L": scaled L (B,H,W,1)} -> {"ab": scaled ab (B,H,W,2)} in tanh range; H and W multiples of 8.

    `embedding`: a frozen layer mapping scaled L (B,H,W,1) to a class vector
    (B, D), normally an InceptionEmbedding (D = 1000 or 1001), fused after the
    encoder. None ablates Inception ("GAN without Inception", table 2): the
    1x1 fusion convolution then reads the encoder output alone (256 -> 256
    channels), and the rest of the network is unchanged.

    `segmenter`: None is Deep Koalarization. A frozen layer mapping scaled L
    to per-pixel class probabilities (B,H,W,C), normally a SegmentationPrior
    (C = 21, the Pascal VOC classes of DeepLabV3, section 4.3), makes it the
    Inception-GAN generator: the encoder reads 5.3.2's 24 channels, the gray
    image stacked three times and the C = 21 class maps, through table 1's
    extra 24-kernel first layer.

    Both frozen networks read L alone: they are the generator's batch_inputs
    "embedding" (per image, so the training engine may cache it) and
    "prior", computed in `call` unless the batch brings them.

    At 256x256 Deep Koalarization has 6,574,050 trainable parameters with a
    1001-d embedding; the Inception network's are frozen.
    """

    def __init__(self, embedding=None, segmenter=None, **kwargs):
        super().__init__(**kwargs)
        self.embedding = embedding
        self.segmenter = segmenter
        self.encoder = encoder_network(segmentation_layer=segmenter is not None)
        self.fusion = same_conv(FUSION_FILTERS, kernel_size=1, name="fusion")
        self.decoder = upsampling_decoder()
        self.build({"L": (None, None, None, 1)})

    def batch_inputs(self):
        inputs = {}
        if self.embedding is not None:
            inputs["embedding"] = BatchInput("L", self.embedding, per_image=True)
        if self.segmenter is not None:
            inputs["prior"] = BatchInput("L", self.segmenter)
        return inputs

    def call(self, batch, training=False):
        scaled_l = batch["L"]
        if scaled_l.shape[-1] not in (None, 1):
            raise ValueError(f"KoalarizationGenerator reads scaled L with 1 channel, got shape {tuple(scaled_l.shape)}")
        self.check_sides(scaled_l, REDUCTION)
        inputs = self.complete(batch)
        encoder_input = scaled_l
        if self.segmenter is not None:
            gray = ops.repeat(scaled_l, 3, axis=-1)
            encoder_input = ops.concatenate([gray, ops.cast(inputs["prior"], scaled_l.dtype)], axis=-1)
        features = self.encoder(encoder_input, training=training)
        if self.embedding is not None:
            vector = ops.cast(inputs["embedding"], features.dtype)
            # Section 5.3.4: the vector copied to each of the H/8 x W/8 positions (broadcasting against a zero
            # map of the encoder's size), appended after the encoder's channels as the reference implementation does.
            copies = ops.zeros_like(features[..., :1]) + vector[:, None, None, :]
            features = ops.concatenate([features, copies], axis=-1)
        return {"ab": self.decoder(self.fusion(features), training=training)}

    def get_config(self):
        return {
            **super().get_config(),
            "embedding": keras.saving.serialize_keras_object(self.embedding),
            "segmenter": keras.saving.serialize_keras_object(self.segmenter),
        }

    @classmethod
    def from_config(cls, config):
        frozen = {name: keras.saving.deserialize_keras_object(config[name]) for name in ("embedding", "segmenter")}
        return cls(**{**config, **frozen})
