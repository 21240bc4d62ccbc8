"""Checks shared by the model tests."""

import json

import keras
import numpy as np


def _as_saved(config):
    """A config as the .keras file stores it: JSON, where tuples become lists."""
    return json.loads(json.dumps(config))


def assert_reloads_identically(model, inputs, tmp_path):
    """Saving to .keras and loading back gives the same config and the same outputs."""
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded) is type(model)
    assert _as_saved(reloaded.get_config()) == _as_saved(model.get_config())
    np.testing.assert_allclose(reloaded(inputs), model(inputs), atol=1e-6)
    return reloaded
