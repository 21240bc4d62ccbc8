"""Paper villarenteria's own baseline0 (section 4.1): the mean RGB of each luma level, lightness predicted too."""

import numpy as np
import pytest
import tensorflow as tf

from chroma import color, evaluation
from chroma.models.mean_rgb_per_luma import MeanRGBPerLuma
from chroma.recipes import load_experiment
from helpers import photo_lab


def photos(size=48):
    """Two real photos as a batch of scaled Lab, and their RGB in [0, 1]."""
    scaled_l, scaled_ab = photo_lab(size, ("astronaut", "coffee"))
    return {"L": scaled_l, "ab": scaled_ab}, color.scaled_lab_to_rgb(scaled_l, scaled_ab).numpy()


def test_each_luma_level_gets_the_mean_rgb_of_its_pixels():
    batch, rgb = photos()
    model = MeanRGBPerLuma().fit(tf.data.Dataset.from_tensors(batch))
    # The 8-bit luma of the standard weights the paper cites (its 0.144 for blue is a typo of 0.114).
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    levels = np.clip(np.round(luma * 255), 0, 255).astype(int).ravel()
    pixels = rgb.reshape(-1, 3)
    for level in np.unique(levels)[::17]:
        np.testing.assert_allclose(model.mean_rgb().numpy()[level], pixels[levels == level].mean(axis=0), atol=1e-5)
    assert model.mean_rgb().numpy()[np.setdiff1d(np.arange(256), levels)[0]].std() < 1e-6  # unseen: its own gray

    predicted = model(batch)
    painted = color.scaled_lab_to_rgb(predicted["L"], predicted["ab"]).numpy().reshape(-1, 3)
    np.testing.assert_allclose(painted, model.mean_rgb().numpy()[levels], atol=5e-3)  # Lab round trip


def test_it_is_scored_on_the_lightness_it_predicts():
    batch, _ = photos()
    dataset = tf.data.Dataset.from_tensors(batch)
    model = MeanRGBPerLuma().fit(dataset)
    own = evaluation.evaluate(model, dataset, ("mse_8bit", "l1_ab"))
    input_lightness = evaluation.evaluate(lambda batch: model(batch)["ab"], dataset, ("mse_8bit", "l1_ab"))
    assert own["l1_ab"] == pytest.approx(input_lightness["l1_ab"])  # the same colours...
    assert abs(own["mse_8bit"] - input_lightness["mse_8bit"]) > 1.0  # ...but on its own L, not the photo's


def test_villarenteria_table_1_puts_the_papers_figures_beside_the_papers_estimator():
    villarenteria = load_experiment("villarenteria")
    (baseline,) = villarenteria.BASELINES
    assert baseline.paper == {"mse_8bit": 444.81, "ssim": 0.9318, "psnr": 24.73}
    assert villarenteria.BASELINE0_PAPER == {}  # chroma's Lab baseline0 is another estimator: no figure of the paper's
    settings = villarenteria.SCALES["smoke"]._replace(image_size=16)
    fitted = baseline.fit(settings)
    assert isinstance(fitted, MeanRGBPerLuma) and float(tf.reduce_sum(fitted.pixel_counts)) == 5 * 16 * 16
