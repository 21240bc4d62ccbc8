"""The adversarial and reconstruction losses on values worked out by hand (TF-GAN's definitions)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from chroma import losses

LN2 = np.log(2.0)


def sigmoid_ce(label, logit):
    return np.maximum(logit, 0) - logit * label + np.log1p(np.exp(-np.abs(logit)))


def test_minimax_discriminator_loss_at_chance_is_two_ln2():
    zeros = tf.zeros((2, 30, 30, 1))
    assert float(losses.minimax_discriminator_loss(zeros, zeros)) == pytest.approx(2 * LN2, rel=1e-6)


def test_minimax_discriminator_loss_on_known_logits():
    real = np.array([[2.0, -1.0]], np.float32)
    fake = np.array([[0.5, -3.0]], np.float32)
    expected = sigmoid_ce(1, real).mean() + sigmoid_ce(0, fake).mean()
    assert float(losses.minimax_discriminator_loss(real, fake)) == pytest.approx(expected, rel=1e-6)


def test_label_smoothing_moves_real_labels_towards_one_half():
    real = np.array([[3.0]], np.float32)
    fake = np.array([[-3.0]], np.float32)
    smoothed = 1 * (1 - 0.25) + 0.5 * 0.25
    expected = sigmoid_ce(smoothed, 3.0) + sigmoid_ce(0, -3.0)
    assert float(losses.minimax_discriminator_loss(real, fake, label_smoothing=0.25)) == pytest.approx(expected, rel=1e-6)


def test_confident_correct_discriminator_has_near_zero_loss_and_fools_no_one():
    real = tf.fill((1, 4, 4, 1), 20.0)
    fake = tf.fill((1, 4, 4, 1), -20.0)
    assert float(losses.minimax_discriminator_loss(real, fake)) < 1e-8
    assert float(losses.modified_generator_loss(fake)) == pytest.approx(20.0, rel=1e-6)


def test_modified_generator_loss_is_bce_against_real_labels():
    fake = np.array([[0.0, 1.5, -2.0]], np.float32)
    assert float(losses.modified_generator_loss(fake)) == pytest.approx(sigmoid_ce(1, fake).mean(), rel=1e-6)


def test_wasserstein_losses():
    real = tf.constant([[1.0], [3.0]])
    fake = tf.constant([[-1.0], [0.0]])
    assert float(losses.wasserstein_discriminator_loss(real, fake)) == pytest.approx(-0.5 - 2.0)
    assert float(losses.wasserstein_generator_loss(fake)) == pytest.approx(0.5)


@pytest.mark.parametrize("norm, expected", [(3.0, 4.0), (1.0, 0.0), (0.5, 0.25)])
def test_gradient_penalty_of_a_linear_critic(norm, expected):
    # A linear critic has the same gradient w everywhere: the penalty is (|w| - 1)^2 whatever alpha is.
    shape = (2, 4, 4, 2)
    direction = np.random.default_rng(0).normal(size=shape[1:]).astype(np.float32)
    weights = tf.constant(direction / np.linalg.norm(direction) * norm)

    def critic(ab):
        return tf.reduce_sum(ab * weights, axis=[1, 2, 3])

    real = tf.random.uniform(shape, -1, 1, seed=1)
    fake = tf.random.uniform(shape, -1, 1, seed=2)
    penalty = losses.wasserstein_gradient_penalty(critic, real, fake, keras.random.SeedGenerator(0))
    assert float(penalty) == pytest.approx(expected, abs=1e-5)


def test_reconstruction_losses():
    true = tf.constant([[0.5, -0.5]])
    predicted = tf.constant([[0.0, 0.5]])
    assert float(losses.l1(true, predicted)) == pytest.approx(0.75)
    assert float(losses.mse(true, predicted)) == pytest.approx(0.625)


def test_losses_are_float32_for_bfloat16_logits():
    logits = tf.zeros((1, 2, 2, 1), tf.bfloat16)
    assert losses.minimax_discriminator_loss(logits, logits).dtype == tf.float32
    assert losses.modified_generator_loss(logits).dtype == tf.float32


def test_labelled_cross_entropy_ignores_unlabelled_images():
    logits = tf.constant([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
    labels = tf.constant([0, 2, -1])
    row0 = -np.log(np.exp(2.0) / (np.exp(2.0) + 1.0 + np.exp(-1.0)))
    expected = (row0 + np.log(3.0)) / 2
    assert float(losses.labelled_cross_entropy(labels, logits)) == pytest.approx(expected, rel=1e-6)
    assert float(losses.labelled_cross_entropy(tf.constant([-1, -1]), logits[:2])) == 0.0


def test_caption_cross_entropy_averages_over_words_and_skips_padding():
    logits = np.log(np.array([[[0.1, 0.2, 0.7], [0.5, 0.25, 0.25], [0.9, 0.05, 0.05]]], np.float32))
    targets = np.array([[2, 1, 0]])  # two words, then padding
    expected = -(np.log(0.7) + np.log(0.25)) / 2
    np.testing.assert_allclose(losses.caption_cross_entropy(targets, logits), expected, rtol=1e-5)
    assert float(losses.caption_cross_entropy(np.zeros((2, 3), np.int64), np.zeros((2, 3, 3), np.float32))) == 0.0
