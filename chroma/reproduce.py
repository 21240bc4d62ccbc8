"""The reproduction harness shared by every paper: train each run of a recipe, score it, report it.

`make reproduce-<paper>` calls `reproduce(load_experiment(<paper>), scale)`.
A recipe is a module that follows chroma.recipes.CONTRACT (PAPER, TITLE,
COLUMNS, RUNS, SCALES, paper_data; optionally ASSETS, LOSS_TABLE,
BEST_EPOCH_TABLE, BASELINE0_PAPER, BASELINES, REFERENCE_ROWS,
DIVERSE_SAMPLES, TRAINING_SAMPLES, CLASS_HISTOGRAM, LPIPS_NETWORK), checked
when loaded, which fills in the optional names it leaves out. `chroma train`,
`demo`, `estimate` and the benchmarks train through train_with_pretraining and
score through score_run too.
"""

import contextlib
import gc
import hashlib
import json
import multiprocessing
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np
import tensorflow as tf

from chroma import color, evaluation, reports
from chroma.data.sources import Source
from chroma.data.specs import dataset_from_spec, resolve
from chroma.export import RUN_FILE, SCORED_GENERATOR, dropout_layers, dropout_on
from chroma.metrics import LPIPS, fid_inception
from chroma.provenance import provenance
from chroma.recipes import load_experiment, select_runs, settings_at
from chroma.runtime import Runtime
from chroma.training import RunStopped, read_history, train
from chroma.training.hardware import choose_precision, is_chief, wait_for_workers
from chroma.training.trainer import compile_values, monitor_mode, with_compile_overrides

SAMPLE_IMAGES = 4
# Pretrained networks the metrics of a table read, by asset name (chroma.evaluation.NETWORK_METRICS: the columns
# that need each); {lpips_network} is the recipe's LPIPS_NETWORK.
METRIC_ASSETS = {
    "lpips": "LPIPS weights of the recipe's LPIPS_NETWORK ({lpips_network}), a .npz converted (net='{lpips_network}') "
             "as chroma/metrics/lpips.py explains; without them the LPIPS columns stay empty",
    "fid": "Inception-v3 weights for FID: 'imagenet' (the Keras cache file, never downloaded) or a .h5; "
           "without them the FID columns stay empty",
}
SCORED_AT = ("last", "best")  # Run.scored_at
# Run.scored_in -> how a note and a figure say it.
SCORING_MODES = {"inference": "in inference mode", "dropout": "with dropout on", "training": "in training mode"}
BEST_EPOCH_COLUMNS = ("epochs", "best epoch")
EPOCH_LOSS_COLUMNS = ("d_loss, first epoch", "g_loss, first epoch", "d_loss, last epoch", "g_loss, last epoch")


def known_assets(experiment):
    """{asset name: what it is}: the pretrained networks a recipe's runs read, and those its table's metrics need."""
    needed = {network for name, (network, _) in evaluation.NETWORK_METRICS.items() if name in experiment.COLUMNS}
    metrics = {name: text.format(lpips_network=experiment.LPIPS_NETWORK) for name, text in METRIC_ASSETS.items()
               if name in needed}
    return {**experiment.ASSETS, **metrics}


