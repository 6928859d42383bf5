"""`mmkit analyze`: every applicable model over a folder of photos and videos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmkit.apps.options import ModelOptions
from mmkit.cli import common as c


def _analyze(
    paths: Annotated[
        list[Path], typer.Argument(help="Image and video files, or folders (walked recursively).")
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output folder (default runs/analyze/exp, exp2, ...)."),
    ] = None,
    segment_seconds: Annotated[
        float, typer.Option("--segment-seconds", help="Segment length for the video model's labels.")
    ] = 5.0,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images per model call.")] = 32,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Image decoding threads (default: up to 4).")
    ] = None,
    device: c.Device = "auto",
    json: c.Json = False,
    *,
    models: ModelOptions,
) -> None:
    """Run every model at hand over photos and videos; write analysis.json and report.html.

    Photos: ImageNet labels, faces (named with a gallery), objects, captions. Videos: faces over time, key frames,
    labels per segment. The report shows thumbnails, boxes and names drawn, and a table sortable by label.
    Unreadable files are listed with the reason and the rest are analyzed.

    Example: mmkit analyze photos/ clips/ --out runs/analyze/holiday --face-db faces.db --face-weights best.pt
    """
    from mmkit.apps.analyze import analyze as run
    from mmkit.engine.logger import next_run_dir

    out_dir = out if out is not None else next_run_dir("runs", "analyze", "exp")
    doc = run(
        paths,
        out_dir,
        models=models,
        segment_seconds=segment_seconds,
        batch_size=batch_size,
        workers=workers,
        device=device,
        progress=not json,
    )
    files, errors = doc["files"], doc["errors"]
    n_img = sum(1 for r in files if r["kind"] == "image")
    n_faces = sum(len(r["faces"]) for r in files if r["kind"] == "image")
    summary = (
        f"analyze: {len(files)} files ({n_img} images, {len(files) - n_img} videos; {n_faces} faces in the images) "
        f"in {doc['seconds']:.1f}s, {len(errors)} not readable -> {out_dir / 'report.html'}"
    )
    for e in errors:
        typer.echo(f"not analyzed: {e['path']}: {e['reason']}", err=True)
    payload = {
        "out_dir": str(out_dir),
        "analysis": str(out_dir / "analysis.json"),
        "report": str(out_dir / "report.html"),
        "files": len(files),
        "images": n_img,
        "videos": len(files) - n_img,
        "errors": errors,
        "seconds": doc["seconds"],
    }
    c.emit(summary, payload, json)


analyze = c.options_command(_analyze, "models", ModelOptions)
