"""The training engine: models whose train_step carries a paper's recipe, and the loop that runs them."""

from chroma.runtime import Runtime
from chroma.training.auxiliary_loss import AuxiliaryLoss
from chroma.training.callbacks import (
    CheckpointNotSaved,
    ResumableCheckpoint,
    RunStopped,
    SampleImages,
    TrainingDiverged,
)
from chroma.training.colorization_model import ColorizationModel
from chroma.training.gan import ConditionalGAN
from chroma.training.hardware import PRECISIONS, STRATEGIES, make_strategy, optimizer_for, set_precision
from chroma.training.regression import RegressionColorizer
from chroma.training.schedules import learning_rate
from chroma.training.trainer import (
    PaperData,
    Pretraining,
    Run,
    Settings,
    at_paper_scale,
    read_history,
    smoke_settings,
    stack_batches,
    train,
)

__all__ = [
    "AuxiliaryLoss",
    "CheckpointNotSaved",
    "PRECISIONS",
    "PaperData",
    "Pretraining",
    "STRATEGIES",
    "ColorizationModel",
    "ConditionalGAN",
    "RegressionColorizer",
    "ResumableCheckpoint",
    "Run",
    "RunStopped",
    "Runtime",
    "SampleImages",
    "Settings",
    "TrainingDiverged",
    "at_paper_scale",
    "learning_rate",
    "make_strategy",
    "optimizer_for",
    "read_history",
    "set_precision",
    "smoke_settings",
    "stack_batches",
    "train",
]
