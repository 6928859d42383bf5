"""Shared helpers for the benchmark scripts: command line, device description, machine load, tables, JSON results.

Results go to ``bench/results/<name>.json``; ``--quick`` runs write ``<name>.quick.json`` so that a check that a
script still works never overwrites a real measurement.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Environment variables that change CPU threading behaviour; recorded with every result.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "MKL_NUM_THREADS")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or platform.processor() where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The vector instruction sets that matter for CPU kernels (avx2, avx512*, amx*), if /proc/cpuinfo says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return sorted(f for f in flags if f in ("avx2", "fma") or f.startswith(("avx512", "amx")))
    except OSError:
        pass
    return []


def device_name(device: torch.device | str) -> str:
    """``torch.cuda.get_device_name`` for a CUDA device, the CPU model otherwise."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def load_average() -> list[float] | None:
    """1/5/15-minute load averages (how busy the machine was; compare with the number of cores)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def environment(device: torch.device | str, threads: int | None = None) -> dict[str, Any]:
    """What a result must name: device, versions, threads, cores, date and load at the time of the call."""
    device = torch.device(device)
    env: dict[str, Any] = {
        "device": device_name(device),
        "device_type": device.type,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "load_average_start": load_average(),
        "env_vars": {k: os.environ[k] for k in THREAD_ENV_VARS if k in os.environ},
    }
    if device.type == "cuda":
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
    try:
        import torchvision

        env["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    return env


def base_parser(description: str, *, training: bool = False) -> argparse.ArgumentParser:
    """A parser with the options every benchmark shares: --quick and --threads; with `training` (a benchmark that
    trains through the engine) also --seed, --set FIELD=VALUE and --keep-runs."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--quick", action="store_true", help="tiny run (under a minute) that checks the script works"
    )
    p.add_argument(
        "--threads", type=int, default=2, help="torch intra-op threads (default 2, as in the targets)"
    )
    if training:
        p.add_argument("--seed", type=int, default=0)
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="FIELD=VALUE",
            help="override a setting: a field of TrainConfig or of the task's options (as `mmkit <task> train` "
            "names them, e.g. --set lr=1e-3 --set warmup=0.5), or one of the script's own (its targets)",
        )
        p.add_argument(
            "--keep-runs", type=Path, help="keep the run directories here (default: a temporary one)"
        )
    return p


def parse_args(p: argparse.ArgumentParser) -> argparse.Namespace:
    """The parsed command line, with warnings logged and torch's intra-op threads set to --threads."""
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    set_threads(args.threads)
    return args


def set_threads(threads: int) -> None:
    """Intra-op threads for CPU kernels (the targets are stated for 2)."""
    torch.set_num_threads(threads)


def result_path(name: str, *, quick: bool) -> Path:
    return RESULTS_DIR / f"{name}{'.quick' if quick else ''}.json"


def read_result(name: str, *, quick: bool) -> dict[str, Any] | None:
    """The previously written result, or None (missing or unreadable)."""
    try:
        return json.loads(result_path(name, quick=quick).read_text())
    except (OSError, ValueError):
        return None


def write_result(name: str, payload: dict[str, Any], *, quick: bool) -> Path:
    """Write ``bench/results/<name>[.quick].json`` atomically, adding the end-of-run load average."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = result_path(name, quick=quick)
    payload = dict(payload)
    env = dict(payload.get("environment", {}))
    env["load_average_end"] = load_average()
    payload["environment"] = env
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path


def save_result(name: str, env: dict[str, Any], *, quick: bool, **fields: Any) -> Path:
    """Write ``bench/results/<name>[.quick].json``: the benchmark's name, whether quick, its environment, then
    `fields`; and say where."""
    path = write_result(name, {"benchmark": name, "quick": quick, "environment": env, **fields}, quick=quick)
    print(f"wrote {path}")
    return path


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table, columns padded to their widest cell; floats get a sensible number of digits."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"
        return str(v)

    text = [[cell(v) for v in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) if text else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for raw, r in zip(rows, text, strict=True):  # numbers right-aligned, text left-aligned
        cells = [
            c.rjust(w) if isinstance(v, (int, float)) else c.ljust(w)
            for v, c, w in zip(raw, r, widths, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None, *, quick: bool = False
) -> None:
    """`format_table` under `title`; a `quick` run's title says that its numbers are not a result."""
    if title:
        print(f"\n{title}" + (" (quick: not a real result)" if quick else ""))
    print(format_table(headers, rows))


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


class StepClock:
    """Timestamps at the start of chosen forward passes; ``sync`` (cuda.synchronize) makes them device-true."""

    def __init__(self, warmup: int, steps: int, sync: Callable[[], None] | None = None) -> None:
        self.warmup, self.steps, self.sync = warmup, steps, sync
        self.calls = 0
        self.t0: float | None = None
        self.t1: float | None = None

    def tick(self) -> None:
        if self.calls in (self.warmup, self.warmup + self.steps):
            if self.sync:
                self.sync()
            now = time.perf_counter()
            if self.calls == self.warmup:
                self.t0 = now
            else:
                self.t1 = now
        self.calls += 1

    @property
    def total_steps(self) -> int:
        """Batches a loop must start so that the closing timestamp is taken."""
        return self.warmup + self.steps + 1

    def images_per_s(self, batch: int) -> float:
        if self.t0 is None or self.t1 is None:
            raise RuntimeError("the loop ended before the measured window closed")
        return self.steps * batch / (self.t1 - self.t0)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, warmup: int, iters: int) -> float:
    """Seconds per call: the median of `iters` timed calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]
