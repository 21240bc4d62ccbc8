"""Paper villarenteria's recipe: ChromaGAN's loss weights, Models A to C as switches, the VGG weights flag."""

import pytest

from chroma.reproduce import load_experiment, select_runs


@pytest.fixture(scope="module")
def villarenteria():
    return load_experiment("villarenteria")


def test_runs_follow_the_release_and_the_papers_changes(villarenteria):
    runs = {run.key: run for run in select_runs(villarenteria)}
    assert list(runs) == ["reference", "model_a", "model_a2", "model_b", "model_c1", "model_c2"]
    for key, run in runs.items():
        recipe = run.compile_args(total_steps=1)
        assert (recipe["reconstruction_loss"], recipe["reconstruction_weight"]) == ("mse", 1.0)
        assert (recipe["adversarial_weight"], recipe["gradient_penalty_weight"]) == (0.1, 10.0)
        assert recipe["adversarial_loss"] == ("bce" if key == "model_a2" else "wgan-gp")
        # The class loss needs the oracle's targets; Models B and C drop both (4.2.3-4.2.4).
        with_classes = key in ("reference", "model_a", "model_a2")
        expected = {"class": with_classes, "caption": key.startswith("model_c")}  # the caption replaces the class loss
        assert [term.name for term in recipe["auxiliary_losses"]] == [name for name, used in expected.items() if used]
        assert all(term.weight == 0.003 for term in recipe["auxiliary_losses"])
        assert recipe["discriminator_loss_weight"] == 1.0  # the release's critic loss, not halved
        assert (run.batch_targets is not None) == with_classes
        for optimizer in (recipe["g_optimizer"], recipe["d_optimizer"]):
            assert float(optimizer.learning_rate) == pytest.approx(2e-5)
            assert float(optimizer.beta_1) == (0.5 if key == "reference" else 0.9)  # release vs section 7.1
    paper = villarenteria.settings("paper", coco="/data/coco")
    assert (paper.image_size, paper.batch_size) == (224, 256)  # global batch over the TPU's 8 cores
    assert runs["reference"].settings_for(paper).batch_size == 10
    assert runs["model_b"].settings_for(paper).epochs == 10


# Each run's generator at smoke size: tests/test_experiments.py, test_villarenteria_runs_build_their_generators,
# which shares the models every recipe's batch-norm check builds.


def test_vgg16_asset(villarenteria):
    paper = villarenteria.settings("paper", coco="/data/coco")
    with pytest.raises(ValueError, match="--asset vgg16=imagenet"):
        villarenteria.vgg_weights(paper)
    with pytest.warns(UserWarning, match="random weights"):
        assert villarenteria.vgg_weights(paper._replace(assets={"vgg16": "none"})) is None
    assert villarenteria.vgg_weights(paper._replace(assets={"vgg16": "imagenet"})) == "imagenet"
