"""The `chroma` command. Each subcommand declares its flags next to its handler, which calls the library.

Flags several commands share (the recipe, the runtime, the data) are declared once, as option groups built from
the library's own names (chroma.recipes.SCALES, chroma.runtime.STRATEGIES and PRECISIONS, chroma.limits.MAX_PIXELS).
TensorFlow is imported inside the handlers so that `chroma --help` answers at once.
"""

import argparse
import importlib.metadata
import os
import sys
import time
from pathlib import Path

from chroma.limits import MAX_INSTANCES, MAX_PIXELS, REQUEST_TIMEOUT
from chroma.recipes import OVERRIDABLE, SCALES, known_experiments
from chroma.runtime import PRECISIONS, STRATEGIES


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def asset_argument(text):
    """'NAME=PATH' -> (name, path), for --asset."""
    name, separator, path = text.partition("=")
    if not separator or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, path


DATA_SPEC_HELP = (
    "where images come from: 'samples' (the colour photos bundled with scikit-image), "
    "a folder of images (searched recursively; first-level subfolders are class labels), "
    "a TFRecord folder written by 'chroma data build' (with '?max_damaged=F', the fraction of its records a run "
    "may find damaged and go on without; default 0.01), or 'coco:ROOT' for COCO 2017 "
    "(ROOT/<split>/*.jpg and ROOT/annotations/*.json), optionally with a query such as "
    "'coco:/data/coco?split=train2017&take=8000&skip=0&seed=0' for a seeded random subset; or "
    "'tfds:NAME?split=SPLIT&data_dir=DIR' for a dataset TensorFlow Datasets has prepared in DIR (a folder or "
    "gs://...), e.g. 'tfds:coco_captions/2017?split=train[:8000]&data_dir=gs://bucket/tfds'; never downloaded"
)
SET_HELP = (
    "change a value of the recipe, NAME=VALUE; repeatable; applied last, over the recipe's scale and a run's own "
    f"settings. Settings: {', '.join(OVERRIDABLE)}; and the values its runs compile with, such as g_lr and d_lr "
    "(constant learning rates), lr, reconstruction_weight, adversarial_loss. An unknown name or a value of the "
    "wrong type is refused with the names there are"
)


def add_recipe_options(parser):
    """The recipe, its scale, --set and --asset: what `reproduce` and `train` share."""
    parser.add_argument("experiment", help=f"a paper's name ({', '.join(known_experiments())}: the recipes "
                        "installed with chroma, experiments/ in its repository) or a path to a recipe .py file")
    parser.add_argument("--scale", choices=SCALES, default=SCALES[0],
                        help="whose settings and networks: smoke (small networks, minutes on a CPU) or the paper's "
                        "(default: %(default)s)")
    parser.add_argument("--set", action="append", metavar="NAME=VALUE", help=SET_HELP)
    add_asset_option(parser, "where this machine keeps a pretrained network the recipe or its table's metrics read, "
                     "never downloaded; repeatable. `chroma assets` lists each recipe's names and what each takes; "
                     "an unknown name is refused with them. Smoke runs use random weights without")


def add_asset_option(parser, help_text=None):
    """--asset NAME=PATH: a pretrained network from this machine; for a command that loads a .keras file, the
    SavedModels its layers run, which the file itself may not name (chroma.models.loading)."""
    parser.add_argument("--asset", type=asset_argument, action="append", metavar="NAME=PATH", help=help_text or (
        "for a .keras model whose layers run a pretrained SavedModel (paper bruvik's inception, deeplabv3): the "
        "SavedModel to run, from this machine; a model file never chooses it, and one that names its own is "
        "refused with the NAME to pass; repeatable"))


def add_runtime_options(parser):
    """The strategy, precision and XLA a run trains with (chroma.runtime.Runtime)."""
    parser.add_argument("--strategy", choices=STRATEGIES, default=STRATEGIES[0],
                        help="tf.distribute strategy: one device, all local GPUs, several machines (TF_CONFIG), or "
                        "a TPU (default: %(default)s)")
    parser.add_argument("--tpu", help="TPU address for --strategy tpu ('local' on a TPU VM, or grpc://IP:8470)")
    parser.add_argument("--precision", choices=("auto", *PRECISIONS), default="auto",
                        help="auto (the default): mixed_float16 (with loss scaling) on a GPU, mixed_bfloat16 on a "
                        "TPU or a CPU with native bfloat16 (AVX-512-BF16, AMX), float32 on other CPUs; each run "
                        "prints its choice and why, and records it in run.json")
    parser.add_argument("--jit", action="store_true",
                        help="compile the train and test steps with XLA (GPUs; a TPU compiles them anyway): faster "
                        "steps after a compilation of seconds to minutes per run")


