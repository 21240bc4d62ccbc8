"""ResNet-18 U-Net generator of paper nampouri, appendix A.2 (figures 12 and 13).

The encoder is torchvision's ResNet-18 without its classifier (resnet18.py),
which loads keras-hub's "resnet_18_imagenet" preset without keras-hub.
"""

from pathlib import Path

import keras

from chroma.models.blocks import output_block, skip_decoder, up_block
from chroma.models.generator import Generator
from chroma.models.resnet18 import WHERE_TO_GET_WEIGHTS, load_keras_hub_weights, resnet18_encoder

@keras.saving.register_keras_serializable(package="chroma")
class ResNetUNetGenerator(Generator):
    """{"L": scaled L (B,H,W,1)} -> {"ab": scaled ab (B,H,W,2)}: a U-Net on a ResNet-18 encoder (appendix A.2).

    The L channel is repeated to three, the "grayscale image of size
    3x256x256" of figure 12, so ImageNet weights load unchanged. The decoder
    (figure 13) upsamples layer4 with ReLU + 4x4 transposed conv + batch norm
    stages, concatenating layer3, layer2, layer1 and the stem's activation on
    the way, then a transposed conv with bias and tanh gives ab at the input's
    size. Its weights are N(0, 0.02) (section 5.2). H and W must be multiples
    of 32 (e.g. 64x64 for CPU tests).

    `backbone_weights`: None or "none" for a randomly initialised encoder; a
    `.weights.h5` file saved from an encoder of this class
    (`generator.encoder.save_weights(path)`); or a keras-hub preset directory of
    "resnet_18_imagenet" (config.json + model.weights.h5). Nothing is downloaded.
    """

    def __init__(self, backbone_weights=None, **kwargs):
        super().__init__(**kwargs)
        self.backbone_weights = None if str(backbone_weights).lower() == "none" else backbone_weights
        self.encoder = resnet18_encoder()
        self.decoder = skip_decoder(
            [64, 64, 128, 256, 512],  # the encoder's outputs: stem, layer1..layer4
            [up_block(256, name="up8"), up_block(128, name="up16"), up_block(64, name="up32"),
             up_block(64, name="up64"), output_block(name="out")],
        )
        if self.backbone_weights is not None:
            self.load_backbone(self.backbone_weights)
        self.build({"L": (None, None, None, 1)})

    def load_backbone(self, path):
        """Loads pretrained encoder weights from `path` (see the class docstring)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no backbone weights at {path}. " + WHERE_TO_GET_WEIGHTS)
        if path.is_dir():
            load_keras_hub_weights(self.encoder, path)
        elif path.name.endswith(".weights.h5"):
            self.encoder.load_weights(path)
        else:
            raise ValueError(f"backbone weights must be a keras-hub preset directory or a .weights.h5 file, got {path}")

    def call(self, batch, training=False):
        scaled_l = batch["L"]
        self.check_sides(scaled_l, 32)
        gray_rgb = keras.ops.repeat(scaled_l, 3, axis=-1)
        return {"ab": self.decoder(self.encoder(gray_rgb, training=training), training=training)[-1]}

    def get_config(self):
        # The pretrained weights only initialise the encoder; a saved model carries its own, so the path
        # (which may not exist where the model is loaded) is not part of the architecture.
        return {**super().get_config(), "backbone_weights": None}
