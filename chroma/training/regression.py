"""A colorizer trained by regression: the papers' CNN baselines and generator pretraining."""

import keras
import tensorflow as tf

from chroma.losses import RECONSTRUCTION_LOSSES, labelled_cross_entropy
from chroma.training.colorization_model import ColorizationModel


@keras.saving.register_keras_serializable(package="chroma")
class RegressionColorizer(ColorizationModel):
    """Fits a generator to the true ab with an L1 or MSE loss.

    `compile(optimizer, loss="l1" | "mse", classification_weight=0.0, metrics=None)`.
    A generator that also classifies (its call returns {"ab", "class_logits"},
    as paper efthymiadis' CNN + classifier) adds `classification_weight` times
    the cross-entropy on the batch's labels (sigma = 1/300 in its equation 3);
    images without a label (-1) do not count. The logged `loss` is the total,
    averaged over the global batch under any strategy.
    """

    def compile(self, optimizer, loss="l1", classification_weight=0.0, metrics=None, **kwargs):
        if loss not in RECONSTRUCTION_LOSSES:
            raise ValueError(f"unknown reconstruction loss {loss!r}; choose from {sorted(RECONSTRUCTION_LOSSES)}")
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        self.reconstruction_loss = RECONSTRUCTION_LOSSES[loss]
        self.classification_weight = classification_weight
        self.track_losses("loss", *(["reconstruction_loss", "classification_loss"] if classification_weight else []))
        if self.generator.built:
            self.build_optimizers()

    def build_optimizers(self):
        """Creates the optimizer's variables, e.g. before restoring a checkpoint into them."""
        self.build_optimizer(self.optimizer, self.generator.trainable_variables)

    def losses_of(self, data, training):
        """(predicted ab, {loss name: value}) for one batch; "loss" is what is minimised."""
        outputs = self.generator(self.generator_inputs(data), training=training)
        predicted_ab = outputs["ab"] if isinstance(outputs, dict) else outputs
        reconstruction = self.reconstruction_loss(data["ab"], predicted_ab)
        if not self.classification_weight:
            return predicted_ab, {"loss": reconstruction}
        classification = labelled_cross_entropy(data["label"], outputs["class_logits"])
        total = reconstruction + self.classification_weight * classification
        return predicted_ab, {"loss": total, "reconstruction_loss": reconstruction,
                              "classification_loss": classification}

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
