"""Paper agosti: "Image Recoloring with conditional GANs" (Agosti, Bee & Saccaro, Padova), Table 1 and Figs. 3-4.

Three cGANs on one U-Net: GAN (pix2pix's 8-block U-Net + 70x70 PatchGAN, section V),
PixelGAN (the decoder's transposed convolutions replaced by pixel transposed
convolutional layers, V-A, Fig. 2) and WGAN (WGAN-GP with a DCGAN critic: the
PatchGAN's blocks, no batch norm, a dense score, five critic steps per G step, each on a
batch of its own as in WGAN-GP's Algorithm 1; V-C, VI).

    make reproduce-agosti                                             # SCALE=smoke: bundled photos, CPU, minutes
    make reproduce-agosti SCALE=paper COCO=/data/coco ASSETS="fid=imagenet lpips=/weights/lpips_vgg.npz"

Paper scale (sections IV-V): 20% of COCO 2017's training set (23,000 random images)
with the already-gray ones dropped (3%), 256x256, batch 16, 100 epochs, Adam 2e-4
(beta1 0.5; beta2 0.9 as the authors' code, the text names none) for both networks
with the learning rate cosine-annealed to a tenth;
scored on COCO's test split (Table 1; test2017's 40,670 images are public, unannotated),
or on val2017 where a COCO copy lacks it, as the table's heading says.
One P100 took ~25 min per epoch for the GAN and ~30 for PixelGAN. Dropout (50%) in
the decoder "starting from the fourth block" (V-A); no flips or other augmentation
(none is named); every model scored "in training mode also during evaluation" (VI).
Not stated, so chosen here: pix2pix's lambda = 100 and D loss halved for the BCE
GANs (the WGAN critic's loss is not halved, as WGAN-GP's Algorithm 1); WGAN-GP's
penalty weight 10 (Gulrajani et al.).
Table 1's SSIM, PSNR and UIQI are torchmetrics' ([15]-[18], data_range=1.0) on
the authors' metric inputs, which are not RGB but scaled Lab mapped to [0, 1]
(L/100, ab/220 + 1/2; their code, NNDL-recoloring-GAN's train.py): the
*_torchmetrics columns, where PSNR pools the squared errors of all images and UIQI
(11x11 Gaussian windows) leaves out images with a 0/0 window. L is copied, so a
gray output already scores UIQI 1/3. The authors' code fed FID and LPIPS the
same Lab tensors as if RGB, with LPIPS on VGG (LPIPS_NETWORK): the *_lab_as_rgb
columns, which carry Table 1's FID and LPIPS. ssim, psnr, uiqi, fid and lpips
(also on VGG) are chroma's RGB ones, with no paper figure, kept for comparison
with the other papers. FID needs Inception-v3's ImageNet weights (the asset fid=imagenet reads
the Keras cache file), LPIPS the converted weights of LPIPS-VGG (lpips_vgg.npz);
without them those columns stay empty. chroma's FID uses Keras's Inception-v3,
not the 2015 graph torchmetrics runs, so only its ordering compares with the
paper's.

Expected (Table 1; FID / SSIM / PSNR / LPIPS / UIQI): GAN 2.52 / 0.86 / 24.44 /
0.14 / 0.37; PixelGAN 2.28 / 0.86 / 24.44 / 0.14 / 0.37; WGAN 3.21 / 0.86 /
23.83 / 0.16 / 0.35. Figure 4's diverse colorizations: dropout kept on at
inference (`chroma colorize --samples N`; the harness draws DIVERSE_SAMPLES).
"""

import math

import keras

from chroma.data import coco_test_split, required_coco
from chroma.models.dcgan_critic import DCGANCritic
from chroma.models.patchgan import PatchDiscriminator
from chroma.models.pixel_unet import PixelUNetGenerator
from chroma.models.unet import UNetGenerator
from chroma.training import ConditionalGAN, PaperData, Run, Settings, learning_rate, smoke_settings

PAPER = "agosti"
TITLE = "Image Recoloring with conditional GANs (Agosti, Bee & Saccaro)"
# Table 1's metrics as the authors computed them (on Lab mapped to [0, 1], see the docstring), each FID and LPIPS
# beside chroma's RGB one, then chroma's RGB SSIM, PSNR and UIQI for comparison with the other papers.
COLUMNS = ("fid", "fid_lab_as_rgb", "ssim_torchmetrics", "psnr_torchmetrics", "lpips", "lpips_lab_as_rgb",
           "uiqi_torchmetrics", "ssim", "psnr", "uiqi")
# The authors scored LPIPS with VGG, not the AlexNet Zhang et al. advise: NNDL-recoloring-GAN's model_training.ipynb
# builds LearnedPerceptualImagePatchSimilarity(net_type='vgg').
LPIPS_NETWORK = "vgg"
# Fig. 3 follows the perceptual metrics over the epochs; FID and LPIPS only in the final table (they need weights).
_EPOCH_METRICS = ("l1_ab", "psnr_torchmetrics", "ssim_torchmetrics", "uiqi_torchmetrics")
DIVERSE_SAMPLES = 4  # Fig. 4

