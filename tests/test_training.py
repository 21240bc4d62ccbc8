"""The engine's models: the cGAN and regression train steps, ratios, distribution and precision."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from chroma.losses import kl_class_loss, l1, labelled_cross_entropy, minimax_discriminator_loss, modified_generator_loss
from chroma.metrics import colorization_metrics
from chroma.training import AuxiliaryLoss, ConditionalGAN, RegressionColorizer, optimizer_for, set_precision, stack_batches
from chroma.models.network_generator import NetworkGenerator
from helpers import ab_of, assert_reloads_identically, photo_lab

SIZE = 16


def tiny_network():
    return keras.Sequential(
        [keras.Input((None, None, 1)), keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
         keras.layers.Conv2D(2, 3, padding="same", activation="tanh", dtype="float32")],
        name="tiny_generator",
    )


def tiny_generator():
    return NetworkGenerator(tiny_network())


def tiny_discriminator():
    return keras.Sequential(
        [keras.Input((None, None, 3)), keras.layers.Conv2D(4, 4, strides=2, padding="same"),
         keras.layers.LeakyReLU(0.2), keras.layers.Conv2D(1, 4, padding="same", dtype="float32")],
        name="tiny_discriminator",
    )


def photo_batch(names=("astronaut", "coffee", "chelsea", "rocket"), size=SIZE):
    scaled_l, scaled_ab = photo_lab(size, names)
    return {"L": scaled_l, "ab": scaled_ab}


def gan(d_steps=1, g_steps=1, generator=None, discriminator=None, **compile_args):
    model = ConditionalGAN(generator or tiny_generator(), discriminator or tiny_discriminator(), seed=0,
                           d_steps=d_steps, g_steps=g_steps)
    args = dict(g_optimizer=keras.optimizers.SGD(0.1), d_optimizer=keras.optimizers.SGD(0.1))
    model.compile(**{**args, **compile_args})
    return model


def test_gan_step_updates_d_first_then_scores_g_with_the_updated_d():
    batch = photo_batch()
    model = gan(reconstruction_weight=100.0, discriminator_loss_weight=0.5)
    model(batch)
    generator, discriminator = model.generator, model.discriminator
    g_before = [w.numpy() for w in generator.trainable_weights]
    d_before = [w.numpy() for w in discriminator.trainable_weights]

    # The pix2pix step by hand, with plain SGD(0.1).
    fake = ab_of(generator, batch["L"])
    real_lab = tf.concat([batch["L"], batch["ab"]], -1)
    fake_lab = tf.concat([batch["L"], fake], -1)
    with tf.GradientTape() as tape:
        d_loss = 0.5 * minimax_discriminator_loss(discriminator(real_lab), discriminator(fake_lab))
    d_expected = [w - 0.1 * g for w, g in zip(d_before, tape.gradient(d_loss, discriminator.trainable_weights))]
    updated_d = tiny_discriminator()
    updated_d.set_weights(d_expected)
    with tf.GradientTape() as tape:
        fake = ab_of(generator, batch["L"])
        g_loss = modified_generator_loss(updated_d(tf.concat([batch["L"], fake], -1))) + 100.0 * l1(batch["ab"], fake)
    g_expected = [w - 0.1 * g for w, g in zip(g_before, tape.gradient(g_loss, generator.trainable_weights))]

    model.train_on_batch(batch)
    for actual, expected in zip(discriminator.get_weights(), d_expected):
        np.testing.assert_allclose(actual, expected, atol=1e-5)
    for actual, expected in zip(generator.get_weights(), g_expected):
        np.testing.assert_allclose(actual, expected, atol=1e-5)


class SeenLightness(keras.layers.Layer):
    """The identity, recording the mean of channel 0 (scaled L) of each input it sees in training."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = tf.Variable(tf.fill([100], np.nan), trainable=False)
        self.count = tf.Variable(0, trainable=False)

    def call(self, inputs, training=False):
        if training:
            self.seen[self.count].assign(tf.reduce_mean(tf.cast(inputs[..., 0], tf.float32)))
            self.count.assign_add(1)
        return inputs

    def batches(self):
        """The batch numbers seen, in order (batch n has L = n / 10), repeats in a row folded."""
        values = np.round(self.seen.numpy()[: int(self.count.numpy())] * 10).astype(int).tolist()
        return [value for index, value in enumerate(values) if index == 0 or value != values[index - 1]]


