"""The conditional GAN of the papers: a generator, a discriminator, two optimizers, one train step."""

import contextlib

import keras
import tensorflow as tf

from chroma.losses import ADVERSARIAL_LOSSES, RECONSTRUCTION_LOSSES, wasserstein_gradient_penalty
from chroma.training.auxiliary_loss import auxiliary_terms
from chroma.training.colorization_model import ColorizationModel


@keras.saving.register_keras_serializable(package="chroma")
class ConditionalGAN(ColorizationModel):
    """pix2pix-style cGAN: D judges concat(L, ab); G minimises adversarial + lambda * reconstruction.

    Every paper's GAN is this class with its own update ratio and compile arguments.

    - `d_steps`, `g_steps` (constructor): k critic updates per G update
      (WGAN-GP, Gulrajani et al. Algorithm 1) or k G updates per D update
      (paper bruvik 5.6), each on a batch of its own: a train step reads k
      batches stacked on axis 1 (`stack_batches`; `train()` stacks them) and
      unrolls over them, a fixed count rather than a step-dependent branch,
      because optimizer updates inside `tf.cond` cannot synchronise replicas
      under MirroredStrategy. With k critic updates G learns from the last
      batch; with k G updates D learns from the first. Logged losses are means
      over the step's updates.

    Compile arguments default to neutral values (weights 1); a paper's own are
    stated in its recipe:

    - `adversarial_loss`: "bce" (D: minimax BCE; G: non-saturating BCE, nampouri
      equations 14-17) or "wgan-gp" (Wasserstein losses plus
      `gradient_penalty_weight`, WGAN-GP's 10 unless told, times the gradient
      penalty on the critic).
    - `reconstruction_loss` ("l1" or "mse") weighted by `reconstruction_weight`
      (lambda; 100 in pix2pix and nampouri section 5.2).
    - `adversarial_weight`: G's adversarial term's weight (ChromaGAN's gamma_g, 0.1).
    - `auxiliary_losses`: AuxiliaryLoss terms G minimises too, for generators
      returning a dict with more than "ab" (ChromaGAN's class KL, Model C's
      caption cross-entropy); each is logged as g_<name>_loss.
    - `discriminator_loss_weight`: 0.5 halves D's loss as nampouri equation 16 does.

    Logs `d_loss` (what D minimises), its unweighted parts `d_real_loss` and
    `d_fake_loss`, `g_loss` (the total G minimises), `g_adversarial_loss`,
    `g_reconstruction_loss`, `g_<name>_loss` for each auxiliary term and
    `gradient_penalty` where used, beside the compiled metrics. Losses are
    divided by the number of replicas, so the summed gradients are those of
    the global batch's mean.
    """

    def __init__(self, generator, discriminator, seed=None, d_steps=1, g_steps=1, **kwargs):
        super().__init__(generator, **kwargs)
        if d_steps < 1 or g_steps < 1 or min(d_steps, g_steps) > 1:
            raise ValueError(f"d_steps and g_steps must be at least 1 and one of them 1, got {d_steps} and {g_steps}")
        self.discriminator = discriminator
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.d_steps = d_steps
        self.g_steps = g_steps

    def compile(
        self,
        g_optimizer,
        d_optimizer,
        adversarial_loss="bce",
        reconstruction_loss="l1",
        reconstruction_weight=1.0,
        adversarial_weight=1.0,
        auxiliary_losses=(),
        discriminator_loss_weight=1.0,
        gradient_penalty_weight=10.0,
        metrics=None,
        **kwargs,
    ):
        if adversarial_loss not in ADVERSARIAL_LOSSES:
            raise ValueError(f"unknown adversarial loss {adversarial_loss!r}; choose from {sorted(ADVERSARIAL_LOSSES)}")
        if reconstruction_loss not in RECONSTRUCTION_LOSSES:
            raise ValueError(
                f"unknown reconstruction loss {reconstruction_loss!r}; choose from {sorted(RECONSTRUCTION_LOSSES)}"
            )
        # No optimizer of Keras's own: the two below are the only ones, and the only ones checkpointed.
        super().compile(optimizer=None, metrics=metrics, **kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.generator_loss, self.real_loss, self.fake_loss = ADVERSARIAL_LOSSES[adversarial_loss]
        self.gradient_penalty_weight = gradient_penalty_weight if adversarial_loss == "wgan-gp" else 0.0
        self.reconstruction_loss = RECONSTRUCTION_LOSSES[reconstruction_loss]
        self.reconstruction_weight = reconstruction_weight
        self.adversarial_weight = adversarial_weight
        self.auxiliary_losses = tuple(auxiliary_losses)
        self.discriminator_loss_weight = discriminator_loss_weight
        self.track_losses("d_loss", "d_real_loss", "d_fake_loss", "g_loss", "g_adversarial_loss",
                          "g_reconstruction_loss",
                          *(f"g_{term.name}_loss" for term in self.auxiliary_losses),
                          *(["gradient_penalty"] if self.gradient_penalty_weight else []))
        if self.generator.built and self.discriminator.built:
            self.build_optimizers()

    def networks(self):
        return {**super().networks(), "discriminator": self.discriminator}

    def build_optimizers(self):
        """Creates both optimizers' variables, e.g. before restoring a checkpoint into them."""
        self.build_optimizer(self.g_optimizer, self.generator.trainable_variables)
        self.build_optimizer(self.d_optimizer, self.discriminator.trainable_variables)

    def discriminate(self, scaled_l, ab, training):
        return self.discriminator(tf.concat([scaled_l, tf.cast(ab, scaled_l.dtype)], axis=-1), training=training)

    def d_losses(self, scaled_l, true_ab, fake_ab, training):
        """{"d_loss": what D minimises, weighted; its unweighted parts on the real and the colorized images,
        "d_real_loss" and "d_fake_loss" (paper efthymiadis' figure 9); and "gradient_penalty" for a critic}."""
        losses = {
            "d_real_loss": self.real_loss(self.discriminate(scaled_l, true_ab, training)),
            "d_fake_loss": self.fake_loss(self.discriminate(scaled_l, fake_ab, training)),
        }
        loss = losses["d_real_loss"] + losses["d_fake_loss"]
        if self.gradient_penalty_weight:
            critic = lambda ab: self.discriminate(scaled_l, ab, training)  # noqa: E731
            losses["gradient_penalty"] = wasserstein_gradient_penalty(critic, true_ab, fake_ab, self.seed_generator)
            loss += self.gradient_penalty_weight * losses["gradient_penalty"]
        return {"d_loss": self.discriminator_loss_weight * loss, **losses}

    def g_losses(self, data, outputs, training):
        """The generator's loss terms by name, and "g_loss", their weighted sum that G minimises.

        outputs: the generator's on `data`, {"ab", and what auxiliary terms read}.
        """
        fake_ab = outputs["ab"]
        losses = {
            "g_adversarial_loss": self.generator_loss(self.discriminate(data["L"], fake_ab, training)),
            "g_reconstruction_loss": self.reconstruction_loss(data["ab"], fake_ab),
        }
        auxiliary, auxiliary_total = auxiliary_terms(self.auxiliary_losses, data, outputs)
        total = (self.adversarial_weight * losses["g_adversarial_loss"]
                 + self.reconstruction_weight * losses["g_reconstruction_loss"] + auxiliary_total)
        return {"g_loss": total, **losses, **{f"g_{name}": value for name, value in auxiliary.items()}}

    @property
    def batches_per_step(self):
        return max(self.d_steps, self.g_steps)

    def train_step(self, data):
        batches = self.split_batches(self.unpack(data))
        d_batches = batches if self.d_steps > 1 else batches[:1]
        g_batches = batches if self.g_steps > 1 else batches[-1:]
        # D's last batch is G's first (at 1:1 the one batch, as pix2pix): G runs on it once, D learns
        # from that output, then G is scored by the updated D through the same recorded pass.
        for index, batch in enumerate(d_batches):
            g_tape = tf.GradientTape()
            with g_tape if index == len(d_batches) - 1 else contextlib.nullcontext():
                outputs = self.generator(batch, training=True)
            self.d_update(batch, outputs["ab"])
        # The metrics follow G on the batches it learns from. The same G coloured D's other batches, so
        # scoring those too (4 more passes of every metric in WGAN-GP's 5:1 step, 6% of it) only adds samples.
        for index, batch in enumerate(g_batches):
            if index > 0:
                g_tape = tf.GradientTape()
                with g_tape:
                    outputs = self.generator(batch, training=True)
            self.g_update(g_tape, batch, outputs)
            self.score(batch, outputs["ab"])
        return self.get_metrics_result()

    def d_update(self, batch, fake_ab):
        """One discriminator (critic) update on `batch`, against G's output for it."""
        variables = self.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            d_losses = self.d_losses(batch["L"], batch["ab"], tf.stop_gradient(fake_ab), training=True)
            scaled_loss = self.d_optimizer.scale_loss(d_losses["d_loss"] / self.replicas())
        self.d_optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        self.record_losses(batch, **d_losses)

    def g_update(self, tape, batch, outputs):
        """One generator update on `batch`; `tape` recorded the pass that gave its outputs."""
        variables = self.generator.trainable_variables
        with tape:
            g_losses = self.g_losses(batch, outputs, training=True)
            scaled_loss = self.g_optimizer.scale_loss(g_losses["g_loss"] / self.replicas())
        self.g_optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        self.record_losses(batch, **g_losses)

    def test_step(self, data):
        data = self.unpack(data)
        outputs = self.generator(data, training=False)
        d_losses = self.d_losses(data["L"], data["ab"], outputs["ab"], training=False)
        g_losses = self.g_losses(data, outputs, training=False)
        self.record_losses(data, **d_losses, **g_losses)
        return self.score(data, outputs["ab"])

    def get_config(self):
        return {
            **super().get_config(),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "seed": self.seed,
            "d_steps": self.d_steps,
            "g_steps": self.g_steps,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["discriminator"] = keras.saving.deserialize_keras_object(config["discriminator"])
        return super().from_config(config)