def runtime_of(args):
    """The chroma.runtime.Runtime that add_runtime_options' flags name."""
    from chroma.runtime import Runtime
    from chroma.training import make_strategy

    return Runtime(make_strategy(args.strategy, args.tpu), args.precision, args.jit)


def add_command(commands, name, handler, summary, description):
    """A subcommand whose handler is `handler`; `summary` in `chroma --help`, `description` in its own."""
    command = commands.add_parser(name, help=summary, description=description)
    command.set_defaults(handler=handler)
    return command


def run_baseline0(args):
    from chroma import data, evaluation, reports

    report = data.SkipReport()
    print(f"fitting baseline0 on {args.data} at {args.image_size}x{args.image_size}", file=sys.stderr)
    started = time.perf_counter()
    model = evaluation.fit_baseline0(args.data, args.image_size, args.batch_size, report, drop_gray=args.drop_gray,
                                     progress_every=100)
    print(f"fitted in {time.perf_counter() - started:.1f} s; {report.summary()}", file=sys.stderr)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    model.save(output)
    print(f"saved {output}", file=sys.stderr)

    eval_spec = args.eval_data or args.data
    test = evaluation_data(eval_spec, args.image_size, args.batch_size)
    rows = [evaluation.scored_row(name, evaluation.evaluate(colorizer, test)) for name, colorizer in (
        ("gray (ab = 0)", evaluation.gray_prediction),
        ("baseline0", lambda batch: model(batch)["ab"]),
        ("ground truth", evaluation.ground_truth),
    )]
    columns = evaluation.column_titles()
    print(f"\nbaseline0 on {eval_spec}, {args.image_size}x{args.image_size}:\n")
    print(reports.markdown_table(rows, columns))


def evaluation_data(spec, image_size, batch_size):
    from chroma.data.specs import dataset_from_spec

    return dataset_from_spec(spec, image_size, batch_size)


def add_baseline0(commands):
    command = add_command(
        commands, "baseline0", run_baseline0, "fit baseline0 (mean colour per gray level) and print its metrics table",
        "Fit baseline0 (paper villarenteria, section 4.1: the mean colour of each gray level), save it, and print "
        "PSNR / SSIM / MSE / L1 / UIQI / colourfulness beside two reference rows: gray output (ab = 0) and the "
        "ground truth.")
    command.add_argument("--data", default="samples", help=DATA_SPEC_HELP + " (default: samples)")
    command.add_argument("--eval-data", help="data spec to evaluate on (default: the --data images)")
    command.add_argument("--image-size", type=positive_int, default=256,
                         help="square side images are resized to (default: %(default)s)")
    command.add_argument("--batch-size", type=positive_int, default=8, help="images per batch (default: %(default)s)")
    command.add_argument("--drop-gray", action="store_true", help="leave out training images that are already gray")
    command.add_argument("--output", default="saved_models/baseline0.keras",
                         help="where to save the fitted model (default: %(default)s)")


def run_data_build(args):
    from chroma import data
    from chroma.data.specs import parse_data_spec

    location, options = parse_data_spec(args.source)
    source = data.open_source(location, **options)
    report = data.SkipReport()
    metadata = data.write_tfrecords(
        source, args.output, num_shards=args.shards, max_side=args.max_side, report=report
    )
    print(f"wrote {metadata['count']} images to {len(metadata['shards'])} shards in {args.output}, all read back "
          f"whole; {report.summary()}")


def run_data_verify(args):
    from chroma import data

    if not data.is_tfrecord_dir(args.folder):
        raise FileNotFoundError(f"{args.folder} holds no dataset.json: not a folder 'chroma data build' wrote")
    scan = data.verify_tfrecords(args.folder)
    print(scan.summary())
    if scan.damaged:
        print(f"\n{scan.table()}")
    if scan.lost or scan.problems:
        return 1
    print("all well")
    return 0


