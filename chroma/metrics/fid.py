"""FID, the Fréchet Inception Distance of Heusel, Ramsauer, Unterthiner, Nessler & Hochreiter 2017, "GANs Trained
by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium"; paper 003 reports it (section III.F, table 1).

Both image sets go through a frozen Inception-v3 up to its 2048-d average pool; each set's features are summed up
as a Gaussian (mean, covariance) and FID is the Fréchet distance between the two Gaussians. Identical sets score 0;
lower is better (paper 003's section III.F says the opposite, but its table 1 and text treat lower as better).

The network is keras.applications.InceptionV3 without its top. TTUR, pytorch-fid and torchmetrics (which paper 003
used) all run the 2015 TensorFlow Inception graph instead, so chroma's FIDs compare with each other, not with
published values. Nothing is downloaded: `weights="imagenet"` reads the Keras cache file (see
`fid_inception`), `weights=None` gives random weights, right for tests of the mechanics only.
"""

import warnings

import keras
import numpy as np
import scipy.linalg

from chroma import color
from chroma.models.blocks import keras_weights_path

INPUT_SIZE = 299
FEATURES = 2048
KERAS_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
# The diagonal offset TTUR's fid.py and pytorch-fid add when the covariance product has no finite square root.
SINGULAR_OFFSET = 1e-6


def fid_inception(weights=None):
    """RGB (B,H,W,3) in [0, 1], any size -> Inception-v3's average-pooled features (B, 2048); frozen.

    Args:
        weights: None (random, tests only), "imagenet" (only from the Keras cache file, $KERAS_HOME or ~/.keras,
            then models/KERAS_WEIGHTS_FILE; never downloaded) or a local .h5 path of the same weights.
    """
    network = keras.applications.InceptionV3(
        include_top=False,
        pooling="avg",
        input_shape=(INPUT_SIZE, INPUT_SIZE, 3),
        weights=keras_weights_path(
            weights, KERAS_WEIGHTS_FILE, "fid_inception",
            "Copy the file there (keras.applications.InceptionV3(include_top=False, weights='imagenet') on a machine "
            "with internet writes it), or pass weights=<local .h5 path>, or weights=None for random weights (tests "
            "only: they measure nothing).",
        ),
    )
    rgb = keras.Input((None, None, 3))
    # Antialiasing only changes downsizing, where Parmar, Zhang & Zhu 2022 ("On Aliased Resizing and Surprising
    # Subtleties in GAN Evaluation") show aliased resizing shifts FID; chroma's images are mostly upsized.
    resized = keras.layers.Resizing(INPUT_SIZE, INPUT_SIZE, interpolation="bilinear", antialias=True)(rgb)
    # keras.applications.inception_v3.preprocess_input: [0, 255] -> [-1, 1], here from [0, 1].
    scaled = keras.layers.Rescaling(2.0, offset=-1.0)(resized)
    model = keras.Model(rgb, network(scaled), name="fid_inception")
    model.trainable = False  # also keeps batch normalisation in inference mode
    return model


class ActivationStatistics:
    """Mean and covariance of feature vectors accumulated batch by batch, in float64.

    Each batch is merged with the pairwise update of Chan, Golub & LeVeque 1979 ("Updating formulae and a pairwise
    algorithm for computing sample variances"), which avoids the cancellation of summing x x^T over many images.
    """

    def __init__(self):
        self.count = 0
        self.mean = 0.0
        self.scatter = 0.0  # sum over the vectors of (x - mean)(x - mean)^T

    def update(self, features):
        """Adds a batch of feature vectors, (B, D)."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2:
            raise ValueError(f"features must be (batch, dimensions), got shape {features.shape}")
        batch_count = len(features)
        if batch_count == 0:
            return
        batch_mean = features.mean(axis=0)
        centred = features - batch_mean
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.scatter = self.scatter + centred.T @ centred + np.outer(delta, delta) * (self.count * batch_count / total)
        self.mean = self.mean + delta * (batch_count / total)
        self.count = total

    def statistics(self):
        """(mean (D,), covariance (D, D)); the covariance divides by N - 1, as np.cov and the reference FIDs."""
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 feature vectors, got {self.count}")
        return self.mean, self.scatter / (self.count - 1)


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (Dowson & Landau 1982), FID's formula:

        ||mu1 - mu2||^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"means {mu1.shape}, {mu2.shape} and covariances {sigma1.shape}, {sigma2.shape} do not match")
    covariance_mean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covariance_mean).all():
        # Rounding can leave a singular product without a square root (few images, constant features); TTUR's
        # fid.py and pytorch-fid then offset both diagonals slightly.
        warnings.warn(f"the covariance product has no square root; adding {SINGULAR_OFFSET} to both diagonals",
                      RuntimeWarning, stacklevel=2)
        offset = SINGULAR_OFFSET * np.eye(len(mu1))
        covariance_mean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covariance_mean):
        # sigma1 sigma2 is similar to sigma1^(1/2) sigma2 sigma1^(1/2), so its eigenvalues are real and >= 0: an
        # imaginary part is rounding, unless it is large (TTUR's and pytorch-fid's threshold), when the inputs were
        # not covariances.
        if not np.allclose(np.diagonal(covariance_mean).imag, 0.0, atol=1e-3):
            raise ValueError(f"the square root of sigma1 sigma2 has an imaginary part of up to "
                             f"{np.abs(covariance_mean.imag).max():.3g}: are both symmetric positive semi-definite?")
        covariance_mean = covariance_mean.real
    difference = mu1 - mu2
    return float(difference @ difference + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covariance_mean))


def evaluate_fid(colorizer, dataset, model):
    """FID between the true images of a batched chroma dataset and their colorizations.

    `colorizer` maps a batch to scaled ab, as for `chroma.evaluation.evaluate`; both the truth and the prediction
    keep the batch's L. `model` maps RGB in [0, 1] to features: `fid_inception("imagenet")`. FID is biased upwards
    by few images (with fewer than 2049 the covariances are singular): compare FIDs over the same number of images.
    """
    real, colorized = ActivationStatistics(), ActivationStatistics()
    for batch in dataset:
        real.update(model(color.scaled_lab_to_rgb(batch["L"], batch["ab"])))
        colorized.update(model(color.scaled_lab_to_rgb(batch["L"], colorizer(batch))))
    return frechet_distance(*real.statistics(), *colorized.statistics())