@pytest.mark.parametrize("d_steps, g_steps", [(5, 1), (1, 5)])
def test_update_ratios_update_on_different_batches(d_steps, g_steps):
    """WGAN-GP's Algorithm 1 and paper bruvik 5.6: k updates of one network on k different batches per update
    of the other; 10 batches of 2 make 2 train steps."""
    d_seen, g_seen = SeenLightness(), SeenLightness()
    model = gan(d_steps, g_steps, NetworkGenerator(keras.Sequential([g_seen, tiny_network()])),
                keras.Sequential([d_seen, tiny_discriminator()]))
    numbered = {"L": (np.repeat(np.arange(10) / 10, 2)[:, None, None, None] * np.ones((1, 8, 8, 1))).astype("float32"),
                "ab": np.zeros((20, 8, 8, 2), "float32")}
    batches = tf.data.Dataset.from_tensor_slices(numbered).batch(2)
    with pytest.raises(ValueError, match=r"stack_batches\(dataset, 5\)"):
        model.fit(batches, epochs=1, verbose=0)  # an update ratio needs its batches stacked
    model.fit(stack_batches(batches, 5), epochs=1, verbose=0)
    assert int(model.d_optimizer.iterations) == 2 * d_steps and int(model.g_optimizer.iterations) == 2 * g_steps
    if d_steps > 1:
        # Each critic update judges its own batch (real, then fake); G then learns from the step's last.
        assert d_seen.batches() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
        assert g_seen.batches() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]  # G colours each batch the critic judges
    else:
        assert g_seen.batches() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]  # a G update for every batch


def test_a_run_epoch_is_one_pass_in_steps_of_several_batches_and_each_schedule_ends_with_the_run(tmp_path):
    """train() with 2 critic updates per step: an epoch of 4 batches is 2 steps, 4 critic and 2 G updates; paper
    agosti's recipe anneals each optimizer over its own updates, so both reach their floor at the last step."""
    from chroma.recipes import load_experiment
    from chroma.training import Run, Settings, train

    agosti = load_experiment("agosti")
    run = Run("ratio", "cGAN with 2 critic steps", lambda settings: ConditionalGAN(
        tiny_generator(), tiny_discriminator(), seed=0, d_steps=2), agosti.recipe("bce", d_steps=2),
        paper={}, metrics=("l1_ab",))
    settings = Settings(train_data="samples?take=4", eval_data="samples?skip=6", image_size=16, batch_size=1,
                        epochs=2)
    model = train(run, settings, tmp_path, verbose=0)
    assert (int(model.g_optimizer.iterations), int(model.d_optimizer.iterations)) == (2 * 2, 2 * 4)
    assert json.loads((tmp_path / "run.json").read_text())["steps_per_epoch"] == 2
    floor = 2e-4 * agosti._FINAL_LEARNING_RATE_FRACTION
    for optimizer in (model.g_optimizer, model.d_optimizer):
        assert float(optimizer.learning_rate) == pytest.approx(floor)
        assert float(optimizer._learning_rate(int(optimizer.iterations) - 1)) > floor * 1.001  # not before


