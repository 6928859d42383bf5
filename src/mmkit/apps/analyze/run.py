"""`mmkit analyze`: every applicable model over photos and videos, into analysis.json and report.html.

    doc = analyze(["photos/", "clip.mp4"], "out/")       # ImageNet top-5 (EfficientNet-Lite0) and MTCNN faces
    doc = analyze(["photos/"], "out/", face_db="faces.db", face_weights="face/best.pt", detector="det/best.pt")
    doc["files"][0]["imagenet"][0]                       # {"label": "espresso", "score": 0.83}

Images are decoded by a thread pool one batch ahead of the models, each once, shrunk to at most `WORK_SIDE` px on
its longer side (faces are searched and pictures drawn at that size; every model resizes from it), and each model
runs once per batch. Videos are sampled at `VIDEO_FPS` (at most `VIDEO_MAX_FRAMES` frames): faces in every sampled
frame, key frames where the picture changes most, ImageNet labels of the key frames, and with a video model labels
per segment. Files that cannot be read are listed under "errors" with the reason; the rest are analyzed. The schema
of analysis.json is in docs/analysis-schema.md; boxes and landmarks are in pixels of the original image or frame.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

import mmkit
from mmkit.apps.analyze.models import (
    Models,
    caption,
    classify,
    detect_objects,
    find_faces,
    load_models,
    topk_labels,
)
from mmkit.apps.analyze.report import (
    contact_sheet,
    draw_picture,
    safe_stem,
    save_jpeg,
    shrink,
    write_analysis_report,
)
from mmkit.apps.options import ModelOptions
from mmkit.data.formats.images import IMG_EXTENSIONS, read_image
from mmkit.data.formats.video import VIDEO_EXTENSIONS, probe, read_frames
from mmkit.data.walk import walk_files
from mmkit.errors import MMKitError
from mmkit.report.html import atomic_output

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
WORK_SIDE = 640  # px, longer side: faces are searched and pictures drawn at this size
THUMB_SIDE = 240  # px, longer side of thumbnails
VIDEO_FPS = 2.0  # frames sampled per second of video ...
VIDEO_MAX_FRAMES = 64  # ... at most this many per video (spread over it)
KEY_FRAMES = 5  # at most, per video
# A key frame after the first differs from the sampled frame before it by more than this (0-1)
MIN_CHANGE = 0.005


# ---------------------------------------------------------------------------------------------------------------------
# Finding the files


def media_kind(path: str | os.PathLike) -> str | None:
    """The kind of a file by its name's extension: "image", "video", or None."""
    name = os.fspath(path).lower()
    if name.endswith(IMG_EXTENSIONS):
        return "image"
    if name.endswith(VIDEO_EXTENSIONS):
        return "video"
    return None


def collect_files(
    paths: Sequence[str | os.PathLike], exclude: str | os.PathLike | None = None
) -> tuple[list[tuple[str, str]], list[dict[str, str]], list[str]]:
    """(files as (path, kind), errors, ignored). Folders are walked recursively in sorted order, hidden entries and
    anything under `exclude` (the output folder) left out; their files without an image or video extension are
    ignored. A file named on its own with another extension is tried as an image (its content decides)."""
    skip = Path(exclude).resolve() if exclude is not None else None
    files: list[tuple[str, str]] = []
    errors: list[dict[str, str]] = []
    ignored: list[str] = []
    seen: set[Path] = set()

    def add(p: Path, kind: str) -> None:
        real = p.resolve()
        if real not in seen:
            seen.add(real)
            files.append((str(p), kind))

    for arg in paths:
        root = Path(arg)
        if root.is_dir():
            for p in walk_files(root, exclude=skip):
                kind = media_kind(p)
                if kind is None:
                    ignored.append(str(p))
                else:
                    add(p, kind)
        elif root.is_file():
            add(root, media_kind(root) or "image")
        else:
            errors.append({"path": str(root), "reason": "no such file or folder"})
    return files, errors, ignored


def _reason(error: MMKitError, path: str) -> str:
    """An MMKitError's text without the leading "<path>: "."""
    text = str(error)
    return text[len(path) + 2 :] if text.startswith(f"{path}: ") else text


