"""YOLO detection datasets: ``data.yaml`` (``path``, ``train``, ``val``, ``names``) and one label file per image.

A split (``train:``/``val:``) is a folder of images, a ``.txt`` file listing image paths, or a list of those,
relative to ``path`` (itself relative to the YAML's folder). The label file of ``.../images/x/a.jpg`` is
``.../labels/x/a.txt`` (Ultralytics' rule); each line is ``class cx cy w h`` with coordinates normalized to 0-1.
An image without a label file has no objects. Bad lines are skipped and reported as ``"<file>:<line>: <what>"``.

``ImageRecord`` is the parsed form of one image that every detection reader returns.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from mmkit.data.formats.images import is_image_file, open_image
from mmkit.data.walk import walk_files
from mmkit.errors import MMKitError

logger = logging.getLogger(__name__)

BOX_TOLERANCE = 1e-3  # normalized coordinates may overshoot [0, 1] by this much (then they are clipped)
SPLITS = ("train", "val")


@dataclass
class ImageRecord:
    """One image of a detection dataset: file, size, and boxes (float32 [N, 4] xyxy pixels) + labels (int64 [N])."""

    path: str
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    image_id: int = 0


def image_size(path: str | os.PathLike) -> tuple[int, int] | str:
    """(width, height) from the image header, or the reason the file cannot be opened."""
    try:
        with open_image(path) as img:
            return img.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def label_path(image_path: str | os.PathLike) -> str:
    """The label file of an image: the last ``/images/`` becomes ``/labels/``, the suffix ``.txt``."""
    text = os.fspath(image_path)
    images, labels = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if images in text:
        head, tail = text.rsplit(images, 1)
        text = head + labels + tail
    return os.path.splitext(text)[0] + ".txt"


def _checked_box(values: list[float]) -> tuple[list[float] | None, str | None]:
    """Normalized (cx, cy, w, h) -> clipped normalized (x1, y1, x2, y2), or the reason it is rejected."""
    cx, cy, w, h = values
    if not all(math.isfinite(v) for v in values):
        return None, "non-finite coordinate"
    if w <= 0 or h <= 0:
        return None, f"box has zero or negative size (w={w:g}, h={h:g})"
    corners = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
    if min(corners) < -BOX_TOLERANCE or max(corners) > 1 + BOX_TOLERANCE:
        return (
            None,
            f"box outside the image (x1={corners[0]:.4g} y1={corners[1]:.4g} x2={corners[2]:.4g} y2={corners[3]:.4g})",
        )
    return [min(max(c, 0.0), 1.0) for c in corners], None


def parse_label_file(
    path: str | os.PathLike, num_classes: int, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Boxes (float32 [N, 4] xyxy pixels), labels (int64 [N]) and problems of one YOLO label file."""
    path = os.fspath(path)
    boxes, labels, problems = [], [], []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64), [f"{path}: cannot read ({exc})"]
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{number}"
        if len(fields) != 5:
            problems.append(f"{where}: malformed line, expected 'class cx cy w h', got {len(fields)} values")
            continue
        try:
            cls = int(fields[0])
            values = [float(v) for v in fields[1:]]
        except ValueError:
            problems.append(f"{where}: malformed line, not numbers: {line.strip()[:60]!r}")
            continue
        if not 0 <= cls < num_classes:
            problems.append(f"{where}: class {cls} out of range for {num_classes} classes")
            continue
        corners, reason = _checked_box(values)
        if corners is None:
            problems.append(f"{where}: {reason}")
            continue
        x1, y1, x2, y2 = corners
        if (x2 - x1) * width < 1e-6 or (y2 - y1) * height < 1e-6:
            problems.append(f"{where}: box has no area inside the image")
            continue
        boxes.append([x1 * width, y1 * height, x2 * width, y2 * height])
        labels.append(cls)
    return (
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(labels, np.int64),
        problems,
    )


def read_names(names, yaml_path: Path) -> list[str]:
    """``names`` as a list or a {index: name} mapping with indices 0..K-1."""
    if isinstance(names, Mapping):
        try:
            by_index = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError) as exc:
            raise MMKitError(f"{yaml_path}: 'names' keys must be class indices") from exc
        if sorted(by_index) != list(range(len(by_index))):
            raise MMKitError(f"{yaml_path}: 'names' indices must be 0..{len(by_index) - 1}")
        return [by_index[i] for i in range(len(by_index))]
    if isinstance(names, list) and names:
        return [str(n) for n in names]
    raise MMKitError(f"{yaml_path}: 'names' must be a non-empty list or a mapping {{index: name}}")


