"""Finding and loading recipes: the installed papers by name, any other by its file."""

import pytest

from chroma import cli
from chroma.recipes import known_experiments, load_experiment

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
