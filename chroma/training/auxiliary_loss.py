"""Extra terms of a generator's loss, passed by a recipe as data (a class head's KL, a captioner's cross-entropy).

The engine adds them to the generator's loss without naming any: a sixth
paper's perceptual loss is one more AuxiliaryLoss in its recipe.
"""

from typing import Callable, NamedTuple

import tensorflow as tf


class AuxiliaryLoss(NamedTuple):
    """weight * loss(target, generator output), added to what the generator minimises.

    name: logged as "<name>_loss" (by ConditionalGAN as "g_<name>_loss").
    output: the key of the generator's output it reads ("class_logits", or
        "ab", the colours, for a perceptual loss).
    target: the batch key of its target ("label", a frozen network's
        "class_target" from Run.batch_targets, the "tokens" made from
        captions for a generator that reads them).
    loss: loss(target, output) -> a scalar.
    """

    name: str
    output: str
    target: str
    loss: Callable
    weight: float


def auxiliary_terms(auxiliary_losses, batch, outputs):
    """({"<name>_loss": unweighted value}, their weighted sum) for one batch and the generator's outputs on it."""
    values, total = {}, tf.constant(0.0)
    for term in auxiliary_losses:
        if term.output not in outputs:
            raise ValueError(f"auxiliary loss {term.name!r} reads the generator's {term.output!r}, but it "
                             f"returns {sorted(outputs)}")
        if term.target not in batch:
            raise ValueError(f"auxiliary loss {term.name!r} reads its target {term.target!r} from the batch, which "
                             f"has {sorted(batch)} (chroma.training.train adds a generator's batch_inputs and "
                             "Run.batch_targets)")
        value = term.loss(batch[term.target], outputs[term.output])
        values[f"{term.name}_loss"] = value
        total += term.weight * value
    return values, total
