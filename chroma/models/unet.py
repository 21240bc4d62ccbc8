"""U-Net generator of paper nampouri, appendix A.1: pix2pix's, figures 10 (encoder) and 11 (decoder)."""

import keras

from chroma.models.blocks import down_block, output_block, skip_decoder, transposed_conv, up_block
from chroma.models.generator import Generator

# CD512-CD1024-CD1024 (appendix A.1): the three innermost decoder blocks have dropout, as figure 11 shows.
PIX2PIX_DROPOUT_BLOCKS = (1, 2, 3)


def unet_encoder(filters):
    """Figure 10 as a functional model: scaled L -> the output of every level, H/2 down to H/2**len(filters).

    Each level is a 4x4 stride-2 conv; each but the first starts with
    LeakyReLU(0.2); all but the first and the innermost end with batch norm,
    and the innermost has a bias instead.
    """
    scaled_l = keras.Input((None, None, 1))
    innermost = len(filters) - 1
    levels = []
    x = scaled_l
    for level, count in enumerate(filters):
        x = down_block(
            count, normalize=0 < level < innermost, activate=level > 0, use_bias=level == innermost,
            name=f"down{level}",
        )(x)
        levels.append(x)
    return keras.Model(scaled_l, levels, name="encoder")


@keras.saving.register_keras_serializable(package="chroma")
class UNetGenerator(Generator):
    """{"L": scaled L (B,H,W,1)} -> {"ab": scaled ab (B,H,W,2)} in tanh range.

    `encoder` (figure 10): `depth` levels of 4x4 stride-2 convolutions with
    min(base_filters * 2**i, base_filters * 8) filters at level i. `decoder`
    (figure 11): ReLU, 4x4 stride-2 transposed conv and batch norm back up the
    levels, skip connections from every encoder level; last a transposed conv
    with bias to 2 channels and tanh. Both are functional models returning
    every level's output. `dropout_blocks`: the decoder blocks with dropout,
    counted from the innermost (1) outwards; None is pix2pix's three
    innermost (paper agosti V-A: "starting from the fourth block").

    The paper's network is the default: depth 8 brings 256x256 down to 1x1
    (54.4 M parameters). H and W must be multiples of 2**depth; smoke runs use
    e.g. depth=5, base_filters=8 at 32 px. `dropout_at_inference=True` keeps
    the dropout on when training=False, pix2pix's noise source.
    """

    # The decoder's x2 layer factory, a class attribute so that PixelUNetGenerator can swap it.
    upsampling = staticmethod(transposed_conv)

    def __init__(self, base_filters=64, depth=8, dropout=0.5, dropout_at_inference=False,
                 dropout_blocks=None, **kwargs):
        super().__init__(**kwargs)
        if depth < 2:
            raise ValueError(f"a U-Net needs depth >= 2, got {depth}")
        if dropout_blocks is None:  # pix2pix's, as many as a shallow U-Net has
            dropout_blocks = [block for block in PIX2PIX_DROPOUT_BLOCKS if block < depth]
        if not set(dropout_blocks) <= set(range(1, depth)):
            raise ValueError(f"a U-Net of depth {depth} has decoder blocks 1..{depth - 1}, got {dropout_blocks}")
        self.base_filters = base_filters
        self.depth = depth
        self.dropout = dropout
        self.dropout_at_inference = dropout_at_inference
        self.dropout_blocks = tuple(dropout_blocks)
        filters = [min(base_filters * 2**level, base_filters * 8) for level in range(depth)]
        self.encoder = unet_encoder(filters)
        up_blocks = [
            up_block(
                filters[level - 1], dropout=dropout if block in self.dropout_blocks else 0.0,
                dropout_at_inference=dropout_at_inference, upsampling=self.upsampling, name=f"up{level}",
            )
            for block, level in enumerate(range(depth - 1, 0, -1), start=1)
        ]
        self.decoder = skip_decoder(filters, up_blocks + [output_block(upsampling=self.upsampling, name="out")])
        self.build({"L": (None, None, None, 1)})

    def call(self, batch, training=False):
        scaled_l = batch["L"]
        self.check_sides(scaled_l, 2**self.depth)
        return {"ab": self.decoder(self.encoder(scaled_l, training=training), training=training)[-1]}

    def get_config(self):
        return {
            **super().get_config(),
            "base_filters": self.base_filters,
            "depth": self.depth,
            "dropout": self.dropout,
            "dropout_at_inference": self.dropout_at_inference,
            "dropout_blocks": self.dropout_blocks,
        }