# ---------------------------------------------------------------------------------------------------------------------
# Records


def _record(path: str, kind: str, width: int, height: int) -> dict[str, Any]:
    """A file's record with every key of the schema; lists stay empty where a model found nothing or did not run."""
    return {
        "path": path,
        "kind": kind,
        "width": int(width),
        "height": int(height),
        "duration": None,
        "fps": None,
        "frames": None,
        "imagenet": [],
        "faces": [],
        "objects": [],
        "caption": None,
        "video_labels": [],
        "segments": [],
        "face_timeline": [],
        "key_frames": [],
        "thumbnail": None,
        "picture": None,
    }


@dataclass
class _Decoded:
    """An image ready for the models: its work copy (at most WORK_SIDE px, `scale` times the original) and the
    input of each model."""

    path: str
    height: int
    width: int
    work: Tensor
    scale: float
    inputs: dict[str, Any] = field(default_factory=dict)


def _decode(path: str, m: Models, thumb: Path) -> _Decoded | str:
    """Read one image, write its thumbnail, make the models' inputs; the reason when it cannot be read."""
    try:
        img = read_image(path)
    except MMKitError as e:
        return _reason(e, path)
    h, w = img.shape[-2:]
    work = shrink(img, WORK_SIDE)
    save_jpeg(shrink(work, THUMB_SIDE), thumb)
    return _Decoded(path, h, w, work, work.shape[-1] / w, m.inputs(work))


def analyze_images(m: Models, batch: list[_Decoded]) -> list[dict[str, Any]]:
    """The records of a batch of decoded images, every model run once on the whole batch."""
    recs = [_record(d.path, "image", d.width, d.height) for d in batch]
    if not batch:
        return recs
    if m.classifier is not None:
        probs = classify(m, [d.inputs["classify"] for d in batch])
        for r, p in zip(recs, probs, strict=True):
            r["imagenet"] = topk_labels(p, m.classifier[1].classes)
    scales = [d.scale for d in batch]
    if m.mtcnn is not None:
        for r, f in zip(recs, find_faces(m, [d.work for d in batch], scales), strict=True):
            r["faces"] = f
    if m.detector is not None:
        sizes = [(d.height, d.width) for d in batch]
        found = detect_objects(m, [d.inputs["detect"] for d in batch], scales, sizes)
        for r, o in zip(recs, found, strict=True):
            r["objects"] = o
    if m.captioner is not None:
        for r, c in zip(recs, caption(m, [d.inputs["caption"] for d in batch]), strict=True):
            r["caption"] = c
    return recs


def key_frames(frames: Tensor, count: int = KEY_FRAMES) -> list[tuple[int, float]]:
    """(index, change) of the first frame and of the frames right after the largest changes, at most `count`, in
    time order. Change: mean absolute difference (0-1) of 32×32 grayscale copies of a frame and the one before;
    frames next to one already picked, or changing less than MIN_CHANGE, are passed over."""
    small = F.interpolate(frames.float().mean(1, keepdim=True), size=(32, 32), mode="area")[:, 0] / 255
    change = torch.zeros(len(frames))
    change[1:] = (small[1:] - small[:-1]).abs().mean((1, 2))
    picked = [0]
    for i in torch.argsort(change, descending=True, stable=True).tolist():
        if len(picked) >= count or change[i] <= MIN_CHANGE:
            break
        if all(abs(i - j) > 1 for j in picked):
            picked.append(i)
    return [(i, round(float(change[i]), 4)) for i in sorted(picked)]


