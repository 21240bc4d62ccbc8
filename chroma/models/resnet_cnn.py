"""CNN baseline of paper efthymiadis, section 3.1: a cut ResNet-18 and an upsampling head.

Figure 1 is the network of the paper's reference [17], Luke Melas-Kyriazi's
"Image colorization with convolutional neural networks" (2018): torchvision's
ResNet-18 with a one-channel conv1, kept up to `children()[0:6]` (conv1, bn1,
relu, maxpool, layer1, layer2: "cut ... after the sixth set of layers"), then
convolutions and nearest-neighbour upsamplings back to the input's size.
"""

import keras

from chroma.models.blocks import batch_norm
from chroma.models.generator import Generator
from chroma.models.resnet18 import resnet18_encoder

# conv1, the max pool and layer2 each halve the size; the head doubles it three times.
SIZE_MULTIPLE = 8


def upsampling_head(name="head"):
    """Reference [17]'s `upsample` Sequential, 128@H/8 -> 2@H, with a tanh before the last upsampling.

    Conv 3x3 128 + BN + ReLU, up x2, conv 64 + BN + ReLU, conv 64 + BN + ReLU,
    up x2, conv 32 + BN + ReLU, conv 2, up x2. The convolutions keep PyTorch's
    default bias, as [17] does, and the batch norms PyTorch's initialisation
    (gamma 1). [17] has no output activation; chroma's ab targets are scaled to
    [-1, 1], so a tanh bounds the output to their range (nearest upsampling
    commutes with it). The last layers run in float32 whatever the dtype policy,
    so ab leaves in float32 under mixed precision.
    """
    layers = []
    for filters, upsample_after in ((128, True), (64, False), (64, True), (32, False)):
        layers += [keras.layers.Conv2D(filters, 3, padding="same"), batch_norm(gamma_initializer="ones"),
                   keras.layers.ReLU()]
        if upsample_after:
            layers.append(keras.layers.UpSampling2D(2))
    layers += [
        keras.layers.Conv2D(2, 3, padding="same", activation="tanh", dtype="float32"),
        keras.layers.UpSampling2D(2, dtype="float32"),
    ]
    return keras.Sequential(layers, name=name)


@keras.saving.register_keras_serializable(package="chroma")
class ResNetCNN(Generator):
    """{"L": scaled L (B,H,W,1)} -> {"ab": scaled ab (B,H,W,2)} in tanh range (section 3.1, figure 1).

    `encoder`: ResNet-18's conv1 (7x7 stride 2, one input channel), bn1, ReLU,
    3x3 stride-2 max pool, layer1 and layer2 (two BasicBlocks each), built by
    resnet18.resnet18_encoder: 128 channels at 1/8 of the input's size.
    `head`: upsampling_head. The paper trains at 224x224 (3.1.3) and states
    256x256 inputs (3.1.1); H and W must be multiples of 8. Randomly
    initialised, as [17]'s resnet18(num_classes=365) is.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.encoder = resnet18_encoder(name="resnet18_cut", input_channels=1, stacks=2)
        self.head = upsampling_head()
        self.build({"L": (None, None, None, 1)})

    def call(self, batch, training=False):
        scaled_l = batch["L"]
        self.check_sides(scaled_l, SIZE_MULTIPLE)
        layer2 = self.encoder(scaled_l, training=training)[-1]
        return {"ab": self.head(layer2, training=training)}
