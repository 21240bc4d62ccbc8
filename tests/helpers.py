"""Checks shared by the model tests."""

import keras
import numpy as np


def assert_reloads_identically(model, inputs, tmp_path):
    """Saving to .keras and loading back gives the same config and the same outputs."""
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded) is type(model)
    assert reloaded.get_config() == model.get_config()
    np.testing.assert_allclose(reloaded(inputs), model(inputs), atol=1e-6)
    return reloaded
