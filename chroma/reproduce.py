"""The reproduction harness shared by every paper: train each run of a recipe, score it, report it.

`make reproduce-<paper>` calls `reproduce(load_experiment(<paper>), scale)`.
A recipe is a plain module in experiments/ with PAPER, TITLE, COLUMNS (metric
names), RUNS (a list of chroma.training.Run) and settings(scale, coco, data)
-> chroma.training.Settings. Optionally ASSETS: {name: what it is} of the
pretrained networks its runs read from Settings.assets; LOSS_TABLE = (heading, {run key: the
paper's losses}): a second table of each run's mean D and G losses over its
first and last epoch (paper bruvik's table 3); BASELINE0_PAPER: the paper's
own baseline0 figures (villarenteria's table 1); DIVERSE_SAMPLES = N: a figure
of N colorizations of each held-out image by every run whose generator has
dropout, kept on at inference (paper agosti's figure 4).
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from chroma import color, evaluation, reports
from chroma.data.specs import dataset_from_spec
from chroma.export import dropout_layers, dropout_on
from chroma.metrics import LPIPS, fid_inception
from chroma.models.baseline0 import MeanColorBaseline
from chroma.training import read_history, train

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"
SAMPLE_IMAGES = 4
# Pretrained networks the metrics of a table read, by the column that needs them.
METRIC_ASSETS = {
    "lpips": "LPIPS weights, a .npz converted as chroma/metrics/lpips.py explains; without them LPIPS stays empty",
    "fid": "Inception-v3 weights for FID: 'imagenet' (the Keras cache file, never downloaded) or a .h5; "
           "without them FID stays empty",
}
EPOCH_LOSS_COLUMNS = ("d_loss, first epoch", "g_loss, first epoch", "d_loss, last epoch", "g_loss, last epoch")


def load_experiment(name):
    """A recipe module from its name in experiments/ or from a path to a .py file."""
    path = Path(name) if name.endswith(".py") else EXPERIMENTS_DIR / f"{name}.py"
    if not path.is_file():
        known = sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.py"))
        raise FileNotFoundError(f"no experiment {name!r} ({path} does not exist); known: {', '.join(known)}")
    spec = importlib.util.spec_from_file_location(f"experiments.{path.stem}", path)
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


def known_assets(experiment):
    """{asset name: what it is}: the pretrained networks a recipe's runs read, and those its table's metrics need."""
    metrics = {name: text for name, text in METRIC_ASSETS.items() if name in experiment.COLUMNS}
    return {**getattr(experiment, "ASSETS", {}), **metrics}


def reproduce(experiment, scale, runs_root="runs", coco=None, data=None, assets=None, run_keys=None, strategy=None,
              precision="float32", index_path="RESULTS.md"):
    """Trains (or resumes) every run, then writes results.md/.csv, loss curves and a sample grid.

    assets: {name: where this machine keeps a pretrained network}, from the
    names of known_assets(experiment); the runs read theirs in
    Settings.assets, and "lpips" / "fid" fill those columns (without them
    they stay empty).
    """
    assets = dict(assets or {})
    known = known_assets(experiment)
    unknown = sorted(assets.keys() - known.keys())
    if unknown:
        listed = "".join(f"\n  {name}: {text}" for name, text in known.items()) or " none"
        raise ValueError(f"{experiment.PAPER} reads no asset named {', '.join(unknown)}. Its assets:{listed}")
    settings = experiment.settings(scale, coco=coco, data=data)._replace(assets=assets)
    lpips_model = LPIPS(weights=assets["lpips"]) if "lpips" in assets else None
    fid_model = fid_inception(assets["fid"]) if "fid" in assets else None
    out_dir = Path(runs_root) / experiment.PAPER / scale
    eval_data = dataset_from_spec(settings.eval_data, settings.image_size, settings.batch_size,
                                  drop_gray=settings.drop_gray)
    baseline0 = fit_baseline0(settings)
    rows = [{"model": "baseline0 (mean colour per gray level)", "note": "reference",
             "paper": titled(getattr(experiment, "BASELINE0_PAPER", {})),
             "ours": titled(evaluation.evaluate(lambda batch: baseline0(batch)["ab"], eval_data, experiment.COLUMNS,
                                                lpips_model, fid_model))}]
    samples = [("original", None, eval_data), ("grayscale", None, eval_data)]
    runs = select_runs(experiment, run_keys)
    for run in runs:
        print(f"== {experiment.PAPER} / {scale}: {run.name}", file=sys.stderr)
        run_settings = run.settings_for(settings)
        model = train_with_pretraining(run, run_settings, out_dir / run.key, strategy, precision)
        run_eval_data = dataset_from_spec(settings.eval_data, run_settings.image_size, settings.batch_size,
                                          drop_gray=settings.drop_gray)
        scores = evaluation.evaluate(lambda batch, m=model: m(batch, training=False), run_eval_data,
                                     experiment.COLUMNS, lpips_model, fid_model)
        rows.append({"model": run.name, "ours": titled(scores), "paper": titled(run.paper), "note": run.note})
        reports.plot_gan_losses(read_history(out_dir / run.key), out_dir / f"{run.key}_losses.png",
                                f"{run.name} ({scale})")
        if run.pretrain is not None:  # e.g. paper bruvik's figure 10
            reports.plot_gan_losses(read_history(out_dir / run.key / "pretrain"),
                                    out_dir / f"{run.key}_pretraining_losses.png", f"{run.name}, pretraining ({scale})")
        history = read_history(out_dir / run.key)
        reports.plot_metric_curves(history, {key: evaluation.COLUMN_TITLES.get(key, key) for key in run.metrics},
                                   out_dir / f"{run.key}_metrics.png", f"{run.name} ({scale})")
        dropouts = dropout_layers(model.generator)
        if getattr(experiment, "DIVERSE_SAMPLES", 0) and dropouts:
            reports.sample_grid(diverse_columns(model, dropouts, run_eval_data, experiment.DIVERSE_SAMPLES),
                                out_dir / f"{run.key}_diverse.png", f"{run.name}: dropout on at inference ({scale})")
        samples.append((run.name, model, run_eval_data))
    reports.sample_grid(sample_columns(samples), out_dir / "samples.png",
                        f"{experiment.TITLE}: held-out images ({scale})")
    columns = [evaluation.COLUMN_TITLES.get(name, name) for name in experiment.COLUMNS]
    paths = reports.write_results(out_dir, f"{experiment.TITLE} — {scale} scale", rows, columns, experiment.PAPER)
    if hasattr(experiment, "LOSS_TABLE"):
        heading, paper_losses = experiment.LOSS_TABLE
        loss_rows = [{"model": run.name, "ours": epoch_losses(read_history(out_dir / run.key)),
                      "paper": paper_losses[run.key]} for run in runs if run.key in paper_losses]
        reports.append_table(out_dir, heading, loss_rows, EPOCH_LOSS_COLUMNS)
    reports.update_results_index(runs_root, index_path)
    return paths


def train_with_pretraining(run, settings, out_dir, strategy=None, precision="float32"):
    """train(), after the run's pretraining phase (in out_dir/pretrain) if it has one."""
    pretrained = None
    if run.pretrain is not None:
        print(f"{run.name}: pretraining phase", file=sys.stderr)
        pretrained = train(run.pretraining_run(), run.pretrain.settings(settings), Path(out_dir) / "pretrain",
                           strategy=strategy, precision=precision)
    return train(run, settings, out_dir, strategy=strategy, precision=precision, start_from=pretrained)


