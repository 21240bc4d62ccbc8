"""Paper bruvik: "Image Colorization using GAN and Inception-ResNet-v2" (Bruvik & Penfold, Stanford), Tables 2 and 3.

The Inception-GAN: Deep Koalarization's generator (an encoder, Inception-ResNet-v2's
class vector fused at H/8, a nearest-neighbour decoder; table 4) with an extra
24-kernel first layer reading a 21-class segmentation prior (table 1), against a
PatchGAN; the generator pretrained by L1 (5.5), then one D update per five G updates,
each G update on a batch of its own (5.6). Table 2's five rows are recipe switches of
one builder: without pretraining, without the segmentation layer, without Inception,
the Deep Koalarization baseline (the generator without the prior, fusing the
Inception classifier's softmax as DK does where the Inception-GAN fuses its logits,
trained by MSE alone, 5.1) and the full model.
pix2pix (5.2, the other baseline the paper cites, no figures in its tables) and the
full model at batch 16 (table 3) complete the runs.

    make reproduce-bruvik                                            # SCALE=smoke: bundled photos, CPU, ~10 min
    make reproduce-bruvik SCALE=paper COCO=/data/coco ASSETS="inception=imagenet deeplabv3=/weights/deeplabv3"

Paper scale: COCO 2017, 8,000 random training and 2,000 validation images (5.6),
256x256, batch 64, 15 epochs, Adam 2e-4 (0.5, 0.999) for G and D, no dropout;
pretraining 20 epochs at 1e-4 (5.5). Its two frozen networks are ASSETS:
"inception" and "deeplabv3". The
embedding of every training image is computed once and cached (Settings.
cache_embeddings). Not stated, so chosen here: pix2pix's lambda = 100 on the L1
term and the halved D loss (Shariatnia's implementation, the paper's ref. [10], which
Table 3's G losses of 9-17 fit); Deep Koalarization trains for the same 15 epochs
at its own Adam 1e-3. The paper scores 100 random test images; chroma scores the
2,000 validation images. It trained on one GPU; no runtime is given.

Expected (Table 2; PSNR dB / channel-wise SSIM, chroma's "ssim": the mean SSIM of
R, G and B): no pretraining 17.65 / 0.8922; no segmentation layer 19.90 / 0.9236;
no Inception 19.36 / 0.9383; Deep Koalarization 19.06 / 0.9001; full model
21.47 / 0.9503. Table 3 (D / G loss, first -> last epoch): batch 16 0.894 / 17.16 ->
0.003 / 15.16; batch 64 0.983 / 13.15 -> 0.588 / 9.44.
"""

import math

import keras

from chroma.data import required_coco
from chroma.models.inception_embedding import InceptionEmbedding
from chroma.models.koalarization import KoalarizationGenerator
from chroma.models.patchgan import PatchDiscriminator
from chroma.models.segmentation_prior import SegmentationPrior
from chroma.models.unet import UNetGenerator
from chroma.training import (
    ConditionalGAN,
    Pretraining,
    RegressionColorizer,
    PaperData,
    Run,
    Settings,
    smoke_settings,
)

PAPER = "bruvik"
TITLE = "Image Colorization using GAN and Inception-ResNet-v2 (Bruvik & Penfold)"
ASSETS = {
    "inception": "Inception-ResNet-v2 (5.3.3): imagenet (the Keras cache file, 1000 classes), a local .h5, a TF-Hub "
                 "SavedModel directory (1001 classes, the paper's embedding), or none / random (random weights)",
    "deeplabv3": "the segmentation prior's DeepLabV3 (4.3): a SavedModel directory (see "
                 "chroma/models/segmentation_prior.py), or random (a seeded stand-in with no semantics)",
}
COLUMNS = ("psnr", "ssim", "l1_ab", "colorfulness")

_EPOCHS = 15
_PRETRAINING_EPOCHS = 20
_TABLE_3_SMALL_BATCH_DIVISOR = 4  # batch 16 beside the recipe's 64
_G_STEPS = 5  # 5.6: "for every 5 gradient descent steps that G takes, D takes one"


SCALES = {
    "paper": Settings(image_size=256, batch_size=64, epochs=_EPOCHS, cache_embeddings=True),  # 4 and 5.6
    "smoke": smoke_settings(epochs=8, cache_embeddings=True),
}


def paper_data(coco, data):
    """Sections 4 and 5.6: COCO only."""
    del data
    coco = required_coco(coco)
    return PaperData(train_data=f"coco:{coco}?split=train2017&take=8000",
                     eval_data=f"coco:{coco}?split=val2017&take=2000")


def inception(settings, probabilities=False):
    """Section 5.3.3's frozen embedding from the asset "inception"; random weights only when allowed.

    The Inception-GAN's embedding is "the output from the final layer
    preceding the softmax" (5.3.3): the logits. Deep Koalarization's code
    (the paper's [4]) fuses the classifier's softmax: probabilities=True.
    """
    weights = settings.assets.get("inception")
    if weights is None and not settings.smoke:
        raise ValueError("SCALE=paper needs --asset inception=imagenet|/path/to/inception_resnet_v2.h5|"
                         "/path/to/tfhub_savedmodel (or none for a random Inception network)")
    if weights is None or weights.lower() in ("none", "random"):
        return InceptionEmbedding(weights=None, probabilities=probabilities)
    if weights == "imagenet" or weights.endswith(".h5"):
        return InceptionEmbedding(weights=weights, probabilities=probabilities)
    return InceptionEmbedding(source=weights, probabilities=probabilities)


