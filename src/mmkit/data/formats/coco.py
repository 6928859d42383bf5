"""COCO instances JSON (``images``, ``annotations`` with ``bbox`` = [x, y, w, h] in pixels, ``categories``).

Category ids map to contiguous class indices 0..K-1 in id order, keeping their names. Boxes become xyxy;
``iscrowd=1`` boxes are skipped (one note per file). Bad annotations are skipped and reported as
``"<json>: annotation <id>: <what>"``; images whose file is missing as ``"<json>: image <id>: <what>"``. A
``file_name`` that leads out of the image folder (absolute, or through ``..``) is an MMKitError: the file is refused.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from mmkit.data.formats.yolo import BOX_TOLERANCE, ImageRecord, image_size
from mmkit.errors import MMKitError

logger = logging.getLogger(__name__)


def load_coco_json(path: str | os.PathLike) -> dict:
    """Parse a COCO instances file; MMKitError when it is not JSON or lacks images/annotations/categories."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MMKitError(f"{path}: cannot read JSON ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict) or not all(
        isinstance(data.get(key), list) for key in ("images", "annotations", "categories")
    ):
        raise MMKitError(
            f"{path}: not a COCO instances file (needs 'images', 'annotations' and 'categories' lists)"
        )
    if not data["categories"]:
        raise MMKitError(f"{path}: COCO file has no categories")
    return data


def coco_classes(data: dict, path: Path) -> tuple[list[str], dict[int, int]]:
    """Class names in category-id order and the {category id: class index} map."""
    try:
        categories = sorted(data["categories"], key=lambda c: int(c["id"]))
        names = [str(c["name"]) for c in categories]
        index = {int(c["id"]): i for i, c in enumerate(categories)}
    except (KeyError, TypeError, ValueError) as exc:
        raise MMKitError(f"{path}: every category needs an integer 'id' and a 'name'") from exc
    if len(index) != len(categories):
        raise MMKitError(f"{path}: duplicate category ids")
    return names, index


def guess_image_dir(json_path: Path, data: dict) -> Path:
    """The folder holding the images' ``file_name``s: checked among the usual places next to the JSON.

    For ``root/annotations/instances_<split>.json``: ``root/images/<split>``, ``root/<split>``, ``root/images``,
    ``root``, then the JSON's own folder.
    """
    split = json_path.stem.removeprefix("instances_")
    root = json_path.parent.parent if json_path.parent.name == "annotations" else json_path.parent
    candidates = [root / "images" / split, root / split, root / "images", root, json_path.parent]
    names = [str(img.get("file_name", "")) for img in data["images"][:20] if isinstance(img, dict)]
    if not names:
        return root
    for folder in dict.fromkeys(candidates):
        if folder.is_dir() and any((folder / name).is_file() for name in names):
            return folder
    looked = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise MMKitError(f"{json_path}: image folder not found (looked for {names[0]} in {looked})")


def _image_records(
    data: dict, json_path: Path, image_dir: Path
) -> tuple[dict[int, ImageRecord], set[int], list[str]]:
    """Records of the usable images, the ids of the images skipped (already reported), and the problems."""
    records: dict[int, ImageRecord] = {}
    skipped: set[int] = set()
    problems = []
    for position, img in enumerate(data["images"]):
        try:
            image_id, name = int(img["id"]), str(img["file_name"])
        except (KeyError, TypeError, ValueError):
            problems.append(f"{json_path}: images[{position}]: needs an integer 'id' and a 'file_name'")
            continue
        where = f"{json_path}: image {image_id}"
        if image_id in records:
            problems.append(f"{where}: duplicate image id")
            continue
        path = image_dir / name
        if not Path(os.path.abspath(path)).is_relative_to(os.path.abspath(image_dir)):
            raise MMKitError(f"{where}: file_name {name!r} is outside the image folder {image_dir} (refused)")
        if not path.is_file():
            problems.append(f"{where}: image file not found: {path}")
            skipped.add(image_id)
            continue
        width, height = img.get("width"), img.get("height")
        if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
            size = image_size(path)
            if isinstance(size, str):
                problems.append(f"{where}: cannot read image {path} ({size})")
                skipped.add(image_id)
                continue
            width, height = size
        records[image_id] = ImageRecord(str(path), width, height, image_id=image_id)
    return records, skipped, problems