def add_data(commands):
    data_commands = commands.add_parser("data", help="prepare datasets", description="Prepare datasets.") \
        .add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    build = add_command(
        data_commands, "build", run_data_build, "write sharded TFRecords from any image source",
        "Decode every image of a source once (converting CMYK, 16-bit, alpha and palette images, skipping "
        "unreadable ones) and write sharded TFRecords that training reads at full speed. OUTPUT may be a gs:// "
        "path for TPUs.")
    build.add_argument("source", help=DATA_SPEC_HELP)
    build.add_argument("-o", "--output", required=True, help="output folder (local or gs://)")
    build.add_argument("--shards", type=positive_int, default=8, help="number of TFRecord files (default: %(default)s)")
    build.add_argument("--max-side", type=positive_int, default=512,
                       help="longer image side kept, in pixels (default: %(default)s)")
    verify = add_command(
        data_commands, "verify", run_data_verify, "read every record of a TFRecord folder and report damaged shards",
        "Read every record of every shard of a folder 'chroma data build' wrote (local or gs://), in parallel: "
        "check each record's CRCs, decode each image, and compare the counts with dataset.json. Prints a table of "
        "the damaged shards and where each is damaged. Exit status 0 when all is well, 1 when a record is damaged "
        "or missing or the counts disagree. A run reading a damaged folder leaves those records out, and refuses "
        "it when more than a fraction are (the data spec's ?max_damaged=F, default 0.01).")
    verify.add_argument("folder", help="the TFRecord folder (local or gs://)")


def run_reproduce(args):
    from chroma import recipes, reproduce, training
    from chroma.train_run import parse_overrides
    from chroma.training.hardware import check_tpu_data, is_chief

    experiment = recipes.load_experiment(args.experiment)
    if args.estimate_batch is not None and args.estimate is None:
        raise ValueError("--estimate-batch sets the batch --estimate STEPS measures at: give --estimate too")
    overrides = parse_overrides(args.set, recipes.hyperparameters(experiment, args.scale),
                                recipes.select_runs(experiment, args.run))
    if args.estimate is not None:
        return run_estimate(experiment, args, overrides)
    if args.strategy == "tpu":
        check_tpu_data(reproduce.training_data(experiment, args.scale, args.coco, args.data, args.run))
    runtime = runtime_of(args)
    try:
        md_path, csv_path = reproduce.reproduce(
            experiment, args.scale, runs_root=args.runs_dir, coco=args.coco, data=args.data,
            assets=dict(args.asset or []), run_keys=args.run, runtime=runtime,
            process_per_run=process_per_run(args), overrides=overrides)
    except training.RunStopped as error:
        print(f"chroma: {error}", file=sys.stderr)
        raise SystemExit(1) from error
    print(Path(md_path).read_text())
    writer = "wrote" if is_chief(runtime.strategy) else "the chief wrote"  # the other workers write none
    print(f"{writer} {md_path}, {csv_path} and RESULTS.md", file=sys.stderr)


def run_estimate(experiment, args, overrides):
    from chroma.estimate import cost_table, estimate

    if args.scale != "paper":
        raise ValueError("--estimate projects the paper's recipe: use it with --scale paper")
    costs = estimate(experiment, args.estimate, coco=args.coco, data=args.data, assets=dict(args.asset or []),
                     run_keys=args.run, runtime=runtime_of(args), measured_batch=args.estimate_batch,
                     overrides=overrides)
    print(f"{experiment.TITLE}: cost of the paper's recipe on this machine ({args.estimate} steps measured a phase)")
    print(cost_table(costs))


def process_per_run(args):
    """--process-per-run as given, else on for paper scale on one machine, where runs take gigabytes."""
    if args.process_per_run is not None:
        return args.process_per_run
    return args.scale == "paper" and args.strategy in ("default", "mirrored")


