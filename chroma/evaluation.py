"""Score any colorizer on a dataset and lay the scores out as a results table.

A colorizer here is any function from a batch (the dataset's dict: L, ab,
caption, label) to predicted scaled ab, so trained models, baseline0 and the
reference rows (gray output, the ground truth itself) are scored alike.
"""

import tensorflow as tf

from chroma import color
from chroma.metrics import ActivationStatistics, ColorizationMetric, frechet_distance, lpips_distance

# PSNR and SSIM are what the papers report; every paper also notes they reward
# grayish output, hence colourfulness beside them.
DEFAULT_METRICS = ("psnr", "ssim", "mse_8bit", "l1_ab", "uiqi", "colorfulness")

COLUMN_TITLES = {
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "mse_8bit": "MSE (8-bit)",
    "mse_unit": "MSE (unit)",
    "l1_ab": "L1 ab",
    "uiqi": "UIQI",
    "colorfulness": "colourfulness",
    "lpips": "LPIPS",
    "fid": "FID",
    # Paper agosti's torchmetrics scores, on Lab mapped to [0, 1] (chroma.metrics.keras_metrics).
    "psnr_torchmetrics": "PSNR (dB, torchmetrics, Lab)",
    "ssim_torchmetrics": "SSIM (torchmetrics, Lab)",
    "uiqi_torchmetrics": "UIQI (torchmetrics, Lab)",
}


def gray_prediction(batch):
    """The colorizer that adds no colour: ab = 0."""
    return tf.zeros_like(batch["ab"])


def ground_truth(batch):
    """The true colours: a reference row (its PSNR is the round-trip cap)."""
    return batch["ab"]


def evaluate(colorizer, dataset, metrics=DEFAULT_METRICS, lpips_model=None, fid_model=None):
    """Mean of each metric over every image of a batched `dataset`.

    "lpips" needs `lpips_model` (a chroma.metrics.LPIPS with real weights),
    "fid" needs `fid_model` (chroma.metrics.fid_inception("imagenet")); without
    one the value is None: random weights would measure nothing. FID is not a
    mean over images but a distance between the true and colorized image sets.
    """
    # One pass: the colorizer runs once per batch, and a decoded dataset is read once, whatever the metrics.
    lpips = lpips_model if "lpips" in metrics else None
    fid = fid_model if "fid" in metrics else None
    lpips_total, lpips_count = 0.0, 0
    real, colorized = ActivationStatistics(), ActivationStatistics()
    names = [name for name in metrics if name not in ("lpips", "fid")]
    trackers = [ColorizationMetric(name) for name in names]
    for batch in dataset:
        scaled_l = batch["L"]
        # A network of the user's own may answer in its mixed-precision compute dtype.
        predicted_ab = tf.cast(colorizer(batch), tf.float32)
        true_lab = tf.concat([scaled_l, batch["ab"]], axis=-1)
        predicted_lab = tf.concat([scaled_l, predicted_ab], axis=-1)
        for tracker in trackers:
            tracker.update_state(true_lab, predicted_lab)
        if lpips is not None or fid is not None:
            true_rgb = color.scaled_lab_to_rgb(scaled_l, batch["ab"])
            predicted_rgb = color.scaled_lab_to_rgb(scaled_l, predicted_ab)
        if lpips is not None:
            distances = lpips_distance(true_rgb, predicted_rgb, lpips)
            lpips_total += float(tf.reduce_sum(distances))
            lpips_count += int(tf.size(distances))
        if fid is not None:
            real.update(fid(true_rgb))
            colorized.update(fid(predicted_rgb))
    scores = {name: float(tracker.result()) for name, tracker in zip(names, trackers)}
    if "lpips" in metrics:
        scores["lpips"] = lpips_total / lpips_count if lpips is not None else None
    if "fid" in metrics:
        scores["fid"] = frechet_distance(*real.statistics(), *colorized.statistics()) if fid is not None else None
    return scores


def titled(scores):
    """{metric key: value} -> {column title: value}, as results tables show them."""
    return {COLUMN_TITLES.get(name, name): value for name, value in scores.items()}


def column_titles(metrics=DEFAULT_METRICS):
    """The results table's columns for `metrics` (metric keys), in order: what titled() keys scores by."""
    return [COLUMN_TITLES.get(name, name) for name in metrics]


def scored_row(model, scores, note=None):
    """A row of chroma.reports.write_results: `model` with its scores ({metric key: value})."""
    return {"model": model, "ours": titled(scores), **({"note": note} if note is not None else {})}


def fit_baseline0(train_data, image_size, batch_size, report=None, drop_gray=False, progress_every=None):
    """baseline0 (chroma.models.baseline0) fitted in one pass over a data spec: the floor every model must beat.
    progress_every: print the images seen to stderr every that many batches (None: quiet)."""
    import sys

    from chroma.data.specs import dataset_from_spec
    from chroma.models.baseline0 import MeanColorBaseline

    model = MeanColorBaseline()
    model.compile()
    images = 0
    for count, batch in enumerate(dataset_from_spec(train_data, image_size, batch_size, report, drop_gray=drop_gray),
                                  start=1):
        model.train_step(batch)
        images += int(batch["L"].shape[0])
        if progress_every and count % progress_every == 0:
            print(f"baseline0: {images} images", file=sys.stderr)
    return model


def model_colorizer(path, image_size=None, assets=None):
    """(colorizer, the square size it reads) for a model file: a SavedModel, scored through its colorize_lab
    signature (TensorFlow alone, no chroma code), or a .keras generator (or a trained model around one) trained
    at image_size, loaded with `assets` (chroma.export.load_keras_model). A caption model gets each image's
    caption."""
    from pathlib import Path

    from chroma.export import METADATA_FILE, is_saved_model, load_generator

    path = Path(path)
    if is_saved_model(path):
        signature = tf.saved_model.load(str(path)).signatures["colorize_lab"]
        size = signature.structured_input_signature[1]["scaled_l"].shape[1]
        takes_caption = "caption" in signature.structured_input_signature[1]

        def colorize(batch):
            inputs = {"scaled_l": batch["L"], **({"caption": batch["caption"]} if takes_caption else {})}
            return signature(**inputs)["scaled_ab"]

        return colorize, size
    if path.is_dir():
        raise ValueError(f"{path} is a folder but not a SavedModel (no saved_model.pb; {METADATA_FILE} is beside it "
                         "in one)")
    if image_size is None:
        raise ValueError(f"{path}: a .keras model needs --image-size, the size it was trained at")
    generator = load_generator(path, assets)
    return (lambda batch: generator(batch, training=False)["ab"]), image_size