def _checked_bbox(bbox, width: int, height: int) -> tuple[list[float] | None, str | None]:
    """COCO [x, y, w, h] -> clipped [x1, y1, x2, y2] pixels, or the reason it is rejected."""
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox)):
        return None, f"malformed bbox {str(bbox)[:60]} (expected [x, y, w, h])"
    x, y, w, h = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return None, "non-finite bbox coordinate"
    if w <= 0 or h <= 0:
        return None, f"bbox has zero or negative size (w={w:g}, h={h:g})"
    x2, y2 = x + w, y + h
    tol_x, tol_y = BOX_TOLERANCE * width, BOX_TOLERANCE * height
    if x < -tol_x or y < -tol_y or x2 > width + tol_x or y2 > height + tol_y:
        return None, f"bbox {[round(v, 2) for v in (x, y, w, h)]} outside the {width}x{height} image"
    x1, y1 = max(x, 0.0), max(y, 0.0)
    x2, y2 = min(x2, float(width)), min(y2, float(height))
    if x2 <= x1 or y2 <= y1:
        return None, "bbox has no area inside the image"
    return [x1, y1, x2, y2], None


def read_coco(
    json_path: str | os.PathLike, image_dir: str | os.PathLike | None = None
) -> tuple[list[ImageRecord], list[str], list[str]]:
    """Read one COCO instances file: (records in the JSON's image order, class names, problems)."""
    json_path = Path(json_path)
    data = load_coco_json(json_path)
    classes, class_index = coco_classes(data, json_path)
    if image_dir is None:
        image_dir = guess_image_dir(json_path, data)
    elif not Path(image_dir).is_dir():
        raise MMKitError(f"{json_path}: image folder {image_dir} does not exist")
    records, skipped, problems = _image_records(data, json_path, Path(image_dir))
    boxes: dict[int, list[list[float]]] = {i: [] for i in records}
    labels: dict[int, list[int]] = {i: [] for i in records}
    crowd = 0
    for position, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            problems.append(f"{json_path}: annotations[{position}]: not an object")
            continue
        where = f"{json_path}: annotation {ann.get('id', f'#{position}')}"
        if ann.get("iscrowd", 0):
            crowd += 1
            continue
        image_id, category = ann.get("image_id"), ann.get("category_id")
        if image_id not in records:
            if image_id not in skipped:
                problems.append(f"{where}: unknown image_id {image_id}")
            continue
        if category not in class_index:
            problems.append(f"{where}: unknown category_id {category}")
            continue
        record = records[image_id]
        box, reason = _checked_bbox(ann.get("bbox"), record.width, record.height)
        if box is None:
            problems.append(f"{where}: {reason}")
            continue
        boxes[image_id].append(box)
        labels[image_id].append(class_index[category])
    for image_id, record in records.items():
        record.boxes = np.asarray(boxes[image_id], np.float32).reshape(-1, 4)
        record.labels = np.asarray(labels[image_id], np.int64)
    if crowd:
        problems.append(f"{json_path}: skipped {crowd} iscrowd=1 annotation(s)")
    return list(records.values()), classes, problems


def coco_dict(
    images: Iterable[dict], annotations: Iterable[tuple[int, np.ndarray, np.ndarray]], classes: list[str]
) -> dict:
    """A COCO instances dict from image entries and (image_id, xyxy boxes, labels) per image.

    Category ids are class index + 1; annotation ids count from 1; area is the box area; iscrowd is 0.
    """
    entries = []
    for image_id, boxes, labels in annotations:
        for (x1, y1, x2, y2), label in zip(np.asarray(boxes, np.float64), np.asarray(labels), strict=True):
            w, h = float(x2 - x1), float(y2 - y1)
            entries.append(
                {
                    "id": len(entries) + 1,
                    "image_id": int(image_id),
                    "category_id": int(label) + 1,
                    "bbox": [round(float(x1), 3), round(float(y1), 3), round(w, 3), round(h, 3)],
                    "area": round(w * h, 3),
                    "iscrowd": 0,
                }
            )
    return {
        "info": {"description": "written by mmkit"},
        "images": list(images),
        "annotations": entries,
        "categories": [{"id": i + 1, "name": name, "supercategory": ""} for i, name in enumerate(classes)],
    }


def write_coco_json(path: str | os.PathLike, data: dict) -> Path:
    """Write a COCO dict as compact JSON (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"))
    return path