def segmenter(settings):
    """Section 4.3's DeepLabV3 prior from the asset "deeplabv3"; the random stand-in at smoke scale."""
    source = settings.assets.get("deeplabv3")
    if source is None and not settings.smoke:
        raise ValueError("SCALE=paper needs --asset deeplabv3=/path/to/deeplabv3_savedmodel (or random for the "
                         "offline stand-in, which carries no semantics)")
    return SegmentationPrior(source or "random")


def generator_builder(with_inception=True, with_segmentation=True, inception_probabilities=False):
    def build(settings):
        return KoalarizationGenerator(inception(settings, inception_probabilities) if with_inception else None,
                                      segmenter(settings) if with_segmentation else None)

    return build


def discriminator(settings):
    return PatchDiscriminator(base_filters=settings.base_filters)


def inception_gan(with_inception=True, with_segmentation=True):
    build_generator = generator_builder(with_inception, with_segmentation)
    return lambda settings: ConditionalGAN(build_generator(settings), discriminator(settings), seed=settings.seed,
                                           g_steps=_G_STEPS)


def regression(build_generator):
    return lambda settings: RegressionColorizer(build_generator(settings))


def pix2pix(settings):
    # pix2pix's own generator (5.2): the U-Net with dropout, down to 1x1.
    generator = UNetGenerator(base_filters=settings.base_filters, depth=int(math.log2(settings.image_size)))
    return ConditionalGAN(generator, discriminator(settings), seed=settings.seed)


def adam(learning_rate, loss):
    def recipe(total_steps):
        del total_steps  # constant learning rate
        return dict(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)

    return recipe


def gan_recipe(total_steps):
    """Section 5.6: Adam 2e-4 (0.5, 0.999) for both networks (the update ratio is the model's, _G_STEPS)."""
    del total_steps  # constant learning rates
    return dict(
        g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.999),
        d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.999),
        adversarial_loss="bce", reconstruction_loss="l1",
        reconstruction_weight=100.0, discriminator_loss_weight=0.5,  # chosen (Shariatnia's pix2pix): see above
    )


def pretraining(with_inception=True, with_segmentation=True):
    """Section 5.5: the generator alone, L1, Adam 1e-4, 20 epochs (smoke: half the run's epochs)."""

    def phase_settings(settings):
        return settings._replace(epochs=max(1, settings.epochs // 2) if settings.smoke else _PRETRAINING_EPOCHS)

    return Pretraining(phase_settings, build=regression(generator_builder(with_inception, with_segmentation)),
                       compile_args=adam(1e-4, "l1"))


def smaller_batch(settings):
    return settings._replace(batch_size=max(1, settings.batch_size // _TABLE_3_SMALL_BATCH_DIVISOR))


# Table 2's first column, "Optimal result for colorization (in literature)": SSIM "typical= 0.94 optimal=1",
# PSNR "22-25".
REFERENCE_ROWS = [{"model": "optimal result for colorization (literature)", "paper": {"ssim": 0.94},
                   "note": "table 2: SSIM typically 0.94 (optimally 1), PSNR 22-25 dB"}]

# Figure 8: "(1) Epoch 14 (2) Epoch 15. (3) Ground Truth", the run's last two epochs.
_OURS = Run("ours", "Inception-GAN (ours), batch 64", inception_gan(), gan_recipe,
            paper={"psnr": 21.4709, "ssim": 0.95026}, pretrain=pretraining(), note="smoke scale: batch 2",
            sample_epochs=lambda epochs: (epochs - 1, epochs))

RUNS = [
    Run("no_pretraining", "GAN without pretraining", _OURS.build, gan_recipe, paper={"psnr": 17.6496, "ssim": 0.89217}),
    Run("no_segmentation", "GAN without the segmentation layer", inception_gan(with_segmentation=False),
        gan_recipe, paper={"psnr": 19.9012, "ssim": 0.92358}, pretrain=pretraining(with_segmentation=False)),
    Run("no_inception", "GAN without Inception", inception_gan(with_inception=False), gan_recipe,
        paper={"psnr": 19.3556, "ssim": 0.93829}, pretrain=pretraining(with_inception=False)),
    Run("koalarization", "Deep Koalarization (Baldassarre et al.)",
        regression(generator_builder(with_segmentation=False, inception_probabilities=True)), adam(1e-3, "mse"),
        paper={"psnr": 19.0556, "ssim": 0.90014}),
    _OURS,
    _OURS._replace(key="ours_batch16", name="Inception-GAN, batch 16", paper={}, overrides=smaller_batch,
                   note="table 3's other batch: a quarter of the run's (smoke scale: 1)", sample_epochs=None),
    Run("pix2pix", "pix2pix (U-Net + PatchGAN)", pix2pix, gan_recipe, paper={},
        note="baseline cited in 5.2; no figures in table 2"),
]

# Figure 6: "Class imbalance in the COCO dataset", of the training images; "person" by far the most common.
CLASS_HISTOGRAM = True

LOSS_TABLE = ("Table 3: mean D and G losses over the first and the last epoch", {
    "ours_batch16": {"d_loss, first epoch": 0.8935475, "g_loss, first epoch": 17.1624052,
                     "d_loss, last epoch": 0.0031525, "g_loss, last epoch": 15.1624052},
    "ours": {"d_loss, first epoch": 0.9832335, "g_loss, first epoch": 13.1451198,
             "d_loss, last epoch": 0.5875823, "g_loss, last epoch": 9.4398253},
})