def test_fit_and_evaluate_log_losses_and_metrics():
    model = gan(
        d_steps=2, adversarial_loss="wgan-gp", metrics=colorization_metrics(("l1_ab", "psnr")),
        g_optimizer=keras.optimizers.Adam(1e-3), d_optimizer=keras.optimizers.Adam(1e-3),
    )
    dataset = tf.data.Dataset.from_tensor_slices(photo_batch()).batch(2)
    history = model.fit(stack_batches(dataset, 2), epochs=2, verbose=0, validation_data=dataset).history
    for name in ("d_loss", "g_adversarial_loss", "g_reconstruction_loss", "gradient_penalty", "l1_ab", "psnr"):
        assert len(history[name]) == 2 and np.isfinite(history[name]).all()
        assert f"val_{name}" in history
    assert "loss" not in history
    # The reconstruction loss is the L1 metric of the same predictions.
    np.testing.assert_allclose(history["val_g_reconstruction_loss"], history["val_l1_ab"], rtol=1e-5)


@pytest.mark.parametrize("adversarial_loss", ["bce", "wgan-gp"])
def test_d_loss_is_logged_with_its_parts_on_real_and_colorized_images(adversarial_loss):
    """Paper efthymiadis' figure 9 plots D's real and fake losses apart."""
    model = gan(adversarial_loss=adversarial_loss, discriminator_loss_weight=0.5)
    batch = photo_batch()
    logs = model.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0, return_dict=True)
    real = model.discriminator(tf.concat([batch["L"], batch["ab"]], axis=-1))
    fake = model.discriminator(tf.concat([batch["L"], model(batch)], axis=-1))
    if adversarial_loss == "bce":
        expected_real = float(keras.losses.binary_crossentropy(tf.ones_like(real), real, from_logits=True).numpy().mean())
        expected_fake = float(keras.losses.binary_crossentropy(tf.zeros_like(fake), fake, from_logits=True).numpy().mean())
    else:
        expected_real, expected_fake = -float(tf.reduce_mean(real)), float(tf.reduce_mean(fake))
    assert logs["d_real_loss"] == pytest.approx(expected_real, rel=1e-4)
    assert logs["d_fake_loss"] == pytest.approx(expected_fake, rel=1e-4, abs=1e-6)
    penalty = 10.0 * logs["gradient_penalty"] if adversarial_loss == "wgan-gp" else 0.0
    assert logs["d_loss"] == pytest.approx(0.5 * (expected_real + expected_fake + penalty), rel=1e-4, abs=1e-6)


def test_unknown_loss_names_are_rejected():
    with pytest.raises(ValueError, match="unknown adversarial loss"):
        gan(adversarial_loss="hinge")
    with pytest.raises(ValueError, match="at least 1"):
        gan(d_steps=0)
    with pytest.raises(ValueError, match="one of them 1"):
        gan(d_steps=5, g_steps=5)


def test_regression_colorizer_learns_the_colours_of_photos():
    batch = photo_batch()
    model = RegressionColorizer(tiny_generator())
    model.compile(keras.optimizers.Adam(1e-2), loss="l1")
    dataset = tf.data.Dataset.from_tensor_slices(batch).batch(4)
    before = model.evaluate(dataset, verbose=0, return_dict=True)["loss"]
    model.fit(dataset.repeat(), epochs=1, steps_per_epoch=60, verbose=0)
    after = model.evaluate(dataset, verbose=0, return_dict=True)["loss"]
    assert after < 0.7 * before