def reproduce(experiment, scale, runs_root="runs", coco=None, data=None, assets=None, run_keys=None,
              runtime=Runtime(), index_path="RESULTS.md", process_per_run=False, overrides=None):
    """Trains (or resumes) every run, then writes results.md/.csv, loss curves and a sample grid.

    assets: {name: where this machine keeps a pretrained network}, from the
    names of known_assets(experiment); the runs read theirs in
    Settings.assets, and "lpips" / "fid" fill those columns (without them
    they stay empty). runtime: strategy, precision and XLA, as
    chroma.training.train takes them. Under a multi-worker strategy only
    the chief scores the runs and writes these; the other workers train
    beside it (train_beside_chief).
    process_per_run: each run trains, is scored and drawn in a process of its
    own (train_in_own_process), so the recipe's peak memory is its largest
    run's: with oneDNN, TensorFlow's CPU allocator keeps every byte a run
    used until its process ends. The recipe must then be a file.
    overrides: {name: value} of `--set` (chroma.train_run.parse_overrides),
    applied last (Run.settings_for). The results' title names them.
    """
    assets = dict(assets or {})
    known = known_assets(experiment)
    unknown = sorted(assets.keys() - known.keys())
    if unknown:
        listed = "".join(f"\n  {name}: {text}" for name, text in known.items()) or " none"
        raise ValueError(f"{experiment.PAPER} reads no asset named {', '.join(unknown)}. Its assets:{listed}")
    overrides = dict(overrides or {})
    settings = settings_at(experiment, scale, coco, data)._replace(assets=assets).with_overrides(overrides)
    out_dir = Path(runs_root) / experiment.PAPER / scale
    if process_per_run and strategy_name(runtime.strategy) is None:
        raise ValueError("one process per run trains on this machine alone: not with a multi-worker or TPU strategy")
    if not is_chief(runtime.strategy):
        return train_beside_chief(experiment, settings, out_dir, run_keys, runtime, overrides)
    lpips_model, fid_model = metric_networks(assets, experiment.LPIPS_NETWORK)
    eval_data = dataset_from_spec(settings.eval_data, settings.image_size, settings.batch_size,
                                  drop_gray=settings.drop_gray)
    baseline0 = evaluation.fit_baseline0(settings.train_data, settings.image_size, settings.batch_size,
                                         drop_gray=settings.drop_gray)
    rows = [{"model": evaluation.BASELINE0_NAME, "note": "reference",
             "paper": evaluation.titled(experiment.BASELINE0_PAPER),
             "ours": evaluation.titled(evaluation.evaluate(lambda batch: baseline0(batch)["ab"], eval_data,
                                                           experiment.COLUMNS, lpips_model, fid_model))}]
    rows += [{"model": baseline.model, "note": baseline.note, "paper": evaluation.titled(baseline.paper),
              "ours": evaluation.titled(evaluation.evaluate(baseline.fit(settings), eval_data, experiment.COLUMNS,
                                                            lpips_model, fid_model))}
             for baseline in experiment.BASELINES]
    rows += [{**row, "ours": {}, "paper": evaluation.titled(row["paper"])} for row in experiment.REFERENCE_ROWS]
    # Sample grids are gathered column by column as each run ends, so no trained model outlives its run.
    held_out = [sample_column(title, None, eval_data) for title in ("original", "grayscale")]
    on_training = None
    if experiment.TRAINING_SAMPLES:
        training_images = dataset_from_spec(settings.train_data, settings.image_size, settings.batch_size,
                                            drop_gray=settings.drop_gray)
        on_training = [sample_column(title, None, training_images) for title in ("original", "grayscale")]
    runs = select_runs(experiment, run_keys)
    for run in runs:
        check_protocol(run, run.settings_for(settings, overrides))
    if experiment.CLASS_HISTOGRAM:
        reports.class_histogram(class_counts(settings.train_data), out_dir / "training_classes.png",
                                f"{experiment.TITLE}: training images per class ({scale})")
    for run in runs:
        print(f"== {experiment.PAPER} / {scale}: {run.name}", file=sys.stderr)
        if process_per_run:
            row, columns = in_own_process(experiment, scale, run, runs_root, coco, data, assets, runtime, overrides)
        else:
            row, columns = train_and_draw(experiment, scale, run, settings, out_dir, runtime, lpips_model,
                                          fid_model, overrides)
        rows.append(row)
        held_out.append(columns["held_out"])
        if on_training is not None:
            on_training.append(columns["on_training"])
    reports.sample_grid(held_out, out_dir / "samples.png",
                        f"{experiment.TITLE}: held-out images, each model as its table scores it ({scale})")
    if on_training is not None:
        reports.sample_grid(on_training, out_dir / "training_samples.png",
                            f"{experiment.TITLE}: training images, each model as its table scores it ({scale})")
    columns = evaluation.column_titles(experiment.COLUMNS)
    trained_in, _ = choose_precision(runtime.precision, runtime.strategy)  # what train() chose for every run
    changed = f"; settings changed from the recipe's: {', '.join(f'{k}={v}' for k, v in overrides.items())}"
    paths = reports.write_results(
        out_dir, f"{experiment.TITLE} — {scale} scale, trained in {trained_in}, scored on {settings.eval_data}"
                 + (changed if overrides else ""),
        rows, columns, paper_name=experiment.PAPER, provenance=provenance())
    if experiment.LOSS_TABLE is not None:
        heading, paper_losses = experiment.LOSS_TABLE
        loss_rows = [{"model": run.name, "ours": epoch_losses(read_history(out_dir / run.key)),
                      "paper": paper_losses[run.key]} for run in runs if run.key in paper_losses]
        reports.append_table(out_dir, heading, loss_rows, EPOCH_LOSS_COLUMNS)
    if experiment.BEST_EPOCH_TABLE is not None:
        heading, paper_epochs = experiment.BEST_EPOCH_TABLE
        epoch_rows = [{"model": run.name, "ours": best_epoch(run, read_history(out_dir / run.key)),
                       "paper": paper_epochs.get(run.key, {})} for run in runs if run.scored_at == "best"]
        reports.append_table(out_dir, heading, epoch_rows, BEST_EPOCH_COLUMNS)
    reports.update_results_index(runs_root, index_path)
    wait_for_workers(runtime.strategy)
    return paths


