"""The `chroma` command. Each subcommand parses its flags and calls the library.

TensorFlow is imported inside the handlers so that `chroma --help` answers at once.
"""

import argparse
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import parse_qsl

DATA_SPEC_HELP = (
    "where images come from: 'samples' (the colour photos bundled with scikit-image), "
    "a folder of images (searched recursively; first-level subfolders are class labels), "
    "a TFRecord folder written by 'chroma data build', or 'coco:ROOT' for COCO 2017 "
    "(ROOT/<split>/*.jpg and ROOT/annotations/*.json), optionally with a query such as "
    "'coco:/data/coco?split=train2017&take=8000&skip=0&seed=0' for a seeded random subset"
)


def parse_data_spec(spec):
    """'coco:/x?take=8000&seed=1' -> ('coco:/x', {'take': 8000, 'seed': 1})."""
    location, _, query = spec.partition("?")
    options = {}
    for key, value in parse_qsl(query, strict_parsing=bool(query)):
        if key == "split":
            options["coco_split"] = value
        elif key in ("take", "skip", "seed"):
            options[key] = int(value)
        else:
            raise ValueError(f"unknown option {key!r} in data spec {spec!r} (use split, take, skip, seed)")
    return location, options


def open_dataset(spec, image_size, batch_size, report, **pipeline_options):
    """A batched dataset of dicts (L, ab, caption, label) from a data spec."""
    from chroma import data

    location, options = parse_data_spec(spec)
    if data.is_tfrecord_dir(location):
        source = location
    else:
        source = data.open_source(location, **options)
    return data.make_dataset(
        source, image_size, batch_size=batch_size, report=report, **pipeline_options
    )


def run_baseline0(args):
    import keras

    from chroma import data, evaluation
    from chroma.models.baseline0 import MeanColorBaseline

    report = data.SkipReport()
    train = open_dataset(args.data, args.image_size, args.batch_size, report, drop_gray=args.drop_gray)
    print(f"fitting baseline0 on {args.data} at {args.image_size}x{args.image_size}", file=sys.stderr)
    started = time.perf_counter()
    model = MeanColorBaseline()
    model.compile()
    with warnings.catch_warnings():
        # One pass over a decoded source has no known length, and Keras warns when it ends.
        warnings.filterwarnings("ignore", "Your input ran out of data")
        model.fit(train, epochs=1, shuffle=False, verbose=1 if sys.stderr.isatty() else 2)
    print(f"fitted in {time.perf_counter() - started:.1f} s; {report.summary()}", file=sys.stderr)

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    model.save(output)
    print(f"saved {output}", file=sys.stderr)

    eval_spec = args.eval_data or args.data
    eval_report = data.SkipReport()
    test = open_dataset(eval_spec, args.image_size, args.batch_size, eval_report)
    rows = [
        ("gray (ab = 0)", evaluation.evaluate(evaluation.gray_prediction, test)),
        ("baseline0", evaluation.evaluate(lambda batch: model(batch["L"]), test)),
        ("ground truth", evaluation.evaluate(evaluation.ground_truth, test)),
    ]
    print(f"\nbaseline0 on {eval_spec}, {args.image_size}x{args.image_size}:\n")
    print(evaluation.markdown_table(rows))
    keras.backend.clear_session()


def run_data_build(args):
    from chroma import data

    location, options = parse_data_spec(args.source)
    source = data.open_source(location, **options)
    report = data.SkipReport()
    summary = data.write_tfrecords(
        source, args.output, num_shards=args.shards, max_side=args.max_side, report=report
    )
    print(f"wrote {summary}")
    print(report.summary())


def build_parser():
    parser = argparse.ArgumentParser(
        prog="chroma",
        description="Image colorization research, reproduced on one TensorFlow/Keras engine.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    baseline0 = commands.add_parser(
        "baseline0",
        help="fit baseline0 (mean colour per gray level) and print its metrics table",
        description=(
            "Fit baseline0 (paper villarenteria, section 4.1: the mean colour of each gray "
            "level), save it, and print PSNR / SSIM / MSE / L1 / UIQI / colourfulness beside "
            "two reference rows: gray output (ab = 0) and the ground truth."
        ),
    )
    baseline0.add_argument("--data", default="samples", help=DATA_SPEC_HELP + " (default: samples)")
    baseline0.add_argument("--eval-data", help="data spec to evaluate on (default: the --data images)")
    baseline0.add_argument("--image-size", type=int, default=256, help="square side images are resized to (default: 256)")
    baseline0.add_argument("--batch-size", type=int, default=8, help="images per batch (default: 8)")
    baseline0.add_argument("--drop-gray", action="store_true", help="leave out training images that are already gray")
    baseline0.add_argument("--output", default="saved_models/baseline0.keras", help="where to save the fitted model (default: %(default)s)")
    baseline0.set_defaults(handler=run_baseline0)

    data_command = commands.add_parser("data", help="prepare datasets", description="Prepare datasets.")
    data_commands = data_command.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    build = data_commands.add_parser(
        "build",
        help="write sharded TFRecords from any image source",
        description=(
            "Decode every image of a source once (converting CMYK, 16-bit, alpha and palette "
            "images, skipping unreadable ones) and write sharded TFRecords that training reads "
            "at full speed. OUTPUT may be a gs:// path for TPUs."
        ),
    )
    build.add_argument("source", help=DATA_SPEC_HELP)
    build.add_argument("-o", "--output", required=True, help="output folder (local or gs://)")
    build.add_argument("--shards", type=int, default=8, help="number of TFRecord files (default: 8)")
    build.add_argument("--max-side", type=int, default=512, help="longer image side kept, in pixels (default: 512)")
    build.set_defaults(handler=run_data_build)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"chroma: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