def add_reproduce(commands):
    command = add_command(
        commands, "reproduce", run_reproduce,
        "train and score every model of a paper, write its results table and figures",
        "Train (or resume) every run of a paper's recipe (chroma.experiments.<paper>), score it on the held-out "
        "images, and write runs/<paper>/<scale>/results.md and .csv (our figures beside the paper's), loss curves, "
        "a sample grid, and the top-level RESULTS.md. Rerunning resumes each run from its last checkpoint.")
    add_recipe_options(command)
    command.add_argument("--coco", help="COCO 2017 root for --scale paper (train2017/, val2017/, annotations/)")
    command.add_argument("--data", help="for --scale paper: the paper's other dataset, as a data spec (e.g. paper "
                         "efthymiadis' ImageNet class folders)")
    command.add_argument("--run", action="append", help="train only this run (a Run key of the recipe); repeatable")
    command.add_argument("--runs-dir", default="runs", help="where runs are written (default: %(default)s)")
    add_runtime_options(command)
    command.add_argument(
        "--process-per-run", action=argparse.BooleanOptionalAction, default=None,
        help="train, score and draw each run in a process of its own, so the recipe's peak memory is its largest "
        "run's (TensorFlow's oneDNN allocator keeps what a run used until its process ends); on by default with "
        "--scale paper and a single-machine strategy, off otherwise")
    command.add_argument(
        "--estimate", type=int, metavar="STEPS",
        help="with --scale paper: train each run (and its pretraining) STEPS steps at the paper's settings on "
        "stand-in photos, and print seconds per step, images/s, peak memory and the projected hours of the paper's "
        "whole recipe on this machine (its steps from the data --coco and --data locate); writes nothing to the "
        "runs directory")
    command.add_argument(
        "--estimate-batch", type=int, metavar="N",
        help="with --estimate, for a paper's batch this machine cannot hold: measure each phase at batches of N and "
        "2N and project its step time and peak memory to the paper's batch along the line through both")


def run_leaderboard(args):
    from chroma.leaderboard import leaderboard

    paths = leaderboard(args.scale, runs_root=args.runs_root, eval_data=args.eval_data, coco=args.coco,
                        out_dir=args.out, assets=dict(args.asset or []), baseline_data=args.baseline_data,
                        resolution=args.resolution, resamples=args.resamples, lpips_network=args.lpips_network)
    print(paths[0].read_text())
    print(f"wrote {', '.join(str(path) for path in paths)}", file=sys.stderr)


def add_leaderboard(commands):
    command = add_command(
        commands, "leaderboard", run_leaderboard,
        "score every trained run of a scale, any paper, beside baseline0 and gray, with bootstrap intervals",
        "Score every run 'chroma reproduce' left under RUNS_ROOT/<paper>/<scale>/ (its generator.keras), baseline0 "
        "and the gray image on one common evaluation set read at one resolution: each model sees L resized to its "
        "own input size, its ab is resized back and joined with the full-resolution L. Metrics per image: PSNR, "
        "SSIM, L1 ab, colourfulness and its distance from the truth's, LPIPS and FID with their --asset; each with "
        "a 95% bootstrap interval over the images (FID: its features resampled, at most 200 times). Writes "
        "LEADERBOARD.md, leaderboard.json and side_by_side.png (the first evaluation image colorized by every "
        "model) to --out. A run not finished, or whose generator does not load, is listed as not scored.")
    command.add_argument("--scale", choices=SCALES, default=SCALES[0],
                         help="whose runs: runs/<paper>/<scale>/ (default: %(default)s)")
    command.add_argument("--runs-root", default="runs", help="where the runs are (default: %(default)s)")
    command.add_argument("--eval-data", help="the common evaluation set (default: 'samples?skip=6' at smoke scale, "
                         "the bundled photos every smoke run holds out; 'coco:ROOT?split=val2017&take=5000' at paper "
                         "scale, from --coco): " + DATA_SPEC_HELP)
    command.add_argument("--coco", help="COCO 2017 root (val2017/, train2017/, annotations/): the paper scale's "
                         "default evaluation and baseline0 data; at paper scale give it, or both --eval-data and "
                         "--baseline-data")
    command.add_argument("--baseline-data", help="data spec baseline0 is fitted on (default: 'samples?take=6' at "
                         "smoke scale, 'coco:ROOT?split=train2017&take=8000' at paper scale)")
    command.add_argument("--resolution", type=positive_int, default=256,
                         help="the square side, in pixels, every image is read and scored at (default: %(default)s)")
    command.add_argument("--resamples", type=positive_int, default=1000,
                         help="bootstrap resamples of the images per interval (default: %(default)s)")
    add_asset_option(command, "a pretrained network from this machine, never downloaded; repeatable: lpips=FILE.npz "
                     "(LPIPS weights, see --lpips-network), fid=imagenet or fid=FILE.h5 (FID's Inception-v3), and "
                     "what the runs' generators read when loaded (their recipes' assets, `chroma assets`). Without "
                     "lpips or fid their columns stay empty")
    command.add_argument("--lpips-network", choices=("alex", "vgg"), default="alex",
                         help="the feature network the lpips asset's weights are for (default: %(default)s)")
    command.add_argument("--out", help="folder for the three files (default: RUNS_ROOT/leaderboard/<scale>)")