_FINAL_LEARNING_RATE_FRACTION = 0.1  # "progressively lowered by a factor of 10" (V-C)
_CRITIC_STEPS = 5  # V-C, after Arjovsky et al. and Gulrajani et al.


SCALES = {
    "paper": Settings(image_size=256, batch_size=16, epochs=100, drop_gray=True, flip=False),  # IV, V-C
    "smoke": smoke_settings(epochs=12, drop_gray=True, flip=False),
}


def paper_data(coco, data):
    """Sections IV and V-C: COCO only."""
    del data
    coco = required_coco(coco)
    return PaperData(train_data=f"coco:{coco}?split=train2017&take=23000",
                     eval_data=f"coco:{coco}?split={coco_test_split(coco)}")


def unet_arguments(settings):
    """Section V-A: 8 blocks down to 1x1 at 256 (smoke: 16 base filters, down to 1x1 at 64), "a dropout of 50%
    is applied starting from the fourth block" of the decoder (pix2pix drops in its first three)."""
    depth = int(math.log2(settings.image_size))
    return dict(base_filters=settings.base_filters, depth=depth, dropout_blocks=range(4, depth))


def patch_discriminator(settings):
    return PatchDiscriminator(base_filters=settings.base_filters)


def gan(settings):
    return ConditionalGAN(UNetGenerator(**unet_arguments(settings)), patch_discriminator(settings), seed=settings.seed)


def pixel_gan(settings):
    return ConditionalGAN(PixelUNetGenerator(**unet_arguments(settings)), patch_discriminator(settings),
                          seed=settings.seed)


def wgan(settings):
    critic = DCGANCritic(image_size=settings.image_size, base_filters=settings.base_filters)
    return ConditionalGAN(UNetGenerator(**unet_arguments(settings)), critic, seed=settings.seed, d_steps=_CRITIC_STEPS)


def recipe(adversarial_loss, d_steps=1):
    """Section V-C: Adam 2e-4 (beta1 0.5), cosine-annealed to a tenth over the whole run, lambda = 100.

    d_steps: the model's critic updates per train step; the critic's schedule
    spans its own updates, d_steps per step, so it too ends at the last step.
    """

    def compile_args(total_steps):
        def adam(updates):
            schedule = learning_rate(2e-4, "cosine", updates, final_fraction=_FINAL_LEARNING_RATE_FRACTION)
            return keras.optimizers.Adam(schedule, beta_1=0.5, beta_2=0.9)  # beta_2: the authors' code

        # pix2pix's lambda and halved D loss: chosen, not stated. WGAN-GP's critic loss is not halved (Gulrajani
        # et al.'s Algorithm 1): with the gradient penalty inside it, halving it would halve the penalty too.
        return dict(g_optimizer=adam(total_steps), d_optimizer=adam(d_steps * total_steps),
                    adversarial_loss=adversarial_loss, reconstruction_weight=100.0,
                    discriminator_loss_weight=1.0 if adversarial_loss == "wgan-gp" else 0.5)

    return compile_args


# Figure 5: colorizations of training images, beside figure 6's of test images (samples.png).
TRAINING_SAMPLES = True

# Where Table 1's FID and LPIPS sit (see the docstring).
_TABLE_1_NOTE = "Table 1's FID and LPIPS: the Lab-read-as-RGB columns (LPIPS-VGG); FID and LPIPS are chroma's, on RGB"

# VI: "the model is kept in training mode also during evaluation" (after pix2pix): dropout on, and batch norm
# normalising with each test batch's statistics.
RUNS = [
    Run("gan", "GAN (U-Net + PatchGAN)", gan, recipe("bce"),
        paper={"fid_lab_as_rgb": 2.52, "ssim_torchmetrics": 0.86, "psnr_torchmetrics": 24.44, "lpips_lab_as_rgb": 0.14,
               "uiqi_torchmetrics": 0.37}, metrics=_EPOCH_METRICS,
        scored_in="training", note=_TABLE_1_NOTE),
    Run("pixel_gan", "PixelGAN (PixelTCL decoder)", pixel_gan, recipe("bce"),
        paper={"fid_lab_as_rgb": 2.28, "ssim_torchmetrics": 0.86, "psnr_torchmetrics": 24.44, "lpips_lab_as_rgb": 0.14,
               "uiqi_torchmetrics": 0.37}, metrics=_EPOCH_METRICS,
        scored_in="training", note=_TABLE_1_NOTE),
    Run("wgan", "WGAN (WGAN-GP, DCGAN critic)", wgan, recipe("wgan-gp", d_steps=_CRITIC_STEPS),
        paper={"fid_lab_as_rgb": 3.21, "ssim_torchmetrics": 0.86, "psnr_torchmetrics": 23.83, "lpips_lab_as_rgb": 0.16,
               "uiqi_torchmetrics": 0.35}, metrics=_EPOCH_METRICS,
        scored_in="training", note=_TABLE_1_NOTE),
]
