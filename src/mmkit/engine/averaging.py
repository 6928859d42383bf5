"""Weight averaging (`--ema DECAY`, `--swa-from EPOCH`): a copy of the model whose weights average the trained ones.

- EMA, an exponential moving average (Polyak-Juditsky averaging that forgets), updated after every optimizer step.
- SWA, stochastic weight averaging (Izmailov et al., 2018): the plain mean of the weights at the end of each epoch
  from `--swa-from` on. No average of weights gives BatchNorm statistics that fit the averaged weights, so they are
  recomputed over the training data (torch's `update_bn`) before the average is evaluated.

Both are one formula. Update t (from 1) moves the average towards the current weights by

    w_t = (1 - d) / (1 - d**t)     (EMA of decay d)          w_t = 1 / t     (SWA, the limit d -> 1)

This is the exponential average with Adam's bias correction: update t is the normalised sum of every weight seen so
far, each weighted d**age. It is the warm-up of the decay: the first update copies the weights (w_1 = 1) and the
effective decay 1 - w_t rises to d over about 1/(1 - d) updates, so the random initial weights get no share and a
short run is averaged as a long one is. (The warm-up of timm's ModelEmaV2 / ultralytics, d * (1 - exp(-t / 2000)),
is fixed at 2000 updates: the 3,780 steps of the Fashion-MNIST recipe would end at an effective decay of 0.85, an
average of the last ~7 steps, whatever DECAY asks.)

Float parameters are averaged; buffers (BatchNorm statistics, counters) are copied from the trained model at each
update, then, for SWA, the BatchNorm statistics are recomputed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from mmkit.errors import MMKitError

if TYPE_CHECKING:
    from mmkit.engine.config import TrainConfig
    from mmkit.engine.runtime import Runtime


class WeightAverage:
    """The average of one model's weights, as `--ema` (`decay`) or `--swa-from` (`swa_from`) asks: `module` holds
    it once `updates` > 0."""

    def __init__(self, model: nn.Module, *, decay: float | None = None, swa_from: int | None = None):
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.swa_from = decay, swa_from
        self.updates = 0

    @property
    def kind(self) -> str:
        return "ema" if self.decay is not None else "swa"

    def weight(self, t: int) -> float:
        """How far update `t` (from 1) moves the average towards the current weights."""
        if self.decay is None:
            return 1.0 / t
        return (1.0 - self.decay) / (1.0 - self.decay**t)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Take in the current weights of `model`: float parameters averaged, buffers copied."""
        self.updates += 1
        pairs = [
            (a, p.detach())
            for a, p in zip(self.module.parameters(), model.parameters(), strict=True)
            if a.is_floating_point()
        ]
        if pairs:
            averaged, current = zip(*pairs, strict=True)
            torch._foreach_lerp_(list(averaged), list(current), self.weight(self.updates))
        for a, b in zip(self.module.buffers(), model.buffers(), strict=True):
            a.copy_(b)

    def after_step(self, model: nn.Module) -> None:
        """After each optimizer step of `model`: EMA takes in its weights."""
        if self.decay is not None:
            self.update(model)

    def after_epoch(self, model: nn.Module, epoch: int) -> bool:
        """After epoch `epoch` (from 1): SWA takes in the weights from `swa_from` on. Whether it did (then the
        BatchNorm statistics are to be recomputed, see `recompute_bn`)."""
        if self.swa_from is None or epoch < self.swa_from:
            return False
        self.update(model)
        return True

    # --- checkpoints ------------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """What a checkpoint records of the average (its weights go in the checkpoint's "model")."""
        return {"kind": self.kind, "decay": self.decay, "swa_from": self.swa_from, "updates": self.updates}

    def load(self, state: dict[str, Any] | None, weights: dict[str, Any]) -> None:
        """Continue the average a checkpoint recorded (`state`, its "model" being `weights`); one of another kind,
        or none, starts afresh from the resumed weights."""
        if not state or state.get("kind") != self.kind or not state.get("updates"):
            return
        self.module.load_state_dict(weights)
        self.updates = int(state["updates"])


def check_averaging(cfg: TrainConfig) -> None:
    """A bad `--ema` / `--swa-from` value is one `MMKitError` (before the data is loaded)."""
    ema, swa_from = cfg.ema, cfg.swa_from
    if ema is not None and swa_from is not None:
        raise MMKitError("--ema and --swa-from: choose one (each averages the weights its own way)")
    if ema is not None and not 0.0 < ema < 1.0:
        raise MMKitError(f"--ema {ema}: the decay must lie between 0 and 1 (e.g. 0.999)")
    if swa_from is not None and swa_from < 1:
        raise MMKitError(f"--swa-from {swa_from}: epochs count from 1")
    if swa_from is not None and swa_from > cfg.epochs:
        raise MMKitError(f"--swa-from {swa_from}: after the last epoch (--epochs {cfg.epochs})")


def build_average(
    cfg: TrainConfig, task: Any, models: dict[str, nn.Module], optimizers: dict[str, Any]
) -> WeightAverage | None:
    """The `WeightAverage` of the task's "model" that `cfg` asks for, or None. A task that trains several models
    by hand (a GAN's generator and discriminator) is refused with one `MMKitError`."""
    check_averaging(cfg)
    if cfg.ema is None and cfg.swa_from is None:
        return None
    if task.manual_optimization or set(optimizers) != {"model"} or "model" not in models:
        raise MMKitError(
            f"{'--ema' if cfg.ema is not None else '--swa-from'}: averages one model trained by one optimizer; "
            f"{task.name} trains {' and '.join(sorted(optimizers))} by hand"
        )
    return WeightAverage(models["model"], decay=cfg.ema, swa_from=cfg.swa_from)


class _TaskForward(nn.Module):
    """A task's forward on a whole batch (its loss: input transforms included), as the module update_bn drives."""

    def __init__(self, net: nn.Module, forward: Callable[[nn.Module, Any], Any]):
        super().__init__()
        self.net, self.fn = net, forward

    def forward(self, batch: Any) -> Any:
        return self.fn(self.net, batch)


@torch.no_grad()
def recompute_bn(
    module: nn.Module, batches: Iterable[Any], forward: Callable[[nn.Module, Any], Any], rt: Runtime
) -> None:
    """The BatchNorm statistics of `module` over `batches` (torch's `update_bn`), each batch run through
    `forward(module, batch)`: update_bn alone would call the module on the batch's first element, before the task's
    input transforms. The RNG is forked (augmentation draws leave training's stream as it was); with several
    processes each computes over its share and the statistics are averaged across them."""
    wrapper = _TaskForward(module, forward).eval()
    bn = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bn:
        return
    with torch.random.fork_rng(devices=[rt.device] if rt.device.type == "cuda" else []), rt.autocast():
        update_bn(((rt.move(b),) for b in batches if b is not None), wrapper)
    stats = [t for m in bn for t in (m.running_mean, m.running_var) if t is not None]
    if rt.distributed:
        rt.all_reduce_(stats)
        for t in stats:
            t.div_(rt.world_size)
