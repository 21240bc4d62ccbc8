"""Paper agosti's recipe: its three cGANs at the paper's sizes, the training recipe, figures 3 and 4."""

import numpy as np
import pytest
import tensorflow as tf

from chroma import reports
from chroma.data import make_dataset, samples
from chroma.export import dropout_layers
from chroma.models.unet import UNetGenerator
from chroma.recipes import load_experiment, select_runs, settings_at
from chroma.reproduce import diverse_columns, scoring_mode
from chroma.training import RegressionColorizer, Run
from helpers import ab_of, trainable_count


@pytest.fixture(scope="module")
def agosti():
    return load_experiment("agosti")


@pytest.mark.slow("builds three 54-69M-weight cGANs at 256 px; fast tier: test_experiments builds every agosti run "
                  "at smoke size (the same builders) and test_recipe_follows_section_v_c checks the recipe")
def test_the_three_cgans_build_at_the_papers_sizes(agosti):
    settings = settings_at(agosti, "paper", coco="/data/coco")
    assert (settings.image_size, settings.batch_size, settings.epochs, settings.drop_gray) == (256, 16, 100, True)
    gan, pixel_gan, wgan = (run.build(settings) for run in select_runs(agosti))
    assert trainable_count(gan.generator) == 54_410_370  # "about 54M"
    assert trainable_count(gan.discriminator) == 2_765_633  # 70x70 PatchGAN, 30x30 output
    assert gan.discriminator(tf.zeros((1, 256, 256, 3))).shape == (1, 30, 30, 1)
    assert 69e6 < trainable_count(pixel_gan.generator) < 70e6  # "69 million"
    assert trainable_count(wgan.generator) == trainable_count(gan.generator)
    assert not any("batch_normalization" in weight.path for weight in wgan.discriminator.weights)
    assert wgan.discriminator(tf.zeros((2, 256, 256, 3))).shape == (2, 1)  # one score per image
    assert (gan.d_steps, pixel_gan.d_steps, wgan.d_steps) == (1, 1, 5)  # V-C: five critic steps per G step
    # V-A: "a dropout of 50% is applied starting from the fourth block" of the decoder's 7, innermost first.
    for generator in (gan.generator, pixel_gan.generator, wgan.generator):
        dropping = [block.name for block in generator.decoder.layers if dropout_layers(block)]
        assert dropping == ["up4", "up3", "up2", "up1"]  # blocks 4-7 (up<level>, level 7 innermost)
    assert not settings.flip  # no augmentation is named (IV)


def test_recipe_follows_section_v_c(agosti):
    runs = {run.key: run for run in select_runs(agosti)}
    total_steps = 1000  # train steps: G updates; the WGAN's critic makes 5 per step
    for key in runs:
        recipe = runs[key].compile_args(total_steps)
        d_steps = 5 if key == "wgan" else 1
        for optimizer, updates in ((recipe["g_optimizer"], total_steps), (recipe["d_optimizer"], d_steps * total_steps)):
            schedule = optimizer._learning_rate  # the schedule; .learning_rate is only its current value
            assert float(schedule(0)) == pytest.approx(2e-4) and float(optimizer.beta_1) == 0.5
            assert float(optimizer.beta_2) == 0.9  # the authors' code (the text names only beta1)
            # Cosine annealing down by a factor of 10 over the optimizer's own updates in the whole run.
            assert float(schedule(updates)) == pytest.approx(2e-5)
            assert float(schedule(updates // 2)) == pytest.approx(1.1e-4)
        assert recipe["adversarial_loss"] == ("wgan-gp" if key == "wgan" else "bce")
        # pix2pix's halved D loss for the BCE GANs; WGAN-GP's critic loss (and its penalty) whole.
        assert recipe["discriminator_loss_weight"] == (1.0 if key == "wgan" else 0.5)
        assert "uiqi_torchmetrics" in runs[key].metrics  # figure 3 follows it per epoch
        # Table 1's figures sit beside the columns computed as the authors computed them.
        assert set(runs[key].paper) == {"fid_lab_as_rgb", "ssim_torchmetrics", "psnr_torchmetrics", "lpips_lab_as_rgb",
                                        "uiqi_torchmetrics"}
    assert set(runs[key].paper) < set(agosti.COLUMNS) and {"ssim", "psnr", "uiqi"} < set(agosti.COLUMNS)


def test_figure_4_draws_different_colorizations_with_dropout_on():
    generator = UNetGenerator(base_filters=4, depth=4)
    for weight in generator.trainable_weights:  # N(0, 0.02) leaves a tiny net's output nearly gray
        weight.assign(weight * 5.0)
    dataset = make_dataset(samples(), 16, batch_size=2)
    with scoring_mode(Run("unet", "U-Net", None, None, paper={}), RegressionColorizer(generator),
                      dropout=True) as colorize:
        columns = diverse_columns(colorize, dataset, count=3)
    assert [title for title, _ in columns] == ["grayscale", "original", "sample 1", "sample 2", "sample 3"]
    first, second = np.asarray(columns[2][1]), np.asarray(columns[3][1])
    assert first.shape == (4, 16, 16, 3) and np.abs(first - second).max() > 1e-3
    # Dropout is back off afterwards: inference is deterministic again.
    scaled_l = next(iter(dataset))["L"]
    np.testing.assert_array_equal(ab_of(generator, scaled_l), ab_of(generator, scaled_l))


def test_metric_curves_plot_training_and_validation(tmp_path):
    history = {"psnr": [20.0, 21.0], "val_psnr": [19.0, 20.5], "uiqi": [0.3, 0.35], "d_loss": [0.7, 0.6]}
    metrics = {"psnr": "PSNR (dB)", "uiqi": "UIQI", "fid": "FID"}
    assert reports.metric_panels(history, metrics) == [
        ("PSNR (dB)", [("train", [20.0, 21.0]), ("validation", [19.0, 20.5])]),
        ("UIQI", [("train", [0.3, 0.35])]),
    ]  # FID is not in the history: no panel
    assert reports.plot_metric_curves(history, metrics, tmp_path / "metrics.png", "tiny").stat().st_size > 0
    empty = reports.plot_metric_curves({}, {"psnr": "PSNR (dB)"}, tmp_path / "empty.png", "tiny")
    assert empty.stat().st_size > 0
