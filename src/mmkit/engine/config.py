"""The engine's options, one dataclass, saved as config.yaml in every run directory."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from mmkit.errors import MMKitError


@dataclass
class TrainConfig:
    task: str = "classify"
    name: str = "exp"
    project: str = "runs"  # runs/<task>/<name>/
    epochs: int = 10
    batch_size: int = 64  # global batch: split across DDP ranks
    lr: float = 1e-3
    optimizer: str = "adamw"  # sgd | adam | adamw | rmsprop | rprop | lbfgs
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "cosine"  # cosine | step | onecycle | constant
    warmup_epochs: float = 0.0
    step_size: int = 30  # epochs between decays for the step schedule
    gamma: float = 0.1
    init: str | None = None  # xavier | he | None (the model's own initialization)
    grad_clip: float | None = None  # max global grad norm
    accumulate: int = 1  # micro-batches per optimizer step
    precision: str = "fp32"  # fp32 | bf16 | fp16
    device: str = "auto"
    channels_last: bool = False
    compile: bool = False
    workers: int | None = None  # None: the task's choice
    threads: int | None = None  # CPU intra-op threads (torch.set_num_threads); None: torch's default
    seed: int = 0
    patience: int | None = None  # early stopping: epochs without improvement of the monitored metric
    log_every: int = 50  # steps between loss syncs (progress text, TensorBoard, NaN check)
    max_steps_per_epoch: int | None = None  # cap batches per epoch (quick runs)
    exist_ok: bool = False
    task_args: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise MMKitError(f"config: unknown keys {sorted(unknown)}")
        return cls(**d)

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