def test_models_save_and_reload(tmp_path):
    batch = photo_batch()
    assert_reloads_identically(gan(), {"L": batch["L"]}, tmp_path)
    regression = RegressionColorizer(tiny_generator())
    assert_reloads_identically(regression, {"L": batch["L"]}, tmp_path)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_losses_float32_and_steps_like_float32(policy):
    """Losses stay float32; under float16 the step scales its losses, so it moves the weights as float32 does.

    Were the step not to scale them, LossScaleOptimizer would still divide the gradients by its
    scale and the weights would barely move. The scale starts at 2**6 here, not Keras's 2**15:
    at 2**15 this batch's gradients overflow float16, and dynamic scaling skips that first step.
    """
    batch = photo_batch()

    def stepped(precision, weights=None):
        set_precision(precision)
        if precision == "mixed_float16":
            optimizers = [keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1), initial_scale=2.0**6)
                          for _ in range(2)]
        else:
            optimizers = [optimizer_for(keras.optimizers.SGD(0.1)) for _ in range(2)]
        model = ConditionalGAN(tiny_generator(), tiny_discriminator(), seed=0)
        model.compile(*optimizers)
        model(batch)
        if weights is not None:
            model.set_weights(weights)
        before = model.get_weights()
        fake_ab = model(batch)
        losses = [*model.d_losses(batch["L"], batch["ab"], fake_ab, training=False).values(),
                  *model.g_losses(batch, {"ab": fake_ab}, training=False).values()]
        logs = model.train_on_batch(batch, return_dict=True)
        return model, before, fake_ab, losses, logs

    try:
        assert isinstance(optimizer_for(keras.optimizers.SGD(0.1)), keras.optimizers.LossScaleOptimizer) is False
        set_precision(policy)
        wrapped = optimizer_for(keras.optimizers.SGD(0.1))
        assert isinstance(wrapped, keras.optimizers.LossScaleOptimizer) == (policy == "mixed_float16")
        model, before, fake_ab, losses, logs = stepped(policy)
        assert model.generator.network.layers[0].compute_dtype == policy.removeprefix("mixed_")
        assert fake_ab.dtype == tf.float32 and all(loss.dtype == tf.float32 for loss in losses)
        assert all(np.isfinite(value) for value in logs.values())
        reference, *_ = stepped("float32", before)
    finally:
        set_precision("float32")
    initial = dict(zip((id(weight) for weight in model.weights), before))
    for network in ("generator", "discriminator"):
        begin = [initial[id(weight)] for weight in model.networks()[network].weights]
        step = np.concatenate([(a - b).ravel() for a, b in zip(model.networks()[network].get_weights(), begin)])
        reference_step = np.concatenate(
            [(a - b).ravel() for a, b in zip(reference.networks()[network].get_weights(), begin)])
        # Half precision rounds each value (bfloat16 keeps 8 bits), so the steps agree in size and direction only.
        assert np.linalg.norm(step) / np.linalg.norm(reference_step) == pytest.approx(1.0, abs=0.1), network
        assert step @ reference_step / (np.linalg.norm(step) * np.linalg.norm(reference_step)) > 0.95, network


@pytest.mark.xdist_group("two_replicas")  # one worker, so the fixture's process starts once
def test_one_step_under_mirrored_strategy_equals_the_global_batch_on_one_device(two_replicas):
    """For each engine model: losses divided by the replicas, batch norm over the global batch."""
    for model in ("gan", "regression"):
        assert two_replicas[model]["moved"] > 1e-3, model  # the step moved the weights...
        assert two_replicas[model]["worst"] < 1e-5, model  # ...identically with two replicas of 4 images as with one batch of 8


def test_evaluate_on_a_decoded_source_averages_losses_over_images():
    # 3 photos in batches of 2 (a short last batch), from a dataset of unknown length.
    from chroma.data.specs import dataset_from_spec

    model = gan(metrics=colorization_metrics(("l1_ab",)))
    scores = model.evaluate(dataset_from_spec("samples?take=3", SIZE, 2), verbose=0, return_dict=True)
    assert scores["g_reconstruction_loss"] == pytest.approx(scores["l1_ab"], rel=1e-5)


class HeadedGenerator(NetworkGenerator):
    """A network of scaled L -> {"ab", "class_logits"} as a Generator: its outputs are already named."""

    def call(self, batch, training=False):
        return self.network(batch["L"], training=training)


