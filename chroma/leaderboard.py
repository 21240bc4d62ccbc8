"""`chroma leaderboard`: every trained run of one scale, any paper, beside baseline0 and the gray image, scored
alike on one common evaluation set, each metric with a 95% bootstrap interval so a reader sees which gaps are real.

Protocol. The evaluation images are read at a common resolution R (square, as training reads them). Each model
sees their L resized to its own input size (bilinear with antialiasing, as chroma.data.preprocess resizes
photos for training) with the rest of the batch as it is (a caption model's caption); its ab is resized back to R
(bilinear, as an exported model upsamples it) and joined with the R-sized L. Every model runs as an exported
one does, in inference mode (MODE), whatever mode its paper's table is scored in. baseline0 (fitted at R on its own
data spec) and the gray image (ab = 0) go through the same steps. Every metric is then taken per image at R:
PSNR, SSIM, L1 ab, colourfulness and its distance from the true image's, LPIPS and FID where their pretrained
weights are given.

Intervals. The images are resampled with replacement `resamples` times from a seeded generator, the same draws for
every model and metric, and a metric's interval is the 2.5th and 97.5th percentile of its mean over the resamples.
FID is no mean over images: each resample takes the same rows of the true and the colorized images' Inception
features and computes the Fréchet distance again, for at most FID_RESAMPLES of the draws.

Writes runs/leaderboard/<scale>/: LEADERBOARD.md, leaderboard.json and side_by_side.png (the first evaluation
image colorized by every model).
"""

import datetime
import gc
import json
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from chroma import color, evaluation, reports, reproduce
from chroma.data.specs import dataset_from_spec
from chroma.export import RUN_FILE, SCORED_GENERATOR, scored_generator
from chroma.metrics import LPIPS, colorfulness, fid_inception, frechet_distance, l1_ab, lpips_distance, psnr, ssim
from chroma.provenance import code_version
from chroma.recipes import known_experiments, load_experiment

FOLDER = "leaderboard"  # runs/<FOLDER>/<scale>/, which run discovery skips
DEFAULT_RESOLUTION = 256
# Smoke scale: the two bundled photos every smoke recipe holds out of training, baseline0 fitted on the others.
SMOKE_EVAL_DATA = "samples?skip=6"
SMOKE_BASELINE_DATA = "samples?take=6"
# Paper scale: the same COCO val2017 slice for every paper; baseline0 on a train2017 slice of the papers' size.
PAPER_EVAL_DATA = "coco:{coco}?split=val2017&take=5000"
PAPER_BASELINE_DATA = "coco:{coco}?split=train2017&take=8000"
# With more images than Inception's 2048 features, each FID resample takes a square root of a 2048x2048 matrix:
# about 20 s on 2 CPU cores, so 200 resamples add over an hour per model.
FID_RESAMPLES = 200
INTERVAL = "95% percentile bootstrap over images"
MODE = "in inference mode (dropout off, batch norm's moving averages)"
METRICS = ("psnr", "ssim", "l1_ab", "colorfulness", "colorfulness_gap", "lpips", "fid")
TITLES = {**{name: evaluation.COLUMN_TITLES[name] for name in METRICS if name in evaluation.COLUMN_TITLES},
          "colorfulness_gap": "|Δ colourfulness|"}
# The pretrained networks the metrics read (--asset NAME=PATH); the runs' own are their recipes' ASSETS.
METRIC_ASSETS = {**reproduce.METRIC_ASSETS,
                 "lpips": "LPIPS weights of --lpips-network's network, a .npz converted as chroma/metrics/lpips.py "
                          "explains; without them LPIPS stays empty"}
GRAY = "gray (ab = 0)"
BASELINE0 = evaluation.BASELINE0_NAME
FILES = ("LEADERBOARD.md", "leaderboard.json", "side_by_side.png")


class Contender(NamedTuple):
    """A row of the board: a trained run (paper, run_key, run_dir), or baseline0 or gray (those three None)."""

    name: str
    paper: str = None
    run_key: str = None
    run_dir: Path = None


