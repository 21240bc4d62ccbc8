"""Callbacks that make a run survive: checkpoints to resume from, a stop on divergence, sample images."""

import math
import re
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from chroma import color


class RunStopped(RuntimeError):
    """Training stopped before its last epoch; the message names the last good checkpoint, from which
    rerunning the same command resumes."""


class TrainingDiverged(RunStopped):
    """A loss became NaN or infinite."""


class CheckpointNotSaved(RunStopped):
    """A checkpoint could not be written (a full disk, a read-only or vanished folder)."""


class ResumableCheckpoint(keras.callbacks.Callback):
    """Keeps the whole training state at every epoch end and resumes from it.

    The state is the model's variables (generator, discriminator, batch-norm
    statistics, seed state), its optimizers' (moments and step counters, hence
    the learning-rate schedule's position) and the epoch count, written with
    tf.train.CheckpointManager: a checkpoint only becomes the latest once fully
    written, so a SIGKILL mid-save leaves the previous one intact.

    A NaN or Inf in any logged loss stops training at that batch; nothing is
    saved after it, and `TrainingDiverged` is raised when fit returns, naming
    the last good checkpoint. A save that fails stops training with
    `CheckpointNotSaved`, naming the folder and the last good checkpoint,
    which the failed save leaves as it was.

    write_to: where this process saves, if not `directory`: a multi-worker
    run's other workers restore the chief's checkpoints from `directory` and
    save theirs to a temporary directory (hardware.write_dir).
    """

    def __init__(self, directory, model, max_to_keep=2, write_to=None):
        super().__init__()
        self.directory = str(directory)
        self.epochs_done = tf.Variable(0, dtype=tf.int64, trainable=False, name="epochs_done")
        self.checkpoint = tf.train.Checkpoint(model=model, epochs_done=self.epochs_done)
        self.max_to_keep = max_to_keep
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory, max_to_keep=max_to_keep)
        self.writer = self.manager
        if write_to is not None and str(write_to) != self.directory:
            self.writer = tf.train.CheckpointManager(self.checkpoint, str(write_to), max_to_keep=max_to_keep)
        self.divergence = None

    def restore(self):
        """Loads the latest checkpoint if there is one; returns the epochs it had completed."""
        if self.manager.latest_checkpoint is None:
            return 0
        self.checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
        return int(self.epochs_done.numpy())

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        bad = _non_finite(logs)
        if bad and self.divergence is None:
            self.divergence = f"{bad} at step {batch + 1} of epoch {self.epoch + 1}"
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        bad = _non_finite(logs)
        if bad and self.divergence is None:
            self.divergence = f"{bad} at the end of epoch {epoch + 1}"
            self.model.stop_training = True
        if self.divergence is not None:
            return
        self.epochs_done.assign(epoch + 1)
        try:
            self.writer.save(checkpoint_number=epoch + 1)
        except (OSError, tf.errors.OpError) as error:
            folder = self.writer.directory
            # The failed save's partial files (TensorFlow writes ckpt-N_temp/, then renames it) take the room a
            # resumed run needs.
            for partial in tf.io.gfile.glob(tf.io.gfile.join(folder, f"ckpt-{epoch + 1}_temp*")):
                shutil.rmtree(partial, ignore_errors=True)
            last = tf.train.latest_checkpoint(folder) or "none (no epoch was saved)"
            raise CheckpointNotSaved(
                f"training stopped: the checkpoint of epoch {epoch + 1} could not be written to {folder} "
                f"({type(error).__name__}: {_first_line(error)}). The last good checkpoint is {last}, intact; "
                f"free space or make {folder} writable, then rerun to resume from it."
            ) from error

    def size_in_bytes(self):
        """What one checkpoint holds: every variable it saves (frozen networks' and the optimizers' included)."""
        return sum(math.prod(variable.shape) * tf.as_dtype(variable.dtype).size
                   for variable in tf.train.TrackableView(self.checkpoint).descendants()
                   if isinstance(variable, (tf.Variable, keras.Variable)))

    def describe_size(self):
        """A line on the disk this run's checkpoints take (up to max_to_keep + 1 at once, while one is saved),
        and the room left where they go (local folders)."""
        size, at_once = self.size_in_bytes(), self.max_to_keep + 1
        folder = Path(self.writer.directory)
        line = (f"checkpoints: {_in_bytes(size)} each (frozen networks and optimizer state included), up to "
                f"{at_once} at once in {folder}")
        existing = next((parent for parent in (folder, *folder.parents) if parent.exists()), None)
        if existing is not None:
            free = shutil.disk_usage(existing).free
            line += f"; {_in_bytes(free)} free there" + (", too little for them" if free < size * at_once else "")
        return line

    def on_train_end(self, logs=None):
        if self.divergence is not None:
            # Read afresh: another worker's manager does not see the chief's saves.
            last = tf.train.latest_checkpoint(self.directory) or "none (no epoch finished)"
            raise TrainingDiverged(
                f"training stopped: {self.divergence}. The last good checkpoint is {last}; "
                "rerunning resumes from it (a lower learning rate or a smaller reconstruction "
                "weight may keep the run stable)."
            )


