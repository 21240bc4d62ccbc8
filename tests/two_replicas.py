"""Checks that need two replicas, in one process: TensorFlow must see two logical CPUs before it starts.

Run once per test session by the `two_replicas` fixture (conftest.py), which
parses the JSON it prints; tests/test_training.py and tests/test_metrics.py
assert on it.
"""

import json

import keras
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from chroma.metrics import ColorizationMetric  # noqa: E402
from chroma.training import ConditionalGAN, RegressionColorizer, stack_batches  # noqa: E402
from chroma.models.network_generator import NetworkGenerator  # noqa: E402

STRATEGY = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def generator():
    return NetworkGenerator(keras.Sequential([
        # No bias before batch norm (as in every chroma network): its true gradient is 0, and
        # Adam would turn float noise in it into full-size steps that differ between runs.
        keras.Input((16, 16, 1)), keras.layers.Conv2D(4, 3, padding="same", use_bias=False),
        keras.layers.BatchNormalization(synchronized=True), keras.layers.ReLU(),
        keras.layers.Conv2D(2, 3, padding="same", activation="tanh")]))


def gan():
    """Two D updates per G update, each on its own batch (as agosti's WGAN and WGAN-GP's Algorithm 1 take 5),
    batch norm synchronised in both networks: a GAN at 1:1 runs a subset of this step's ops."""
    discriminator = keras.Sequential([
        keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 4, strides=2, padding="same", use_bias=False),
        keras.layers.BatchNormalization(synchronized=True), keras.layers.LeakyReLU(0.2),
        keras.layers.Conv2D(1, 4, padding="same")])
    model = ConditionalGAN(generator(), discriminator, seed=0, d_steps=2)
    # SGD, not Adam: Adam's step ignores the gradient's scale, so it could not show the loss scaling.
    model.compile(keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1), reconstruction_weight=10.0)
    return model


def regression():
    model = RegressionColorizer(generator())
    model.compile(keras.optimizers.SGD(1.0), loss="mse")
    return model


def one_step_on_two_replicas(make):
    """How far one train step on 2 replicas of 4 images a batch lands from one on batches of 8, and how far it moved."""

    def build():
        keras.utils.set_random_seed(7)
        return make()

    model = build()
    rng = np.random.default_rng(0)
    images = 8 * model.batches_per_step
    data = {"L": rng.uniform(-1, 1, (images, 16, 16, 1)).astype("float32"),
            "ab": rng.uniform(-0.5, 0.5, (images, 16, 16, 2)).astype("float32")}
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(8)  # global batches of 8
    if model.batches_per_step > 1:
        dataset = stack_batches(dataset, model.batches_per_step)  # one train step
    single = build()
    single.fit(dataset, epochs=1, verbose=0)
    with STRATEGY.scope():
        mirrored = build()
    mirrored.fit(dataset, epochs=1, verbose=0)
    worst = max(float(np.abs(a - b).max()) for a, b in zip(single.get_weights(), mirrored.get_weights()))
    moved = max(float(np.abs(a - b).max()) for a, b in zip(single.get_weights(), build().get_weights()))
    return {"worst": worst, "moved": moved}


def metric_state_over_two_replicas():
    """A ColorizationMetric updated on a batch of 3 split 2 + 1 over the replicas."""
    with STRATEGY.scope():
        metric = ColorizationMetric("l1_ab")
    true_lab = np.zeros((3, 4, 4, 3), np.float32)
    pred_lab = np.zeros((3, 4, 4, 3), np.float32)
    pred_lab[..., 1:] = np.float32([0.1, 0.2, 0.6])[:, None, None, None]
    batches = tf.data.Dataset.from_tensor_slices((true_lab, pred_lab)).batch(3)

    @tf.function
    def step(true_batch, pred_batch):
        STRATEGY.run(metric.update_state, args=(true_batch, pred_batch))

    for true_batch, pred_batch in STRATEGY.experimental_distribute_dataset(batches):
        step(true_batch, pred_batch)
    return {"result": float(metric.result()), "count": float(metric.count.numpy())}


if __name__ == "__main__":
    assert STRATEGY.num_replicas_in_sync == 2
    print(json.dumps({"gan": one_step_on_two_replicas(gan), "regression": one_step_on_two_replicas(regression),
                      "metric": metric_state_over_two_replicas()}))
