"""The papers' losses, with TF-GAN's definitions (tensorflow-gan itself no longer imports on TF >= 2.16).

Adversarial losses take discriminator LOGITS; each returns the mean over every
element (TF-GAN's SUM_BY_NONZERO_WEIGHTS with unit weights), so a PatchGAN's
30x30 map and a single critic score are treated alike.
"""

import keras
import tensorflow as tf


def _sigmoid_cross_entropy(labels_value, logits, label_smoothing=0.0):
    # tf.compat.v1.losses.sigmoid_cross_entropy smooths labels towards 1/2.
    labels = tf.fill(tf.shape(logits), labels_value * (1.0 - label_smoothing) + 0.5 * label_smoothing)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def minimax_real_loss(real_logits, label_smoothing=0.0):
    """BCE(1, D(real)), the real images' part of the minimax discriminator loss."""
    return _sigmoid_cross_entropy(1.0, tf.cast(real_logits, tf.float32), label_smoothing)


def minimax_fake_loss(fake_logits):
    """BCE(0, D(fake)), the colorizations' part of the minimax discriminator loss."""
    return _sigmoid_cross_entropy(0.0, tf.cast(fake_logits, tf.float32))


def minimax_discriminator_loss(real_logits, fake_logits, label_smoothing=0.0):
    """BCE(1, D(real)) + BCE(0, D(fake)): TF-GAN's `minimax_discriminator_loss`.

    Paper nampouri's equation 16 halves this sum; the GAN model's
    `discriminator_loss_weight` carries that factor.
    """
    return minimax_real_loss(real_logits, label_smoothing) + minimax_fake_loss(fake_logits)


def modified_generator_loss(fake_logits):
    """Non-saturating BCE(1, D(fake)): TF-GAN's `modified_generator_loss`, nampouri equation 17."""
    return _sigmoid_cross_entropy(1.0, tf.cast(fake_logits, tf.float32))


def wasserstein_real_loss(real_scores):
    """-mean D(real), the real images' part of the Wasserstein critic loss."""
    return -tf.reduce_mean(tf.cast(real_scores, tf.float32))


def wasserstein_fake_loss(fake_scores):
    """mean D(fake), the colorizations' part of the Wasserstein critic loss."""
    return tf.reduce_mean(tf.cast(fake_scores, tf.float32))


def wasserstein_discriminator_loss(real_scores, fake_scores):
    """mean D(fake) - mean D(real): TF-GAN's `wasserstein_discriminator_loss`."""
    return wasserstein_real_loss(real_scores) + wasserstein_fake_loss(fake_scores)


def wasserstein_generator_loss(fake_scores):
    """-mean D(fake): TF-GAN's `wasserstein_generator_loss`."""
    return -tf.reduce_mean(tf.cast(fake_scores, tf.float32))


def wasserstein_gradient_penalty(critic, real, fake, seed, target=1.0, epsilon=1e-10):
    """mean((||grad critic(x_hat)||_2 - target)^2), x_hat on random lines between real and fake.

    TF-GAN's `wasserstein_gradient_penalty` (Gulrajani et al. 2017, equation 3):
    one uniform alpha per example, the norm over all non-batch axes, epsilon
    inside the square root so a zero gradient has a finite derivative.
    `critic` maps a batch like `real` to scores; conditioning (the L channel)
    lives inside it, so only the generated part is interpolated.
    """
    real = tf.cast(real, tf.float32)
    fake = tf.cast(fake, tf.float32)
    alpha_shape = tf.concat([tf.shape(real)[:1], tf.ones([tf.rank(real) - 1], tf.int32)], axis=0)
    alpha = keras.random.uniform(alpha_shape, seed=seed)
    interpolated = real + alpha * (fake - real)
    with tf.GradientTape() as tape:
        tape.watch(interpolated)
        scores = tf.cast(critic(interpolated), tf.float32)
    gradients = tape.gradient(scores, interpolated)
    squared_norms = tf.reduce_sum(tf.square(gradients), axis=tf.range(1, tf.rank(gradients)))
    slopes = tf.sqrt(squared_norms + epsilon)
    return tf.reduce_mean(tf.square(slopes - target))


def l1(true, predicted):
    """Mean absolute error: the pix2pix reconstruction term (nampouri equation 18)."""
    return tf.reduce_mean(tf.abs(tf.cast(true, tf.float32) - tf.cast(predicted, tf.float32)))


def mse(true, predicted):
    """Mean squared error, for the papers' MSE-trained CNNs."""
    return tf.reduce_mean(tf.square(tf.cast(true, tf.float32) - tf.cast(predicted, tf.float32)))


def kl_class_loss(oracle_probabilities, class_logits):
    """KL(oracle || softmax(class_logits)) = sum_c p_c (log p_c - log q_c), mean over the batch.

    ChromaGAN's class distribution loss L_s (Vitoria et al. 2020, eq. 3):
    E[KL(y_v || G2(L))], y_v the frozen VGG-16's distribution, the target,
    first; the release's Keras 'kld' with the VGG output as y_true is the same
    direction. q comes through a log-softmax, finite for any logits, and
    p log p is taken as 0 where p is 0 (its limit).
    """
    p = tf.cast(oracle_probabilities, tf.float32)
    log_q = tf.nn.log_softmax(tf.cast(class_logits, tf.float32), axis=-1)
    return tf.reduce_mean(tf.reduce_sum(tf.math.xlogy(p, p) - p * log_q, axis=-1))


def caption_cross_entropy(targets, logits):
    """Mean softmax cross-entropy over a caption's words, padding (id 0) left out: a captioner's loss.

    targets (B, T) int word ids, logits (B, T, V). Paper villarenteria's Model C
    replaces ChromaGAN's class loss with "the LSTM's classification loss across
    the entire caption" (4.2.4). A batch of empty captions gives 0, not NaN.
    """
    targets = tf.cast(targets, tf.int32)
    per_word = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=tf.cast(logits, tf.float32))
    words = tf.cast(targets > 0, tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(per_word * words), tf.reduce_sum(words))


def labelled_cross_entropy(labels, logits):
    """Mean softmax cross-entropy over the images that have a class label (label >= 0).

    Unlabelled images (-1: no class folder, no COCO instance) add nothing; a
    batch without any label gives 0 rather than NaN.
    """
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    labelled = labels >= 0
    per_image = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.maximum(labels, 0), logits=tf.cast(logits, tf.float32)
    )
    weights = tf.cast(labelled, tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(per_image * weights), tf.reduce_sum(weights))


# Names a recipe uses -> (generator loss, discriminator loss).
# name -> (G's loss, D's loss on the real images, D's loss on the colorizations): D minimises the sum of the two.
ADVERSARIAL_LOSSES = {
    "bce": (modified_generator_loss, minimax_real_loss, minimax_fake_loss),
    "wgan-gp": (wasserstein_generator_loss, wasserstein_real_loss, wasserstein_fake_loss),
}
RECONSTRUCTION_LOSSES = {"l1": l1, "mse": mse}
