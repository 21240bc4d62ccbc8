"""Score any colorizer on a dataset and lay the scores out as a results table.

A colorizer here is any function from a batch (the dataset's dict: L, ab,
caption, label) to predicted scaled ab, so trained models, baseline0 and the
reference rows (gray output, the ground truth itself) are scored alike; an
estimator that predicts lightness too returns {"L", "ab"}.
"""

import tensorflow as tf

from chroma import color
from chroma.metrics import ActivationStatistics, ColorizationMetric, frechet_distance, lpips_distance, unit_lab

# PSNR and SSIM are what the papers report; every paper also notes they reward
# grayish output, hence colourfulness beside them.
DEFAULT_METRICS = ("psnr", "ssim", "mse_8bit", "l1_ab", "uiqi", "colorfulness")

COLUMN_TITLES = {
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "mse_8bit": "MSE (8-bit)",
    "mse_unit": "MSE (unit)",
    "l1_ab": "L1 ab",
    "auc_ab": "AuC (ab, %)",  # Zhang, Isola & Efros 2016, section 3.1 (chroma.metrics.auc)
    "uiqi": "UIQI",
    "colorfulness": "colourfulness",
    "lpips": "LPIPS",
    "fid": "FID",
    # Paper agosti's FID and LPIPS, on Lab mapped to [0, 1] read as RGB (chroma.metrics.unit_lab).
    "fid_lab_as_rgb": "FID (Lab read as RGB)",
    "lpips_lab_as_rgb": "LPIPS (Lab read as RGB)",
    # Paper agosti's torchmetrics scores, on Lab mapped to [0, 1] (chroma.metrics.keras_metrics).
    "psnr_torchmetrics": "PSNR (dB, torchmetrics, Lab)",
    "ssim_torchmetrics": "SSIM (torchmetrics, Lab)",
    "uiqi_torchmetrics": "UIQI (torchmetrics, Lab)",
}


BASELINE0_NAME = "baseline0 (mean colour per gray level)"  # chroma.models.baseline0, every table's floor


def gray_prediction(batch):
    """The colorizer that adds no colour: ab = 0."""
    return tf.zeros_like(batch["ab"])


def ground_truth(batch):
    """The true colours: a reference row (its PSNR is the round-trip cap)."""
    return batch["ab"]


def _rgb(scaled_lab):
    return color.scaled_lab_to_rgb(scaled_lab[..., :1], scaled_lab[..., 1:])


# The metrics that need a pretrained network: {metric key: (the network, "lpips" or "fid", as the asset naming its
# weights; the images it is fed, from scaled Lab)}. The *_lab_as_rgb ones feed it what paper agosti's authors fed
# torchmetrics: scaled Lab mapped to [0, 1], read as if RGB.
NETWORK_METRICS = {
    "lpips": ("lpips", _rgb),
    "fid": ("fid", _rgb),
    "lpips_lab_as_rgb": ("lpips", unit_lab),
    "fid_lab_as_rgb": ("fid", unit_lab),
}


class _MeanLPIPS:
    """The mean LPIPS over every image pair given."""

    def __init__(self, model):
        self.model, self.total, self.count = model, 0.0, 0

    def update(self, true_images, predicted_images):
        distances = lpips_distance(true_images, predicted_images, self.model)
        self.total += float(tf.reduce_sum(distances))
        self.count += int(tf.size(distances))

    def result(self):
        return self.total / self.count


class _FID:
    """FID between the set of true images and the set of predicted ones, given batch by batch."""

    def __init__(self, model):
        self.model, self.real, self.colorized = model, ActivationStatistics(), ActivationStatistics()

    def update(self, true_images, predicted_images):
        self.real.update(self.model(true_images))
        self.colorized.update(self.model(predicted_images))

    def result(self):
        return frechet_distance(*self.real.statistics(), *self.colorized.statistics())


def evaluate(colorizer, dataset, metrics=DEFAULT_METRICS, lpips_model=None, fid_model=None):
    """Mean of each metric over every image of a batched `dataset`.

    "lpips" and "lpips_lab_as_rgb" need `lpips_model` (a chroma.metrics.LPIPS
    with real weights), "fid" and "fid_lab_as_rgb" need `fid_model`
    (chroma.metrics.fid_inception("imagenet")); without one the value is None:
    random weights would measure nothing. FID is not a mean over images but a
    distance between the true and colorized image sets.
    """
    models = {"lpips": lpips_model, "fid": fid_model}
    scorers = {"lpips": _MeanLPIPS, "fid": _FID}
    networked = {name: (scorers[network](models[network]), images)
                 for name, (network, images) in NETWORK_METRICS.items()
                 if name in metrics and models[network] is not None}
    names = [name for name in metrics if name not in NETWORK_METRICS]
    trackers = [ColorizationMetric(name) for name in names]
    # One pass: the colorizer runs once per batch, and a decoded dataset is read once, whatever the metrics.
    for batch in dataset:
        scaled_l = batch["L"]
        prediction = colorizer(batch)
        # An estimator that predicts lightness too (villarenteria's own baseline0) answers {"L", "ab"}; a colorizer
        # answers ab and keeps the input's L.
        predicted_l, predicted_ab = ((prediction["L"], prediction["ab"]) if isinstance(prediction, dict)
                                     else (scaled_l, prediction))
        true_lab = tf.concat([scaled_l, batch["ab"]], axis=-1)
        # A network of the user's own may answer in its mixed-precision compute dtype.
        predicted_lab = tf.concat([tf.cast(predicted_l, tf.float32), tf.cast(predicted_ab, tf.float32)], axis=-1)
        for tracker in trackers:
            tracker.update_state(true_lab, predicted_lab)
        for scorer, images in networked.values():
            scorer.update(images(true_lab), images(predicted_lab))
    scores = {name: float(tracker.result()) for name, tracker in zip(names, trackers)}
    for name in metrics:
        if name in NETWORK_METRICS:
            scores[name] = networked[name][0].result() if name in networked else None
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
