"""The interface between the engine and a task (classify, detect, face, video, caption, generate).

A task builds its modules and datasets from the config, says how to compute a loss from a batch, and how to
evaluate. The engine owns everything else: devices, precision, DDP, optimizers, schedules, checkpoints, logging.

Two ways to train:
- automatic (default): implement `loss(model, batch) -> (loss, logs)`; the engine does backward, gradient
  scaling, accumulation, clipping and the optimizer/scheduler steps. Covers classification, detection, video,
  captioning and metric learning (a triplet loss with online mining is just a loss over the batch).
- manual (`manual_optimization = True`): implement `training_step(ctx, batch) -> logs` and call
  `ctx.backward(loss)` / `ctx.step(name)` for each of several optimizers (GANs: generator and discriminator).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mmkit.engine.optim import build_optimizer, decay_groups

if TYPE_CHECKING:
    from mmkit.engine.config import TrainConfig
    from mmkit.engine.runtime import Runtime
    from mmkit.engine.trainer import StepContext


class Task:
    name: str = "task"
    monitor: tuple[str, str] = (
        "val/loss",
        "min",
    )  # metric key, "min" or "max": picks best.pt, drives early stopping
    manual_optimization: bool = False

    # --- building -----------------------------------------------------------------------------------------------
    def setup(self, cfg: TrainConfig, rt: Runtime) -> None:
        """Build modules and datasets. Called on every rank, with the RNG seeded identically."""
        raise NotImplementedError

    # What `setup` builds: the main module and the datasets (a task with more modules overrides `modules`).
    net: nn.Module
    train_ds: Dataset | None = None
    val_ds: Dataset | None = None

    def modules(self) -> dict[str, nn.Module]:
        """Named modules to train and checkpoint; "model" is the main one."""
        return {"model": self.net}

    def train_dataset(self) -> Dataset:
        if self.train_ds is None:
            raise NotImplementedError(f"{type(self).__name__}.setup sets no train_ds")
        return self.train_ds

    def val_dataset(self) -> Dataset | None:
        return self.val_ds

    def collate_fn(self):
        return None

    def train_batch_sampler(self, batch_size: int, seed: int, rank: int, world: int) -> Any | None:
        """Batches the task composes itself (e.g. P identities x K images for triplet mining), or None for the
        engine's seeded shuffle. It yields this rank's indices of each global batch of `batch_size`, has
        `set_epoch(epoch)` and `__len__`, and its order depends only on (seed, epoch): exact resume and DDP."""
        return None

    def default_workers(self) -> int:
        """DataLoader workers when --workers is not given (0 suits in-memory data on small machines)."""
        return 0

    def optimizers(self, cfg: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        """One optimizer per trainable module, by name, with weight decay on weights only (not on biases and norm
        scales). Override for per-module learning rates (GANs)."""
        model = self.modules()["model"]
        groups = decay_groups(model, cfg.weight_decay)
        return {"model": build_optimizer(cfg.optimizer, groups, cfg.lr, cfg.weight_decay, cfg.momentum)}

    # --- training -----------------------------------------------------------------------------------------------
    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Automatic optimization: the scalar loss of a batch, and detached tensors to log (averaged per epoch)."""
        raise NotImplementedError

    def training_step(self, ctx: StepContext, batch: Any) -> dict[str, torch.Tensor]:
        """Manual optimization: run forward/backward/step through `ctx`; return detached tensors to log.
        Include a "loss" entry: it is what the NaN guard watches."""
        raise NotImplementedError

    # --- evaluation and outputs ------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: DataLoader, rt: Runtime) -> dict[str, float]:
        """Metrics over this rank's share of the validation set, reduced across ranks (use `rt.all_reduce_`)."""
        return {}

    def checkpoint_meta(self) -> dict[str, Any]:
        """Everything eval/predict/export need to rebuild the model from a checkpoint (plain types only)."""
        return {}

    def on_epoch_end(self, epoch: int, run_dir: Path | None, rt: Runtime) -> None:
        """Hook after each epoch (e.g. sample grids for generators). run_dir is None on ranks other than 0."""

    def report_sections(self, run_dir: Path, rt: Runtime) -> list:
        """Sections (mmkit.report.Section) this task adds to the run's report.html, written on rank 0."""
        return []