def _in_bytes(count):
    for unit, size in (("GB", 1e9), ("MB", 1e6)):
        if count >= size:
            return f"{count / size:.{2 if unit == 'GB' else 1}f} {unit}"
    return f"{count / 1e3:.1f} kB"


def _first_line(error):
    """An error's first line, without the TensorFlow function that raised it."""
    message = (getattr(error, "message", None) or str(error)).strip().splitlines()[0]
    return re.sub(r"\{\{function_node [^}]*\}\}\s*", "", message)


def _non_finite(logs):
    """'name is nan' for the first loss in logs that is not finite, else None."""
    for name, value in (logs or {}).items():
        if "loss" in name or name == "gradient_penalty":
            value = float(value)
            if not math.isfinite(value):
                return f"{name} is {value}"
    return None


class SampleImages(keras.callbacks.Callback):
    """Writes a grid of (gray input | prediction | truth) to TensorBoard after every epoch.

    kept_epochs: epochs (from 1) whose colorizations are also written to
    kept_dir as epoch_<n>.png, one image per row, beside gray.png and
    truth.png (papers bruvik's figure 8 and efthymiadis' figure 7 compare
    epochs; see chroma.reports.epoch_samples).
    """

    def __init__(self, batch, log_dir, max_images=4, kept_epochs=(), kept_dir=None):
        super().__init__()
        # The whole batch: a generator may read more than L (paper villarenteria's captions).
        self.batch = {key: value[:max_images] for key, value in batch.items()}
        self.scaled_l = self.batch["L"]
        self.scaled_ab = self.batch["ab"]
        self.writer = tf.summary.create_file_writer(str(log_dir))
        self.kept_epochs = set(kept_epochs)
        self.kept_dir = Path(kept_dir) if kept_dir else None

    def on_epoch_end(self, epoch, logs=None):
        predicted_ab = self.model(self.batch, training=False)
        gray = color.scaled_lab_to_rgb(self.scaled_l, tf.zeros_like(self.scaled_ab))
        predicted = color.scaled_lab_to_rgb(self.scaled_l, predicted_ab)
        truth = color.scaled_lab_to_rgb(self.scaled_l, self.scaled_ab)
        rows = tf.concat([gray, predicted, truth], axis=2)  # side by side per image
        with self.writer.as_default():
            tf.summary.image("gray | predicted | truth", rows, step=epoch + 1, max_outputs=len(rows))
        self.writer.flush()
        if epoch + 1 in self.kept_epochs:
            self.kept_dir.mkdir(parents=True, exist_ok=True)
            for name, images in (("gray", gray), ("truth", truth), (f"epoch_{epoch + 1}", predicted)):
                # Images stacked top to bottom, 8 bits: what a figure shows, a few kB per epoch.
                column = tf.cast(tf.round(tf.concat(tf.unstack(images), axis=0) * 255.0), tf.uint8)
                tf.io.write_file(str(self.kept_dir / f"{name}.png"), tf.io.encode_png(column))
