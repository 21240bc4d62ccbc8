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
    target: the key of its target: in the batch ("label", a frozen network's
        "class_target" from Run.batch_targets), else in what the generator
        reads (the "tokens" it made from captions).
    loss: loss(target, output) -> a scalar.
    """

    name: str
    output: str
    target: str
    loss: Callable
    weight: float


def auxiliary_terms(auxiliary_losses, batch, generator_inputs, outputs):
    """({"<name>_loss": unweighted value}, their weighted sum) for one batch."""
    readable = {**batch, **generator_inputs} if isinstance(generator_inputs, dict) else batch
    values, total = {}, tf.constant(0.0)
    for term in auxiliary_losses:
        if term.output not in outputs:
            raise ValueError(f"auxiliary loss {term.name!r} reads the generator's {term.output!r}, but it "
                             f"returns {sorted(outputs)}")
        value = term.loss(readable[term.target], outputs[term.output])
        values[f"{term.name}_loss"] = value
        total += term.weight * value
    return values, total
