"""The engine's options, one dataclass, saved as config.yaml in every run directory."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from mmkit.errors import MMKitError
from mmkit.options import option

ENGINE, RUN = "Engine", "Run"

# config.yaml keys of runs written before the fields were named as their flags
_RENAMED = {"warmup_epochs": "warmup", "max_steps_per_epoch": "max_steps"}


@dataclass
class TrainConfig:
    """Every engine option, declared once: the CLI's engine flags are derived from these fields."""

    task: str = "classify"
    name: str = option("exp", help="Run name: runs/<task>/<name> (default exp, exp2, ...).", panel=RUN)
    project: str = option("runs", help="Root folder of runs.", panel=RUN)
    epochs: int = option(10, "--epochs", "-e", help="Training epochs.", panel=ENGINE)
    batch_size: int = option(
        64, "--batch-size", "-b", help="Global batch size (split over DDP processes).", panel=ENGINE
    )
    lr: float = option(1e-3, help="Base learning rate.", panel=ENGINE)
    optimizer: str = option("adamw", help="sgd | adam | adamw | rmsprop | rprop | lbfgs", panel=ENGINE)
    weight_decay: float = option(1e-4, help="Weight decay.", panel=ENGINE)
    momentum: float = option(0.9, help="Momentum (SGD, RMSprop).", panel=ENGINE)
    schedule: str = option("cosine", help="cosine | step | onecycle | constant", panel=ENGINE)
    warmup: float = option(0.0, help="Linear warm-up, in epochs.", panel=ENGINE)
    step_size: int = option(30, help="Epochs between decays (step schedule).", panel=ENGINE)
    gamma: float = 0.1  # decay factor of the step schedule
    init: str | None = option(None, help="Re-initialize weights: xavier | he.", panel=ENGINE)
    grad_clip: float | None = option(None, help="Clip the global gradient norm.", panel=ENGINE)
    accumulate: int = option(1, help="Micro-batches per optimizer step.", panel=ENGINE)
    precision: str = option("fp32", help="fp32 | bf16 | fp16 (with a grad scaler)", panel=ENGINE)
    device: str = option("auto", help="auto | cpu | cuda | cuda:N | mps", panel=ENGINE)
    channels_last: bool = option(False, help="channels_last memory format.", panel=ENGINE)
    compile: bool = option(False, help="torch.compile the model.", panel=ENGINE)
    workers: int | None = option(None, help="DataLoader workers (default: the task's choice).", panel=ENGINE)
    threads: int | None = option(
        None, help="CPU threads for PyTorch ops (fewer than cores when the machine is busy).", panel=ENGINE
    )
    seed: int = option(0, help="Random seed.", panel=ENGINE)
    patience: int | None = option(None, help="Early stopping: epochs without improvement.", panel=ENGINE)
    ema: float | None = option(
        None, help="Weight average: EMA of this decay (e.g. 0.999), for validation and best.pt.", panel=ENGINE
    )
    swa_from: int | None = option(
        None, help="Weight average: SWA, the mean of each epoch's weights from this epoch on.", panel=ENGINE
    )
    log_every: int = 50  # steps between loss syncs (progress text, TensorBoard, NaN check)
    max_steps: int | None = option(None, help="Cap batches per epoch (quick runs).", panel=ENGINE)
    exist_ok: bool = option(False, help="Reuse runs/<task>/<name> instead of a new name.", panel=RUN)
    task_args: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = {_RENAMED.get(k, k): v for k, v in d.items()}
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise MMKitError(f"config: unknown keys {sorted(unknown)}")
        return cls(**d)

    def replace(self, **changes: Any) -> TrainConfig:
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".yaml.tmp")
        tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        try:
            d = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as e:
            raise MMKitError(f"{path}: cannot read run config ({e})") from e
        if not isinstance(d, dict):
            raise MMKitError(f"{path}: not a run config")
        return cls.from_dict(d)