def training_data(experiment, scale, coco=None, data=None, run_keys=None):
    """The data spec of every training phase reproduce runs: each run's and its pretraining's."""
    settings = settings_at(experiment, scale, coco, data)
    specs = []
    for run in select_runs(experiment, run_keys):
        run_settings = run.settings_for(settings)
        specs.append(run_settings.train_data)
        if run.pretrain is not None:
            specs.append(run.pretrain.settings(run_settings).train_data)
    return specs


def class_counts(spec):
    """{class name: images} of a data spec's labelled images (a COCO image's label is the category covering most of
    its area, chroma.data.sources.coco); {} for data without labels, or TFRecords and TFDS, whose labels would be
    read by decoding every image."""
    source = resolve(spec)
    if not isinstance(source, Source):
        return {}
    labels = Counter(record.label for record in source.records if record.label >= 0)
    return {source.class_names[label]: count for label, count in labels.items()}


def metric_networks(assets, lpips_network="alex"):
    """(LPIPS on `lpips_network`, a recipe's LPIPS_NETWORK, and FID's Inception) from the assets that name their
    weights; None for each one not given."""
    return (LPIPS(lpips_network, weights=assets["lpips"]) if "lpips" in assets else None,
            fid_inception(assets["fid"]) if "fid" in assets else None)


def train_and_draw(experiment, scale, run, settings, out_dir, runtime, lpips_model, fid_model, overrides=None):
    """Trains one run, scores it and draws its figures: (its results row, {"held_out": its sample column,
    "on_training": its column of training images, or None}). Its model is gone when this returns.
    settings: the scale's, `overrides` applied; the run is scored on their data and batch at its own image size."""
    run_settings = run.settings_for(settings, overrides)
    started = time.perf_counter()
    model = train_with_pretraining(run, run_settings, out_dir / run.key, runtime, overrides)
    train_seconds = time.perf_counter() - started
    run_eval_data = dataset_from_spec(settings.eval_data, run_settings.image_size, settings.batch_size,
                                      drop_gray=settings.drop_gray)
    scores, protocol = score_run(run, model, out_dir / run.key, run_eval_data, experiment.COLUMNS,
                                 lpips_model, fid_model)
    note = "; ".join(part for part in (run.note, protocol) if part)
    row = {"model": run.name, "ours": evaluation.titled(scores), "paper": evaluation.titled(run.paper), "note": note,
           "run": run_record(experiment, run, run_settings, out_dir / run.key, experiment.COLUMNS, train_seconds)}
    reports.plot_gan_losses(read_history(out_dir / run.key), out_dir / f"{run.key}_losses.png",
                            f"{run.name} ({scale})")
    if run.pretrain is not None:  # e.g. paper bruvik's figure 10
        reports.plot_gan_losses(read_history(out_dir / run.key / "pretrain"),
                                out_dir / f"{run.key}_pretraining_losses.png", f"{run.name}, pretraining ({scale})")
    history = read_history(out_dir / run.key)
    reports.plot_metric_curves(history, {key: evaluation.COLUMN_TITLES.get(key, key) for key in run.metrics},
                               out_dir / f"{run.key}_metrics.png", f"{run.name} ({scale})")
    if run.sample_epochs is not None:
        epochs = run.sample_epochs(run_settings.epochs)
        reports.epoch_samples(out_dir / run.key / "epoch_samples", epochs, out_dir / f"{run.key}_epochs.png",
                              f"{run.name}: held-out images at epochs {', '.join(map(str, epochs))} ({scale})")
    # Each figure shows the model as its table scores it (Run.scored_in), and says how.
    mode = scored_mode(run, model)
    if experiment.DIVERSE_SAMPLES and dropout_layers(model.generator):
        how = "in training mode" if run.scored_in == "training" else "dropout on at inference"
        with scoring_mode(run, model, dropout=True) as colorize:
            reports.sample_grid(diverse_columns(colorize, run_eval_data, experiment.DIVERSE_SAMPLES),
                                out_dir / f"{run.key}_diverse.png", f"{run.name}: {how} ({scale})")
    title = f"{run.name} ({mode})"
    with scoring_mode(run, model) as colorize:
        columns = {"held_out": sample_column(title, colorize, run_eval_data), "on_training": None}
        if experiment.TRAINING_SAMPLES:
            columns["on_training"] = sample_column(title, colorize, dataset_from_spec(
                settings.train_data, run_settings.image_size, settings.batch_size, drop_gray=settings.drop_gray))
    # Peak memory is one run's: the next run trains only after this one's model (its colorizer holds it too) is
    # freed.
    del model, colorize
    gc.collect()
    return row, columns


