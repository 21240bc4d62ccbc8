"""Paper nampouri: "Image Colorization with Conditional GANs" (Nampouri, Hadjichristodoulou & Andreadis).

Two pix2pix cGANs with the 70x70 PatchGAN discriminator (appendix A.3):
a U-Net generator trained from scratch (A.1, 54 M parameters) and a U-Net whose
encoder is an ImageNet-pretrained ResNet-18 (A.2, 15 M parameters).

    make reproduce-nampouri                                  # SCALE=smoke: bundled photos, 2 CPU cores, minutes
    make reproduce-nampouri SCALE=paper COCO=/data/coco \\
        ASSETS=resnet18=/weights/resnet_18_imagenet            # the paper's recipe

Paper scale, as section 5: COCO train2017, 8,000 random images for training and
2,000 for testing from COCO's test split (test2017, public but unannotated, where
it is under COCO/; val2017 otherwise, as the table's heading says), 256x256, random
horizontal flips, batch 16, 300 epochs = 150k iterations, two Adam optimizers
(2e-4, beta 0.5 / 0.999), lambda = 100, N(0, 0.02) initialisation. The paper
took ~4 h per model on one A100. The runs resume when rerun.

Expected (section 6, test-set L1 on ab): U-Net cGAN 0.0917, ResNet-18 cGAN 0.0945,
on ab scaled by 1/110 (equations 5-6; its tutorial [20] scales alike), as chroma's
l1_ab is. The U-Net is scored with dropout on, as trained (4.2, after pix2pix).
"""

import math

import keras

from chroma.data import coco_test_split, required_coco
from chroma.models.patchgan import PatchDiscriminator
from chroma.models.resnet_unet import ResNetUNetGenerator
from chroma.models.unet import UNetGenerator
from chroma.training import ConditionalGAN, PaperData, Run, Settings, smoke_settings

PAPER = "nampouri"
TITLE = "Image Colorization with Conditional GANs (Nampouri et al.)"
ASSETS = {"resnet18": "the ResNet-18 encoder's ImageNet weights (A.2): a keras-hub preset directory, a .weights.h5 "
                      "of a ResNetUNetGenerator's encoder, or none / random (random weights; smoke runs without it too)"}
# The paper reports test L1; PSNR, SSIM and colourfulness are chroma's additions.
COLUMNS = ("l1_ab", "psnr", "ssim", "colorfulness")

_PAPER_IMAGE_SIZE = 256
_SMOKE_IMAGE_SIZE = 64

SCALES = {
    "paper": Settings(image_size=_PAPER_IMAGE_SIZE, batch_size=16, epochs=300),  # section 5
    "smoke": smoke_settings(epochs=30, image_size=_SMOKE_IMAGE_SIZE),
}


def paper_data(coco, data):
    """Section 5: COCO only (`data`, another dataset, is not used)."""
    del data
    coco = required_coco(coco)
    return PaperData(train_data=f"coco:{coco}?split=train2017&take=8000",
                     eval_data=f"coco:{coco}?split={coco_test_split(coco)}&take=2000")


def discriminator(settings):
    return PatchDiscriminator(base_filters=settings.base_filters)


def unet_cgan(settings):
    # As many levels as halve the image to 1x1: 8 at the paper's 256 px (figure 10).
    depth = int(math.log2(settings.image_size))
    generator = UNetGenerator(base_filters=settings.base_filters, depth=depth)
    return ConditionalGAN(generator, discriminator(settings), seed=settings.seed)


def resnet_cgan(settings):
    weights = settings.assets.get("resnet18")
    generator = ResNetUNetGenerator(backbone_weights=None if weights == "random" else weights)
    return ConditionalGAN(generator, discriminator(settings), seed=settings.seed)


def pix2pix_recipe(total_steps):
    """Section 5.2: two Adam optimizers at a constant 2e-4, BCE + 100 x L1."""
    del total_steps  # constant learning rate
    return dict(
        g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.999),
        d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.999),
        adversarial_loss="bce",
        reconstruction_loss="l1",
        reconstruction_weight=100.0,
        discriminator_loss_weight=0.5,  # equation 16
    )


RUNS = [
    # 4.2: dropout is the noise z "during both training and testing", as pix2pix; the ResNet U-Net has none.
    Run("unet_cgan", "U-Net cGAN", unet_cgan, pix2pix_recipe, paper={"l1_ab": 0.0917}, scored_in="dropout"),
    Run(
        "resnet_cgan", "ResNet-18 cGAN", resnet_cgan, pix2pix_recipe, paper={"l1_ab": 0.0945},
        note="encoder from ImageNet weights (asset resnet18); random at smoke scale", scored_in="dropout",
    ),
]
