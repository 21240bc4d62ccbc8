"""Paper efthymiadis: "Deep Learning Image Colorization" (Efthymiadis et al., DTU), Table 1.

Six colorizers scored by PSNR, SSIM and LPIPS (AlexNet):
CNN (section 3.1: ResNet-18 cut after its sixth layer group + deconvolutions, L1),
CNN + classifier (3.2: "Let there be color" with a 27-class head, L1 + CE / 300),
Attention UGAN (3.3: Attention U-Net + PatchGAN), Baseline UGAN (pix2pix's U-Net +
PatchGAN, paper ref. [16]) and the two UGANs pretrained on COCO then fine-tuned (3.3.3).

    make reproduce-efthymiadis                                       # SCALE=smoke: bundled photos, CPU, minutes
    make reproduce-efthymiadis SCALE=paper DATA=/data/imagenet27 COCO=/data/coco ASSETS=lpips=/weights/lpips_alex.npz

Paper scale: DATA is an ImageNet subset in class folders (27 classes, as the
classifier's head), with train/ and val/ inside; COCO (train2017, 8,000 random
images) is the pretraining set. Section 3 gives: CNN 224x224, Adam 1e-4, 100
epochs; CNN + classifier 224x224, Adam 5e-5, 200 epochs, sigma = 1/300; the
UGANs 256x256, 100 epochs from scratch, or 20 epochs of fine-tuning after COCO.
Not stated, so chosen here: batch 16; pix2pix's Adam 2e-4 (0.5, 0.999) and
lambda = 100 and halved D loss for the UGANs, with the Attention UGANs' discriminator
rate cut to 2e-5 ("a quite small value", 3.3.3, said of the Attention U-Net's training;
the Baseline UGANs keep pix2pix's 2e-4, [16]); 20 epochs of COCO pretraining; random horizontal flips of
the training images, as pix2pix [16], which the UGANs follow, trains with (the paper names no augmentation,
and a mirrored photo is as plausible as its original). The paper trained on one Colab GPU; no runtime is given.

Expected (Table 1; PSNR, SSIM, LPIPS): CNN 21.24 / 0.8952 / 0.1683;
CNN + classifier 21.26 / 0.9074 / 0.1620; Attention UGAN 18.48 / 0.8736 / 0.1890;
Baseline UGAN 17.94 / 0.8527 / 0.1996; Pretrained UGAN 19.66 / 0.8984 / 0.1509;
Pretrained Attention UGAN 20.00 / 0.9018 / 0.1476.
"""

import math

import keras

from chroma.models.attention_unet import AttentionUNetGenerator
from chroma.models.iizuka import IizukaColorizer
from chroma.models.patchgan import PatchDiscriminator
from chroma.models.resnet_cnn import ResNetCNN
from chroma.models.unet import UNetGenerator
from chroma.losses import labelled_cross_entropy
from chroma.training import (
    AuxiliaryLoss,
    ConditionalGAN,
    Pretraining,
    RegressionColorizer,
    Run,
    PaperData,
    Settings,
    at_paper_scale,
    smoke_settings,
)

PAPER = "efthymiadis"
TITLE = "Deep Learning Image Colorization (Efthymiadis et al.)"
COLUMNS = ("psnr", "ssim", "lpips", "colorfulness")

_CLASSES = 27  # the ImageNet classes of section 3.2.1
_GAN_EPOCHS = 100
_FINE_TUNING_EPOCHS = 20
_PRETRAINING_EPOCHS = 20


# Section 3. No pretrained backbone: ResNetCNN's conv1 takes one channel.
SCALES = {
    "paper": Settings(image_size=256, batch_size=16, epochs=_GAN_EPOCHS, flip=True),  # flips: see the docstring
    "smoke": smoke_settings(epochs=12, flip=True),
}


def paper_data(coco, data):
    """Section 3: ImageNet's 27 classes (`data`), and COCO for the pretraining of 3.3.3."""
    if not data or not coco:
        raise ValueError("SCALE=paper needs DATA=/path/to/imagenet27 (train/, val/) and COCO=/path/to/coco")
    return PaperData(train_data=f"{data}/train", eval_data=f"{data}/val",
                     pretrain_data=f"coco:{coco}?split=train2017&take=8000")


def progression(epochs, count=5):
    """`count` epochs spread over a run of `epochs`, first and last included (figure 7)."""
    return sorted({max(1, round(epochs * step / (count - 1))) for step in range(count)})


def pretraining(settings):
    """Section 3.3.3: first COCO (at smoke scale the same photos again), then fine-tuning."""
    settings = settings._replace(train_data=settings.pretrain_data or settings.train_data)
    return settings if settings.smoke else settings._replace(epochs=_PRETRAINING_EPOCHS)


