"""Attention U-Net generator of paper 002 (section 3.3.1, figure 3; Oktay et al. 2018).

The paper gives the attention gate (equations 4-5) and the outline: a U-Net
that downsamples by max pooling, and whose upsampling path gates every skip
connection with the upsampled previous decoder output. The rest follows the
Attention U-Net implementation the paper's figure comes from (LeeJunHyun's
AttU_Net): two 3x3 conv + batch norm + ReLU per level, upsampling by
nearest x2 + 3x3 conv + batch norm + ReLU, F_int = F_l / 2, concat(x_hat, g).
As in chroma's other networks, convolutions are N(0, 0.02) (blocks.weight_init)
and a convolution followed by batch norm has no bias.
"""

import keras

from chroma.models.blocks import batch_norm, weight_init
from chroma.models.generator import Generator


@keras.saving.register_keras_serializable(package="chroma")
class AttentionGate(keras.layers.Layer):
    """[x (B,H,W,F_l), g (B,H,W,F_g)] -> x_hat = alpha * x, alpha (B,H,W,1) in (0, 1).

    Equation 4: q = psi^T ReLU(W_x^T x + W_g^T g + b_g) + b_psi, with W_x, W_g
    and psi 1x1 convolutions (W_x without bias: b_g is the sum's only bias);
    equation 5: alpha = sigmoid(q). `call(..., return_attention=True)` also
    returns alpha, to check or show where the gate looks.
    """

    def __init__(self, intermediate_channels, **kwargs):
        super().__init__(**kwargs)
        self.intermediate_channels = intermediate_channels
        self.skip_projection = keras.layers.Conv2D(  # W_x
            intermediate_channels, 1, use_bias=False, kernel_initializer=weight_init(), name="skip_projection"
        )
        self.gating_projection = keras.layers.Conv2D(  # W_g, b_g
            intermediate_channels, 1, kernel_initializer=weight_init(), name="gating_projection"
        )
        self.coefficient_projection = keras.layers.Conv2D(  # psi, b_psi
            1, 1, kernel_initializer=weight_init(), name="coefficient_projection"
        )

    def build(self, input_shape):
        skip_shape, gating_shape = input_shape
        self.skip_projection.build(skip_shape)
        self.gating_projection.build(gating_shape)
        self.coefficient_projection.build((*skip_shape[:-1], self.intermediate_channels))

    def call(self, inputs, return_attention=False):
        skip, gating = inputs
        joint = keras.ops.relu(self.skip_projection(skip) + self.gating_projection(gating))
        alpha = keras.ops.sigmoid(self.coefficient_projection(joint))
        gated_skip = skip * alpha
        return (gated_skip, alpha) if return_attention else gated_skip

    def get_config(self):
        return {**super().get_config(), "intermediate_channels": self.intermediate_channels}


def _conv_block(filters, name):
    """Two 3x3 conv + batch norm + ReLU: one U-Net level, in the encoder and after each gate."""
    layers = []
    for _ in range(2):
        layers += [
            keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=weight_init()),
            batch_norm(),
            keras.layers.ReLU(),
        ]
    return keras.Sequential(layers, name=name)


def _up_block(filters, name):
    """Nearest x2 upsampling, 3x3 conv + batch norm + ReLU: the gating signal g of the level above."""
    return keras.Sequential(
        [
            keras.layers.UpSampling2D(2),
            keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=weight_init()),
            batch_norm(),
            keras.layers.ReLU(),
        ],
        name=name,
    )


def _encoder(filters):
    """Scaled L -> every level's output, full size first; 2x2 max pooling between levels."""
    scaled_l = keras.Input((None, None, 1))
    levels = []
    x = scaled_l
    for level, count in enumerate(filters):
        if level:
            x = keras.layers.MaxPooling2D(2, name=f"pool{level}")(x)
        x = _conv_block(count, name=f"down{level}")(x)
        levels.append(x)
    return keras.Model(scaled_l, levels, name="encoder")


def _decoder(filters):
    """The encoder's levels -> scaled ab: up, gate the skip, concat(x_hat, g), conv block; 1x1 conv + tanh."""
    levels = [keras.Input((None, None, count)) for count in filters]
    x = levels[-1]
    for level in range(len(filters) - 2, -1, -1):
        gating = _up_block(filters[level], name=f"up{level}")(x)
        gated_skip = AttentionGate(filters[level] // 2, name=f"gate{level}")([levels[level], gating])
        x = keras.layers.Concatenate(name=f"concat{level}")([gated_skip, gating])
        x = _conv_block(filters[level], name=f"up_conv{level}")(x)
    # float32 whatever the policy, so the scaled ab leaves in float32 under mixed precision.
    scaled_ab = keras.layers.Conv2D(
        2, 1, activation="tanh", kernel_initializer=weight_init(), dtype="float32", name="ab"
    )(x)
    return keras.Model(levels, scaled_ab, name="decoder")


@keras.saving.register_keras_serializable(package="chroma")
class AttentionUNetGenerator(Generator):
    """{"L": scaled L (B,H,W,1)} -> {"ab": scaled ab (B,H,W,2)}, tanh range [-1, 1] (ab / 110).

    `encoder`: `depth` levels of two 3x3 conv + batch norm + ReLU with
    base_filters * 2**i filters at level i, 2x2 max pooling between them.
    `decoder`: at each level back up, g = upsampled previous output, the
    level's encoder output gated by AttentionGate(x, g) with F_int = F_l / 2,
    concatenated with g, then two 3x3 conv + batch norm + ReLU; last a 1x1
    conv with bias to 2 channels and tanh. Both are functional models.

    The defaults are the paper's network (64 to 1024 filters at 256x256,
    34.87 M trainable parameters). H and W must be multiples of 2**(depth - 1); smoke
    runs use e.g. base_filters=8, depth=4 at 64 px.
    """

    def __init__(self, base_filters=64, depth=5, **kwargs):
        super().__init__(**kwargs)
        if depth < 2:
            raise ValueError(f"an Attention U-Net needs depth >= 2, got {depth}")
        self.base_filters = base_filters
        self.depth = depth
        filters = [base_filters * 2**level for level in range(depth)]
        self.encoder = _encoder(filters)
        self.decoder = _decoder(filters)
        self.build({"L": (None, None, None, 1)})

    def call(self, batch, training=False):
        scaled_l = batch["L"]
        self.check_sides(scaled_l, 2 ** (self.depth - 1))
        return {"ab": self.decoder(self.encoder(scaled_l, training=training), training=training)}

    def get_config(self):
        return {**super().get_config(), "base_filters": self.base_filters, "depth": self.depth}
