"""Learning-rate schedules a recipe names."""

import keras

SCHEDULES = ("constant", "cosine")


def learning_rate(base, schedule="constant", total_steps=None, final_fraction=0.0):
    """A learning rate for a Keras optimizer.

    constant: `base` throughout (pix2pix, nampouri section 5.2).
    cosine: annealed from `base` to `base * final_fraction` over `total_steps`
    optimizer steps (Loshchilov & Hutter 2017, without restarts). The position
    is the optimizer's own step counter, so a resumed run continues the curve.
    """
    if schedule == "constant":
        return base
    if schedule == "cosine":
        if not total_steps:
            raise ValueError("a cosine schedule needs total_steps")
        return keras.optimizers.schedules.CosineDecay(base, decay_steps=total_steps, alpha=final_fraction)
    raise ValueError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")