def strategy_name(strategy):
    """make_strategy's name for a strategy a process of its own can make again, or None (multi-worker, TPU)."""
    if strategy is None or type(strategy) is tf.distribute.get_strategy().__class__:
        return "default"
    if type(strategy) is tf.distribute.MirroredStrategy:
        return "mirrored"
    return None


def in_own_process(experiment, scale, run, runs_root, coco, data, assets, runtime, overrides):
    """train_and_draw in a fresh Python process (spawned, not forked: TensorFlow's threads do not survive a
    fork), which loads the recipe from its file again. Its output is this process's; so are its stop (a
    divergence, a checkpoint not saved) and the errors it reports as the CLI does (bad data)."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=train_in_own_process, args=(
        sender, experiment.__file__, scale, run.key, runs_root, coco, data, assets, strategy_name(runtime.strategy),
        runtime.precision, runtime.jit, overrides), name=f"chroma-{run.key}")
    process.start()
    sender.close()
    try:
        outcome = receiver.recv()
    except EOFError:
        outcome = None
    process.join()
    if outcome is None:
        raise RuntimeError(f"{run.name}: its process ended with exit code {process.exitcode} before it reported")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["row"], outcome["columns"]


def train_in_own_process(sender, recipe_path, scale, run_key, runs_root, coco, data, assets, strategy, precision,
                         jit, overrides):
    """What in_own_process's child runs: one run's train_and_draw, its outcome sent back through `sender`.
    The child then ends as the `chroma` executable does (cli.exit_without_finalizing)."""
    from chroma.cli import exit_without_finalizing
    from chroma.training import make_strategy

    status = 0
    try:
        experiment = load_experiment(recipe_path)
        settings = settings_at(experiment, scale, coco, data)._replace(assets=assets).with_overrides(overrides)
        run, = select_runs(experiment, [run_key])
        lpips_model, fid_model = metric_networks(assets, experiment.LPIPS_NETWORK)
        try:
            row, columns = train_and_draw(experiment, scale, run, settings,
                                          Path(runs_root) / experiment.PAPER / scale,
                                          Runtime(make_strategy(strategy), precision, jit), lpips_model, fid_model,
                                          overrides)
        except (RunStopped, ValueError, FileNotFoundError) as error:
            sender.send({"error": error})
        else:
            sender.send({"row": row, "columns": columns})
    except BaseException:  # noqa: BLE001 - anything else is shown here; the parent reports the missing outcome
        traceback.print_exc()
        status = 1
    exit_without_finalizing(status)


def train_beside_chief(experiment, settings, out_dir, run_keys, runtime, overrides):
    """What a multi-worker run's other workers do: train every run with the chief, which alone scores them and
    writes the results. Returns the chief's (results.md, results.csv) once it has written them."""
    for run in select_runs(experiment, run_keys):
        train_with_pretraining(run, run.settings_for(settings, overrides), out_dir / run.key, runtime, overrides)
    wait_for_workers(runtime.strategy)
    return out_dir / "results.md", out_dir / "results.csv"