def cnn(settings):
    return RegressionColorizer(ResNetCNN())


def cnn_with_classifier(settings):
    return RegressionColorizer(IizukaColorizer(num_classes=_CLASSES, image_size=settings.image_size))


def discriminator(settings):
    return PatchDiscriminator(base_filters=settings.base_filters)


def attention_ugan(settings):
    generator = AttentionUNetGenerator(base_filters=8, depth=4) if settings.smoke else AttentionUNetGenerator()
    return ConditionalGAN(generator, discriminator(settings), seed=settings.seed)


def baseline_ugan(settings):
    generator = UNetGenerator(base_filters=settings.base_filters, depth=int(math.log2(settings.image_size)))
    return ConditionalGAN(generator, discriminator(settings), seed=settings.seed)


# Equation 3: sigma = 1/300 times the classifier's cross-entropy on the image's class (unlabelled images: none).
_CLASSIFICATION_TERM = AuxiliaryLoss("classification", output="class_logits", target="label",
                                     loss=labelled_cross_entropy, weight=1 / 300)


def l1_adam(learning_rate, auxiliary_losses=()):
    def recipe(total_steps):
        del total_steps  # constant learning rate
        return dict(optimizer=keras.optimizers.Adam(learning_rate), loss="l1", auxiliary_losses=auxiliary_losses)

    return recipe


def ugan_recipe(d_learning_rate):
    """pix2pix's Adam 2e-4 (0.5, 0.999) for G; D's rate as the UGAN's section says."""

    def recipe(total_steps):
        del total_steps  # constant learning rates
        return dict(
            g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.999),
            d_optimizer=keras.optimizers.Adam(d_learning_rate, beta_1=0.5, beta_2=0.999),
            adversarial_loss="bce",
            reconstruction_weight=100.0,  # pix2pix's, chosen (not stated)
            discriminator_loss_weight=0.5,  # pix2pix's halved D loss, chosen (not stated)
        )

    return recipe


# 3.3.3: training the Attention U-Net, "we reduced the learning rate of the discriminator to a quite small value"
# (chosen: a tenth of pix2pix's). The Baseline UGANs are pix2pix ([16]), whose D learns at 2e-4.
_ATTENTION_UGAN_RECIPE = ugan_recipe(d_learning_rate=2e-5)
_BASELINE_UGAN_RECIPE = ugan_recipe(d_learning_rate=2e-4)


RUNS = [
    # Figure 7: "the Baseline model (CNN) progression over 100 training epochs".
    Run("cnn", "CNN", cnn, l1_adam(1e-4), paper={"psnr": 21.239301, "ssim": 0.895211, "lpips": 0.168267},
        overrides=at_paper_scale(image_size=224, epochs=100), sample_epochs=progression),
    Run("cnn_classifier", "CNN + Classifier", cnn_with_classifier,
        l1_adam(5e-5, auxiliary_losses=(_CLASSIFICATION_TERM,)),
        paper={"psnr": 21.259139, "ssim": 0.907357, "lpips": 0.161973},
        overrides=at_paper_scale(image_size=224, epochs=200), note="no class labels at smoke scale: CE is 0",
        # 3.2: "trained for 200 epochs reaching its lowest global loss at the 110th epoch", the one reported:
        # the epoch of the lowest total training loss (L1 + CE / 300).
        scored_at="best", monitor="loss"),
    Run("attention_ugan", "Attention UGAN", attention_ugan, _ATTENTION_UGAN_RECIPE,
        paper={"psnr": 18.476772, "ssim": 0.873606, "lpips": 0.188972}),
    Run("baseline_ugan", "Baseline UGAN", baseline_ugan, _BASELINE_UGAN_RECIPE,
        paper={"psnr": 17.939683, "ssim": 0.852737, "lpips": 0.199551}),
    Run("pretrained_ugan", "Pretrained UGAN", baseline_ugan, _BASELINE_UGAN_RECIPE,
        paper={"psnr": 19.658543, "ssim": 0.898401, "lpips": 0.150918},
        overrides=at_paper_scale(epochs=_FINE_TUNING_EPOCHS), pretrain=Pretraining(pretraining)),
    Run("pretrained_attention_ugan", "Pretrained Attention UGAN", attention_ugan, _ATTENTION_UGAN_RECIPE,
        paper={"psnr": 19.997733, "ssim": 0.901787, "lpips": 0.147607},
        overrides=at_paper_scale(epochs=_FINE_TUNING_EPOCHS), pretrain=Pretraining(pretraining)),
]
