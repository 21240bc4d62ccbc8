"""The pieces several papers' networks share: paper nampouri's blocks, a Conv-ReLU, pretrained weights on disk.

Paper nampouri's appendix A (after pix2pix) writes Ck for a 4x4 stride-2
convolution with k filters, batch norm and a (leaky) ReLU, and CDk for the
same with 50% dropout. The U-Net (A.1)
applies each block's activation before its convolution, as figures 10, 11 and
13 list them (LeakyReLU / ReLU, then Conv2d / ConvTranspose2d, then
BatchNorm2d); the PatchGAN (A.3) applies it after. A convolution followed by
batch norm has no bias (the norm's beta takes its place): that is what makes
the parameter counts of figures 10-15 come out.
"""

import os

import keras


def weight_init():
    """N(0, 0.02), section 5.2's initialisation of every convolution (pix2pix's).

    A fresh initializer per layer: Keras draws an unseeded initializer's seed
    once, when it is created, so one instance shared by several layers would
    give every layer of the same shape the same weights.
    """
    return keras.initializers.RandomNormal(0.0, 0.02)


def batch_norm(gamma_initializer=None, name=None):
    """BatchNorm2d as PyTorch defines it, with pix2pix's gamma ~ N(1, 0.02) unless told otherwise.

    momentum 0.9 is PyTorch's momentum 0.1 (Keras keeps 0.9 of the old moving
    average, PyTorch adds 0.1 of the new batch). synchronized=True computes the
    statistics over the global batch under a distribution strategy, so a step
    on several replicas equals the same batch on one device.
    """
    return keras.layers.BatchNormalization(
        momentum=0.9,
        epsilon=1e-5,
        synchronized=True,
        gamma_initializer=gamma_initializer or keras.initializers.RandomNormal(1.0, 0.02),
        name=name,
    )


def keras_weights_cache(file_name):
    """Where keras.applications keeps a weights file once downloaded: $KERAS_HOME or ~/.keras, then models/."""
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(home, "models", file_name)


def keras_weights_path(weights, file_name, user, hint):
    """`weights` for keras.applications, never a download: None (random), a local .h5 path, or for "imagenet"
    the cached `file_name`, which must exist; if it does not, the error names `user` and ends with `hint`."""
    if weights != "imagenet":
        return weights
    path = keras_weights_cache(file_name)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{user}(weights='imagenet') needs the Keras cache file {path}, which does not exist, and chroma never "
            f"downloads. {hint}"
        )
    return path


def same_conv(filters, strides=1, kernel_size=3, activation="relu", **kwargs):
    """A 'same'-padded convolution with ReLU: the Conv-ReLU layer of Iizuka et al., Deep Koalarization and ChromaGAN."""
    return keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same", activation=activation, **kwargs)


def upsampling_decoder(name="decoder"):
    """256@H/8 -> scaled ab (H, W, 2): conv 128, up, conv 64, conv 64, up, conv 32, conv 2 with tanh, up.

    Iizuka et al.'s colorization network with nearest-neighbour upsampling, as
    Deep Koalarization (paper bruvik 5.3.5) and ChromaGAN use it. Layers are
    named so that a model may modulate after one (paper villarenteria's FiLM).
    The last convolution and upsampling run in float32 whatever the dtype
    policy, so ab leaves in float32 under mixed precision.
    """
    return keras.Sequential(
        [
            same_conv(128, name="decoder_conv1"), keras.layers.UpSampling2D(2, name="decoder_up1"),
            same_conv(64, name="decoder_conv2"), same_conv(64, name="decoder_conv3"),
            keras.layers.UpSampling2D(2, name="decoder_up2"),
            same_conv(32, name="decoder_conv4"),
            same_conv(2, activation="tanh", dtype="float32", name="decoder_ab"),
            keras.layers.UpSampling2D(2, dtype="float32", name="decoder_up3"),
        ],
        name=name,
    )


@keras.saving.register_keras_serializable(package="chroma")
class SwitchableDropout(keras.layers.Dropout):
    """Dropout that can stay active at inference (training=False).

    pix2pix keeps the U-Net's dropout on at test time: it is the generator's
    only source of noise, z in G(x, z).
    """

    def __init__(self, rate, at_inference=False, **kwargs):
        super().__init__(rate, **kwargs)
        self.at_inference = at_inference

    def call(self, inputs, training=False):
        return super().call(inputs, training=True if self.at_inference else training)

    def get_config(self):
        return {**super().get_config(), "at_inference": self.at_inference}


def down_block(filters, normalize=True, activate=True, use_bias=False, name=None):
    """Ck of the U-Net encoder (figure 10): LeakyReLU(0.2), 4x4 stride-2 conv, batch norm.

    The first block (C64) sees the raw input, so it has neither activation nor
    norm; the innermost has no norm, and a bias instead.
    """
    layers = [keras.layers.LeakyReLU(0.2)] if activate else []
    layers.append(
        keras.layers.Conv2D(
            filters, 4, strides=2, padding="same", use_bias=use_bias, kernel_initializer=weight_init()
        )
    )
    if normalize:
        layers.append(batch_norm())
    return keras.Sequential(layers, name=name)


def transposed_conv(filters, **kwargs):
    """The decoders' x2 upsampling (figures 11 and 13): a 4x4 stride-2 transposed conv.

    'same' padding doubles the size exactly as PyTorch's ConvTranspose2d(4, 2, padding=1) does.
    """
    return keras.layers.Conv2DTranspose(
        filters, 4, strides=2, padding="same", kernel_initializer=weight_init(), **kwargs
    )


def up_block(filters, dropout=0.0, dropout_at_inference=False, upsampling=transposed_conv, name=None):
    """Ck / CDk of the decoders (figures 11 and 13): ReLU, 4x4 stride-2 transposed conv, batch norm, [dropout].

    `upsampling(filters, **kwargs)` makes the x2 layer; paper agosti's PixelGAN swaps in a PixelTCL.
    """
    layers = [keras.layers.ReLU(), upsampling(filters, use_bias=False), batch_norm()]
    if dropout:
        layers.append(SwitchableDropout(dropout, at_inference=dropout_at_inference))
    return keras.Sequential(layers, name=name)


def output_block(channels=2, upsampling=transposed_conv, name=None):
    """The generators' last layer: ReLU, 4x4 stride-2 transposed conv with bias, tanh.

    In float32 whatever the dtype policy, so the scaled ab leaves in float32
    under mixed precision. `upsampling` as in up_block.
    """
    return keras.Sequential(
        [keras.layers.ReLU(), upsampling(channels, use_bias=True, activation="tanh", dtype="float32")],
        name=name,
    )


def skip_decoder(level_channels, blocks, name="decoder"):
    """The U-Net decoder as a functional model: the encoder's levels -> every decoder level's output.

    `level_channels` are the encoder levels' channels, shallowest first. The
    first block upsamples the deepest level; each next block sees its input
    concatenated with the encoder level of the same size (the skip from layer
    i to layer n - i of appendix A). A functional model rather than a list of
    blocks on the generator: tf.train.Checkpoint, which resumes training, does
    not see the layers in a Keras model's list attributes.
    """
    encoder_levels = [keras.Input((None, None, channels)) for channels in level_channels]
    x = encoder_levels[-1]
    decoder_levels = []
    for step, block in enumerate(blocks):
        if step:
            x = keras.layers.Concatenate()([encoder_levels[-1 - step], x])
        x = block(x)
        decoder_levels.append(x)
    return keras.Model(encoder_levels, decoder_levels, name=name)