def check_protocol(run, settings):
    """Refuses, before any training, a run whose scoring protocol (Run.scored_at, Run.scored_in) is unknown, and
    one that would pick its best epoch on the data it is then scored on (`settings`: the run's)."""
    if run.scored_at not in SCORED_AT:
        raise ValueError(f"{run.name}: scored_at must be one of {SCORED_AT}, got {run.scored_at!r}")
    if run.scored_in not in SCORING_MODES:
        raise ValueError(f"{run.name}: scored_in must be one of {tuple(SCORING_MODES)}, got {run.scored_in!r}")
    if run.picks_epoch_on_validation() and settings.validation_data in (None, settings.eval_data):
        raise ValueError(f"{run.name} picks its best epoch by {run.monitor}: give it validation data apart from "
                         f"the data it is scored on ({settings.eval_data}), e.g. a slice of its training data "
                         "(chroma train --validation-data SPEC)")


def score_run(run, model, out_dir, dataset, columns, lpips_model=None, fid_model=None):
    """(scores, what the table's note says of the protocol) for a trained run, scored as its paper did.

    scored_at "best" loads best.weights.h5 into `model` first, so the
    figures drawn afterwards show the scored weights too; the scored
    generator is saved as out_dir/generator.keras, which `chroma export`
    takes through its run folder.
    """
    notes = []
    if run.scored_at == "best":
        chosen = best_epoch(run, read_history(out_dir))
        model.load_weights(Path(out_dir) / "best.weights.h5")
        notes.append(f"best epoch {chosen['best epoch']} of {chosen['epochs']} by {run.monitor}")
    # What `chroma export RUN_DIR` exports: the generator the table scores.
    model.generator.save(Path(out_dir) / SCORED_GENERATOR)
    with scoring_mode(run, model) as colorize:
        scores = evaluation.evaluate(colorize, dataset, columns, lpips_model, fid_model)
    mode = scored_mode(run, model)
    return scores, "; ".join(notes + ([f"scored {mode}"] if mode != SCORING_MODES["inference"] else []))


def scored_mode(run, model):
    """How the table's note and the figures say the run is scored: SCORING_MODES' words for Run.scored_in, those
    of inference mode where a generator without dropout is "scored with dropout on"."""
    if run.scored_in == "dropout" and not dropout_layers(model.generator):
        return SCORING_MODES["inference"]
    return SCORING_MODES[run.scored_in]


@contextlib.contextmanager
def scoring_mode(run, model, dropout=False):
    """The trained `model` as its table scores it (Run.scored_in): a function batch -> predicted ab, valid inside
    the `with`. "training" mode updates batch norm's moving averages: they are put back when the `with` ends.
    dropout=True keeps the generator's dropout on in every mode (agosti's figure 4 of diverse samples)."""
    if run.scored_in == "training":
        averages = [weight.numpy() for weight in model.non_trainable_weights]
        try:
            yield lambda batch: model(batch, training=True)
        finally:
            for weight, value in zip(model.non_trainable_weights, averages):
                weight.assign(value)
        return
    with dropout_on(dropout_layers(model.generator) if dropout or run.scored_in == "dropout" else []):
        yield lambda batch: model(batch, training=False)


