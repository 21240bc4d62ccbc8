"""A recipe small enough for tests: a 2-layer cGAN on 16x16 crops of the bundled photos."""

import keras

from chroma.training import ConditionalGAN, Pretraining, RegressionColorizer, Run, Settings, learning_rate

PAPER = "tiny"
TITLE = "Tiny test recipe"
COLUMNS = ("l1_ab", "psnr")
EPOCHS = 12
EXPLODING_LEARNING_RATE = 30.0  # the loss overflows to inf in epoch 6


def settings(scale, coco=None, data=None):
    return Settings(train_data="samples?take=4", eval_data="samples?skip=6", image_size=16, batch_size=2,
                    epochs=EPOCHS, smoke=True)


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
    return ConditionalGAN(generator(), discriminator(), seed=0)


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
    return RegressionColorizer(keras.Sequential([keras.Input((None, None, 1)), keras.layers.Conv2D(2, 3, padding="same")]))


def exploding_recipe(total_steps):
    return dict(optimizer=keras.optimizers.SGD(EXPLODING_LEARNING_RATE), loss="mse")


def pretraining(settings):
    return settings._replace(train_data="samples?skip=4&take=2", epochs=2)


def generator_regression(settings):
    return RegressionColorizer(generator())


def l1_recipe(total_steps):
    return dict(optimizer=keras.optimizers.Adam(1e-3), loss="l1")


RUNS = [
    Run("gan", "tiny cGAN", gan, cosine_recipe, paper={"l1_ab": 0.1}),
    Run("pretrained_gan", "tiny cGAN, pretrained", gan, constant_recipe, paper={}, pretrain=Pretraining(pretraining)),
    Run("regression_pretrained_gan", "tiny cGAN, generator pretrained by L1", gan, constant_recipe, paper={},
        pretrain=Pretraining(pretraining, build=generator_regression, compile_args=l1_recipe)),
    Run("exploding", "regression at a learning rate that diverges", regression, exploding_recipe, paper={}),
]

LOSS_TABLE = ("Tiny losses by epoch", {"gan": {"d_loss, first epoch": 0.7}})