class Scores(NamedTuple):
    """What a model's pass over the evaluation set leaves: {metric: per-image values (N,)}, the colorized images'
    FID features (N, 2048) or None, and the first image colorized (RGB, R x R x 3)."""

    per_image: dict
    features: np.ndarray
    first_image: np.ndarray


def leaderboard(scale, runs_root="runs", eval_data=None, coco=None, out_dir=None, assets=None, baseline_data=None,
                resolution=DEFAULT_RESOLUTION, resamples=1000, seed=0, lpips_network="alex", batch_size=8):
    """Scores every run under runs_root/<paper>/<scale>/ with baseline0 and gray; returns the paths of FILES.

    eval_data, baseline_data: data specs (defaults: data_specs). assets: {"lpips": .npz of `lpips_network`'s
    weights, "fid": "imagenet" or a .h5, and what the runs' generators read when loaded (a recipe's ASSETS)}.
    out_dir: default runs_root/leaderboard/<scale>. A run that has not finished, or whose generator does not load,
    is listed as not scored, with why.
    """
    eval_spec, baseline_spec = data_specs(scale, coco, eval_data, baseline_data)
    assets = dict(assets or {})
    check_assets(assets)
    runs = find_runs(runs_root, scale)
    if not runs:
        print(f"leaderboard: no trained run found under {Path(runs_root).as_posix()}/*/{scale}/; run `make "
              f"reproduce-<paper> SCALE={scale}` first. Scoring baseline0 and gray alone.", file=sys.stderr)
    lpips_model = LPIPS(lpips_network, weights=assets["lpips"]) if "lpips" in assets else None
    fid_model = fid_inception(assets["fid"]) if "fid" in assets else None
    dataset = dataset_from_spec(eval_spec, resolution, batch_size)

    def load(contender):
        return load_contender(contender, baseline_spec, resolution, batch_size, assets)

    rows, not_scored, images = score_contenders([Contender(GRAY), Contender(BASELINE0), *runs], load, dataset,
                                                lpips_model, fid_model, resamples, seed)
    protocol = {
        "scale": scale, "eval_data": eval_spec, "images": images, "resolution": resolution,
        "resize": "model input: L bilinear with antialiasing; output: ab bilinear back to the resolution",
        "mode": MODE,
        "baseline_data": baseline_spec, "resamples": resamples, "fid_resamples": min(resamples, FID_RESAMPLES),
        "seed": seed, "interval": INTERVAL, "lpips_network": lpips_network if lpips_model is not None else None,
        "assets": assets, "code": code_version(),
    }
    out_dir = Path(out_dir) if out_dir is not None else Path(runs_root) / FOLDER / scale
    return write_board(out_dir, protocol, rows, not_scored, next(iter(dataset.unbatch().take(1))))


def score_contenders(contenders, load, dataset, lpips_model, fid_model, resamples, seed):
    """(rows sorted by PSNR, best first, each with its "metrics" and "first_image"; the contenders not scored, with
    why; the number of images). load(contender) -> (colorize, input size); one generator is in memory at a time."""
    true_features = inception_features(dataset, fid_model) if fid_model is not None else None
    rows, not_scored, images, indices = [], [], None, None
    for number, contender in enumerate(contenders, start=1):
        print(f"leaderboard: scoring {contender.name} ({number} of {len(contenders)})", file=sys.stderr)
        try:
            colorize, image_size = load(contender)
        except (OSError, ValueError, TypeError) as error:
            not_scored.append({**contender_fields(contender), "not_scored": str(error)})
            continue
        scores = score_colorizer(colorize, image_size, dataset, lpips_model, fid_model)
        del colorize
        gc.collect()
        if indices is None:
            images = len(scores.per_image["psnr"])
            indices = resample_indices(images, resamples, seed)
        rows.append({**contender_fields(contender), "image_size": image_size,
                     "metrics": summarise(scores, true_features, indices), "first_image": scores.first_image})
    rows.sort(key=lambda row: -row["metrics"]["psnr"]["value"])
    return rows, not_scored, images


