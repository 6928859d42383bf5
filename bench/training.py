"""Shared helpers for the benchmarks that train through mmkit's engine: settings from the task's recipe, a timed fit.

A benchmark trains what the command line trains: ``recipe_config("classify", "digits", ...)`` is the TrainConfig of
``mmkit classify train --data digits`` (the task's ``RECIPES``, read through ``TaskSpec.train_config``), plus the
run's own name, folder, seed and device. A script keeps only what is its own (targets, what it measures, which
models) in a small dataclass; ``--set FIELD=VALUE`` overrides either (see ``settings``).
"""

from __future__ import annotations

import contextlib
import csv
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from common import load_average

from mmkit.engine import TrainConfig, Trainer
from mmkit.tasks.registry import get_task

Own = TypeVar("Own")


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """``--set FIELD=VALUE`` items as a dict, values parsed as YAML (1e-3, true, null, [1, 2, 2], {a: 1})."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise SystemExit(f"--set {item}: expected FIELD=VALUE, e.g. --set lr=1e-3")
        parsed = yaml.safe_load(value)
        if isinstance(parsed, str):  # YAML reads 3e-3 (no dot) as a string
            with contextlib.suppress(ValueError):
                parsed = float(parsed)
        out[key] = parsed
    return out


def settings(
    own: Own, items: Sequence[str], quick: Mapping[str, Any] | None = None
) -> tuple[Own, dict[str, Any]]:
    """The script's own settings (the dataclass `own`, with the --set items that name its fields) and the training
    overrides: `quick` (a --quick run's), then the other --set items (fields of TrainConfig or of the task's
    options; a name that is neither stops the run when its task is built)."""
    sets = parse_sets(items)
    names = {f.name for f in fields(own)}
    mine = {k: v for k, v in sets.items() if k in names}
    return replace(own, **mine), {**(quick or {}), **{k: v for k, v in sets.items() if k not in names}}


def recipe_config(
    task: str, data: str, /, *, run: str, workdir: Path, seed: int = 0, device: str = "cpu", **overrides: Any
) -> TrainConfig:
    """The TrainConfig of ``mmkit <task> train --data <data>`` (the task's recipe for builtin `data`) as run `run`
    under `workdir`, then `overrides`.

    Unlike `TaskSpec.train_config`, a `model` or `data` among the overrides keeps the recipe's other settings: a
    benchmark's baselines and variants train as its main model does."""
    spec = get_task(task)
    values = {"name": run, "project": str(workdir), "seed": seed, "device": device, **overrides}
    return spec.train_config(values.pop("data", data), **{**spec.recipe(data), **values})


def recipe_record(cfg: TrainConfig) -> dict[str, Any]:
    """What a result names as its recipe: the task options given, then every engine setting (not the run's paths)."""
    engine = {k: v for k, v in cfg.to_dict().items() if k not in ("task_args", "name", "project", "exist_ok")}
    return {**cfg.task_args, **engine}


def step_config(workdir: Path, steps: int, **settings: Any) -> TrainConfig:
    """One epoch of `steps` batches of a benchmark's own Task (not a registered task: no recipe), at a constant
    learning rate, batches loaded in the training process."""
    return TrainConfig(
        task="bench",
        project=str(workdir),
        epochs=1,
        schedule="constant",
        workers=0,
        max_steps=steps,
        **settings,
    )


@contextlib.contextmanager
def runs_dir(keep: Path | None) -> Iterator[Path]:
    """Where the runs go: `keep` (--keep-runs), or a temporary folder removed afterwards."""
    if keep is not None:
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="mmkit-bench-") as tmp:
        yield Path(tmp)


@dataclass
class Trained:
    """A finished fit: its config, the engine Task (its net, data and options), the FitResult and how long the fit
    took."""

    cfg: TrainConfig
    task: Any
    fit: Any
    seconds: float
    load_before: list[float] | None
    epochs: list[dict[str, str]]  # metrics.csv, a row per epoch

    @property
    def best(self) -> Path:
        return self.fit.run_dir / "best.pt"

    def curve(self, column: str, digits: int = 2) -> list[float]:
        """A metrics.csv column: a value per epoch that logged it."""
        return [round(float(r[column]), digits) for r in self.epochs if r.get(column)]

    def record(self) -> dict[str, Any]:
        """What every benchmark records of its fits: wall time, epochs, time and speed by epoch, machine load."""
        return {
            "train_wall_s": round(self.seconds, 1),
            "epochs_run": self.fit.epochs,
            "best_epoch": self.fit.best_epoch,
            "epoch_s": self.curve("time"),
            "train_samples_per_s": self.curve("train/samples_per_s", 1),
            "load_average_before": self.load_before,
            "load_average_after": load_average(),
        }


def train(cfg: TrainConfig) -> Trained:
    """Build the task of `cfg` (as ``mmkit <task> train`` does) and fit it. The wall time is the whole ``fit()``:
    loading data, building the model, every epoch with its validation, checkpoints, curves and the HTML report."""
    task = get_task(cfg.task).make_task(cfg.task_args)
    load_before = load_average()
    t0 = time.perf_counter()
    fit = Trainer(task, cfg, progress=False).fit()
    seconds = time.perf_counter() - t0
    with (fit.run_dir / "metrics.csv").open() as f:
        epochs = list(csv.DictReader(f))
    return Trained(cfg, task, fit, seconds, load_before, epochs)
