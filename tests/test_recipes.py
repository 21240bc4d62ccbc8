"""Finding and loading recipes: the installed papers by name, any other by its file."""

import pytest

from chroma import cli
from chroma.recipes import RecipeError, known_experiments, load_experiment

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


NAMES = ("PAPER, TITLE, COLUMNS, RUNS, SCALES, paper_data (required), ASSETS, LOSS_TABLE, BEST_EPOCH_TABLE, BASELINE0_PAPER, "
         "REFERENCE_ROWS, DIVERSE_SAMPLES, TRAINING_SAMPLES (optional)")


@pytest.mark.parametrize("line, refusal", [
    ('LOSS_TABLES = ("Losses", {})', "LOSS_TABLES is not a name of the recipe contract (did you mean LOSS_TABLE?)"),
    ("TRAINING_SAMPLE = True",
     "TRAINING_SAMPLE is not a name of the recipe contract (did you mean TRAINING_SAMPLES?)"),
    ("DIVERSE_SAMPLES = True", "DIVERSE_SAMPLES must be of type int (N > 0: a figure of N colorizations"),
    ('COLUMNS = ["l1_ab"]', "COLUMNS must be of type tuple (the metric names of its table, in order"),
    ("del RUNS", "RUNS is missing"),
    ('SCALES = {"smoke": SCALES["smoke"]}', "SCALES has 'smoke'; it must have 'smoke' and 'paper'"),
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
    assert (loaded.ASSETS, loaded.LOSS_TABLE, loaded.BEST_EPOCH_TABLE, loaded.BASELINE0_PAPER, loaded.REFERENCE_ROWS,
            loaded.DIVERSE_SAMPLES, loaded.TRAINING_SAMPLES) == ({}, None, None, {}, [], 0, False)