def write_board(out_dir, protocol, rows, not_scored, first):
    """Writes FILES to out_dir; returns their paths. first: the evaluation set's first image (its L, ab, name),
    which side_by_side.png shows gray (the gray row's output), colorized by every other row, and original."""
    columns = [(row["name"], row["first_image"]) for row in rows]
    columns.sort(key=lambda column: column[0] != GRAY)  # stable: the others stay in the board's order
    columns.append(("original", color.scaled_lab_to_rgb(first["L"], first["ab"]).numpy()))
    md_path, json_path, figure_path = (Path(out_dir) / name for name in FILES)
    reports.image_mosaic(columns, figure_path,
                        f"Leaderboard, {protocol['scale']} scale: {first['name'].numpy().decode()} "
                        f"({protocol['eval_data']})")
    board = {"protocol": protocol,
             "models": [{key: value for key, value in row.items() if key != "first_image"} for row in rows],
             "not_scored": not_scored, "figure": {"file": figure_path.name, "columns": [title for title, _ in columns]}}
    json_path.write_text(json.dumps(board, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(markdown(board), encoding="utf-8")
    return md_path, json_path, figure_path


def data_specs(scale, coco=None, eval_data=None, baseline_data=None):
    """(evaluation spec, baseline0's spec): those given, else the scale's defaults; at paper scale the defaults are
    COCO slices, so without coco both must be given."""
    if scale == "smoke":
        return eval_data or SMOKE_EVAL_DATA, baseline_data or SMOKE_BASELINE_DATA
    if scale != "paper":
        raise ValueError(f"unknown scale {scale!r}; choose smoke or paper")
    if coco is None and (eval_data is None or baseline_data is None):
        raise ValueError("a paper-scale leaderboard scores every model on COCO val2017 and fits baseline0 on "
                         "train2017: give --coco ROOT, or both --eval-data SPEC and --baseline-data SPEC")
    return (eval_data or PAPER_EVAL_DATA.format(coco=coco), baseline_data or PAPER_BASELINE_DATA.format(coco=coco))


def find_runs(runs_root, scale):
    """A Contender per run folder runs_root/<paper>/<scale>/<run key>/ (holding run.json or generator.keras), sorted
    by paper, then in its recipe's order (else by key); named "<paper>: <the recipe's run name, else the key>"."""
    runs_root = Path(runs_root)
    folders = {path.parent for name in (RUN_FILE, SCORED_GENERATOR) for path in runs_root.glob(f"*/{scale}/*/{name}")
               if path.parent.parent.parent.name != FOLDER}
    by_paper = {}
    for folder in folders:
        by_paper.setdefault(folder.parent.parent.name, []).append(folder)
    installed = known_experiments()
    contenders = []
    for paper in sorted(by_paper):
        names = {run.key: run.name for run in load_experiment(paper).RUNS} if paper in installed else {}
        order = list(names)
        for folder in sorted(by_paper[paper], key=lambda folder: (
                order.index(folder.name) if folder.name in order else len(order), folder.name)):
            contenders.append(Contender(f"{paper}: {names.get(folder.name, folder.name)}", paper, folder.name, folder))
    return contenders


def check_assets(assets):
    """Refuses asset names that neither the metrics nor the installed recipes' runs read, listing those they do."""
    known = dict(METRIC_ASSETS)
    for paper in known_experiments():
        known.update(load_experiment(paper).ASSETS)
    unknown = sorted(assets.keys() - known.keys())
    if unknown:
        listed = "".join(f"\n  {name}: {text}" for name, text in known.items())
        raise ValueError(f"the leaderboard reads no asset named {', '.join(unknown)}. Its assets (the metrics', and "
                         f"those the recipes' generators read when loaded):{listed}")


def load_contender(contender, baseline_spec, resolution, batch_size, assets):
    """(colorize, its input size): colorize(batch) -> scaled ab at that size, from a batch at that size."""
    if contender.name == GRAY:
        return evaluation.gray_prediction, resolution
    if contender.name == BASELINE0:
        baseline0 = evaluation.fit_baseline0(baseline_spec, resolution, batch_size)
        return (lambda batch: baseline0(batch)["ab"]), resolution
    generator, image_size = scored_generator(contender.run_dir, assets)
    return (lambda batch: generator(batch, training=False)["ab"]), image_size


def contender_fields(contender):
    return {"name": contender.name, "paper": contender.paper, "run_key": contender.run_key,
            "run_folder": contender.run_dir.as_posix() if contender.run_dir is not None else None}


def score_colorizer(colorize, image_size, dataset, lpips_model=None, fid_model=None):
    """Scores of `colorize` (a batch at image_size -> scaled ab) on a batched dataset read at the common resolution,
    each image's L resized to image_size and its ab back, as the module docstring says."""
    per_image = {name: [] for name in METRICS if name != "fid"}
    features, first_image = [], None
    for batch in dataset:
        scaled_l, true_ab = batch["L"], batch["ab"]
        resolution = scaled_l.shape[1]
        if image_size != resolution:
            small_l = tf.image.resize(scaled_l, (image_size, image_size), method="bilinear", antialias=True)
            batch = {**batch, "L": small_l}
        # A network of the user's own may answer in its mixed-precision compute dtype.
        predicted_ab = tf.cast(colorize(batch), tf.float32)
        if image_size != resolution:
            predicted_ab = tf.image.resize(predicted_ab, (resolution, resolution), method="bilinear")
        true_rgb = color.scaled_lab_to_rgb(scaled_l, true_ab)
        predicted_rgb = color.scaled_lab_to_rgb(scaled_l, predicted_ab)
        predicted_colorfulness = colorfulness(predicted_rgb)
        values = {"psnr": psnr(true_rgb, predicted_rgb), "ssim": ssim(true_rgb, predicted_rgb),
                  "l1_ab": l1_ab(true_ab, predicted_ab), "colorfulness": predicted_colorfulness,
                  "colorfulness_gap": tf.abs(predicted_colorfulness - colorfulness(true_rgb))}
        if lpips_model is not None:
            values["lpips"] = lpips_distance(true_rgb, predicted_rgb, lpips_model)
        for name, batch_values in values.items():
            per_image[name].append(np.asarray(batch_values, np.float64))
        if fid_model is not None:
            features.append(np.asarray(fid_model(predicted_rgb), np.float64))
        if first_image is None:
            first_image = predicted_rgb[0].numpy()
    return Scores({name: np.concatenate(values) for name, values in per_image.items() if values},
                  np.concatenate(features) if features else None, first_image)


def inception_features(dataset, fid_model):
    """FID's features of the dataset's true images, (N, 2048): the same for every model, so taken once."""
    return np.concatenate([np.asarray(fid_model(color.scaled_lab_to_rgb(batch["L"], batch["ab"])), np.float64)
                           for batch in dataset])


def resample_indices(count, resamples, seed):
    """(resamples, count) image indices drawn with replacement by a generator seeded with `seed`; None for fewer
    than 2 images, which have no interval."""
    if count < 2:
        return None
    return np.random.default_rng(seed).integers(0, count, size=(resamples, count))


def mean_interval(values, indices):
    """(low, high): the 2.5th and 97.5th percentiles of the mean of `values` over each resample of `indices`."""
    if indices is None:
        return None
    low, high = np.percentile(values[indices].mean(axis=1), (2.5, 97.5))
    return float(low), float(high)


def fid(true_features, predicted_features):
    """FID between two sets of feature rows: the Fréchet distance of their means and covariances."""
    return frechet_distance(true_features.mean(axis=0), np.cov(true_features, rowvar=False),
                            predicted_features.mean(axis=0), np.cov(predicted_features, rowvar=False))


def in_shared_span(true_features, predicted_features):
    """Both feature sets in the coordinates of an orthonormal basis of their rows' span, where it is smaller than the
    feature space. Every mean and covariance of their rows lies in that span, so FID is the same there, and its
    matrix square root is of the span's size (4x4 for 2 images, not 2048x2048)."""
    stacked = np.concatenate([true_features, predicted_features])
    if len(stacked) >= stacked.shape[1]:
        return true_features, predicted_features
    basis, _ = np.linalg.qr(stacked.T)
    return true_features @ basis, predicted_features @ basis


def fid_interval(true_features, predicted_features, indices):
    """(FID, its interval or None): the interval from the same rows of both sets resampled, the first FID_RESAMPLES
    draws of `indices`."""
    if len(true_features) < 2:
        return None, None
    true_features, predicted_features = in_shared_span(true_features, predicted_features)
    value = fid(true_features, predicted_features)
    if indices is None:
        return value, None
    distances = [fid(true_features[rows], predicted_features[rows]) for rows in indices[:FID_RESAMPLES]]
    low, high = np.percentile(distances, (2.5, 97.5))
    return value, (float(low), float(high))


def summarise(scores, true_features, indices):
    """{metric: {"value", "low", "high"}} for every metric of METRICS; None where a network was not given."""
    summary = {}
    for name in METRICS:
        value, interval = None, None
        if name == "fid" and scores.features is not None:
            value, interval = fid_interval(true_features, scores.features, indices)
        elif name in scores.per_image:
            value, interval = float(scores.per_image[name].mean()), mean_interval(scores.per_image[name], indices)
        low, high = interval if interval is not None else (None, None)
        summary[name] = {"value": value, "low": low, "high": high}
    return summary


def cell(summary):
    """"value [low, high]", or the value alone without an interval."""
    if summary["value"] is None or summary["low"] is None:
        return reports.format_value(summary["value"])
    return (f"{reports.format_value(summary['value'])} [{reports.format_value(summary['low'])}, "
            f"{reports.format_value(summary['high'])}]")


def markdown(board):
    """LEADERBOARD.md's text from leaderboard.json's content."""
    protocol = board["protocol"]
    scale, size = protocol["scale"], protocol["resolution"]
    images = protocol["images"]
    heading = f"# Leaderboard, {scale} scale: every trained run on {protocol['eval_data']} at {size}x{size}"
    lines = [heading + (" (a check of the machinery; its numbers mean little)" if scale == "smoke" else ""), ""]
    if scale == "smoke":
        lines += [f"At smoke scale these numbers mean little: {images} held-out photos, small networks trained for "
                  "minutes, pretrained parts with random weights. What this board checks is the machinery: every "
                  "run found, scored the same way, with its intervals and its place in the figure. Compare models "
                  "on the paper-scale board.", ""]
    interval = (f"in brackets its interval ({INTERVAL}: {protocol['resamples']} resamples, FID's "
                f"{protocol['fid_resamples']}, seed {protocol['seed']})" if images >= 2
                else f"no interval: {images} image is too few to resample")
    lines += [
        f"Written {datetime.date.today().isoformat()} by chroma.leaderboard. Every model is scored on the same "
        f"{images} images read at {size}x{size}: its input L resized to its own size (bilinear, antialiased), its "
        f"ab resized back (bilinear) and joined with the {size}x{size} L; every model runs {MODE}, whatever "
        f"its paper's table does; baseline0 is fitted on "
        f"{protocol['baseline_data']}. Each cell is the mean over the images and {interval}; {reports.MISSING} "
        "marks a metric whose network was not given (--asset lpips=FILE.npz, --asset fid=imagenet). Higher is "
        "better for PSNR and SSIM, lower for L1 ab, |Δ colourfulness|, LPIPS and FID; colourfulness alone "
        "rewards neither.", "",
        reports.markdown_row(["model", "input (px)", *(TITLES[name] for name in METRICS)]),
        "|---|" + "---:|" * (len(METRICS) + 1),
    ]
    lines += [reports.markdown_row([model["name"], model["image_size"], *(cell(model["metrics"][name])
                                                                          for name in METRICS)])
              for model in board["models"]]
    if board["not_scored"]:
        lines += ["", "Not scored:", ""]
        lines += [f"- {entry['name']}: {entry['not_scored']}" for entry in board["not_scored"]]
    lines += ["", f"![each model's colorization of the first image]({board['figure']['file']})"]
    return "\n".join(lines) + "\n"
