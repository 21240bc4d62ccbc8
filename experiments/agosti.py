"""Paper agosti: "Image Recoloring with conditional GANs" (Agosti, Bee & Saccaro, Padova), Table 1 and Figs. 3-4.

Three cGANs on one U-Net: GAN (pix2pix's 8-block U-Net + 70x70 PatchGAN, section V),
PixelGAN (the decoder's transposed convolutions replaced by pixel transposed
convolutional layers, V-A, Fig. 2) and WGAN (WGAN-GP with a DCGAN critic: the
PatchGAN's blocks, no batch norm, a dense score, five critic steps per G step, each on a
batch of its own as in WGAN-GP's Algorithm 1; V-C, VI).

    make reproduce-agosti                                             # SCALE=smoke: bundled photos, CPU, minutes
    make reproduce-agosti SCALE=paper COCO=/data/coco ASSETS="fid=imagenet lpips=/weights/lpips_alex.npz"

Paper scale (sections IV-V): 20% of COCO 2017's training set (23,000 random images)
with the already-gray ones dropped (3%), 256x256, batch 16, 100 epochs, Adam 2e-4
(beta1 0.5) for both networks with the learning rate cosine-annealed to a tenth;
scored on COCO's validation images (the paper's test split has no public colours).
One P100 took ~25 min per epoch for the GAN and ~30 for PixelGAN. Not stated, so
chosen here: pix2pix's lambda = 100 and D loss halved; dropout in the three
innermost decoder blocks, as pix2pix; WGAN-GP's penalty weight 10 (Gulrajani et al.).
FID needs Inception-v3's ImageNet weights (the asset fid=imagenet reads the Keras
cache file), LPIPS its converted weights; without them those columns stay empty.
chroma's FID uses Keras's Inception-v3, not the 2015 graph torchmetrics runs, so
only its ordering compares with the paper's.

Expected (Table 1; FID / SSIM / PSNR / LPIPS / UIQI): GAN 2.52 / 0.86 / 24.44 /
0.14 / 0.37; PixelGAN 2.28 / 0.86 / 24.44 / 0.14 / 0.37; WGAN 3.21 / 0.86 /
23.83 / 0.16 / 0.35. Figure 4's diverse colorizations: dropout kept on at
inference (`chroma colorize --samples N`; the harness draws DIVERSE_SAMPLES).
"""

import math

import keras

from chroma.models.dcgan_critic import DCGANCritic
from chroma.models.patchgan import PatchDiscriminator
from chroma.models.pixel_unet import PixelUNetGenerator
from chroma.models.unet import UNetGenerator
from chroma.training import ConditionalGAN, Run, Settings, learning_rate, smoke_settings, unknown_scale

PAPER = "agosti"
TITLE = "Image Recoloring with conditional GANs (Agosti, Bee & Saccaro)"
COLUMNS = ("fid", "ssim", "psnr", "lpips", "uiqi")
# Fig. 3 follows the perceptual metrics over the epochs; FID and LPIPS only in the final table (they need weights).
EPOCH_METRICS = ("l1_ab", "psnr", "ssim", "uiqi")
DIVERSE_SAMPLES = 4  # Fig. 4

FINAL_LEARNING_RATE_FRACTION = 0.1  # "progressively lowered by a factor of 10" (V-C)
CRITIC_STEPS = 5  # V-C, after Arjovsky et al. and Gulrajani et al.


def settings(scale, coco=None, data=None):
    """The data and compute of `scale`: "paper" (sections IV and V-C) or "smoke" (a CPU, minutes)."""
    del data  # COCO only
    if scale == "paper":
        if not coco:
            raise ValueError("SCALE=paper needs COCO=/path/to/coco (train2017/, val2017/, annotations/)")
        return Settings(train_data=f"coco:{coco}?split=train2017&take=23000",
                        eval_data=f"coco:{coco}?split=val2017", image_size=256, batch_size=16, epochs=100,
                        drop_gray=True)
    if scale == "smoke":
        return smoke_settings(epochs=12, drop_gray=True)
    raise unknown_scale(scale)


def unet_arguments(settings):
    """Section V-A: 8 blocks down to 1x1 at 256 (smoke: 16 base filters, down to 1x1 at 64)."""
    return dict(base_filters=16 if settings.smoke else 64, depth=int(math.log2(settings.image_size)))


def patch_discriminator(settings):
    return PatchDiscriminator(base_filters=16 if settings.smoke else 64)


def gan(settings):
    return ConditionalGAN(UNetGenerator(**unet_arguments(settings)), patch_discriminator(settings), seed=settings.seed)


def pixel_gan(settings):
    return ConditionalGAN(PixelUNetGenerator(**unet_arguments(settings)), patch_discriminator(settings),
                          seed=settings.seed)


def wgan(settings):
    critic = DCGANCritic(image_size=settings.image_size, base_filters=16 if settings.smoke else 64)
    return ConditionalGAN(UNetGenerator(**unet_arguments(settings)), critic, seed=settings.seed, d_steps=CRITIC_STEPS)


def recipe(adversarial_loss, d_steps=1):
    """Section V-C: Adam 2e-4 (beta1 0.5), cosine-annealed to a tenth over the whole run, lambda = 100.

    d_steps: the model's critic updates per train step; the critic's schedule
    spans its own updates, d_steps per step, so it too ends at the last step.
    """

    def compile_args(total_steps):
        def adam(updates):
            schedule = learning_rate(2e-4, "cosine", updates, final_fraction=FINAL_LEARNING_RATE_FRACTION)
            return keras.optimizers.Adam(schedule, beta_1=0.5)

        return dict(g_optimizer=adam(total_steps), d_optimizer=adam(d_steps * total_steps),
                    adversarial_loss=adversarial_loss, reconstruction_weight=100.0,
                    discriminator_loss_weight=0.5)  # pix2pix's lambda and halved D loss: chosen, not stated

    return compile_args


RUNS = [
    Run("gan", "GAN (U-Net + PatchGAN)", gan, recipe("bce"),
        paper={"fid": 2.52, "ssim": 0.86, "psnr": 24.44, "lpips": 0.14, "uiqi": 0.37}, metrics=EPOCH_METRICS),
    Run("pixel_gan", "PixelGAN (PixelTCL decoder)", pixel_gan, recipe("bce"),
        paper={"fid": 2.28, "ssim": 0.86, "psnr": 24.44, "lpips": 0.14, "uiqi": 0.37}, metrics=EPOCH_METRICS),
    Run("wgan", "WGAN (WGAN-GP, DCGAN critic)", wgan, recipe("wgan-gp", d_steps=CRITIC_STEPS),
        paper={"fid": 3.21, "ssim": 0.86, "psnr": 23.83, "lpips": 0.16, "uiqi": 0.35}, metrics=EPOCH_METRICS),
]
