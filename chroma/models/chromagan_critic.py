"""ChromaGAN's critic (Vitoria et al. 2020), paper villarenteria's reference discriminator (sections 2, 4.2.1).

A PatchGAN (Isola et al.): one Wasserstein score per overlapping patch of
concat(L, ab). As the public release builds it (pvitoria/ChromaGAN,
SOURCE/ChromaGAN.py, `discriminator`): 4x4 convolutions C64 - C128 - C256
(stride 2) - C512 (stride 1), LeakyReLU, then a 4x4 convolution to one
channel, all 'same'-padded, with a bias and no normalisation (WGAN-GP,
Gulrajani et al. 2017 section 4: batch norm would make one example's score
depend on the batch, which the gradient penalty assumes it does not).

chroma.models.patchgan.patch_blocks is not reused: its PyTorch-style padding
shrinks the stride-1 maps (26x26 scores at 224, not the release's 28x28) and
its LeakyReLU slope is pix2pix's 0.2, not the release's Keras default 0.3.
"""

import keras

# keras.layers.LeakyReLU()'s default slope when the release was written (Keras 2).
LEAKY_SLOPE = 0.3


@keras.saving.register_keras_serializable(package="chroma")
class ChromaGANCritic(keras.Model):
    """concat(scaled L, scaled ab) (B,H,W,3) -> one unbounded score per patch, (B, H/8, W/8, 1) float32.

    Filters are base_filters x (1, 2, 4, 8); any H and W (224 gives 28x28).
    """

    def __init__(self, base_filters=64, **kwargs):
        super().__init__(**kwargs)
        self.base_filters = base_filters
        layers = []
        for multiple, strides in ((1, 2), (2, 2), (4, 2), (8, 1)):
            layers += [
                keras.layers.Conv2D(base_filters * multiple, 4, strides=strides, padding="same"),
                keras.layers.LeakyReLU(LEAKY_SLOPE),
            ]
        layers.append(keras.layers.Conv2D(1, 4, padding="same", dtype="float32"))
        # One Sequential rather than a list of layers: tf.train.Checkpoint does not see a list attribute's layers.
        self.network = keras.Sequential(layers, name="patch_critic")
        self.build((None, None, None, 3))

    def build(self, input_shape):
        # One symbolic pass creates every weight, so count_params() works before the model sees data.
        self.call(keras.KerasTensor(input_shape))

    def call(self, scaled_lab, training=False):
        return self.network(scaled_lab, training=training)

    def get_config(self):
        return {**super().get_config(), "base_filters": self.base_filters}