def run_assets(args):
    from chroma import recipes
    from chroma.reproduce import known_assets

    for name in [args.experiment] if args.experiment else recipes.known_experiments():
        experiment = recipes.load_experiment(name)
        print(f"{experiment.PAPER}:")
        for asset, meaning in known_assets(experiment).items() or {"(none)": "it reads no pretrained network"}.items():
            print(f"  {asset}: {meaning}")


def add_assets(commands):
    command = add_command(
        commands, "assets", run_assets, "list the pretrained networks each recipe reads (--asset NAME=PATH)",
        "List, for each recipe (or the one named), the pretrained networks its runs and its table's metrics read "
        "from --asset NAME=PATH, and what each value may be. Nothing is ever downloaded.")
    command.add_argument("experiment", nargs="?", help="a paper's name or a recipe .py file (default: every recipe)")


def run_train(args):
    from chroma import recipes, training
    from chroma.train_run import train_one_run

    experiment = recipes.load_experiment(args.experiment)
    try:
        saved_model, md_path, _ = train_one_run(
            experiment, args.run, args.data, args.eval_data, args.output, overrides=args.set, init=args.init,
            export_dir=args.export, scale=args.scale, pretrain_data=args.pretrain_data,
            validation_data=args.validation_data,
            assets=dict(args.asset or []), runtime=runtime_of(args))
    except training.RunStopped as error:
        print(f"chroma: {error}", file=sys.stderr)
        raise SystemExit(1) from error
    print(md_path.read_text())
    print(f"SavedModel {saved_model}; run folder {args.output} (results.md and .json, history, best weights)",
          file=sys.stderr)


def add_train(commands):
    command = add_command(
        commands, "train", run_train,
        "train one run of a paper's recipe on your own photos, export it and score it beside baseline0",
        "Train one run of a paper's recipe (chroma.experiments.<paper>) on any data spec, through the engine "
        "'chroma reproduce' uses (a resumable run folder: rerun the command to resume), then export its generator "
        "as a SavedModel and print its scores beside baseline0's on --eval-data, also written to OUTPUT/results.md "
        "and .csv.")
    add_recipe_options(command)
    command.add_argument("--run", required=True, help="the run to train (a Run key of the recipe, e.g. unet_cgan)")
    command.add_argument("--data", required=True, help="training images: " + DATA_SPEC_HELP)
    command.add_argument("--eval-data", help="data spec it is scored on (default: --data, which flatters it)")
    command.add_argument("--pretrain-data", help="data spec a run's pretraining phase reads (paper efthymiadis' "
                         "COCO; default: --data)")
    command.add_argument("--validation-data", help="data spec it validates on after each epoch (default: "
                         "--eval-data); a run that picks its best epoch needs images apart from both, e.g. "
                         "'FOLDER?take=500' with --data 'FOLDER?skip=500'")
    command.add_argument("-o", "--output", required=True, help="the run folder")
    command.add_argument("--export", help="SavedModel folder (default: OUTPUT/saved_model)")
    command.add_argument("--init", metavar="PATH",
                         help="fine-tune: start from a run folder's best weights or a .keras model (its networks "
                         "that this run has), with fresh optimizers; a network that differs is named")
    add_runtime_options(command)


