"""Paper recipes: the contract a recipe file follows (CONTRACT), checked when it is loaded; the recipes
installed with chroma (the package chroma.experiments, experiments/ in the repository) found by name, any other
loaded from its file; a recipe's settings at a scale (the one place scales are told apart); and its runs chosen
by key.

This module imports no TensorFlow, so the command line can name the recipes in its help at once.
"""

import copy
import difflib
import importlib.util
import pkgutil
import re
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple


class Name(NamedTuple):
    """One name of the recipe contract: the type of its value, what it means, and its value when a recipe leaves
    it out (REQUIRED: it may not)."""

    kinds: tuple
    meaning: str
    default: object


class Baseline(NamedTuple):
    """A row of a recipe's table scored like baseline0 (BASELINES): no network trained by the engine, an estimator
    fitted on the training data. fit(settings) -> a colorizer (chroma.evaluation.evaluate's: batch -> ab, or
    {"L", "ab"} for one that predicts lightness too); paper: the paper's figures, keyed like chroma's metrics."""

    model: str
    fit: Callable
    paper: dict = {}
    note: str = ""


REQUIRED = object()
# The module-level names a recipe file may define in UPPER_CASE (and `settings`); its own constants start with
# an underscore, so a misspelt contract name cannot pass for one of them.
CONTRACT = {
    "PAPER": Name((str,), "the paper's key: runs/<PAPER>/ and the 'paper' columns of its table", REQUIRED),
    "TITLE": Name((str,), "the paper's title, heading its results", REQUIRED),
    "COLUMNS": Name((tuple,), "the metric names of its table, in order (chroma.evaluation.COLUMN_TITLES)", REQUIRED),
    "RUNS": Name((list,), "its chroma.training.Run list, in the table's order", REQUIRED),
    "SCALES": Name((dict,), "{'smoke': Settings, 'paper': Settings}: its hyperparameters at each scale "
                   "(chroma.training.Settings); smoke's name the bundled photos (smoke_settings), paper's leave "
                   "the data to paper_data", REQUIRED),
    "paper_data": Name((Callable,), "paper_data(coco, data) -> chroma.training.PaperData: where the paper's data is "
                       "on this machine, from --coco and --data; a ValueError says what is missing", REQUIRED),
    "ASSETS": Name((dict,), "{name: what it is} of the pretrained networks its runs read from Settings.assets", {}),
    "LOSS_TABLE": Name((tuple, type(None)), "(heading, {run key: the paper's losses}): a table of each run's mean D "
                       "and G losses over its first and last epoch (paper bruvik's table 3)", None),
    "BEST_EPOCH_TABLE": Name((tuple, type(None)), "(heading, {run key: {'epochs', 'best epoch'}}): the epochs each "
                             "run scored at its best trained and the one chosen (villarenteria's table 3)", None),
    "BASELINE0_PAPER": Name((dict,), "the paper's own baseline0 figures (villarenteria's table 1)", {}),
    "BASELINES": Name((list,), "further Baseline rows after baseline0, each fitted on the training data and scored "
                      "like it (villarenteria's own baseline0, mean RGB per luma)", []),
    "REFERENCE_ROWS": Name((list,), "rows of the paper's table that are no model: [{'model', 'paper', 'note'}] "
                           "(bruvik's optimal result from the literature)", []),
    "DIVERSE_SAMPLES": Name((int,), "N > 0: a figure of N colorizations of each held-out image by each run whose "
                            "generator has dropout, kept on at inference (agosti's figure 4)", 0),
    "TRAINING_SAMPLES": Name((bool,), "True: the sample grid of training images too (agosti's figure 5)", False),
    "CLASS_HISTOGRAM": Name((bool,), "True: a bar chart of the training images per class, each COCO image under its "
                            "dominant category (bruvik's figure 6)", False),
    "LPIPS_NETWORK": Name((str,), "the feature network of its LPIPS columns, 'alex' or 'vgg', whose converted weights "
                          "the asset lpips names (agosti's authors scored LPIPS with VGG)", "alex"),
}
CONTRACT_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
SCALES = ("smoke", "paper")  # CPU minutes on the bundled photos; the paper's data and recipe
# The fields of chroma.training.Settings that --set may change; the data specs and assets have flags of their own.
OVERRIDABLE = ("image_size", "batch_size", "epochs", "smoke", "base_filters", "flip", "seed", "cache_embeddings",
               "drop_gray")


class RecipeError(ValueError):
    """A recipe file that does not follow CONTRACT."""


