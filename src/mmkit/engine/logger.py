"""What a run writes besides checkpoints: metrics.csv, TensorBoard events, curves.png. Rank 0 only."""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import time
from pathlib import Path

from mmkit.errors import MMKitError

log = logging.getLogger(__name__)


def check_run_name(name: str) -> str:
    """`name`, when it is one folder name (the <name> of runs/<task>/<name>); anything that would lead elsewhere
    ('/', '..', an absolute path) is an MMKitError."""
    if name in ("", ".", "..") or Path(name).name != name or "\0" in name:
        raise MMKitError(f"--name {name!r}: a run name is one folder name (no '/', '..' or absolute path)")
    return name


def next_run_dir(project: str | os.PathLike, task: str, name: str, exist_ok: bool = False) -> Path:
    """runs/<task>/<name>, or <name>2, <name>3 ... when it already holds a run (unless exist_ok)."""
    base = Path(project) / task
    d = base / name
    if exist_ok or not d.exists():
        return d
    i = 2
    while (base / f"{name}{i}").exists():
        i += 1
    return base / f"{name}{i}"


class RunLogger:
    """Collects one row of scalars per epoch; rewrites metrics.csv atomically and mirrors to TensorBoard."""

    def __init__(self, run_dir: Path, *, start_epoch: int = 0, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.csv_path = self.run_dir / "metrics.csv"
        self.rows: list[dict[str, float]] = []
        self.plot_every = (
            30.0  # seconds between redraws of curves.png during training; the trainer draws at the end
        )
        self._last_plot = float("-inf")
        if start_epoch > 0 and self.csv_path.exists():  # resume: keep the rows of completed epochs
            with self.csv_path.open() as f:
                for r in csv.DictReader(f):
                    if int(float(r["epoch"])) <= start_epoch:
                        self.rows.append({k: float(v) for k, v in r.items() if v not in ("", None)})
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(
                    str(self.run_dir), purge_step=start_epoch + 1 if start_epoch else None
                )
            except ImportError:  # pragma: no cover - tensorboard is a dependency
                log.warning("tensorboard is not installed; no event files are written")

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self._tb is not None and math.isfinite(value):
            self._tb.add_scalar(tag, value, step)

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        row = {"epoch": float(epoch), **{k: float(v) for k, v in metrics.items()}}
        self.rows.append(row)
        for k, v in metrics.items():
            self.scalar(f"epoch/{k}", float(v), epoch)
        self._write_csv()
        if (
            time.monotonic() - self._last_plot >= self.plot_every
        ):  # drawing costs ~0.5 s: not after every short epoch
            self.plot()

    def _write_csv(self) -> None:
        cols = ["epoch"] + sorted({k for r in self.rows for k in r} - {"epoch"})
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols)
        w.writeheader()
        for r in self.rows:
            w.writerow({k: (int(v) if k == "epoch" else f"{v:.6g}") for k, v in r.items()})
        tmp = self.csv_path.with_suffix(".csv.tmp")
        tmp.write_text(buf.getvalue())
        tmp.replace(self.csv_path)

    def plot(self) -> Path | None:
        from mmkit.report.plots import plot_curves

        self._last_plot = time.monotonic()
        try:
            return plot_curves(self.csv_path, self.run_dir / "curves.png")
        except Exception as e:  # a plot must never stop training
            log.warning("could not plot curves: %s", e)
            return None

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