def test_regression_with_a_classifier_adds_the_weighted_cross_entropy():
    scaled_l = keras.Input((None, None, 1))
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(scaled_l)
    ab = keras.layers.Conv2D(2, 3, padding="same", activation="tanh")(features)
    class_logits = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(features))
    generator = HeadedGenerator(keras.Model(scaled_l, {"ab": ab, "class_logits": class_logits}))
    model = RegressionColorizer(generator)
    model.compile(keras.optimizers.Adam(1e-3), loss="l1", auxiliary_losses=(
        AuxiliaryLoss("classification", "class_logits", "label", labelled_cross_entropy, 1 / 300),))
    batch = {**photo_batch(), "label": tf.constant([0, 1, 2, -1])}
    logs = model.test_on_batch(batch, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["reconstruction_loss"] + logs["classification_loss"] / 300, rel=1e-5)
    assert logs["classification_loss"] > 0.5  # about ln 3 for an untrained 3-way classifier
    assert model(batch).shape == (4, SIZE, SIZE, 2)  # the model itself returns ab only


def classifying_generator(classes=5):
    """tiny_generator plus a class head: {"ab", "class_logits"}, as ChromaGAN's generator returns."""
    scaled_l = keras.Input((None, None, 1))
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(scaled_l)
    ab = keras.layers.Conv2D(2, 3, padding="same", activation="tanh", dtype="float32")(features)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    logits = keras.layers.Dense(classes, name="class_head", dtype="float32")(pooled)
    return HeadedGenerator(keras.Model(scaled_l, {"ab": ab, "class_logits": logits}))


@pytest.mark.parametrize("class_weight", [0.0, 0.5])
def test_class_distribution_term_trains_the_class_head(class_weight):
    """ChromaGAN's gamma_s * KL(frozen classifier || class head): logged, and the head learns only with it."""
    generator = classifying_generator()
    model = ConditionalGAN(generator, tiny_discriminator(), seed=0)
    terms = (AuxiliaryLoss("class", "class_logits", "class_target", kl_class_loss, class_weight),) if class_weight else ()
    model.compile(g_optimizer=keras.optimizers.SGD(0.1), d_optimizer=keras.optimizers.SGD(0.1),
                  auxiliary_losses=terms, adversarial_weight=0.1)
    batch = photo_batch()
    target = tf.nn.softmax(tf.random.stateless_normal((4, 5), seed=(1, 2)))
    head = generator.network.get_layer("class_head").kernel
    before = head.numpy()
    expected = float(kl_class_loss(target, generator({"L": batch["L"]})["class_logits"]))
    logs = model.train_on_batch({**batch, "class_target": target}, return_dict=True)
    if class_weight:
        assert logs["g_class_loss"] == pytest.approx(expected, rel=1e-5)
        assert np.abs(head.numpy() - before).max() > 0
    else:
        assert "g_class_loss" not in logs
        np.testing.assert_array_equal(head.numpy(), before)


def test_a_recipe_adds_a_loss_term_of_its_own_without_touching_the_engine():
    """A sixth paper's term (here: the distance between each image's mean colour and the truth's) is data."""

    def mean_colour_distance(true_ab, predicted_ab):
        return tf.reduce_mean(tf.abs(tf.reduce_mean(true_ab, axis=(1, 2)) - tf.reduce_mean(predicted_ab, axis=(1, 2))))

    term = AuxiliaryLoss("mean_colour", output="ab", target="ab", loss=mean_colour_distance, weight=7.0)
    model = gan(reconstruction_weight=10.0, auxiliary_losses=(term,))
    batch = photo_batch()
    logs = model.test_on_batch(batch, return_dict=True)
    expected_term = float(mean_colour_distance(batch["ab"], model(batch)))
    assert logs["g_mean_colour_loss"] == pytest.approx(expected_term, rel=1e-5) and expected_term > 0
    assert logs["g_loss"] == pytest.approx(logs["g_adversarial_loss"] + 10.0 * logs["g_reconstruction_loss"]
                                           + 7.0 * expected_term, rel=1e-5)
    with pytest.raises(ValueError, match="reads the generator's 'class_logits'"):
        gan(auxiliary_losses=(term._replace(output="class_logits"),)).test_on_batch(batch)
