"""What a model file may not decide: which pretrained SavedModel runs when it is loaded.

A .keras file is data from outside. A layer that runs a TF2 SavedModel (bruvik's Inception embedding and
segmentation prior from TF-Hub) stores where it came from in its config, and hub.load of that string would run
whatever the file's author put there. Loaded from a file, such a layer takes its SavedModel from the user
instead (`--asset NAME=PATH`, provided here for the duration of a load); a file that names one without it is
refused with the asset to pass. Weights of keras.applications networks travel inside the archive, so their
paths are dropped on load too.
"""

import contextlib
import contextvars

_PROVIDED = contextvars.ContextVar("chroma_assets_provided", default={})


@contextlib.contextmanager
def assets_provided(assets):
    """Within the block, layers loaded from a file read their SavedModels from `assets` ({name: path})."""
    token = _PROVIDED.set(dict(assets or {}))
    try:
        yield
    finally:
        _PROVIDED.reset(token)


def saved_model_on_load(asset, named_by_file, layer):
    """The SavedModel a `layer` being loaded from a file runs: the user's asset `asset`. The file's own
    `named_by_file` is never loaded; without the asset the load is refused."""
    provided = _PROVIDED.get()
    if asset in provided:
        return provided[asset]
    raise ValueError(f"this model file's {layer} names a SavedModel to load and run ({named_by_file!r}); a model "
                     f"file does not choose code that runs: pass --asset {asset}=PATH, a SavedModel you trust")
