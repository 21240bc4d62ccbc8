"""Finding and loading recipes: the installed papers by name, any other by its file."""

from pathlib import Path

import pytest
import tensorflow as tf

from chroma import cli
from chroma.recipes import RecipeError, hyperparameters, known_experiments, load_experiment, settings_at

PAPERS = ["agosti", "bruvik", "efthymiadis", "nampouri", "villarenteria"]


def test_the_papers_recipes_are_found_by_name_and_loaded_afresh():
    assert known_experiments() == PAPERS
    first, second = load_experiment("nampouri"), load_experiment("nampouri")
    assert first.PAPER == "nampouri" and first is not second  # a recipe changed by one caller is not another's


def test_an_unknown_recipe_names_the_known_ones(capsys, tmp_path):
    with pytest.raises(FileNotFoundError, match="no experiment 'nampuri'; known: agosti, bruvik, efthymiadis, "
                                                "nampouri, villarenteria, or a path to a recipe .py file"):
        load_experiment("nampuri")
    assert cli.main(["reproduce", str(tmp_path / "mine.py")]) == 2
    assert f"chroma: error: no recipe file {tmp_path / 'mine.py'}" in capsys.readouterr().err


NAMES = ("PAPER, TITLE, COLUMNS, RUNS, SCALES, paper_data (required), ASSETS, LOSS_TABLE, BEST_EPOCH_TABLE, "
         "BASELINE0_PAPER, BASELINES, REFERENCE_ROWS, DIVERSE_SAMPLES, TRAINING_SAMPLES, CLASS_HISTOGRAM, "
         "LPIPS_NETWORK (optional)")


@pytest.mark.parametrize("line, refusal", [
    ('LOSS_TABLES = ("Losses", {})', "LOSS_TABLES is not a name of the recipe contract (did you mean LOSS_TABLE?)"),
    ("TRAINING_SAMPLE = True",
     "TRAINING_SAMPLE is not a name of the recipe contract (did you mean TRAINING_SAMPLES?)"),
    ("DIVERSE_SAMPLES = True", "DIVERSE_SAMPLES must be of type int (N > 0: a figure of N colorizations"),
    ('COLUMNS = ["l1_ab"]', "COLUMNS must be of type tuple (the metric names of its table, in order"),
    ("del RUNS", "RUNS is missing"),
    ('SCALES = {"smoke": SCALES["smoke"]}', "SCALES has 'smoke'; it must have 'smoke' and 'paper'"),
    ('LPIPS_NETWORK = "resnet"',
     "LPIPS_NETWORK must be 'alex' or 'vgg', the feature network of its LPIPS columns, got 'resnet'"),
    ('BASELINES = [{"model": "mean colour", "fit": None}]',
     "BASELINES holds {'model': 'mean colour', 'fit': None}; each entry must be a chroma.recipes.Baseline"),
])
def test_a_recipe_that_breaks_the_contract_is_refused_naming_the_file_the_name_and_the_names(
        tmp_path, capsys, line, refusal):
    recipe = tmp_path / "mine.py"
    recipe.write_text(f"""
from chroma.training import Run, smoke_settings

PAPER, TITLE, COLUMNS = "mine", "My paper", ("l1_ab",)
_EPOCHS = 2  # a constant of the recipe's own
RUNS = []
SCALES = dict.fromkeys(("smoke", "paper"), smoke_settings(epochs=_EPOCHS))


def paper_data(coco, data):
    raise ValueError("smoke scale only")


{line}
""")
    with pytest.raises(RecipeError) as refused:
        load_experiment(str(recipe))
    assert str(refused.value).startswith(f"{recipe}: {refusal}")
    assert NAMES in str(refused.value)
    assert cli.main(["reproduce", str(recipe)]) == 2
    assert f"chroma: error: {recipe}: {refusal}" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_recipe_that_leaves_out_optional_names_gets_their_defaults(tmp_path):
    recipe = tmp_path / "mine.py"
    recipe.write_text('PAPER, TITLE, COLUMNS, RUNS = "mine", "My paper", ("l1_ab",), []\n'
                      "SCALES = {'smoke': None, 'paper': None}\ndef paper_data(coco, data):\n    return None\n")
    loaded = load_experiment(str(recipe))
    assert (loaded.ASSETS, loaded.LOSS_TABLE, loaded.BEST_EPOCH_TABLE, loaded.BASELINE0_PAPER, loaded.BASELINES,
            loaded.REFERENCE_ROWS, loaded.DIVERSE_SAMPLES, loaded.TRAINING_SAMPLES, loaded.CLASS_HISTOGRAM,
            loaded.LPIPS_NETWORK) == ({}, None, None, {}, [], [], 0, False, False, "alex")


def test_a_recipe_may_score_lpips_with_each_network_chroma_has(tmp_path):
    """check_recipe names LPIPS' networks without TensorFlow: they must stay chroma.metrics.lpips'."""
    from chroma.metrics.lpips import FEATURE_NETWORKS

    for network in FEATURE_NETWORKS:
        recipe = tmp_path / f"{network}.py"
        recipe.write_text('PAPER, TITLE, COLUMNS, RUNS = "mine", "My paper", ("lpips",), []\n'
                          f"LPIPS_NETWORK = {network!r}\n"
                          "SCALES = {'smoke': None, 'paper': None}\ndef paper_data(coco, data):\n    return None\n")
        assert load_experiment(str(recipe)).LPIPS_NETWORK == network


def test_the_template_is_a_recipe_a_sixth_paper_starts_from(tmp_path):
    import chroma.experiments

    copy = tmp_path / "mypaper.py"
    copy.write_text((Path(chroma.experiments.__path__[0]) / "_template.py").read_text())
    recipe = load_experiment(str(copy))
    assert "_template" not in known_experiments()
    smoke = settings_at(recipe, "smoke")._replace(image_size=16)
    (run,) = recipe.RUNS
    model = run.build(smoke)
    assert model({"L": tf.zeros((1, 16, 16, 1))}).shape == (1, 16, 16, 2)
    assert model.generator.count_params() < run.build(smoke._replace(base_filters=64)).generator.count_params()
    with pytest.raises(ValueError, match="SCALE=paper needs COCO"):
        settings_at(recipe, "paper")
    assert settings_at(recipe, "paper", coco="/data/coco").train_data == "coco:/data/coco?split=train2017&take=8000"


def test_settings_resolve_in_one_order_the_scale_then_the_run_then_set():
    efthymiadis = load_experiment("efthymiadis")
    cnn = next(run for run in efthymiadis.RUNS if run.key == "cnn")
    paper = settings_at(efthymiadis, "paper", coco="/data/coco", data="/data/imagenet27")
    assert paper.image_size == 256 and cnn.settings_for(paper).image_size == 224  # the CNN's own 224 px
    # --set comes last; g_lr is a compile value, which no Settings field takes.
    assert cnn.settings_for(paper, {"image_size": 128, "g_lr": 1e-3}).image_size == 128
    # Hyperparameters alone name no data, and an unknown scale is refused with the scales there are.
    assert hyperparameters(efthymiadis, "paper").train_data is None
    with pytest.raises(ValueError, match="unknown scale 'huge'; choose smoke or paper"):
        hyperparameters(efthymiadis, "huge")
