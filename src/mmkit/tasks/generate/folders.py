"""Two folders of images scored against each other (`mmkit generate eval --pred DIR --target DIR`): the usual way to
compare another tool's super-resolution or restoration outputs with the ground truth, no model needed.

    evaluate_folders("outputs/", "ground_truth/", fidelity=Fidelity(y_channel=True, crop_border=4))

Files pair by name: the stem (``img_001`` of ``img_001.png``), less the ``.upscale`` / ``.restore`` / ``.translate``
that `mmkit generate upscale|restore|translate` add to theirs. A file with no partner, or a pair of two sizes, stops
the evaluation with one error line naming it. Each pair gets PSNR and SSIM under the `Fidelity` convention (its name is
in every key: ``psnr_rgb``, ``ssim_y_crop4``); per-image values go to per_image.csv, their means to metrics.json.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from mmkit.data.formats.images import IMG_EXTENSIONS, is_image_file, read_image
from mmkit.errors import MMKitError
from mmkit.metrics.generation import Fidelity
from mmkit.tasks.generate.common import write_eval

OUTPUT_SUFFIXES = (".upscale", ".restore", ".translate")  # what `mmkit generate <verb>` adds to a stem


def pair_name(path: Path) -> str:
    """The name a file pairs by: its stem, less a trailing ``.upscale``, ``.restore`` or ``.translate``."""
    stem = path.stem
    for suffix in OUTPUT_SUFFIXES:
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def _images_by_name(folder: Path, option: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise MMKitError(f"{option} {folder}: not a folder")
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if not (p.is_file() and is_image_file(p.name)):
            continue
        name = pair_name(p)
        if name in found:
            raise MMKitError(f"{p}: pairs by the name {name!r}, as {found[name].name} does; keep one of them")
        found[name] = p
    if not found:
        raise MMKitError(f"{option} {folder}: no images ({' '.join(IMG_EXTENSIONS)})")
    return found


def image_pairs(pred: Path, target: Path) -> list[tuple[str, Path, Path]]:
    """(name, pred file, target file) for every name, sorted; `MMKitError` for a file without a partner."""
    preds, targets = _images_by_name(pred, "--pred"), _images_by_name(target, "--target")
    alone = [(p, target) for k, p in preds.items() if k not in targets]
    alone += [(t, pred) for k, t in targets.items() if k not in preds]
    if alone:
        path, other = alone[0]
        more = f" (and {len(alone) - 1} more files without a partner)" if len(alone) > 1 else ""
        raise MMKitError(f"{path}: no image named {pair_name(path)}.* in {other}{more}")
    return [(k, preds[k], targets[k]) for k in sorted(preds)]


def evaluate_folders(
    pred: str | os.PathLike,
    target: str | os.PathLike,
    *,
    fidelity: Fidelity = Fidelity(),
    out: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """PSNR and SSIM of every image in `pred` against its namesake in `target`, under `fidelity`: the means (and
    the convention's name) in the result and metrics.json, one row per image in per_image.csv, both in `out`."""
    keys = [f"psnr_{fidelity.name}", f"ssim_{fidelity.name}"]
    rows = []
    for name, p, t in image_pairs(Path(pred), Path(target)):
        x, y = read_image(p), read_image(t)
        if x.shape != y.shape:
            raise MMKitError(f"{p}: {x.shape[2]}x{x.shape[1]}, but {t} is {y.shape[2]}x{y.shape[1]}")
        scores = fidelity(x[None], y[None])
        rows.append({"name": name, "pred": str(p), "target": str(t), **{k: float(scores[k]) for k in keys}})
    result: dict[str, Any] = {"pred": str(pred), "target": str(target), "images": len(rows)}
    result["convention"] = fidelity.name
    result.update({k: sum(r[k] for r in rows) / len(rows) for k in keys})
    out_dir = write_eval(result, out)
    table = out_dir / "per_image.csv"
    with table.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return {**result, "per_image_csv": str(table), "out_dir": str(out_dir)}
