"""70x70 PatchGAN discriminator of paper nampouri, appendix A.3 (figures 14 and 15): pix2pix's n_layers=3."""

import keras

from chroma.models.blocks import batch_norm, weight_init


def _patch_block(filters, strides, normalize, use_bias, name):
    """Conv (4x4, PyTorch's padding=1), [batch norm], LeakyReLU(0.2): Ck of appendix A.3."""
    layers = [
        # Explicit padding: TensorFlow's 'same' would keep a stride-1 conv's size, PyTorch's padding=1 shrinks it by 1.
        keras.layers.ZeroPadding2D(1),
        keras.layers.Conv2D(
            filters, 4, strides=strides, padding="valid", use_bias=use_bias, kernel_initializer=weight_init()
        ),
    ]
    if normalize:
        layers.append(batch_norm())
    layers.append(keras.layers.LeakyReLU(0.2))
    return keras.Sequential(layers, name=name)


def patch_blocks(base_filters, n_layers, normalize=True):
    """The Ck blocks, input side first: n_layers stride-2 blocks, then one of stride 1.

    Filters double from base_filters up to base_filters * 8. With `normalize`,
    every block but the first has batch norm and no bias (the norm's beta takes
    its place); without it, as in a WGAN-GP critic, every conv has a bias.
    """
    filters = [min(base_filters * 2**index, base_filters * 8) for index in range(n_layers + 1)]
    blocks = []
    for index, count in enumerate(filters):
        norm = normalize and index > 0
        blocks.append(
            _patch_block(
                count, strides=2 if index < n_layers else 1, normalize=norm, use_bias=not norm,
                name=f"c{count}_{index}",
            )
        )
    return blocks


@keras.saving.register_keras_serializable(package="chroma")
class PatchDiscriminator(keras.Model):
    """concat(scaled L, scaled ab) (B,H,W,3) -> one real/fake logit per patch, (B, H', W', 1).

    C64 (no batch norm) - C128 - C256 - C512, LeakyReLU(0.2), then a 4x4 conv
    with bias to one channel. As in pix2pix's n_layers=3 PatchGAN, C64, C128
    and C256 have stride 2 and C512 and the last conv stride 1, so a 256x256
    input gives 30x30 logits, each seeing a 70x70 patch. (Figure 15 prints
    512x16x16 before the 30x30 output; both cannot hold, and the 30x30 output
    and 70x70 patch are pix2pix's: C512 is 31x31 here.)

    The output is logits, not the paper's sigmoid: the losses apply it, which
    is numerically safer. `n_layers` is the number of stride-2 blocks (pix2pix's
    name for it); filters double from `base_filters` up to base_filters * 8.
    """

    def __init__(self, base_filters=64, n_layers=3, **kwargs):
        super().__init__(**kwargs)
        self.base_filters = base_filters
        self.n_layers = n_layers
        blocks = patch_blocks(base_filters, n_layers)
        logits = keras.Sequential(
            [
                keras.layers.ZeroPadding2D(1),
                keras.layers.Conv2D(1, 4, padding="valid", kernel_initializer=weight_init(), dtype="float32"),
            ],
            name="logits",
        )
        # One Sequential rather than a list of blocks: tf.train.Checkpoint does not see a list attribute's layers.
        self.network = keras.Sequential(blocks + [logits], name="patchgan")
        self.build((None, None, None, 3))

    def build(self, input_shape):
        # One symbolic pass creates every weight, so count_params() works before the model sees data.
        self.call(keras.KerasTensor(input_shape))

    def call(self, scaled_lab, training=False):
        return self.network(scaled_lab, training=training)

    def get_config(self):
        return {**super().get_config(), "base_filters": self.base_filters, "n_layers": self.n_layers}
