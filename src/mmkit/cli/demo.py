"""`mmkit demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmkit.cli import common as c


def demo(
    out: Annotated[Path, typer.Option("--out", help="Where the demo writes its runs and report.")] = Path(
        "runs/demo"
    ),
    quick: Annotated[bool, typer.Option("--quick", help="Very short trainings (a smoke test).")] = False,
    device: c.Device = "auto",
    json: c.Json = False,
) -> None:
    """Train classifiers and a detector on embedded data, evaluate, name real photos, write runs/demo/report.html.
    Offline, a few minutes.

    Example: mmkit demo
    """
    from mmkit.apps.demo import run_demo

    r = run_demo(out, quick=quick, device=device)
    parts = [
        f"{k} top1 {v['top1']:.2f}%" for k, v in r.results.items() if isinstance(v, dict) and "top1" in v
    ] + [f"{k} mAP@.5 {v['map50']:.3f}" for k, v in r.results.items() if isinstance(v, dict) and "map50" in v]
    if "faces" in r.results:
        parts.append(f"faces {r.results['faces']['identified']}/{r.results['faces']['probes']} identified")
    if "captions" in r.results:
        parts.append(f"captions BLEU-4 {r.results['captions']['BLEU-4']:.3f}")
    if "analyze" in r.results:
        parts.append(f"{r.results['analyze']['files']} real files analyzed")
    c.emit(f"demo: {', '.join(parts)} -> {r.report}", {"report": str(r.report), "results": r.results}, json)
