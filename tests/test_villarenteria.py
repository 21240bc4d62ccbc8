"""Paper villarenteria's recipe: ChromaGAN's loss weights, Models A to C as switches, the VGG weights flag."""

import pytest
import tensorflow as tf

from chroma.losses import mse
from chroma.recipes import load_experiment, select_runs, settings_at
from helpers import photo_lab

# The public ChromaGAN release's, on its ab / 255.
RELEASE_MSE_WEIGHT, RELEASE_CLASS_WEIGHT, RELEASE_ADVERSARIAL_WEIGHT = 1.0, 0.003, 0.1


@pytest.fixture(scope="module")
def villarenteria():
    return load_experiment("villarenteria")


def test_runs_follow_the_release_and_the_papers_changes(villarenteria):
    runs = {run.key: run for run in select_runs(villarenteria)}
    assert list(runs) == ["reference", "reference_no_classes", "model_a_1_epoch", "model_a", "model_a2",
                          "model_b", "model_c1", "model_c2"]
    for key, run in runs.items():
        recipe = run.compile_args(total_steps=1)
        assert (recipe["reconstruction_loss"], recipe["reconstruction_weight"]) == ("mse", 1.0)
        assert recipe["gradient_penalty_weight"] == 10.0
        # The release's 0.1 on its ab / 255: 255 / 110 times larger on chroma's ab / 110 for the Wasserstein term,
        # its square for A.2's scale-free BCE (see below).
        scale_factor = (255 / 110) ** 2 if key == "model_a2" else 255 / 110
        assert recipe["adversarial_weight"] == pytest.approx(0.1 * scale_factor)
        assert recipe["adversarial_loss"] == ("bce" if key == "model_a2" else "wgan-gp")
        # The class loss needs the oracle's targets; Models B and C drop both (4.2.3-4.2.4).
        with_classes = key in ("reference", "model_a_1_epoch", "model_a", "model_a2")
        expected = {"class": with_classes, "caption": key.startswith("model_c")}  # the caption replaces the class loss
        assert [term.name for term in recipe["auxiliary_losses"]] == [name for name, used in expected.items() if used]
        assert all(term.weight == pytest.approx(0.003 * (255 / 110) ** 2) for term in recipe["auxiliary_losses"])
        assert recipe["discriminator_loss_weight"] == 1.0  # the release's critic loss, not halved
        assert (run.batch_targets is not None) == with_classes
        for optimizer in (recipe["g_optimizer"], recipe["d_optimizer"]):
            assert float(optimizer.learning_rate) == pytest.approx(2e-5)
            assert float(optimizer.beta_1) == (0.5 if key.startswith("reference") else 0.9)  # release vs 7.1
    paper = settings_at(villarenteria, "paper", coco="/data/coco")
    assert (paper.image_size, paper.batch_size) == (224, 256)  # global batch over the TPU's 8 cores
    assert runs["reference"].settings_for(paper).batch_size == 10
    assert runs["model_b"].settings_for(paper).epochs == 10
    # Figure 3's ablation: the release without its class head, trained as the reference.
    without = runs["reference_no_classes"]
    for run in (without, runs["reference"]):
        assert (run.settings_for(paper).batch_size, run.settings_for(paper).epochs) == (10, 10)
    generator = without.build(villarenteria.SCALES["smoke"]).generator
    assert not hasattr(generator, "classifier") and without.batch_targets is None
    assert not paper.flip and not villarenteria.SCALES["smoke"].flip  # the release has no flips


def test_loss_weights_keep_the_releases_balance_on_chromas_ab_scale(villarenteria):
    """Each term against the MSE as the release weighs them: its ab is a*b* / 255 (OpenCV's 8 bits), chroma's
    a*b* / 110. The KL and A.2's BCE do not change with the ab scale; a Wasserstein critic under a unit gradient-norm
    penalty does, as this linear one of unit gradient."""
    true_ab = photo_lab(32)[1] * 110.0  # a*b* of two photos
    fake_ab = tf.zeros_like(true_ab)  # a gray colorization

    def wasserstein(scale):  # the critic's mean score of real minus fake, its gradient of norm 1 in every pixel
        return float(tf.reduce_mean(tf.reduce_sum((true_ab - fake_ab) / scale, axis=-1) / 2**0.5))

    scale_free = 0.7  # any value of a KL or a BCE: the same on both scales
    runs = {run.key: run.compile_args(total_steps=1) for run in select_runs(villarenteria)}
    for run, term, release_weight, release_value, ours_value in (
            ("reference", "class", RELEASE_CLASS_WEIGHT, scale_free, scale_free),
            ("reference", "adversarial", RELEASE_ADVERSARIAL_WEIGHT, wasserstein(255.0), wasserstein(110.0)),
            ("model_a", "adversarial", RELEASE_ADVERSARIAL_WEIGHT, wasserstein(255.0), wasserstein(110.0)),
            ("model_a2", "adversarial", RELEASE_ADVERSARIAL_WEIGHT, scale_free, scale_free)):
        recipe = runs[run]
        weight = recipe["auxiliary_losses"][0].weight if term == "class" else recipe["adversarial_weight"]
        release = RELEASE_MSE_WEIGHT * float(mse(true_ab / 255.0, fake_ab / 255.0)) / (release_weight * release_value)
        ours = recipe["reconstruction_weight"] * float(mse(true_ab / 110.0, fake_ab / 110.0)) / (weight * ours_value)
        assert ours == pytest.approx(release, rel=1e-5), (run, term)


# Each run's generator at smoke size: tests/test_experiments.py, test_villarenteria_runs_build_their_generators,
# which shares the models every recipe's batch-norm check builds.


def test_vgg16_asset(villarenteria):
    paper = settings_at(villarenteria, "paper", coco="/data/coco")
    with pytest.raises(ValueError, match="--asset vgg16=imagenet"):
        villarenteria.vgg_weights(paper)
    with pytest.warns(UserWarning, match="random weights"):
        assert villarenteria.vgg_weights(paper._replace(assets={"vgg16": "none"})) is None
    assert villarenteria.vgg_weights(paper._replace(assets={"vgg16": "imagenet"})) == "imagenet"
