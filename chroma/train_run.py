"""`chroma train`: one run of a paper's recipe on any data, with settings overridden, optionally fine-tuned.

The run trains through the same engine as `chroma reproduce` (chroma.training.train: resumable run folder,
history, TensorBoard, best weights), then exports its generator as a SavedModel and scores it beside
baseline0 on the evaluation data.
"""

import sys
import time
from pathlib import Path

import tensorflow as tf

from chroma import evaluation, reports
from chroma.data.specs import dataset_from_spec
from chroma.export import export_saved_model, load_keras_model
from chroma.model_card import scored_result
from chroma.provenance import provenance
from chroma.recipes import OVERRIDABLE, hyperparameters, select_runs
from chroma.reproduce import check_protocol, run_record, score_run, train_with_pretraining
from chroma.runtime import Runtime
from chroma.training.colorization_model import ColorizationModel
from chroma.training.trainer import compile_values


def overridable(settings, runs):
    """{name: current value} of what --set may change: the settings OVERRIDABLE names, and every value the
    runs' compile arguments expose (chroma.training.trainer.compile_values: g_lr, reconstruction_weight, ...)."""
    values = {}
    for run in runs:
        values.update({name: value for name, value in compile_values(run.compile_args(1)).items()
                       if name not in values})
    return {**{name: getattr(settings, name) for name in OVERRIDABLE}, **values}


def parse_overrides(assignments, settings, runs):
    """["epochs=5", "g_lr=1e-4"] -> {"epochs": 5, "g_lr": 0.0001}, each typed as the value it replaces (see
    overridable); an unknown name or a value of another type is refused with the names there are."""
    current = overridable(settings, runs)
    changes = {}
    for assignment in assignments or []:
        name, equals, text = assignment.partition("=")
        if not equals:
            raise ValueError(f"--set takes NAME=VALUE, got {assignment!r}")
        if name not in current:
            raise ValueError(f"unknown setting {name!r}; what --set can change here: {', '.join(current)}")
        kind = type(current[name])
        try:
            if kind is bool:
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(text)
                value = text.lower() in ("true", "1")
            else:
                value = kind(text)
        except ValueError:
            raise ValueError(f"--set {name}={text}: {name} is a {kind.__name__} (now {current[name]!r})") from None
        if kind in (int, float) and value < (0 if name == "seed" else 1e-300):
            raise ValueError(f"--set {name}={text}: must be {'0 or more' if name == 'seed' else 'positive'}")
        changes[name] = value
    return changes


def initial_model(path, run, settings):
    """The model of `run` carrying the networks of `path` (fine-tuning): a run folder's best.weights.h5, or a
    .keras model (a trained model's networks, or a generator); its optimizers start afresh."""
    path = Path(path)
    model = run.build(settings)
    model({"L": tf.zeros((1, settings.image_size, settings.image_size, 1))})
    if (path / "best.weights.h5").is_file():
        try:
            model.load_weights(path / "best.weights.h5")
        except ValueError as error:
            raise ValueError(f"--init {path}: its best weights do not fit {run.name}: {error}") from error
    elif path.suffix == ".keras" and path.is_file():
        loaded = load_keras_model(path, settings.assets)
        copy_matching(model, loaded.networks() if isinstance(loaded, ColorizationModel) else {"generator": loaded},
                      path)
    else:
        raise ValueError(f"--init {path}: give a run folder (with best.weights.h5) or a .keras model file")
    return model


def copy_matching(model, networks, path):
    shared = model.networks().keys() & networks.keys()
    if not shared:
        raise ValueError(f"--init {path}: none of its networks ({', '.join(networks)}) is one of "
                         f"{type(model).__name__}'s ({', '.join(model.networks())})")
    for name in sorted(shared):
        copy_variables(model.networks()[name], networks[name].weights, path, name)


def copy_variables(network, variables, path, name="generator"):
    """Assigns `variables` to `network`'s weights in order; the first that differs in shape is named."""
    targets = network.weights
    if len(targets) != len(variables):
        raise ValueError(f"--init {path}: its {name} has {len(variables)} weights, this run's {len(targets)}: "
                         "not the same network")
    for target, value in zip(targets, variables):
        if tuple(target.shape) != tuple(value.shape):
            raise ValueError(f"--init {path}: {name} weight {target.path} is {tuple(target.shape)} here, "
                             f"{tuple(value.shape)} there: not the same network")
    for target, value in zip(targets, variables):
        target.assign(value)


def train_one_run(experiment, run_key, data, eval_data, out_dir, overrides=(), init=None, export_dir=None,
                  scale="smoke", pretrain_data=None, validation_data=None, assets=None,
                  runtime=Runtime(precision="auto")):
    """Trains run `run_key` of `experiment` on data, scores it beside baseline0 on eval_data (out_dir/results.json,
    .md and .csv) and exports it with its scores in its model card.

    Returns (the SavedModel's folder, results.md's path, the --set changes).
    overrides: NAME=VALUE strings over the recipe's settings at `scale` (see OVERRIDABLE), applied last
    (Run.settings_for); pretrain_data: what a run's pretraining phase reads (None: `data`); validation_data:
    what it validates on after each epoch (None: eval_data; a run that picks its best epoch needs its own);
    init: where to start from (see initial_model).
    """
    run, = select_runs(experiment, [run_key])
    settings = hyperparameters(experiment, scale)._replace(
        train_data=data, eval_data=eval_data or data, validation_data=validation_data, pretrain_data=pretrain_data,
        assets=dict(assets or {}))
    changes = parse_overrides(overrides, settings, [run])
    settings = run.settings_for(settings, changes)
    check_protocol(run, settings)
    out_dir = Path(out_dir)
    print(f"{run.name} ({experiment.PAPER}, {scale} recipe) on {data}, scored on {settings.eval_data}"
          + (f"; settings changed: {', '.join(f'{k}={v}' for k, v in changes.items())}" if changes else ""),
          file=sys.stderr)
    start_from = initial_model(init, run, settings) if init else None
    started = time.perf_counter()
    model = train_with_pretraining(run, settings, out_dir, runtime, overrides=changes, start_from=start_from)
    train_seconds = time.perf_counter() - started
    eval_dataset = dataset_from_spec(settings.eval_data, settings.image_size, settings.batch_size,
                                     drop_gray=settings.drop_gray)
    scores, protocol = score_run(run, model, out_dir, eval_dataset, evaluation.DEFAULT_METRICS)
    baseline0 = evaluation.fit_baseline0(settings.train_data, settings.image_size, settings.batch_size,
                                         drop_gray=settings.drop_gray)
    rows = [evaluation.scored_row("baseline0", evaluation.evaluate(lambda batch: baseline0(batch)["ab"],
                                                                    eval_dataset)),
            {**evaluation.scored_row(run.name, scores, note=protocol),
             "run": run_record(experiment, run, settings, out_dir, evaluation.DEFAULT_METRICS, train_seconds)}]
    md_path, _ = reports.write_results(
        out_dir, f"{experiment.PAPER} {run_key} trained on {data}, scored on {settings.eval_data}", rows,
        evaluation.column_titles(), provenance=provenance())
    # Written after the results, so the SavedModel's model card shows the scores.
    saved_model = export_saved_model(model.generator, Path(export_dir or out_dir / "saved_model"),
                                     settings.image_size, result=scored_result(out_dir))
    return saved_model, md_path, changes
