"""A colorizer trained by regression alone: the papers' CNN baselines and generator pretraining."""

import keras
import tensorflow as tf

from chroma.losses import RECONSTRUCTION_LOSSES
from chroma.training.colorization_model import ColorizationModel


@keras.saving.register_keras_serializable(package="chroma")
class RegressionColorizer(ColorizationModel):
    """Fits a generator to the true ab with an L1 or MSE loss.

    `compile(optimizer, loss="l1" | "mse", metrics=None)`; the logged `loss` is
    the reconstruction loss, averaged over the global batch under any strategy.
    """

    def compile(self, optimizer, loss="l1", metrics=None, **kwargs):
        if loss not in RECONSTRUCTION_LOSSES:
            raise ValueError(f"unknown reconstruction loss {loss!r}; choose from {sorted(RECONSTRUCTION_LOSSES)}")
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        self.reconstruction_loss = RECONSTRUCTION_LOSSES[loss]
        self.track_losses("loss")
        if self.generator.built:
            self.build_optimizers()

    def build_optimizers(self):
        """Creates the optimizer's variables, e.g. before restoring a checkpoint into them."""
        self.build_optimizer(self.optimizer, self.generator.trainable_variables)

    def train_step(self, data):
        data = self.unpack(data)
        variables = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            predicted_ab = self.generator(data["L"], training=True)
            loss = self.reconstruction_loss(data["ab"], predicted_ab)
            scaled_loss = self.optimizer.scale_loss(loss / self.replicas())
        self.optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        self.record_losses(data, loss=loss)
        return self.score(data, predicted_ab)

    def test_step(self, data):
        data = self.unpack(data)
        predicted_ab = self.generator(data["L"], training=False)
        self.record_losses(data, loss=self.reconstruction_loss(data["ab"], predicted_ab))
        return self.score(data, predicted_ab)
