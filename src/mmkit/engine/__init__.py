"""The engine: one training loop, runtime (device, precision, DDP), checkpoints, run logging, optimizers by name."""

from mmkit.engine.checkpoint import load_checkpoint, save_checkpoint
from mmkit.engine.config import TrainConfig
from mmkit.engine.optim import build_optimizer, build_scheduler, decay_groups, init_weights
from mmkit.engine.runtime import Runtime, select_device, setup_runtime
from mmkit.engine.task import Task
from mmkit.engine.trainer import FitResult, StepContext, Trainer

__all__ = [
    "FitResult",
    "Runtime",
    "StepContext",
    "Task",
    "TrainConfig",
    "Trainer",
    "build_optimizer",
    "decay_groups",
    "build_scheduler",
    "init_weights",
    "load_checkpoint",
    "save_checkpoint",
    "select_device",
    "setup_runtime",
]
