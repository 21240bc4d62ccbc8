"""`chroma train` and `chroma evaluate`: a paper's run on photos of one's own, overridden, fine-tuned, scored."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from chroma import cli
from chroma.data import samples
from chroma.models.unet import UNetGenerator
from chroma.recipes import OVERRIDABLE, load_experiment, select_runs
from chroma.train_run import initial_model
from chroma.training.trainer import compile_values, with_compile_overrides
from helpers import baseline0_exported

# The tests that train share one set of folders (made once on their worker); the evaluate test reads baseline0's
# SavedModel, made once on the worker of the group "baseline0" (test_export.py, test_readme.py).
ON_THE_FOLDERS_WORKER = pytest.mark.xdist_group("train_command")

SMALL = ["--scale", "smoke", "--set", "epochs=3", "--set", "image_size=32", "--precision", "float32"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A folder of six photos to train on and one of two to score on, as a user's own photos would be."""
    root = tmp_path_factory.mktemp("own")
    bundled = samples().records
    for folder, records in (("train", bundled[:6]), ("held_out", bundled[6:])):
        (root / folder).mkdir()
        for record in records:
            Image.fromarray(record.load(max_side=128)).save(root / folder / f"{record.name}.jpg")
    return root


@pytest.fixture(scope="module")
def first_run(folders):
    out = folders / "run"
    assert cli.main(["train", "nampouri", "--run", "unet_cgan", "--data", str(folders / "train"),
                     "--eval-data", str(folders / "held_out"), "-o", str(out), *SMALL, "--set", "g_lr=0.001",
                     "--set", "reconstruction_weight=50"]) == 0
    return out


@pytest.mark.slow("a whole `chroma train`: trains a U-Net cGAN, exports it (tracing every serving signature) and "
                  "scores it; the fine-tuning and evaluate tests below check its parts on an untrained run")
@ON_THE_FOLDERS_WORKER
def test_train_runs_a_recipe_on_a_folder_with_overrides_and_exports_it(first_run, capsys):
    with open(first_run / "history.csv") as file:
        assert len(list(csv.DictReader(file))) == 3  # epochs=3
    recorded = json.loads((first_run / "run.json").read_text())
    assert recorded["overrides"] == {"epochs": 3, "image_size": 32, "g_lr": 0.001, "reconstruction_weight": 50.0}
    assert recorded["settings"]["image_size"] == 32 and recorded["settings"]["train_data"].endswith("train")
    assert (first_run / "best.weights.h5").is_file()
    assert json.loads((first_run / "saved_model" / "chroma.json").read_text())["image_size"] == 32
    results = (first_run / "results.md").read_text()
    assert "| baseline0 |" in results and "| U-Net cGAN" in results
    # The SavedModel's model card shows the scores results.json holds.
    scored = {row["model"]: row for row in json.loads((first_run / "results.json").read_text())["tables"][0]["rows"]}
    card = (first_run / "saved_model" / "README.md").read_text()
    psnr = scored["U-Net cGAN"]["ours"]["PSNR (dB)"]
    assert f"value: {json.dumps(psnr)}" in card and scored["U-Net cGAN"]["run"]["key"] == "unet_cgan"
    # The run folder is what `chroma export` takes: the scored generator at the run's size.
    assert cli.main(["export", "--model", str(first_run), "-o", str(first_run / "exported")]) == 0
    assert json.loads((first_run / "exported" / "chroma.json").read_text())["image_size"] == 32


def test_a_recipes_compile_values_are_overridden_where_the_engine_compiles_the_run():
    run, = select_runs(load_experiment("nampouri"), ["unet_cgan"])
    recipe = run.compile_args(1)
    assert compile_values(recipe) == {"g_lr": 2e-4, "d_lr": 2e-4, "adversarial_loss": "bce",
                                      "reconstruction_loss": "l1", "reconstruction_weight": 100.0,
                                      "discriminator_loss_weight": 0.5}
    changed = with_compile_overrides(recipe, {"g_lr": 1e-3, "reconstruction_weight": 50.0, "epochs": 2})
    assert float(changed["g_optimizer"].learning_rate) == pytest.approx(1e-3)
    assert float(changed["d_optimizer"].learning_rate) == pytest.approx(2e-4)
    assert changed["reconstruction_weight"] == 50.0 and "epochs" not in changed


