"""Paper recipes: the ones installed with chroma (the package chroma.experiments, experiments/ in the
repository) found by name, any other loaded from its file, and a recipe's runs chosen by key.

This module imports no TensorFlow, so the command line can name the recipes in its help at once.
"""

import importlib.util
import pkgutil
from pathlib import Path


def known_experiments():
    """The names of the recipes installed with chroma (the modules of chroma.experiments), sorted."""
    import chroma.experiments

    return sorted(module.name for module in pkgutil.iter_modules(chroma.experiments.__path__))


def load_experiment(name):
    """A recipe module, loaded afresh: a module of chroma.experiments by its name, or a .py file by its path."""
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