def analyze_video(m: Models, path: str, out: Path, name: str, batch_size: int) -> dict[str, Any]:
    """A video's record: frames sampled at VIDEO_FPS (at most VIDEO_MAX_FRAMES), faces in each, key frames (written
    with their faces drawn to keyframes/), ImageNet labels averaged over the key frames, thumbnail and contact sheet."""
    info = probe(path)
    long_side, short_side = max(info.width, info.height), min(info.width, info.height)
    size = None if long_side <= WORK_SIDE else max(1, round(short_side * WORK_SIDE / long_side))
    fps = min(VIDEO_FPS, VIDEO_MAX_FRAMES / max(info.duration, 1e-3))
    frames, times = read_frames(path, fps=fps, size=size)
    scale = frames.shape[-1] / info.width
    t = [round(float(v), 3) for v in times]
    rec = _record(path, "video", info.width, info.height)
    rec.update(duration=round(info.duration, 3), fps=round(info.fps, 3), frames=info.frames)
    per_frame: list[list[dict]] = [[] for _ in frames]
    if m.mtcnn is not None:
        per_frame = []
        for i in range(0, len(frames), batch_size):
            chunk = list(frames[i : i + batch_size])
            per_frame += find_faces(m, chunk, [scale] * len(chunk))
        rec["face_timeline"] = [{"time": ti, "count": len(f)} for ti, f in zip(t, per_frame, strict=True)]
        rec["faces"] = [{"time": ti, **f} for ti, fs in zip(t, per_frame, strict=True) for f in fs]
    keys = key_frames(frames)
    tops: list[dict | None] = [None] * len(keys)
    if m.classifier is not None:
        probs = classify(m, [m.classifier[2](frames[i]) for i, _ in keys])
        rec["imagenet"] = topk_labels(probs.mean(0), m.classifier[1].classes)
        tops = [topk_labels(p, m.classifier[1].classes, 1)[0] for p in probs]
    drawn = []
    for k, ((i, change), top) in enumerate(zip(keys, tops, strict=True)):
        pic = draw_picture(frames[i], per_frame[i], [], scale)
        rel = f"keyframes/{name}_{k}.jpg"
        save_jpeg(pic, out / rel)
        entry = {"time": t[i], "change": change, "image": rel, "faces": len(per_frame[i])}
        entry.update(label=top["label"] if top else None, score=top["score"] if top else None)
        rec["key_frames"].append(entry)
        drawn.append(pic)
    rec["thumbnail"], rec["picture"] = f"thumbs/{name}.jpg", f"pictures/{name}.jpg"
    save_jpeg(shrink(frames[keys[0][0]], THUMB_SIDE), out / rec["thumbnail"])
    save_jpeg(contact_sheet(drawn), out / rec["picture"])
    return rec


def _label_videos(m: Models, records: list[dict[str, Any]], segment_seconds: float) -> None:
    """Video-model labels for the whole of each video and per segment, in place (one model load for all)."""
    from mmkit.tasks.video import predict

    results, failures = predict(
        m.video, [r["path"] for r in records], segment_seconds=segment_seconds, device=m.video_device
    )
    by_path = {r["path"]: r for r in results}
    for rec in records:
        found = by_path.get(rec["path"])
        if found is not None:
            rec["video_labels"], rec["segments"] = found["top"], found.get("segments", [])
    for path, why in failures:
        log.warning("video labels: %s: %s", path, why)


# ---------------------------------------------------------------------------------------------------------------------
# The whole run


