"""What every trainable colorizer shares: a generator from L to ab, scored in Lab."""

import warnings

import keras
import tensorflow as tf

from chroma.models.generator import Generator


class ColorizationModel(keras.Model):
    """Wraps a Generator (batch dict -> {"ab", ...}, see chroma.models.generator) for `fit`.

    Batches are the dicts of `chroma.data.make_dataset`, which the generator
    reads as they are: "L", and what its batch_inputs name. Subclasses write
    `train_step` and `test_step`, name their losses with `track_losses` and
    report them with `record_losses`. Compiled metrics (e.g.
    `chroma.metrics.ColorizationMetric`) see concat(L, ab) for the truth and
    for the prediction.
    """

    def __init__(self, generator, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(generator, Generator):
            raise TypeError(f"{type(self).__name__} trains a chroma.models.generator.Generator (a batch dict in, "
                            f'{{"ab", ...}} out), got {type(generator).__name__}')
        self.generator = generator
        self.loss_trackers = {}

    def call(self, batch, training=False):
        """A batch dict (or a train step's stacked batches, of which the first) -> scaled ab (B,H,W,2), float32.

        float32 whatever the generator's last layer computes in: a network of the user's own may end in its
        mixed-precision compute dtype, and scoring and drawing read ab as float32.
        """
        return tf.cast(self.generator(first_batch(batch), training=training)["ab"], tf.float32)

    def networks(self):
        """The trainable networks, by attribute name; subclasses add theirs (the discriminator)."""
        return {"generator": self.generator}

    def copy_networks_from(self, other):
        """Starts from the networks another trained model shares with this one (fine-tuning after
        pretraining); the others, and the optimizers, start afresh."""
        shared = self.networks().keys() & other.networks().keys()
        if not shared:
            raise ValueError(f"{type(other).__name__} shares no network with {type(self).__name__}")
        for name in shared:
            self.networks()[name].set_weights(other.networks()[name].get_weights())

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        # Under a strategy Keras builds the metrics by calling this with (batch, None, predicted ab).
        if y is None and isinstance(x, dict):
            return self.score(first_batch(x), y_pred)
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def track_losses(self, *names):
        self.loss_trackers = {name: keras.metrics.Mean(name=name) for name in names}

    def record_losses(self, batch, **values):
        """Adds each loss to its running mean, weighted by the images it was computed on.

        Per-image weights keep an epoch's value the mean over images even for a
        short last batch (and for the empty step Keras may run at the end of a
        dataset of unknown length, which would otherwise count as a batch).
        """
        images = tf.cast(tf.shape(batch["L"])[0], tf.float32)
        for name, value in values.items():
            value = tf.where(images > 0, tf.cast(value, tf.float32), 0.0)
            self.loss_trackers[name].update_state(value, sample_weight=images)

    @property
    def metrics(self):
        # Our trackers replace Keras's own "loss" tracker, which these steps never fill.
        compiled = [self._compile_metrics] if self._compile_metrics is not None else []
        return list(self.loss_trackers.values()) + compiled

    @keras.Model.jit_compile.setter
    def jit_compile(self, value):
        # Keras refuses XLA for a model holding any layer without XLA kernels, but the layers that make a
        # generator's inputs from strings (the caption tokenizer) run in tf.data, never in a step.
        in_data = {id(layer) for feature in self.generator.batch_inputs().values()
                   if feature.source != "L" and isinstance(feature.compute, keras.layers.Layer)
                   for layer in feature.compute._flatten_layers()}
        unsupported = [layer.name for layer in self._flatten_layers()
                       if id(layer) not in in_data and not layer.supports_jit]
        if value and unsupported:
            warnings.warn(f"{', '.join(unsupported)} cannot be compiled with XLA: {self.name} runs uncompiled",
                          stacklevel=2)
            value = False
        self._jit_compile = value

    @staticmethod
    def build_optimizer(optimizer, variables):
        """Creates an optimizer's slots now, in the strategy's scope, rather than inside a replica's step."""
        if not optimizer.built:
            optimizer.build(variables)

    @staticmethod
    def unpack(data):
        """The batch dict, whether Keras passes it alone (fit on a dataset) or as (x, y, weights)."""
        batch, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return batch

    batches_per_step = 1  # how many batches a train step reads (ConditionalGAN's update ratios)

    def split_batches(self, data):
        """A train step's batches: [data] itself, or the `batches_per_step` batches stacked on axis 1."""
        count = self.batches_per_step
        stacked = data["L"].shape.rank == 5
        if count == 1 and not stacked:
            return [data]
        if not stacked or data["L"].shape[1] != count:
            raise ValueError(
                f"{type(self).__name__} updates on {count} different batches per train step: fit it on "
                f"chroma.training.stack_batches(dataset, {count}), got batches of shape {data['L'].shape}"
            )
        return [{key: value[:, index] for key, value in data.items()} for index in range(count)]

    @staticmethod
    def replicas():
        """Replicas whose gradients the optimizer sums: losses are divided by it (global-batch mean)."""
        return tf.distribute.get_strategy().num_replicas_in_sync

    def score(self, data, predicted_ab):
        """Updates the compiled metrics and returns every tracked value."""
        scaled_l = data["L"]
        return super().compute_metrics(
            scaled_l,
            tf.concat([scaled_l, data["ab"]], axis=-1),
            tf.concat([scaled_l, tf.cast(predicted_ab, scaled_l.dtype)], axis=-1),
        )

    def get_compile_config(self):
        # A saved colorizer is for inference: optimizers and losses belong to the recipe in experiments/.
        return None

    def get_config(self):
        return {**super().get_config(), "generator": keras.saving.serialize_keras_object(self.generator)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        return cls(**config)


def first_batch(batch):
    """A batch dict, or the first of a train step's batches stacked on axis 1 (see stack_batches).

    Keras builds a model under a distribution strategy by calling it on a
    batch of the training data, which for an update ratio is stacked.
    """
    if batch["L"].shape.rank == 5:
        return {key: value[:, 0] for key, value in batch.items()}
    return batch