@ON_THE_FOLDERS_WORKER
def test_unknown_and_ill_typed_overrides_are_refused_with_the_names(folders, capsys):
    names = ", ".join(OVERRIDABLE)
    for setting, message in (("learning_rate=1e-4", f"unknown setting 'learning_rate'; what --set can change here: "
                                                    f"{names}"),
                             ("epochs=many", "epochs is a int"), ("epochs=0", "must be positive"),
                             ("flip=maybe", "flip is a bool"), ("g_lr=fast", "g_lr is a float"),
                             ("epochs", "NAME=VALUE")):
        assert cli.main(["train", "nampouri", "--run", "unet_cgan", "--data", str(folders / "train"),
                         "-o", str(folders / "refused"), "--scale", "smoke", "--set", setting]) == 2
        error = capsys.readouterr().err
        assert message in error, (setting, error)
    assert not (folders / "refused").exists()  # refused before anything was written


@ON_THE_FOLDERS_WORKER
def test_fine_tuning_starts_from_a_runs_best_weights_and_names_a_network_that_differs(folders, tmp_path, capsys):
    nampouri = load_experiment("nampouri")
    run, = select_runs(nampouri, ["unet_cgan"])
    settings = nampouri.SCALES["smoke"]._replace(image_size=32)
    reference = run.build(settings)
    reference({"L": np.zeros((1, 32, 32, 1), np.float32)})
    # A run folder as `chroma train` leaves it, its best weights moved away from any fresh model's (no training).
    for weight in reference.trainable_weights:
        weight.assign(weight + 0.01)
    run_folder = tmp_path / "run"
    run_folder.mkdir()
    reference.save_weights(run_folder / "best.weights.h5")
    started = initial_model(run_folder, run, settings)
    for mine, theirs in zip(started.generator.weights, reference.generator.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())

    other = UNetGenerator(base_filters=8, depth=5)  # not the recipe's smoke U-Net
    other.save(tmp_path / "other.keras")
    with pytest.raises(ValueError, match="generator .* not the same network"):
        initial_model(tmp_path / "other.keras", run, settings)

    # The command line hands --init to initial_model before anything trains.
    assert cli.main(["train", "nampouri", "--run", "unet_cgan", "--data", str(folders / "train"), "-o",
                     str(tmp_path / "tuned"), "--init", str(tmp_path / "other.keras"), *SMALL]) == 2
    assert not (tmp_path / "tuned").exists() and "not the same network" in capsys.readouterr().err


@pytest.mark.xdist_group("baseline0")
def test_evaluate_scores_an_exported_saved_model_beside_baseline0(folders, tmp_path, tmp_path_factory, capsys):
    # baseline0's SavedModel, exported at 32 once for the modules that read one: what `chroma evaluate` reads is a
    # SavedModel, not how it was trained.
    saved_model = baseline0_exported(tmp_path_factory)[1]
    assert cli.main(["evaluate", "--model", str(saved_model), "--data", str(folders / "held_out"),
                     "--baseline-data", str(folders / "train"), "-o", str(tmp_path / "scores")]) == 0
    printed = capsys.readouterr().out
    assert "at 32x32" in printed and "| baseline0 |" in printed and f"| {saved_model} |" in printed
    with open(tmp_path / "scores" / "results.csv") as file:
        rows = {(row["model"], row["metric"]): float(row["ours"]) for row in csv.DictReader(file)}
    model = str(saved_model)
    assert 5 < rows[(model, "PSNR (dB)")] < 60 and 0 < rows[(model, "SSIM")] <= 1
    assert cli.main(["evaluate", "--model", str(tmp_path), "--data", str(folders / "held_out")]) == 2
    assert "not a SavedModel" in capsys.readouterr().err


def test_reproduce_refuses_an_unknown_override_before_it_trains(capsys):
    assert cli.main(["reproduce", "nampouri", "--scale", "smoke", "--set", "batch=4"]) == 2
    assert "unknown setting 'batch'" in capsys.readouterr().err
