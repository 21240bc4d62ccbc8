"""Template: a sixth paper in one file. Copy it, rename it, and replace what each comment asks for.

    chroma reproduce path/to/mypaper.py                                  # smoke scale: bundled photos, minutes
    chroma reproduce path/to/mypaper.py --scale paper --coco /data/coco  # the paper's recipe

This docstring is what a researcher reads before spending GPU-days: give the
paper's title, the command, the hardware and runtime of the paper scale, the
paper's protocol (data, image size, batch, epochs, optimizers, how models are
scored) with the section of each, any deviation and why, and the numbers the
paper reports.

The names below are the recipe contract (chroma.recipes.CONTRACT), checked when
the file loads: a misspelt or unknown UPPER_CASE name, a missing one or a value
of the wrong type is an error. The recipe's own constants start with an
underscore. As written, it trains a pix2pix cGAN (U-Net generator, PatchGAN
discriminator).
"""

import math

import keras

from chroma.data import coco_test_split, required_coco
from chroma.models.patchgan import PatchDiscriminator
from chroma.models.unet import UNetGenerator
from chroma.training import ConditionalGAN, PaperData, Run, Settings, smoke_settings

PAPER = "mypaper"  # runs/<PAPER>/ and the results' "paper" columns
TITLE = "My paper's title (Authors)"
COLUMNS = ("l1_ab", "psnr", "ssim", "colorfulness")  # the metrics of its table (chroma.evaluation.COLUMN_TITLES)

SCALES = {
    "paper": Settings(image_size=256, batch_size=16, epochs=100),  # the paper's section that gives them
    "smoke": smoke_settings(epochs=10),  # bundled photos, small networks: minutes on a CPU
}


def paper_data(coco, data):
    """Where the paper's data is on this machine, from --coco and --data (data specs, chroma.data.specs)."""
    del data  # this paper trains on COCO only
    coco = required_coco(coco)
    return PaperData(train_data=f"coco:{coco}?split=train2017&take=8000",
                     eval_data=f"coco:{coco}?split={coco_test_split(coco)}&take=2000")


def cgan(settings):
    """The networks, small at smoke scale (settings.base_filters is 16 there, the papers' 64 otherwise)."""
    generator = UNetGenerator(base_filters=settings.base_filters, depth=int(math.log2(settings.image_size)))
    return ConditionalGAN(generator, PatchDiscriminator(base_filters=settings.base_filters), seed=settings.seed)


def adam_recipe(total_steps):
    """The optimizers and losses: the keyword arguments of the model's compile (chroma.training.ConditionalGAN)."""
    del total_steps  # a constant learning rate; a schedule would span the run's steps
    return dict(
        g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
        d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
        adversarial_loss="bce",
        reconstruction_loss="l1",
        reconstruction_weight=100.0,
    )


# One Run per row of the paper's table, with the figures the paper reports for it (keyed like COLUMNS). A run
# scored at its best epoch by a validation figure (scored_at="best", monitor="val_...") needs validation data apart
# from the scoring data: smoke_settings(..., validation_split=True) and PaperData(validation_data=...), as
# experiments/villarenteria.py gives; reproduce refuses it otherwise.
RUNS = [
    Run("cgan", "U-Net cGAN", cgan, adam_recipe, paper={"l1_ab": None}),
]