@contextlib.contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar over files on a terminal (nothing when disabled or redirected); yields advance(n)."""
    from mmkit.console import console

    if not enabled or not console().is_terminal:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("analyze"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console(), transient=True) as bar:
        task = bar.add_task("analyze", total=total)
        yield lambda n: bar.advance(task, n)


def _prefetched(pool: ThreadPoolExecutor, items: list, size: int, fn: Callable) -> Iterator[list[tuple]]:
    """(item, fn(*item)) in batches of `size`; the next batch goes to the pool before the current one is yielded."""
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    nxt = [pool.submit(fn, *it) for it in chunks[0]] if chunks else []
    for k, chunk in enumerate(chunks):
        cur = nxt
        nxt = [pool.submit(fn, *it) for it in chunks[k + 1]] if k + 1 < len(chunks) else []
        yield [(it, f.result()) for it, f in zip(chunk, cur, strict=True)]


def _write_picture(work: Tensor, rec: dict[str, Any], scale: float, path: Path) -> None:
    save_jpeg(draw_picture(work, rec["faces"], rec["objects"], scale), path)


def _nothing_read(errors: list[dict[str, str]], ignored: list[str], paths: Sequence) -> MMKitError:
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return MMKitError(f"nothing analyzed: {errors[0]['path']}: {errors[0]['reason']}{more}")
    extra = f" ({len(ignored)} other files ignored)" if ignored else ""
    return MMKitError(f"{', '.join(str(p) for p in paths)}: no image or video files{extra}")


def analyze(
    paths: Sequence[str | os.PathLike] | str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    models: ModelOptions | Models | None = None,
    segment_seconds: float = 5.0,
    batch_size: int = 32,
    workers: int | None = None,
    device: str = "auto",
    progress: bool = True,
    **model_options: Any,
) -> dict[str, Any]:
    """Analyze every image and video under `paths`; write `out_dir`/analysis.json (returned as a dict) and
    report.html, with thumbs/, pictures/ (faces, names and objects drawn) and keyframes/.

    `models`: the `ModelOptions` to load (or its fields as keywords: `classifier="imagenet"` (EfficientNet-Lite0),
    a classify checkpoint or None; `faces`: MTCNN, named from the gallery `face_db` with the embedder `face_weights`;
    `detector`, `captioner`, `video`: checkpoints of those tasks), or `Models` already loaded by `load_models` (a
    server reuses them; they stay open). `workers`: decoding threads (default up to 4). Unreadable files are listed
    under "errors"; an MMKitError when nothing at all could be analyzed."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if batch_size < 1:
        raise MMKitError(f"--batch-size {batch_size}: must be at least 1")
    start = time.perf_counter()
    out = Path(out_dir)
    files, errors, ignored = collect_files(paths, exclude=out)
    if not files:
        raise _nothing_read(errors, ignored, paths)
    own = not isinstance(models, Models)
    m = load_models(models, device=device, **model_options) if own else models
    digits = max(4, len(str(len(files))))
    names = [f"{i:0{digits}d}_{safe_stem(p)}" for i, (p, _) in enumerate(files)]
    records: dict[int, dict[str, Any]] = {}
    failed: dict[int, dict[str, str]] = {}
    images = [(i, p) for i, (p, kind) in enumerate(files) if kind == "image"]
    videos = [(i, p) for i, (p, kind) in enumerate(files) if kind == "video"]
    workers = workers or min(4, os.cpu_count() or 1)
    try:
        with ThreadPoolExecutor(workers) as pool, _progress(progress, len(files)) as advance:
            writes: list[Future] = []

            def decode(i: int, p: str) -> _Decoded | str:
                return _decode(p, m, out / "thumbs" / f"{names[i]}.jpg")

            for batch in _prefetched(pool, images, batch_size, decode):
                good = [(i, d) for (i, _), d in batch if isinstance(d, _Decoded)]
                failed.update({i: {"path": p, "reason": d} for (i, p), d in batch if isinstance(d, str)})
                for (i, d), rec in zip(good, analyze_images(m, [d for _, d in good]), strict=True):
                    rec["thumbnail"], rec["picture"] = f"thumbs/{names[i]}.jpg", f"pictures/{names[i]}.jpg"
                    records[i] = rec
                    writes.append(pool.submit(_write_picture, d.work, rec, d.scale, out / rec["picture"]))
                advance(len(batch))
            for i, p in videos:
                try:
                    records[i] = analyze_video(m, p, out, names[i], batch_size)
                except MMKitError as e:
                    failed[i] = {"path": p, "reason": _reason(e, p)}
                advance(1)
            for w in writes:
                w.result()
        errors += [failed[i] for i in sorted(failed)]
        if not records:
            raise _nothing_read(errors, ignored, paths)
        analyzed_videos = [records[i] for i, _ in videos if i in records]
        if m.video is not None and analyzed_videos:
            _label_videos(m, analyzed_videos, segment_seconds)
    finally:
        if own:
            m.close()
    seconds = time.perf_counter() - start
    doc = {
        "version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "mmkit": mmkit.__version__,
        "inputs": [str(p) for p in paths],
        "models": m.info,
        "seconds": round(seconds, 3),
        "files": [records[i] for i in sorted(records)],
        "errors": errors,
        "ignored": ignored,
    }
    with atomic_output(out / "analysis.json") as tmp:
        tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    write_analysis_report(out / "report.html", doc)
    log.debug("analyzed %d files in %.1f s (%d not readable) -> %s", len(records), seconds, len(errors), out)
    return doc