def run_evaluate(args):
    from chroma import evaluation, reports
    from chroma.provenance import provenance

    colorizer, size = evaluation.model_colorizer(args.model, args.image_size, dict(args.asset or []))
    data = evaluation_data(args.data, size, args.batch_size)
    rows = [evaluation.scored_row(str(args.model), evaluation.evaluate(colorizer, data))]
    if args.baseline_data:
        baseline0 = evaluation.fit_baseline0(args.baseline_data, size, args.batch_size)
        rows.insert(0, evaluation.scored_row("baseline0", evaluation.evaluate(lambda batch: baseline0(batch)["ab"],
                                                                             data)))
    title = f"{args.model} scored on {args.data} at {size}x{size}"
    columns = evaluation.column_titles()
    if args.output:
        md_path, csv_path = reports.write_results(args.output, title, rows, columns, provenance=provenance())
        print(f"wrote {md_path}, {csv_path} and results.json beside them", file=sys.stderr)
    print(f"{title}\n\n{reports.markdown_table(rows, columns)}")


def add_evaluate(commands):
    command = add_command(
        commands, "evaluate", run_evaluate, "score a SavedModel or .keras model on any data, beside baseline0",
        "Score a model on a data spec with chroma's metrics (PSNR, SSIM, MSE, L1 ab, UIQI, colourfulness). A "
        "SavedModel is scored through its colorize_lab signature, so it needs no chroma code; a .keras model needs "
        "--image-size. With --baseline-data, baseline0 fitted there is scored beside it.")
    command.add_argument("--model", required=True, help="a SavedModel folder or a .keras file")
    command.add_argument("--data", required=True, help="images to score on: " + DATA_SPEC_HELP)
    command.add_argument("--baseline-data", help="data spec baseline0 is fitted on, to score it beside the model")
    command.add_argument("--image-size", type=positive_int, help="for a .keras model: the size it was trained at")
    command.add_argument("--batch-size", type=positive_int, default=8, help="images per batch (default: %(default)s)")
    command.add_argument("-o", "--output", help="folder for results.md and results.csv")
    add_asset_option(command)


def run_demo(args):
    from chroma.demo import run_demo as demo

    demo(out_dir=args.out_dir, model_dir=args.model_dir, image_size=args.image_size, epochs=args.epochs)


def add_demo(commands):
    command = add_command(
        commands, "demo", run_demo,
        "train the U-Net cGAN on the bundled photos, score it, export it, colorize a held-out photo",
        "The main job on the photos bundled with scikit-image, in minutes on a CPU: train paper nampouri's U-Net "
        "cGAN (small) on seven photos, print its metrics beside the untrained network and baseline0, write loss "
        "curves and a sample grid, export a SavedModel and colorize the eighth photo at full size. Rerunning "
        "resumes or reuses the trained run.")
    command.add_argument("--out-dir", default="runs/demo", help="results, figures and the run (default: %(default)s)")
    command.add_argument("--model-dir", default="saved_models/demo_unet_cgan",
                         help="where the SavedModel goes (default: %(default)s)")
    command.add_argument("--image-size", type=positive_int, default=64,
                         help="training size in pixels (default: %(default)s)")
    command.add_argument("--epochs", type=positive_int, default=150,
                         help="passes over the seven photos (default: %(default)s)")


def run_export(args):
    from chroma.export import describe_signatures, export_saved_model, load_generator, scored_generator
    from chroma.model_card import scored_result

    assets = dict(args.asset or [])
    result = None
    if Path(args.model).is_dir():
        generator, image_size = scored_generator(args.model, assets)
        result = scored_result(args.model)
        if args.image_size not in (None, image_size):
            raise ValueError(f"{args.model} was trained at {image_size} px (its run.json), not --image-size "
                             f"{args.image_size}")
    elif args.image_size is None:
        raise ValueError(f"--image-size: give the size {args.model} was trained at (a run folder knows its own)")
    else:
        generator, image_size = load_generator(args.model, assets), args.image_size
    output = Path(args.output or Path("saved_models") / Path(args.model).stem)
    if output.exists() and not args.overwrite and (not output.is_dir() or any(output.iterdir())):
        raise ValueError(f"{output} already exists and is not empty; pass --overwrite to replace it")
    if args.tflite:
        from chroma.tflite_export import export_tflite, tflite_refusal

        refusal = tflite_refusal(generator)  # before the SavedModel, so a refused export writes nothing
        if refusal:
            raise ValueError(f"cannot export to TFLite: {refusal}")
    export_saved_model(generator, output, image_size, max_pixels=args.max_pixels, result=result)
    print(f"exported {type(generator).__name__} ({image_size}x{image_size}) to {output}; signatures:")
    for line in describe_signatures(output):
        print(f"  {line}")
    if args.tflite:
        for path in export_tflite(generator, output, image_size):
            print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


