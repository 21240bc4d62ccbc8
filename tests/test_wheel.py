"""The wheel is the product: installed from it, outside the checkout, every command finds its recipes."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = Path(__file__).resolve().parent / "recipes" / "tiny.py"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the `chroma` executable, its environment): the wheel built from this checkout, installed into a folder of
    its own that comes first on PYTHONPATH, over the editable chroma of the suite's own virtualenv."""
    work = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools writes build/ and egg-info beside the sources it builds.
    source = work / "source"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    for name in ("chroma", "experiments"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                            "-w", str(work / "dist"), str(source)], capture_output=True, text=True, cwd=work)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel, = (work / "dist").glob("chroma-*.whl")
    target = work / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
                              str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": str(target), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return target / "bin" / "chroma", env


def chroma(installed, *args, cwd):
    executable, env = installed
    return subprocess.run([str(executable), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def test_the_wheel_holds_the_library_the_recipes_and_the_page(installed):
    executable, env = installed
    site = executable.parent.parent / "chroma"
    packaged = {path.parent.relative_to(site) for path in site.rglob("__init__.py")}
    in_checkout = {path.parent.relative_to(ROOT / "chroma") for path in (ROOT / "chroma").rglob("__init__.py")}
    assert packaged == in_checkout | {Path("experiments")}
    assert {path.name for path in (site / "experiments").glob("*.py")} == {
        path.name for path in (ROOT / "experiments").glob("*.py")}
    assert (site / "page" / "index.html").is_file()


def test_the_installed_commands_run_outside_the_checkout(installed, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    located = subprocess.run([sys.executable, "-c", "import chroma.recipes as r; print(r.__file__)"],
                             capture_output=True, text=True, env=installed[1], cwd=elsewhere)
    assert located.stdout.startswith(str(installed[0].parent.parent)), located  # not the checkout's chroma

    version = chroma(installed, "--version", cwd=elsewhere)
    assert version.returncode == 0 and version.stdout.strip() == "chroma 0.1.0", version
    demo_help = chroma(installed, "demo", "--help", cwd=elsewhere)
    assert demo_help.returncode == 0 and "U-Net cGAN" in demo_help.stdout, demo_help.stderr
    # The papers' recipes, found in the installed package (chroma.recipes.known_experiments).
    reproduce_help = " ".join(chroma(installed, "reproduce", "--help", cwd=elsewhere).stdout.split())
    assert "(agosti, bruvik, efthymiadis, nampouri, villarenteria: the recipes installed with chroma" in reproduce_help

    # A recipe of your own, by its path: one run for one epoch, then the same run on the bundled photos.
    shutil.copy(TINY, elsewhere / "my_recipe.py")
    reproduced = chroma(installed, "reproduce", "my_recipe.py", "--scale", "smoke", "--run", "gan",
                        "--set", "epochs=1", cwd=elsewhere)
    assert reproduced.returncode == 0, reproduced.stderr[-3000:]
    assert (elsewhere / "runs" / "tiny" / "smoke" / "results.md").is_file() and (elsewhere / "RESULTS.md").is_file()
    trained = chroma(installed, "train", "my_recipe.py", "--run", "gan", "--scale", "smoke", "--data",
                     "samples?take=2", "--validation-data", "samples?skip=2&take=2", "--set", "epochs=1", "-o",
                     "mine", cwd=elsewhere)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (elsewhere / "mine" / "results.md").is_file()
    assert (elsewhere / "mine" / "saved_model" / "saved_model.pb").is_file()
    assert sorted(path.name for path in elsewhere.iterdir()) == ["RESULTS.md", "mine", "my_recipe.py", "runs"]
