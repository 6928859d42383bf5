"""The engine: one training loop, runtime (device, precision, DDP), checkpoints, run logging, optimizers by name.

The names below load on first use (PEP 562), so that `mmkit.engine.config` (the options, read by `--help`) can be
imported without torch.
"""

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "load_checkpoint": "checkpoint",
    "load_model_state": "checkpoint",
    "load_task_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "TrainConfig": "config",
    "build_optimizer": "optim",
    "build_scheduler": "optim",
    "decay_groups": "optim",
    "init_weights": "optim",
    "Runtime": "runtime",
    "select_device": "runtime",
    "setup_runtime": "runtime",
    "Task": "task",
    "FitResult": "trainer",
    "StepContext": "trainer",
    "Trainer": "trainer",
}

__all__ = [
    "FitResult",
    "Runtime",
    "StepContext",
    "Task",
    "TrainConfig",
    "Trainer",
    "build_optimizer",
    "build_scheduler",
    "decay_groups",
    "init_weights",
    "load_checkpoint",
    "load_model_state",
    "load_task_checkpoint",
    "save_checkpoint",
    "select_device",
    "setup_runtime",
]

if TYPE_CHECKING:
    from mmkit.engine.checkpoint import (
        load_checkpoint,
        load_model_state,
        load_task_checkpoint,
        save_checkpoint,
    )
    from mmkit.engine.config import TrainConfig
    from mmkit.engine.optim import build_optimizer, build_scheduler, decay_groups, init_weights
    from mmkit.engine.runtime import Runtime, select_device, setup_runtime
    from mmkit.engine.task import Task
    from mmkit.engine.trainer import FitResult, StepContext, Trainer


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mmkit.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