def check_recipe(module, origin):
    """Refuses a recipe module that misspells, leaves out or mistypes a name of CONTRACT, naming `origin` (its
    file) and the names there are; fills in the optional names it leaves out."""
    namespace = vars(module)
    required = [name for name, entry in CONTRACT.items() if entry.default is REQUIRED]
    names = (f"{', '.join(required)} (required), {', '.join(name for name in CONTRACT if name not in required)} "
             "(optional); their meanings in chroma.recipes.CONTRACT")
    for name in namespace:
        if CONTRACT_NAME.fullmatch(name) and name not in CONTRACT:
            close = difflib.get_close_matches(name, CONTRACT, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise RecipeError(f"{origin}: {name} is not a name of the recipe contract{hint}; a recipe's own "
                              f"constants start with an underscore. A recipe's names: {names}")
    for name, entry in CONTRACT.items():
        if name not in namespace:
            if entry.default is REQUIRED:
                raise RecipeError(f"{origin}: {name} is missing. A recipe's names: {names}")
            setattr(module, name, copy.copy(entry.default))  # a {} or [] of its own, not CONTRACT's
        elif not isinstance(namespace[name], entry.kinds) or (int in entry.kinds and type(namespace[name]) is bool):
            expected = " or ".join("None" if kind is type(None) else kind.__name__ for kind in entry.kinds)
            raise RecipeError(f"{origin}: {name} must be of type {expected} ({entry.meaning}), got a "
                              f"{type(namespace[name]).__name__}. A recipe's names: {names}")
    if sorted(module.SCALES) != sorted(SCALES):
        raise RecipeError(f"{origin}: SCALES has {', '.join(map(repr, module.SCALES)) or 'no scale'}; it must have "
                          f"{' and '.join(map(repr, SCALES))}, each a chroma.training.Settings. A recipe's names: "
                          f"{names}")
    strays = [entry for entry in module.BASELINES if not isinstance(entry, Baseline)]
    if strays:
        raise RecipeError(f"{origin}: BASELINES holds {strays[0]!r}; each entry must be a chroma.recipes.Baseline. "
                          f"A recipe's names: {names}")
    lpips_networks = ("alex", "vgg")  # chroma.metrics.lpips.FEATURE_NETWORKS, named here without TensorFlow
    if module.LPIPS_NETWORK not in lpips_networks:
        raise RecipeError(f"{origin}: LPIPS_NETWORK must be {' or '.join(map(repr, lpips_networks))}, the feature "
                          f"network of its LPIPS columns, got {module.LPIPS_NETWORK!r}. A recipe's names: {names}")


def hyperparameters(experiment, scale):
    """The recipe's Settings at `scale`, as SCALES holds them (paper scale's without data)."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose {' or '.join(SCALES)}")
    return experiment.SCALES[scale]


def settings_at(experiment, scale, coco=None, data=None):
    """The recipe's Settings at `scale` with its data: smoke scale's own (the bundled photos), paper scale's where
    the recipe's paper_data finds it from `coco` and `data` (a ValueError says what it lacks)."""
    settings = hyperparameters(experiment, scale)
    if scale == "paper":
        settings = settings._replace(**experiment.paper_data(coco, data)._asdict())
    return settings


def known_experiments():
    """The names of the recipes installed with chroma (the modules of chroma.experiments), sorted; _template, the
    starting point of a new one, is no paper."""
    import chroma.experiments

    return sorted(module.name for module in pkgutil.iter_modules(chroma.experiments.__path__)
                  if not module.name.startswith("_"))


def load_experiment(name):
    """A recipe module, loaded afresh and checked against CONTRACT: a module of chroma.experiments by its name, or
    a .py file by its path."""
    if name.endswith(".py"):
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"no recipe file {path}")
        spec = importlib.util.spec_from_file_location(f"recipe_{path.stem}", path)
    else:
        known = known_experiments()
        if name not in known:
            raise FileNotFoundError(f"no experiment {name!r}; known: {', '.join(known)}, or a path to a recipe .py file")
        spec = importlib.util.find_spec(f"chroma.experiments.{name}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    check_recipe(module, spec.origin)
    return module


def select_runs(experiment, keys=None):
    """The experiment's runs, or those named by `keys` (Run.key), in the recipe's order."""
    if not keys:
        return list(experiment.RUNS)
    known = {run.key: run for run in experiment.RUNS}
    unknown = [key for key in keys if key not in known]
    if unknown:
        raise ValueError(f"{experiment.PAPER} has no run {unknown}; its runs: {', '.join(known)}")
    return [run for run in experiment.RUNS if run.key in keys]