def epoch_losses(history):
    """{"d_loss, first epoch": ..., "g_loss, last epoch": ...} from a run's per-epoch history."""
    return {f"{name}, {which} epoch": history[name][index]
            for name in ("d_loss", "g_loss") if history.get(name)
            for which, index in (("first", 0), ("last", -1))}


def titled(scores):
    """{metric key: value} -> {column title: value}, as the results table shows them."""
    return {evaluation.COLUMN_TITLES.get(name, name): value for name, value in scores.items()}


def fit_baseline0(settings):
    """baseline0 on the run's training images: the floor every model must beat."""
    model = MeanColorBaseline()
    model.compile()
    for batch in dataset_from_spec(settings.train_data, settings.image_size, settings.batch_size):
        model.train_step(batch)
    return model


def sample_columns(samples):
    """Figure 7's layout: original, grayscale, then each model's colorization of the same images.

    samples: (title, model or None, eval dataset) in column order; "original"
    and "grayscale" take no model. Each model sees the images at its own size.
    """
    columns = []
    for title, model, dataset in samples:
        batch = first_images(dataset)
        scaled_l, scaled_ab = batch["L"], batch["ab"]
        if title == "original":
            ab = scaled_ab
        elif model is None:
            ab = tf.zeros_like(scaled_ab)
        else:
            ab = model(batch, training=False)
        columns.append((title, list(np.asarray(color.scaled_lab_to_rgb(scaled_l, ab)))))
    return columns


def diverse_columns(model, dropouts, dataset, count):
    """Figure 4's layout: gray input, original, then `count` colorizations with the generator's dropout on."""
    batch = first_images(dataset)
    scaled_l, scaled_ab = batch["L"], batch["ab"]
    columns = [("grayscale", color.scaled_lab_to_rgb(scaled_l, tf.zeros_like(scaled_ab))),
               ("original", color.scaled_lab_to_rgb(scaled_l, scaled_ab))]
    with dropout_on(dropouts):
        columns += [(f"sample {index}", color.scaled_lab_to_rgb(scaled_l, model(batch, training=False)))
                    for index in range(1, count + 1)]
    return [(title, list(np.asarray(images))) for title, images in columns]


def first_images(dataset, count=SAMPLE_IMAGES):
    """The first `count` images of a batched dataset, as one batch (L, ab, caption, ...)."""
    return next(iter(dataset.unbatch().take(count).batch(count)))
