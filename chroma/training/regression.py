"""A colorizer trained by regression: the papers' CNN baselines and generator pretraining."""

import keras
import tensorflow as tf

from chroma.losses import RECONSTRUCTION_LOSSES
from chroma.training.auxiliary_loss import auxiliary_terms
from chroma.training.colorization_model import ColorizationModel


@keras.saving.register_keras_serializable(package="chroma")
class RegressionColorizer(ColorizationModel):
    """Fits a generator to the true ab with an L1 or MSE loss.

    `compile(optimizer, loss="l1" | "mse", auxiliary_losses=(), metrics=None)`.
    A generator that returns more than ab (paper efthymiadis' CNN + classifier:
    {"ab", "class_logits"}) may add AuxiliaryLoss terms (there the weighted
    cross-entropy on the batch's labels, sigma = 1/300 in equation 3). The
    logged `loss` is the total, beside `reconstruction_loss` and each term's
    `<name>_loss` when there are terms, averaged over the global batch under
    any strategy.
    """

    def compile(self, optimizer, loss="l1", auxiliary_losses=(), metrics=None, **kwargs):
        if loss not in RECONSTRUCTION_LOSSES:
            raise ValueError(f"unknown reconstruction loss {loss!r}; choose from {sorted(RECONSTRUCTION_LOSSES)}")
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        self.reconstruction_loss = RECONSTRUCTION_LOSSES[loss]
        self.auxiliary_losses = tuple(auxiliary_losses)
        self.track_losses("loss", *(["reconstruction_loss", *(f"{term.name}_loss" for term in self.auxiliary_losses)]
                                    if self.auxiliary_losses else []))
        if self.generator.built:
            self.build_optimizers()

    def build_optimizers(self):
        """Creates the optimizer's variables, e.g. before restoring a checkpoint into them."""
        self.build_optimizer(self.optimizer, self.generator.trainable_variables)

    def losses_of(self, data, training):
        """(predicted ab, {loss name: value}) for one batch; "loss" is what is minimised."""
        outputs = self.generator(data, training=training)
        predicted_ab = outputs["ab"]
        reconstruction = self.reconstruction_loss(data["ab"], predicted_ab)
        if not self.auxiliary_losses:
            return predicted_ab, {"loss": reconstruction}
        auxiliary, auxiliary_total = auxiliary_terms(self.auxiliary_losses, data, outputs)
        return predicted_ab, {"loss": reconstruction + auxiliary_total, "reconstruction_loss": reconstruction,
                              **auxiliary}

    def train_step(self, data):
        data = self.unpack(data)
        variables = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            predicted_ab, losses = self.losses_of(data, training=True)
            scaled_loss = self.optimizer.scale_loss(losses["loss"] / self.replicas())
        self.optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        self.record_losses(data, **losses)
        return self.score(data, predicted_ab)

    def test_step(self, data):
        data = self.unpack(data)
        predicted_ab, losses = self.losses_of(data, training=False)
        self.record_losses(data, **losses)
        return self.score(data, predicted_ab)