def add_export(commands):
    command = add_command(
        commands, "export", run_export,
        "export a trained run or a .keras colorizer as a SavedModel that colorizes photos of any size",
        "Export a run folder that 'chroma reproduce' or 'chroma train' wrote (the generator its results table "
        "scores: its best or its last weights, as the run's protocol says, at the size in its run.json), or a "
        ".keras model (a generator, or a trained model wrapping one), as a TensorFlow SavedModel that needs no "
        "chroma to serve. Signatures: serving_default (a batch of encoded JPEG/PNG/GIF/BMP/WebP photos of one size "
        "-> colorized uint8 RGB at their full size), colorize_encoded (photos of any sizes -> PNGs), "
        "colorize_encoded_as (the same, PNG or JPEG of a quality per photo), colorize_image (uint8 RGB -> the "
        "same), colorize_lab (scaled L -> scaled ab at the training size) and, for a generator with dropout such "
        "as the U-Net, colorize_samples, colorize_samples_encoded and colorize_samples_encoded_as (a photo and N "
        "-> N different colorizations, dropout kept on). A JPEG is turned upright as its EXIF orientation says. "
        "The folder gets a model card, README.md in the Hugging Face format, whose model-index holds the run's "
        "scores from the results.json its command wrote. --tflite adds TensorFlow Lite models.")
    command.add_argument("--model", required=True, help="a run folder (with run.json) or a .keras model file")
    command.add_argument("--image-size", type=positive_int,
                         help="for a .keras model: the square side it was trained at, in pixels")
    command.add_argument("-o", "--output",
                         help="SavedModel folder (default: saved_models/<the model's name, without .keras>)")
    command.add_argument("--overwrite", action="store_true", help="replace an existing SavedModel at --output")
    add_asset_option(command)
    command.add_argument("--max-pixels", type=positive_int, default=MAX_PIXELS, metavar="N",
                         help="the largest image (width x height) the SavedModel's image signatures accept; larger "
                         "ones are refused, from their header, before decoding (default: %(default)s)")
    command.add_argument("--tflite", action="store_true",
                         help="also write TensorFlow Lite models into the SavedModel folder: model.tflite (float32) "
                         "and model_dynamic_range.tflite (int8 weights, about 1/4 the size), each taking uint8 RGB "
                         "(1, S, S, 3) at the training size S and returning colorized, uint8 RGB (1, S, S, 3), and "
                         "scaled_ab, float32 (1, S, S, 2). Caption models, models holding a TF-Hub network and "
                         "models with dropout kept on at inference are refused, before anything is written")


def run_colorize(args):
    from chroma.colorize import colorize_files

    colorize_files(args.inputs, args.model, args.output, image_size=args.image_size, samples=args.samples,
                   assets=dict(args.asset or []))


def add_colorize(commands):
    command = add_command(
        commands, "colorize", run_colorize, "colorize photos (files and folders) at their full size",
        "Colorize every image in the given files and folders (searched recursively) and write each to the output "
        "folder under the same relative path and name, at the same size. Unreadable files are skipped and counted. "
        "Exits with status 2 if none was colorized.")
    command.add_argument("inputs", nargs="+", metavar="INPUT", help="an image file or a folder of images")
    command.add_argument("--model", required=True, help="a SavedModel folder from 'chroma export', or a .keras file")
    command.add_argument("-o", "--output", required=True, help="folder the colorized images are written to")
    command.add_argument("--image-size", type=positive_int, default=256,
                         help="for a .keras model: square side it was trained at (default: %(default)s; a "
                         "SavedModel knows its own)")
    command.add_argument("--samples", type=int, metavar="N",
                         help="write N different colorizations of each image, NAME_sample1.EXT ... NAME_sampleN.EXT: "
                         "the generator's dropout stays on, its only source of noise (paper agosti, figure 4, after "
                         "pix2pix). Needs a generator with dropout, such as the U-Net")
    add_asset_option(command)


