"""The contract between chroma's generators and everything that runs them: training, export, colorize.

A generator is called on a batch dict and returns a dict:

    generator({"L": scaled L (B,H,W,1), ...}, training) -> {"ab": scaled ab (B,H,W,2), ...}

"ab" is always there; other outputs are named for the losses that read them
("class_logits" of ChromaGAN's class head, "caption_logits" of paper
villarenteria's Model C). What a generator reads beyond L it declares in
`batch_inputs`, each with the function that makes it, so the training engine
and export need to know nothing else about it:

- an input made from another feature of the batch (token ids from a
  "caption" string) is computed in tf.data by `chroma.training.train`, so no
  string reaches a train step; export takes that feature (the caption) as an
  input of its signatures;
- an input made from L by a frozen network (paper bruvik's Inception
  embedding and segmentation prior) is computed by the generator in its
  call, unless the batch already brings it: `train` may compute a per-image
  one once before the first epoch and carry it in the batches.
"""

from typing import Callable, NamedTuple

import keras


class BatchInput(NamedTuple):
    """A batch feature a generator reads beyond "L", and how it is made.

    source: the batch key it is computed from: "L", or a string feature,
        one per image ("caption").
    compute: the batch's `source` (B, ...) -> this input (B, ...).
    per_image: the same for an image and its mirror image (a class vector,
        not a map), so it may be computed once per stored image and cached.
    """

    source: str
    compute: Callable
    per_image: bool = False


class Generator(keras.Model):
    """Base of every chroma generator; see the module docstring for the contract.

    Subclasses write `call(batch, training)` returning {"ab", ...} and, when
    they read more than L, `batch_inputs` and `complete` to fill them in.
    Constructors create every weight with `self.build({"L": shape})`, a
    symbolic pass, so count_params() works before the model sees data.
    """

    def batch_inputs(self):
        """{batch key: BatchInput} of what this generator reads beyond "L"; none by default."""
        return {}

    def complete(self, batch):
        """{"L", and every declared input}: those the batch brings, the others computed now from their source."""
        inputs = {"L": batch["L"]}
        for key, feature in self.batch_inputs().items():
            if key in batch:
                inputs[key] = batch[key]
            elif feature.source in batch:
                inputs[key] = feature.compute(batch[feature.source])
            else:
                raise ValueError(f"{type(self).__name__} reads {key!r}, made from {feature.source!r}; the batch "
                                 f"has neither, only {sorted(batch)}")
        return inputs

    def build(self, batch_shape):
        batch = {key: keras.KerasTensor(shape) for key, shape in batch_shape.items()}
        for feature in self.batch_inputs().values():
            # A source other than L is a string per image (a caption), given symbolically too.
            batch.setdefault(feature.source, keras.KerasTensor((batch_shape["L"][0],), dtype="string"))
        self.call(batch)

    def check_sides(self, scaled_l, multiple):
        """Refuses L whose known height or width is not a multiple of the network's total stride."""
        sides = tuple(scaled_l.shape[1:3])
        if any(side is not None and side % multiple for side in sides):
            raise ValueError(f"{type(self).__name__} needs height and width divisible by {multiple}, got {sides}")

