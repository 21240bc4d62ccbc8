"""Pixel transposed convolutional layer (PixelTCL) of paper agosti's PixelGAN (section III-A, Fig. 2).

Gao et al., "Pixel Transposed Convolutional Networks" (agosti's [23]): a
transposed convolution doubles the size by interleaving four intermediate maps
made by independent kernels, so neighbouring output pixels need not agree
(checkerboard artefacts). PixelTCL makes the maps one after another, each from
the ones before, so that pixels that end up neighbours depend on each other.
"""

import keras

from chroma.models.blocks import weight_init


def _interleave(top_left, top_right, bottom_left, bottom_right):
    """Four (B,H,W,C) maps -> (B,2H,2W,C), each map at its own pixel of every 2x2 output cell.

    depth_to_space reads channel block dy * 2 + dx as the pixel (dy, dx) of its cell.
    """
    maps = keras.ops.concatenate([top_left, top_right, bottom_left, bottom_right], axis=-1)
    return keras.ops.depth_to_space(maps, 2)


@keras.saving.register_keras_serializable(package="chroma")
class PixelTransposedConv2D(keras.layers.Layer):
    """(B,H,W,C) -> (B,2H,2W,filters): PixelTCL as Fig. 2 of paper agosti (taken from Gao et al.) draws it.

    Three kernel_size convolutions, initialised N(0, 0.02) (blocks.weight_init):
    `conv1` makes map 1 from the input (1), `conv2` map 2 from map 1 (2);
    maps 1 and 2 are dilated and added on the diagonal of each 2x2 cell (3),
    where `conv34` makes maps 3 and 4 together from them (4); the four maps are
    interleaved into the output (5). Only map 1 sees the input: that is PixelTCL
    as Fig. 2 draws it, not Gao et al.'s iPixelTCL, which feeds the input to
    every step. `use_bias` gives each convolution a bias; `activation` applies
    to the output. `intermediate_maps` returns the four maps before (5).
    """

    def __init__(self, filters, kernel_size=3, use_bias=True, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.use_bias = use_bias
        self.activation = keras.activations.get(activation)

        def conv(count, name):
            # The layer's dtype policy, so a float32 layer under mixed precision computes in float32 throughout.
            return keras.layers.Conv2D(
                count, kernel_size, padding="same", use_bias=use_bias, kernel_initializer=weight_init(),
                dtype=self.dtype_policy, name=name,
            )

        self.conv1 = conv(filters, "conv1")
        self.conv2 = conv(filters, "conv2")
        # One kernel, 2 * filters outputs: the first half is map 3, the second map 4 (Fig. 2 (4), "together").
        self.conv34 = conv(2 * filters, "conv34")

    def build(self, input_shape):
        self.conv1.build(input_shape)
        map_shape = (*input_shape[:-1], self.filters)
        self.conv2.build(map_shape)
        self.conv34.build(map_shape)

    def intermediate_maps(self, inputs):
        """The four (B,H,W,filters) maps that `call` interleaves: top-left, bottom-right, bottom-left, top-right."""
        map1 = self.conv1(inputs)  # Fig. 2 (1)
        map2 = self.conv2(map1)  # Fig. 2 (2): from map 1 alone
        # Fig. 2 (3): dilated and added, map 1 top-left and map 2 bottom-right of each cell. Maps 3 and 4
        # go to the two other pixels, each of which has maps 1 and 2 as its four nearest neighbours.
        empty = keras.ops.zeros_like(map1)
        dilated = _interleave(map1, empty, empty, map2)
        # Fig. 2 (4): Gao et al. mask the kernel so that maps 3 and 4 see maps 1 and 2 only. At the pixels
        # kept below, the taps the mask removes (a 3x3 kernel's centre and corners) read the empty pixels, 0:
        # a plain kernel computes the same maps, and those taps get no gradient.
        maps34 = self.conv34(dilated)
        map3 = maps34[:, 1::2, 0::2, : self.filters]  # bottom-left pixel
        map4 = maps34[:, 0::2, 1::2, self.filters :]  # top-right pixel
        return map1, map2, map3, map4

    def call(self, inputs):
        map1, map2, map3, map4 = self.intermediate_maps(inputs)
        outputs = _interleave(map1, map4, map3, map2)  # Fig. 2 (5)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        return (batch, None if height is None else 2 * height, None if width is None else 2 * width, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "use_bias": self.use_bias,
            "activation": keras.activations.serialize(self.activation),
        }