def run_serve(args):
    from chroma.serve import serve

    serve(args.model, host=args.host, port=args.port, name=args.name, max_body_mib=args.max_body_mib,
          max_pixels=args.max_pixels, max_in_flight=args.max_in_flight, max_waiting=args.max_waiting,
          timeout=args.timeout, max_instances=args.max_instances, max_request_pixels=args.max_request_pixels,
          allowed_hosts=args.allow_host or ())


def add_serve(commands):
    command = add_command(
        commands, "serve", run_serve,
        "serve a SavedModel over TensorFlow Serving's REST API, with a page to colorize photos in a browser",
        "Serve a SavedModel from 'chroma export' over TensorFlow Serving's REST API (GET /v1/models/NAME, GET "
        "/v1/models/NAME/metadata, POST /v1/models/NAME:predict with {\"instances\": [{\"b64\": ...}]}), so a "
        "client written for TensorFlow Serving works against it, and a page at / where photos dropped or picked "
        "are coloured at their full size. Every refused request gets a JSON error; the server goes on serving. "
        "Ctrl-C or SIGTERM stops it within seconds, a prediction in flight included.")
    command.add_argument("--model", required=True, help="the SavedModel folder")
    command.add_argument("--host", default="127.0.0.1",
                         help="address to listen on (default: %(default)s, this machine only; 0.0.0.0: every network)")
    command.add_argument("--port", type=int, default=8501,
                         help="port (default: %(default)s, TF Serving's REST port; 0: any free one, printed)")
    command.add_argument("--allow-host", action="append", metavar="NAME",
                         help="a Host name requests may use besides this machine's loopback names and the --host "
                         "address (say this machine's name on the network, with --host 0.0.0.0); requests naming "
                         "any other are refused (403), so a web page cannot reach the server through its own "
                         "name (DNS rebinding); repeatable")
    command.add_argument("--name", help="the model's name in URLs (default: the folder's name)")
    command.add_argument("--max-body-mib", type=positive_int, default=64, metavar="MIB",
                         help="the largest request body, base64 photos included (default: %(default)s MiB)")
    command.add_argument("--max-pixels", type=positive_int, metavar="N",
                         help="the largest photo (width x height) served, read from its header before decoding "
                         "(default: the limit the SavedModel was exported with)")
    command.add_argument("--max-instances", type=positive_int, default=MAX_INSTANCES, metavar="N",
                         help="the most instances (photos) one :predict request may hold (default: %(default)s)")
    command.add_argument("--max-request-pixels", type=positive_int, default=MAX_PIXELS, metavar="N",
                         help="the most pixels one request's photos may have together, read from their headers "
                         "(default: %(default)s, 64 Mi: five 12-megapixel photos)")
    command.add_argument("--max-in-flight", type=positive_int, default=1, metavar="N",
                         help="predictions run at once (default: %(default)s: one uses every core)")
    command.add_argument("--max-waiting", type=positive_int, default=16, metavar="N",
                         help="requests that wait for a turn; more are answered 503 (default: %(default)s)")
    command.add_argument("--timeout", type=positive_float, default=REQUEST_TIMEOUT, metavar="SECONDS",
                         help="a request waiting and predicting longer is answered 504; its prediction, which "
                         "cannot be stopped, still holds its turn until it ends, and the caps above keep that short "
                         "(default: %(default)s)")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="chroma", description="Image colorization research, reproduced on one TensorFlow/Keras engine.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {importlib.metadata.version('chroma')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (add_demo, add_reproduce, add_leaderboard, add_train, add_evaluate, add_export, add_colorize, add_serve,
                add_baseline0, add_data, add_assets):
        add(commands)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except (FileNotFoundError, ValueError) as error:
        print(f"chroma: error: {error}", file=sys.stderr)
        return 2


def exit_without_finalizing(status):
    """Flushes stdout and stderr, then ends the process with `status` without finalising the interpreter.

    TensorFlow can deadlock while Python finalises tf.data iterators that a
    training run left open (a run stopped mid-epoch keeps its iterator in
    reference cycles; their map calls call back into Python, whose threads can
    no longer run then); the work is done and flushed by then.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def console_main():
    """The `chroma` executable: main(), then exit_without_finalizing."""
    try:
        status = main()
    except SystemExit as exit:
        status = exit.code if isinstance(exit.code, int) else 1
    exit_without_finalizing(status)


if __name__ == "__main__":
    console_main()
