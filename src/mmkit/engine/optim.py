"""Building blocks chosen by name: optimizers, learning-rate schedules, weight initializations."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from mmkit.errors import MMKitError

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "rprop", "lbfgs")
SCHEDULES = ("cosine", "step", "onecycle", "constant")
INITS = ("xavier", "he")


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Parameter groups with weight decay on weights (matrices, conv kernels) and none on biases and norm scales
    (every parameter with fewer than 2 dimensions), as timm and the YOLO trainers do. Frozen parameters are
    left out."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(
    name: str, params: Iterable, lr: float, weight_decay: float = 0.0, momentum: float = 0.9
) -> torch.optim.Optimizer:
    """SGD (Nesterov momentum), Adam, AdamW, RMSprop, Rprop or LBFGS. Fused/foreach kernels are used on CUDA.

    `params`: parameters, or parameter groups (dicts, e.g. from `decay_groups`); `weight_decay` is the default
    for groups that do not set their own."""
    params = list(params)
    if params and isinstance(params[0], dict):
        groups = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in params]
        params = [g for g in groups if g["params"]]
        flat = [p for g in params for p in g["params"]]
    else:
        params = flat = [p for p in params if p.requires_grad]
    if not flat:
        raise MMKitError("optimizer: the model has no trainable parameters")
    if name.lower() in ("rprop", "lbfgs"):  # no weight decay: one plain group
        params = flat
    name = name.lower()
    on_cuda = flat[0].is_cuda
    fast = {"fused": True} if on_cuda else {}
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, nesterov=momentum > 0, weight_decay=weight_decay, **fast
        )
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **fast)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, **fast)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "rprop":
        return torch.optim.Rprop(params, lr=lr)
    if name == "lbfgs":
        return torch.optim.LBFGS(params, lr=lr, max_iter=20, history_size=10, line_search_fn="strong_wolfe")
    raise MMKitError(f"--optimizer {name}: choose one of {', '.join(OPTIMIZERS)}")


def lr_lambda(
    schedule: str,
    total_steps: int,
    warmup_steps: int,
    steps_per_epoch: int,
    step_size: int = 30,
    gamma: float = 0.1,
):
    """Multiplier of the base LR at optimizer step s: linear warm-up, then cosine / step / constant."""
    if schedule not in ("cosine", "step", "constant"):
        raise MMKitError(f"--schedule {schedule}: choose one of {', '.join(SCHEDULES)}")
    total_steps = max(1, total_steps)

    def f(s: int) -> float:
        if s < warmup_steps:
            return (s + 1) / warmup_steps
        if schedule == "cosine":
            p = min(1.0, (s - warmup_steps) / max(1, total_steps - warmup_steps))
            return 0.5 * (1.0 + math.cos(math.pi * p))
        if schedule == "step":
            return gamma ** ((s // max(1, steps_per_epoch)) // max(1, step_size))
        return 1.0

    return f


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    schedule: str,
    *,
    epochs: int,
    steps_per_epoch: int,
    warmup_epochs: float = 0.0,
    step_size: int = 30,
    gamma: float = 0.1,
) -> torch.optim.lr_scheduler.LRScheduler:
    """A scheduler stepped once per optimizer step."""
    total = epochs * steps_per_epoch
    if schedule == "onecycle":
        max_lr = [g["lr"] for g in optimizer.param_groups]
        pct = warmup_epochs / epochs if warmup_epochs else 0.3
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=max_lr, total_steps=max(1, total), pct_start=pct
        )
    warm = int(round(warmup_epochs * steps_per_epoch))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(schedule, total, warm, steps_per_epoch, step_size, gamma)
    )


def load_scheduler_state(scheduler: torch.optim.lr_scheduler.LRScheduler, state: dict) -> None:
    """Load a checkpoint's scheduler state but keep the length of the schedule `scheduler` was built with, so that
    a resumed run given more epochs stretches its schedule to them (a LambdaLR saves no length; a OneCycleLR saves
    its length and phases, put back here)."""
    length = {k: v for k, v in vars(scheduler).items() if k in ("total_steps", "_schedule_phases")}
    scheduler.load_state_dict(state)
    vars(scheduler).update(length)


def init_weights(model: nn.Module, name: str) -> None:
    """Re-initialize conv and linear weights: `xavier` (Glorot uniform) or `he` (Kaiming normal, fan_out, ReLU)."""
    if name not in INITS:
        raise MMKitError(f"--init {name}: choose one of {', '.join(INITS)}")
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)):
            if name == "xavier":
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif (
            isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm))
            and m.weight is not None
        ):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
