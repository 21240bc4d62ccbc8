"""`chroma demo`: the main job end to end on the photos bundled with scikit-image.

Trains paper nampouri's U-Net cGAN (small, so it takes minutes on 2 CPU
cores) on seven bundled photos, scores it against the same network untrained
and against baseline0, draws its loss curves and a sample grid, exports a
SavedModel and colorizes the eighth photo, held out of training, at full size.
"""

import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from chroma import evaluation, reports
from chroma.data import samples, subset
from chroma.data.specs import dataset_from_spec
from chroma.export import export_saved_model
from chroma.provenance import provenance
from chroma.recipes import hyperparameters, load_experiment, select_runs
from chroma.reproduce import sample_column
from chroma.training import read_history, train

TRAIN_DATA = "samples?take=7"
HELD_OUT = dict(take=1, skip=7)  # the same seeded permutation: the one photo not trained on
METRICS = ("psnr", "ssim", "l1_ab", "colorfulness")


def run_demo(out_dir="runs/demo", model_dir="saved_models/demo_unet_cgan", image_size=64, epochs=150):
    out_dir, model_dir = Path(out_dir), Path(model_dir)
    nampouri = load_experiment("nampouri")
    run, = select_runs(nampouri, ["unet_cgan"])
    # The recipe's smoke networks and batch, on 7 photos, at the demo's size and length.
    settings = hyperparameters(nampouri, "smoke")._replace(train_data=TRAIN_DATA, eval_data=TRAIN_DATA,
                                                            image_size=image_size, epochs=epochs)
    keras.utils.set_random_seed(settings.seed)  # the same untrained row on every run
    untrained = run.build(settings)
    model = train(run, settings, out_dir / run.key)

    # Scored on the training photos: the bar is beating baseline0 there.
    photos = dataset_from_spec(TRAIN_DATA, image_size, settings.batch_size)
    baseline0 = evaluation.fit_baseline0(TRAIN_DATA, image_size, settings.batch_size)
    rows = [evaluation.scored_row(name, evaluation.evaluate(colorizer, photos, METRICS)) for name, colorizer in (
        ("gray (ab = 0)", evaluation.gray_prediction),
        ("baseline0", lambda batch: baseline0(batch)["ab"]),
        ("U-Net cGAN, untrained", lambda batch: untrained(batch, training=False)),
        ("U-Net cGAN, trained", lambda batch: model(batch, training=False)),
    )]
    columns = evaluation.column_titles(METRICS)
    table = reports.markdown_table(rows, columns)
    reports.write_results(
        out_dir, f"chroma demo: U-Net cGAN on 7 bundled photos, {image_size}x{image_size}, {epochs} epochs",
        rows, columns, provenance=provenance())
    reports.plot_gan_losses(read_history(out_dir / run.key), out_dir / "losses.png", "U-Net cGAN, demo")
    grid = [sample_column("original", None, photos), sample_column("grayscale", None, photos),
            sample_column("U-Net cGAN", lambda batch: model(batch, training=False), photos)]
    reports.sample_grid(grid, out_dir / "samples.png",
                        "training photos: original, gray, colorized")

    export_saved_model(model.generator, model_dir, image_size)
    held_out = subset(samples(), **HELD_OUT).records[0]
    colorized = tf.saved_model.load(str(model_dir)).signatures["colorize_image"](
        image=tf.constant(held_out.load(max_side=4096)))
    output = out_dir / f"{held_out.name}_colorized.png"
    Image.fromarray(np.asarray(next(iter(colorized.values())))).save(output)

    print(f"\nchroma demo, on the 7 training photos at {image_size}x{image_size}:\n\n{table}\n")
    print(f"results {out_dir / 'results.md'}, loss curves {out_dir / 'losses.png'}, samples {out_dir / 'samples.png'}")
    print(f"SavedModel {model_dir}; held-out photo '{held_out.name}' colorized at full size: {output}", file=sys.stderr)
    return rows
