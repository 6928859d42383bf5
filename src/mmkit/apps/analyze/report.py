"""What `mmkit analyze` draws and writes besides analysis.json: thumbnails, pictures with faces, names and objects
drawn, key-frame contact sheets, and report.html (one sortable table, images referenced by relative paths, no
external assets, so the folder opens offline and can be moved as a whole)."""

from __future__ import annotations

import functools
import html
import re
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms.v2 import functional as TF
from torchvision.utils import draw_bounding_boxes, draw_keypoints

from mmkit.report.faces import BOX_COLOR, LANDMARK_COLORS
from mmkit.report.html import REPORT_CSS, REPORT_JS, atomic_output, displayable

__all__ = ["draw_picture", "contact_sheet", "save_jpeg", "shrink", "write_analysis_report"]

OBJECT_COLORS = ["#e6194b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#3cb44b"]
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_stem(path: str | Path, limit: int = 40) -> str:
    """A file-name-safe short form of a file's stem (for the names of thumbnails and pictures)."""
    return _SAFE.sub("_", Path(path).stem)[:limit] or "file"


def shrink(image: Tensor, side: int) -> Tensor:
    """uint8 [3, H, W] resized (antialiased) so that its longer side is at most `side`; unchanged if already so."""
    h, w = image.shape[-2:]
    if max(h, w) <= side:
        return image
    s = side / max(h, w)
    return TF.resize(image, [max(1, round(h * s)), max(1, round(w * s))], antialias=True)


def save_jpeg(image: Tensor | Image.Image, path: Path, quality: int = 88) -> None:
    img = image if isinstance(image, Image.Image) else Image.fromarray(image.permute(1, 2, 0).numpy())
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, quality=quality)


@functools.cache
def _font() -> str | None:
    """matplotlib's DejaVu Sans (readable labels at any size; PIL's default font is tiny), if it is there."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return str(path) if path.is_file() else None


def draw_picture(image: Tensor, faces: list[dict], objects: list[dict], scale: float) -> Tensor:
    """`image` (uint8 [3, H, W], `scale` times the size the boxes refer to) with faces (box labelled by the name,
    else the score; landmarks as dots) and objects (box labelled class and score, one colour per class) drawn."""
    h, w = image.shape[-2:]
    line = max(1, round(max(h, w) / 300))
    text = dict(font=_font(), font_size=max(9, round(max(h, w) / 45)), fill_labels=True, label_colors="black")
    if objects:
        boxes = torch.tensor([o["box"] for o in objects], dtype=torch.float32) * scale
        labels = [f"{o['class']} {o['score']:.2f}" for o in objects]
        colors = [OBJECT_COLORS[o["class_id"] % len(OBJECT_COLORS)] for o in objects]
        image = draw_bounding_boxes(image, boxes, labels, colors=colors, width=line, **text)
    if faces:
        boxes = torch.tensor([f["box"] for f in faces], dtype=torch.float32) * scale
        labels = [f.get("name") or f"{f['score']:.2f}" for f in faces]
        image = draw_bounding_boxes(image, boxes, labels, colors=BOX_COLOR, width=line, **text)
        marks = torch.tensor([f["landmarks"] for f in faces], dtype=torch.float32).reshape(-1, 5, 2) * scale
        for k, color in enumerate(LANDMARK_COLORS):
            image = draw_keypoints(image, marks[:, k : k + 1], colors=color, radius=max(1, 2 * line))
    return image


def contact_sheet(frames: list[Tensor], height: int = 180, gap: int = 4) -> Tensor:
    """Frames (uint8 [3, H, W]) side by side at one height, on white."""
    resized = [
        TF.resize(f, [height, max(1, round(f.shape[-1] * height / f.shape[-2]))], antialias=True)
        for f in frames
    ]
    width = sum(f.shape[-1] for f in resized) + gap * (len(resized) - 1)
    sheet = torch.full((3, height, width), 255, dtype=torch.uint8)
    x = 0
    for f in resized:
        sheet[:, :, x : x + f.shape[-1]] = f
        x += f.shape[-1] + gap
    return sheet


# ---------------------------------------------------------------------------------------------------------------------
# report.html

_EXTRA_CSS = """
main { max-width:1400px; }
td img.thumb { max-width:160px; max-height:120px; border:1px solid var(--line); border-radius:3px; }
td img.key { height:48px; margin:1px; border:1px solid var(--line); }
td.details { font-size:0.9em; max-width:420px; }
.small { color:var(--muted); font-size:0.85em; }
"""


def _e(value: Any) -> str:
    return html.escape(displayable(value), quote=True)


def _num(value: float | int | None, text: str | None = None) -> str:
    if value is None:
        return '<td class="num" data-v="NaN"></td>'
    shown = text if text is not None else (f"{value:.3f}" if isinstance(value, float) else str(value))
    return f'<td class="num" data-v="{float(value)!r}">{_e(shown)}</td>'


def _top(rec: dict) -> tuple[str, float | None]:
    """The record's label and score: the classifier's top-1, else the video model's."""
    for key in ("imagenet", "video_labels"):
        if rec.get(key):
            return rec[key][0]["label"], rec[key][0]["score"]
    return "", None


