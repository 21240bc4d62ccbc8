"""DCGAN critic of paper agosti for WGAN-GP: the PatchGAN's blocks, no batch norm, one dense score (section VI)."""

import keras

from chroma.models.blocks import weight_init
from chroma.models.patchgan import patch_blocks


@keras.saving.register_keras_serializable(package="chroma")
class DCGANCritic(keras.Model):
    """concat(scaled L, scaled ab) (B, S, S, 3) -> one Wasserstein score per image, (B, 1) float32.

    Section VI: WGAN-GP got nowhere with the PatchGAN as critic, whose
    overlapping patches break WGAN-GP's assumption of independent inputs, so
    the critic became a DCGAN, "same structure but the last layer is a dense
    one with a single output unit". The PatchGAN's conv blocks (C64 - C128 -
    C256 - C512 at the defaults) are kept, its last 4x4 conv is replaced by
    flatten + Dense(1), and, as section V-C says after Gulrajani et al. 2017
    (section 4, "no critic batch normalization"), no block has batch norm:
    the gradient penalty constrains each example's score with respect to that
    example alone, and batch norm would make every score depend on the whole
    batch. Each conv has a bias instead.

    The dense layer fixes the input size: `image_size` is the square side S
    (256 in the paper: the last block's 31x31x512 map, 492,032 features).
    The score is unbounded, no sigmoid; it leaves in float32 whatever the
    dtype policy.
    """

    def __init__(self, image_size=256, base_filters=64, n_layers=3, **kwargs):
        super().__init__(**kwargs)
        self.image_size = image_size
        self.base_filters = base_filters
        self.n_layers = n_layers
        blocks = patch_blocks(base_filters, n_layers, normalize=False)
        score = keras.Sequential(
            [keras.layers.Flatten(), keras.layers.Dense(1, kernel_initializer=weight_init(), dtype="float32")],
            name="score",
        )
        # One Sequential rather than a list of blocks: tf.train.Checkpoint does not see a list attribute's layers.
        self.network = keras.Sequential(blocks + [score], name="dcgan")
        self.build((None, image_size, image_size, 3))

    def build(self, input_shape):
        # One symbolic pass creates every weight, so count_params() works before the model sees data.
        self.call(keras.KerasTensor(input_shape))

    def call(self, scaled_lab, training=False):
        if tuple(scaled_lab.shape[1:3]) != (self.image_size, self.image_size):
            raise ValueError(
                f"DCGANCritic(image_size={self.image_size}) scores {self.image_size}x{self.image_size} images, "
                f"got {tuple(scaled_lab.shape[1:3])}"
            )
        return self.network(scaled_lab, training=training)

    def get_config(self):
        return {
            **super().get_config(),
            "image_size": self.image_size,
            "base_filters": self.base_filters,
            "n_layers": self.n_layers,
        }