def run_record(experiment, run, settings, run_dir, metrics, train_seconds):
    """What results.json keeps of a scored run of `experiment` beside its scores: its recipe and key, its protocol
    (data, image size, which weights and in which mode it is scored, the metrics and LPIPS' network), its resolved
    settings and compile values, the precision and replicas it trained with, the seconds this command spent
    training it (pretraining included; 0 for a run resumed finished) and the sha256 of the generator scored (what
    `chroma export` exports)."""
    run_dir = Path(run_dir)
    trained = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    protocol = {"train_data": settings.train_data, "validation_data": settings.validation_data or settings.eval_data,
                "eval_data": settings.eval_data, "image_size": settings.image_size, "scored_at": run.scored_at,
                "scored_in": run.scored_in, "metrics": list(metrics)}
    if run.scored_at == "best":
        protocol.update(monitor=run.monitor, best_epoch=best_epoch(run, read_history(run_dir))["best epoch"])
    if any(evaluation.NETWORK_METRICS.get(name, ("",))[0] == "lpips" for name in metrics):
        protocol["lpips_network"] = experiment.LPIPS_NETWORK
    compile_args = with_compile_overrides(run.compile_args(trained["total_steps"]), trained["overrides"])
    return {"recipe": experiment.PAPER, "key": run.key, "protocol": protocol, "settings": trained["settings"],
            "compile_values": compile_values(compile_args),
            **{name: trained[name] for name in ("precision", "replicas", "workers", "global_batch_size", "jit")},
            "train_seconds": round(train_seconds, 1),
            "generator_sha256": hashlib.sha256((run_dir / SCORED_GENERATOR).read_bytes()).hexdigest()}


def best_epoch(run, history):
    """{"epochs": trained, "best epoch": the one (from 1) whose run.monitor is best}, as best.weights.h5 keeps."""
    values = history.get(run.monitor)
    if not values:
        raise ValueError(f"{run.name} is scored at its best epoch by {run.monitor}, which its history lacks")
    best = (np.nanargmax if monitor_mode(run.monitor) == "max" else np.nanargmin)(values)
    return {"epochs": len(values), "best epoch": int(best) + 1}


def train_with_pretraining(run, settings, out_dir, runtime=Runtime(), overrides=None, start_from=None):
    """train(), after the run's pretraining phase (in out_dir/pretrain) if it has one and no start_from (a model
    to fine-tune, see chroma.train_run.initial_model) replaces it. settings: the run's (Run.settings_for)."""
    pretrained = start_from
    if run.pretrain is not None and start_from is None:
        print(f"{run.name}: pretraining phase", file=sys.stderr)
        pretrained = train(run.pretraining_run(), run.pretrain.settings(settings), Path(out_dir) / "pretrain",
                           runtime)
    return train(run, settings, out_dir, runtime, start_from=pretrained, overrides=overrides)


def epoch_losses(history):
    """{"d_loss, first epoch": ..., "g_loss, last epoch": ...} from a run's per-epoch history."""
    return {f"{name}, {which} epoch": history[name][index]
            for name in ("d_loss", "g_loss") if history.get(name)
            for which, index in (("first", 0), ("last", -1))}


def sample_column(title, colorize, dataset):
    """One column of figure 7's layout (original, grayscale, then each model): (title, RGB images) of the
    dataset's first images. colorize: batch -> predicted ab (scoring_mode), None for "original" (the truth) and
    "grayscale"; a model sees them at its own size."""
    batch = first_images(dataset)
    scaled_l, scaled_ab = batch["L"], batch["ab"]
    if title == "original":
        ab = scaled_ab
    elif colorize is None:
        ab = tf.zeros_like(scaled_ab)
    else:
        ab = colorize(batch)
    return title, list(np.asarray(color.scaled_lab_to_rgb(scaled_l, ab)))


def diverse_columns(colorize, dataset, count):
    """Figure 4's layout: gray input, original, then `count` colorizations by `colorize`, a generator with its
    dropout on (scoring_mode(..., dropout=True))."""
    batch = first_images(dataset)
    scaled_l, scaled_ab = batch["L"], batch["ab"]
    columns = [("grayscale", color.scaled_lab_to_rgb(scaled_l, tf.zeros_like(scaled_ab))),
               ("original", color.scaled_lab_to_rgb(scaled_l, scaled_ab))]
    columns += [(f"sample {index}", color.scaled_lab_to_rgb(scaled_l, colorize(batch)))
                for index in range(1, count + 1)]
    return [(title, list(np.asarray(images))) for title, images in columns]


def first_images(dataset, count=SAMPLE_IMAGES):
    """The first `count` images of a batched dataset, as one batch (L, ab, caption, ...)."""
    return next(iter(dataset.unbatch().take(count).batch(count)))
