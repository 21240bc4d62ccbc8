"""PixelGAN generator of paper agosti (section III-A, "Autoregressive Decoder", Fig. 2)."""

import keras

from chroma.models.pixel_tcl import PixelTransposedConv2D
from chroma.models.unet import UNetGenerator


def pixel_transposed_conv(filters, **kwargs):
    """A PixelTCL with 3x3 kernels (Fig. 2) where the U-Net has a 4x4 stride-2 transposed conv."""
    return PixelTransposedConv2D(filters, 3, **kwargs)


@keras.saving.register_keras_serializable(package="chroma")
class PixelUNetGenerator(UNetGenerator):
    """UNetGenerator with every decoder transposed conv, the last included, replaced by a PixelTCL.

    "This new type of layer replaces the standard transposed convolution
    without having to modify the U-net shape and the skip connections"
    (section III-A): same arguments, encoder, skips, batch norm, dropout and
    tanh output as UNetGenerator, scaled L (B,H,W,1) -> scaled ab (B,H,W,2).

    Parameters at 256x256 with the defaults: 69,789,172 trainable (the paper:
    "69 million"; the GAN U-Net's 54.4 M has 54.41 M trainable), 69,799,028
    with batch norm's moving statistics. A decoder block from a to b channels
    has 9ab + 9b^2 + 9b(2b) convolution weights where the U-Net has 16ab. The
    paper's count fits this reading of Fig. 2, one b -> 2b kernel for maps 3
    and 4 counted whole, masked taps included: counting only its 4 unmasked
    taps would give 58.4 M, Gao et al.'s code (one kernel shared by maps 3
    and 4) 59.6 M, and iPixelTCL (the input fed to every step) 149 M.
    """

    upsampling = staticmethod(pixel_transposed_conv)