def _details(rec: dict) -> str:
    """The rest of a record as HTML: labels 2-5, caption, objects; for videos, timing, segments and key frames."""
    parts: list[str] = []
    if rec.get("imagenet"):
        parts.append(_e(", ".join(f"{t['label']} {t['score']:.2f}" for t in rec["imagenet"][1:])))
    if rec.get("caption"):
        parts.append(f"&ldquo;{_e(rec['caption'])}&rdquo;")
    if rec.get("objects"):
        parts.append("objects: " + _e(", ".join(f"{o['class']} {o['score']:.2f}" for o in rec["objects"])))
    if rec["kind"] == "video":
        timeline = rec.get("face_timeline") or []
        with_faces = sum(1 for t in timeline if t["count"])
        faces = f"; faces in {with_faces} of {len(timeline)} sampled frames" if timeline else ""
        parts.append(f"{rec['duration']:.1f} s at {rec['fps']:.3g} fps{faces}")
        for s in rec.get("segments") or []:
            top = s["top"][0] if s["top"] else {"label": "-", "score": 0.0}
            parts.append(f"{s['start']:.1f}&ndash;{s['end']:.1f} s: {_e(top['label'])} {top['score']:.2f}")
        parts.append(
            "".join(
                f'<a href="{_e(k["image"])}"><img class="key" src="{_e(k["image"])}" '
                f'title="{k["time"]:.2f} s" alt="key frame at {k["time"]:.2f} s"></a>'
                for k in rec.get("key_frames") or []
            )
        )
    return "<br>".join(p for p in parts if p)


def _row(rec: dict) -> str:
    label, score = _top(rec)
    names = sorted({f["name"] for f in rec.get("faces") or [] if f.get("name")})
    thumb = rec.get("thumbnail")
    link = rec.get("picture") or thumb
    img = (
        f'<a href="{_e(link)}"><img class="thumb" src="{_e(thumb)}" alt="{_e(Path(rec["path"]).name)}"></a>'
        if thumb
        else ""
    )
    n_faces = len(rec.get("faces") or [])
    if rec["kind"] == "video":
        n_faces = max((t["count"] for t in rec.get("face_timeline") or []), default=0)
    size = f"{rec['width']}×{rec['height']}"
    return (
        f"<tr><td>{img}</td><td>{_e(rec['path'])}</td><td>{_e(rec['kind'])}</td><td>{_e(label)}</td>"
        f"{_num(score)}{_num(n_faces)}<td>{_e(', '.join(names))}</td>"
        f"{_num(len(rec.get('objects') or []))}"
        f'<td class="details">{_details(rec)}</td>{_num(rec["width"] * rec["height"], size)}</tr>'
    )


def _table(header: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    return (
        f'<div class="table-wrap"><table class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>\n{''.join(rows)}\n</tbody></table></div>"
    )


def _models_text(models: dict[str, Any]) -> str:
    used = []
    for key, m in models.items():
        if m:
            what = ", ".join(f"{k} {v}" for k, v in m.items() if v is not None)
            used.append(f"<li><b>{_e(key)}</b>: {_e(what)}</li>")
    return f"<ul>{''.join(used)}</ul>" if used else "<p>none</p>"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def write_analysis_report(path: Path, doc: dict[str, Any]) -> Path:
    """Write report.html for an analysis document (the content of analysis.json) atomically; image paths in the
    document are relative to the report's folder."""
    files, errors = doc["files"], doc["errors"]
    n_img = sum(1 for r in files if r["kind"] == "image")
    people: dict[str, int] = {}
    for rec in files:
        for name in {f["name"] for f in rec.get("faces") or [] if f.get("name")}:
            people[name] = people.get(name, 0) + 1
    header = ["", "file", "kind", "label", "score", "faces", "names", "objects", "details", "size"]
    sections = [
        f"<section><h2>Files</h2><p class='small'>Click a column header to sort by it; click a picture to see "
        f"its faces and objects drawn.</p>{_table(header, [_row(r) for r in files])}</section>"
    ]
    if people:
        rows = [f"<tr><td>{_e(n)}</td>{_num(c)}</tr>" for n, c in sorted(people.items())]
        sections.append(f"<section><h2>People</h2>{_table(['name', 'files'], rows)}</section>")
    if errors:
        rows = [f"<tr><td>{_e(e['path'])}</td><td>{_e(e['reason'])}</td></tr>" for e in errors]
        sections.append(f"<section><h2>Not analyzed</h2>{_table(['file', 'reason'], rows)}</section>")
    sections.append(f"<section><h2>Models</h2>{_models_text(doc['models'])}</section>")
    subtitle = (
        f"{_count(len(files), 'file')} ({_count(n_img, 'image')}, {_count(len(files) - n_img, 'video')}), "
        f"{len(errors)} not readable; "
        f"{doc['created']}"
    )
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mmkit analyze</title>
<style>{REPORT_CSS}{_EXTRA_CSS}</style>
</head>
<body>
<main>
<header><h1>mmkit analyze</h1><p class="subtitle">{_e(subtitle)}</p></header>
{"".join(sections)}
<footer>Generated by mmkit {_e(doc["mmkit"])}; the data is in analysis.json beside this page.</footer>
</main>
<script>{REPORT_JS}</script>
</body>
</html>
"""
    with atomic_output(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