def read_data_yaml(yaml_path: str | os.PathLike) -> tuple[Path, dict, list[str]]:
    """Parse ``data.yaml``: (dataset root, {split: spec}, class names). MMKitError for missing keys."""
    yaml_path = Path(yaml_path)
    try:
        config = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise MMKitError(f"{yaml_path}: cannot read YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(config, dict):
        raise MMKitError(f"{yaml_path}: not a YOLO data.yaml (expected a mapping with train, val, names)")
    missing = [key for key in ("train", "names") if key not in config]
    if missing:
        raise MMKitError(f"{yaml_path}: missing key(s) {', '.join(missing)}")
    classes = read_names(config["names"], yaml_path)
    if "nc" in config and config["nc"] != len(classes):
        raise MMKitError(f"{yaml_path}: nc is {config['nc']} but 'names' has {len(classes)} entries")
    root = Path(os.path.expanduser(str(config.get("path") or ".")))
    if not root.is_absolute():
        root = yaml_path.parent / root
    if not root.is_dir():
        raise MMKitError(f"{yaml_path}: dataset path {root} is not a folder (edit 'path')")
    splits = {split: config[split] for split in SPLITS if config.get(split)}
    return root, splits, classes


def list_split_images(spec, root: Path, yaml_path: Path) -> list[str]:
    """Image files of one split spec (folder, .txt list, or a list of those), sorted within each folder."""
    specs = spec if isinstance(spec, list) else [spec]
    images: list[str] = []
    for item in specs:
        path = Path(os.path.expanduser(str(item)))
        path = path if path.is_absolute() else root / path
        if path.is_dir():
            images += sorted(str(p) for p in walk_files(path) if is_image_file(p.name))
        elif path.is_file() and path.suffix == ".txt":
            for line in path.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line:
                    listed = Path(line) if Path(line).is_absolute() else root / line
                    images.append(os.path.normpath(listed))
        else:
            raise MMKitError(f"{yaml_path}: image folder {path} does not exist")
    return images


def _orphan_labels(images: list[str]) -> list[str]:
    """Label files in the label folders of ``images`` that belong to no listed image (``classes.txt``, which
    labelImg writes there, excepted)."""
    wanted = {label_path(p) for p in images}
    folders = {os.path.dirname(p) for p in wanted}
    orphans = []
    for folder in sorted(folders):
        if not os.path.isdir(folder):
            continue
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name == "classes.txt" or not entry.name.endswith(".txt"):
                continue
            if entry.path not in wanted and entry.is_file():
                orphans.append(f"{entry.path}: label file has no image")
    return orphans


def read_yolo_split(images: list[str], num_classes: int) -> tuple[list[ImageRecord], list[str]]:
    """Index one split: image sizes from headers, labels parsed strictly; (records, problems)."""
    workers = min(8, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        sizes = list(pool.map(image_size, images, chunksize=64))
    records, problems = [], []
    for image, size in zip(images, sizes, strict=True):
        if isinstance(size, str):
            problems.append(f"{image}: cannot read image ({size})")
            continue
        width, height = size
        record = ImageRecord(image, width, height, image_id=len(records))
        labels = label_path(image)
        if os.path.isfile(labels):
            record.boxes, record.labels, found = parse_label_file(labels, num_classes, width, height)
            problems += found
        records.append(record)
    problems += _orphan_labels(images)
    return records, problems


def read_yolo(yaml_path: str | os.PathLike) -> tuple[dict[str, list[ImageRecord]], list[str], list[str]]:
    """Read a YOLO dataset: ({split: records} for the splits the YAML names, class names, problems)."""
    yaml_path = Path(yaml_path)
    root, specs, classes = read_data_yaml(yaml_path)
    splits, problems = {}, []
    for split, spec in specs.items():
        images = list_split_images(spec, root, yaml_path)
        if not images and split == "train":
            raise MMKitError(f"{yaml_path}: no image files in the train split ({spec})")
        splits[split], found = read_yolo_split(images, len(classes))
        problems += found
    return splits, classes, problems


def format_label_lines(boxes: np.ndarray, labels: np.ndarray, width: int, height: int) -> str:
    """YOLO label text for xyxy pixel boxes: one ``class cx cy w h`` line per box, 6 decimals."""
    lines = []
    for (x1, y1, x2, y2), cls in zip(np.asarray(boxes, np.float64), np.asarray(labels), strict=True):
        cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
        w, h = (x2 - x1) / width, (y2 - y1) / height
        lines.append(f"{int(cls)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
    return "".join(lines)


def write_data_yaml(out_dir: str | os.PathLike, splits: Iterable[str], classes: list[str]) -> Path:
    """Write (or extend) ``out_dir/data.yaml`` with ``images/<split>`` entries; returns its path."""
    out_dir = Path(out_dir)
    yaml_path = out_dir / "data.yaml"
    config: dict = {}
    if yaml_path.is_file():
        config = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) or {}
        if "names" in config and read_names(config["names"], yaml_path) != list(classes):
            raise MMKitError(f"{yaml_path}: exists with different class names")
    config["path"] = str(out_dir.resolve())
    for split in splits:
        config[split] = f"images/{split}"
    config["names"] = dict(enumerate(classes))
    ordered = {key: config[key] for key in ("path", *SPLITS, "names") if key in config}
    ordered.update({k: v for k, v in config.items() if k not in ordered})
    yaml_path.write_text(yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return yaml_path
