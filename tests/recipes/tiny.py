"""A recipe small enough for tests: a 2-layer cGAN on 16x16 crops of the bundled photos."""

import keras
import tensorflow as tf

from chroma.models.network_generator import NetworkGenerator
from chroma.training import ConditionalGAN, PaperData, Pretraining, RegressionColorizer, Run, Settings, learning_rate

PAPER = "tiny"
TITLE = "Tiny test recipe"
COLUMNS = ("l1_ab", "psnr")
_METRICS = ("l1_ab",)  # what fit reports per epoch: SSIM's graph would double the time to trace a step
_EPOCHS = 12
_EXPLODING_LEARNING_RATE = 3000.0  # the loss overflows to inf in epoch 3 (from 1000 to 10000 alike), after 2 good ones
_STEPS_PER_EPOCH = 2  # 4 training images, batch 2
_GOOD_EPOCHS = 1  # the *_turns_inf runs train this many epochs, then one network's output turns inf


# The run "gan" picks its best epoch: on 2 photos apart from the 2 it is scored on.
_PHOTOS = PaperData(train_data="samples?take=4", eval_data="samples?skip=6", validation_data="samples?skip=4&take=2")
# Both scales train the same tiny networks on 4 bundled photos.
SCALES = {scale: Settings(**_PHOTOS._asdict(), image_size=16, batch_size=2, epochs=_EPOCHS, smoke=True)
          for scale in ("smoke", "paper")}


def paper_data(coco, data):
    return _PHOTOS


def generator():
    return keras.Sequential([
        keras.Input((None, None, 1)),
        keras.layers.Conv2D(8, 3, padding="same", use_bias=False),
        keras.layers.BatchNormalization(synchronized=True),
        keras.layers.ReLU(),
        keras.layers.Conv2D(2, 3, padding="same", activation="tanh", dtype="float32"),
    ])


def discriminator():
    return keras.Sequential([
        keras.Input((None, None, 3)),
        keras.layers.Conv2D(8, 4, strides=2, padding="same"),
        keras.layers.LeakyReLU(0.2),
        keras.layers.Conv2D(1, 4, padding="same", dtype="float32"),
    ])


def gan(settings):
    return ConditionalGAN(NetworkGenerator(generator()), discriminator(), seed=0)


class TurnsInfinite(keras.layers.Layer):
    """The identity for its first `calls` calls in training, +inf after: a network that diverges on cue.

    Divergence driven by a learning rate lands in an epoch that depends on
    float rounding; this one lands exactly where the test expects it.
    """

    def __init__(self, calls, **kwargs):
        super().__init__(**kwargs)
        self.calls = calls
        self.count = tf.Variable(0, trainable=False, name="count")

    def call(self, inputs, training=False):
        if training:
            self.count.assign_add(1)
        return tf.where(self.count > self.calls, float("inf"), inputs)


def generator_turns_inf(settings):
    """G's ab turns inf after _GOOD_EPOCHS; D squashes its input, so only G's losses become non-finite."""
    squashing = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Activation("tanh"), discriminator()])
    g = NetworkGenerator(keras.Sequential([generator(), TurnsInfinite(_GOOD_EPOCHS * _STEPS_PER_EPOCH)]))
    return ConditionalGAN(g, squashing, seed=0)


def discriminator_turns_inf(settings):
    """D's scores turn inf after _GOOD_EPOCHS: it runs 3 times per step (real, fake, then for G's loss)."""
    return ConditionalGAN(NetworkGenerator(generator()),
                          keras.Sequential([discriminator(), TurnsInfinite(3 * _GOOD_EPOCHS * _STEPS_PER_EPOCH)]), seed=0)


def cosine_recipe(total_steps):
    return dict(
        g_optimizer=keras.optimizers.Adam(learning_rate(1e-3, "cosine", total_steps), beta_1=0.5),
        d_optimizer=keras.optimizers.Adam(learning_rate(1e-3, "cosine", total_steps), beta_1=0.5),
        reconstruction_weight=10.0,
    )


def constant_recipe(total_steps):
    return dict(g_optimizer=keras.optimizers.Adam(1e-3), d_optimizer=keras.optimizers.Adam(1e-3))


def regression(settings):
    # A linear output (no tanh) so a too-large step can grow the loss without bound.
    return RegressionColorizer(NetworkGenerator(
        keras.Sequential([keras.Input((None, None, 1)), keras.layers.Conv2D(2, 3, padding="same")])))


def exploding_recipe(total_steps):
    return dict(optimizer=keras.optimizers.SGD(_EXPLODING_LEARNING_RATE), loss="mse")


def pretraining(settings):
    return settings._replace(train_data="samples?skip=4&take=2", epochs=1)


def generator_regression(settings):
    return RegressionColorizer(NetworkGenerator(generator()))


def l1_recipe(total_steps):
    return dict(optimizer=keras.optimizers.Adam(1e-3), loss="l1")


RUNS = [
    Run("gan", "tiny cGAN", gan, cosine_recipe, paper={"l1_ab": 0.1}, metrics=_METRICS,
        sample_epochs=lambda epochs: (1, epochs), scored_at="best"),
    Run("pretrained_gan", "tiny cGAN, pretrained", gan, constant_recipe, paper={}, metrics=_METRICS,
        pretrain=Pretraining(pretraining)),
    Run("regression_pretrained_gan", "tiny cGAN, generator pretrained by L1", gan, constant_recipe, paper={},
        metrics=_METRICS, pretrain=Pretraining(pretraining, build=generator_regression, compile_args=l1_recipe)),
    Run("exploding", "regression at a learning rate that diverges", regression, exploding_recipe, paper={},
        metrics=_METRICS),
    Run("generator_turns_inf", "cGAN whose generator diverges", generator_turns_inf, constant_recipe, paper={},
        metrics=_METRICS),
    Run("discriminator_turns_inf", "cGAN whose discriminator diverges", discriminator_turns_inf, constant_recipe,
        paper={}, metrics=_METRICS),
]

LOSS_TABLE = ("Tiny losses by epoch", {"gan": {"d_loss, first epoch": 0.7}})
BEST_EPOCH_TABLE = ("Tiny best epochs", {"gan": {"epochs": _EPOCHS}})
REFERENCE_ROWS = [{"model": "a figure from the literature", "paper": {"psnr": 25.0}, "note": "no model"}]
TRAINING_SAMPLES = True
