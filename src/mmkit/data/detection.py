"""Object-detection datasets: one entry point, ``load_detection_data(spec)``, for every source.

``spec`` is a builtin (``digit-scenes``, generated in memory by ``mmkit.data.synthetic``), a YOLO ``data.yaml``
(or a folder holding one), a COCO instances JSON file, or a folder with ``annotations/instances_<split>*.json``.
Items are ``(image uint8 [3, H, W], target)`` with ``target = {"boxes": float32 [N, 4] xyxy pixels,
"labels": int64 [N], "image_id": int, "path": str}``; transforms come later (``mmkit.data.detection_transforms``).
Every dataset here also has ``target(i)`` and ``size(i)`` (height, width), which never decode an image.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Subset

from mmkit.data.formats.coco import coco_dict, read_coco, write_coco_json
from mmkit.data.formats.images import read_image
from mmkit.data.formats.yolo import ImageRecord, format_label_lines, read_yolo, write_data_yaml
from mmkit.data.registry import existing_path, find_dataset, get_dataset, list_datasets
from mmkit.errors import MMKitError

logger = logging.getLogger(__name__)

FORMATS = ("yolo", "coco")
IMAGE_FORMATS = ("png", "jpg", "jpeg")
# name -> description of the builtin detection sets (registered in mmkit.data.registry, made in mmkit.data.synthetic)
DETECTION_BUILTINS = {spec.name: spec.description for spec in list_datasets("detect")}
_MAX_LOGGED_PROBLEMS = 100


@dataclass
class DetectionData:
    """Train/val splits of one detection source, its class names, and the bad labels that were skipped."""

    name: str
    train: Dataset
    val: Dataset
    classes: list[str]
    problems: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def summary(self) -> dict:
        """Images, boxes, empty images and boxes per class of each split, and the number of problems."""
        return {
            "train": split_summary(self.train, self.classes),
            "val": split_summary(self.val, self.classes),
            "problems": len(self.problems),
        }


class DetectionFileDataset(Dataset):
    """Image files with their boxes (``ImageRecord``s), decoded on access.

    An image that fails to decode returns None (with a warning naming the path); batch with ``detection_collate``.
    """

    def __init__(self, records: list[ImageRecord], classes: list[str]):
        self.records = list(records)
        self.classes = list(classes)

    def __len__(self) -> int:
        return len(self.records)

    def size(self, index: int) -> tuple[int, int]:
        """(height, width) of image ``index``, from its header."""
        record = self.records[index]
        return record.height, record.width

    def target(self, index: int) -> dict:
        record = self.records[index]
        return {
            "boxes": torch.from_numpy(record.boxes.astype(np.float32, copy=True)).reshape(-1, 4),
            "labels": torch.from_numpy(record.labels.astype(np.int64, copy=True)),
            "image_id": int(record.image_id),
            "path": record.path,
        }

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict] | None:
        record = self.records[index]
        try:
            image = read_image(record.path)
        except MMKitError as exc:
            logger.warning("skipping unreadable image: %s", exc)
            return None
        if tuple(image.shape[1:]) != (record.height, record.width):
            logger.warning(
                "skipping %s: decoded size %dx%d differs from the indexed %dx%d",
                record.path,
                image.shape[2],
                image.shape[1],
                record.width,
                record.height,
            )
            return None
        return image, self.target(index)

    def subset(self, indices) -> DetectionFileDataset:
        """A new dataset holding only the given indices (image ids are kept)."""
        return DetectionFileDataset([self.records[int(i)] for i in indices], self.classes)


def _target(dataset: Dataset, index: int) -> dict:
    if isinstance(dataset, Subset):
        return _target(dataset.dataset, int(dataset.indices[index]))
    if hasattr(dataset, "target"):
        return dataset.target(index)
    item = dataset[index]
    if item is None:
        raise MMKitError(f"image {index} of the dataset cannot be read")
    return item[1]


def _size(dataset: Dataset, index: int) -> tuple[int, int]:
    if isinstance(dataset, Subset):
        return _size(dataset.dataset, int(dataset.indices[index]))
    if hasattr(dataset, "size"):
        return tuple(dataset.size(index))
    item = dataset[index]
    if item is None:
        raise MMKitError(f"image {index} of the dataset cannot be read")
    return tuple(item[0].shape[-2:])


def split_summary(dataset: Dataset, classes: list[str]) -> dict:
    """{"images", "boxes", "empty_images", "boxes_per_class": {name: n}} of one split."""
    counts = np.zeros(len(classes), np.int64)
    empty = 0
    for i in range(len(dataset)):
        labels = _target(dataset, i)["labels"]
        empty += int(labels.numel() == 0)
        counts += np.bincount(labels.numpy(), minlength=len(classes))[: len(classes)]
    return {
        "images": len(dataset),
        "boxes": int(counts.sum()),
        "empty_images": empty,
        "boxes_per_class": {name: int(n) for name, n in zip(classes, counts, strict=True)},
    }


def coco_ground_truth(dataset: Dataset, classes: list[str]) -> dict:
    """The split as a COCO ground-truth dict for ``pycocotools`` (category id = class index + 1).

    Uses the dataset's ``target(i)``/``size(i)`` (also through ``torch.utils.data.Subset``), so nothing is
    decoded for the datasets of this module.
    """
    images, annotations = [], []
    for i in range(len(dataset)):
        target = _target(dataset, i)
        height, width = _size(dataset, i)
        image_id = int(target["image_id"])
        images.append(
            {
                "id": image_id,
                "width": int(width),
                "height": int(height),
                "file_name": os.path.basename(target.get("path", f"{image_id}.png")),
            }
        )
        annotations.append((image_id, target["boxes"].numpy(), target["labels"].numpy()))
    return coco_dict(images, annotations, classes)


def detection_collate(batch: list) -> tuple[torch.Tensor, list[dict]] | None:
    """Stack the images (all the same size, as after the detection transforms) and keep targets as a list.

    None items (unreadable images) are dropped; returns None when none is left (skip such a batch).
    """
    kept = [item for item in batch if item is not None]
    if len(kept) < len(batch):
        logger.debug("dropped %d unreadable item(s) from a batch of %d", len(batch) - len(kept), len(batch))
    if not kept:
        return None
    shapes = {tuple(image.shape) for image, _ in kept}
    if len(shapes) > 1:
        raise ValueError(f"cannot stack images of different shapes {sorted(shapes)}; letterbox them first")
    return torch.stack([image for image, _ in kept]), [target for _, target in kept]


def random_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (keep, split) sorted index arrays with ``round(fraction * n)`` items split off (>= 1 when n > 1)."""
    count = int(round(n * fraction))
    if fraction > 0 and n > 1:
        count = min(max(count, 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[count:]), np.sort(order[:count])


def _split_off(
    dataset: DetectionFileDataset, val_split: float, seed: int, where: str
) -> tuple[DetectionFileDataset, DetectionFileDataset]:
    keep, val = random_split(len(dataset), val_split, seed)
    logger.info("%s: no val split; %d of %d images held out for val", where, len(val), len(dataset))
    return dataset.subset(keep), dataset.subset(val)


def _load_yolo(yaml_path: Path, val_split: float, seed: int) -> DetectionData:
    splits, classes, problems = read_yolo(yaml_path)
    train = DetectionFileDataset(splits["train"], classes)
    if "val" in splits:
        val = DetectionFileDataset(splits["val"], classes)
    else:
        train, val = _split_off(train, val_split, seed, str(yaml_path))
    return DetectionData(str(yaml_path), train, val, classes, problems)


def _coco_files(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for split in ("train", "val"):
        matches = sorted((folder / "annotations").glob(f"instances_{split}*.json"))
        if matches:
            found[split] = matches[0]
    return found


def _load_coco(files: dict[str, Path], val_split: float, seed: int, name: str) -> DetectionData:
    records, classes, problems = read_coco(files["train"])
    train = DetectionFileDataset(records, classes)
    if "val" in files:
        val_records, val_classes, more = read_coco(files["val"])
        if val_classes != classes:
            raise MMKitError(f"{files['val']}: categories differ from {files['train']}")
        val = DetectionFileDataset(val_records, classes)
        problems += more
    else:
        train, val = _split_off(train, val_split, seed, str(files["train"]))
    if len(train) == 0:
        raise MMKitError(f"{files['train']}: no usable images")
    return DetectionData(name, train, val, classes, problems)


def detection_format(spec: str | os.PathLike) -> tuple[str, Path | dict[str, Path] | None]:
    """What ``spec`` is: ("builtin", None), ("yolo", data.yaml) or ("coco", {split: json}); MMKitError if none."""
    text = os.fspath(spec)
    if find_dataset(text, "detect") is not None:
        return "builtin", None
    path = existing_path(text, "detect", "detection dataset")
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        return "yolo", path
    if path.is_file() and path.suffix == ".json":
        return "coco", {"train": path}
    if path.is_dir():
        for name in ("data.yaml", "data.yml"):
            if (path / name).is_file():
                return "yolo", path / name
        files = _coco_files(path)
        if "train" in files or "val" in files:
            return "coco", files if "train" in files else {"train": files["val"]}
    raise MMKitError(
        f"{path}: not a detection dataset (expected a data.yaml, a COCO instances JSON, "
        "or a folder with data.yaml or annotations/instances_<split>.json)"
    )


def _log_problems(problems: list[str]) -> None:
    for problem in problems[:_MAX_LOGGED_PROBLEMS]:
        logger.warning("%s", problem)
    if len(problems) > _MAX_LOGGED_PROBLEMS:
        logger.warning("... and %d more label problems", len(problems) - _MAX_LOGGED_PROBLEMS)


def load_detection_data(spec: str | os.PathLike, val_split: float = 0.1, seed: int = 0) -> DetectionData:
    """Load ``digit-scenes``, a YOLO data.yaml (or its folder), a COCO JSON, or a COCO folder.

    A source without a val split gets ``val_split`` of its images held out (seeded). Bad labels are skipped and
    listed in ``problems`` (each logged once as a warning, the first 100 at most). Raises
    ``MMKitError("<path>: <problem>")`` for anything unusable as a whole.
    """
    if not 0 <= val_split < 1:
        raise MMKitError(f"val_split must be in [0, 1), got {val_split}")
    kind, where = detection_format(spec)
    if kind == "builtin":
        return get_dataset(os.fspath(spec)).load_data(val_split=val_split, seed=seed)
    if kind == "yolo":
        data = _load_yolo(where, val_split, seed)
    else:
        data = _load_coco(where, val_split, seed, os.fspath(spec))
    _log_problems(data.problems)
    logger.info(
        "%s: %d classes, %d train / %d val images, %d label problems",
        data.name,
        len(data.classes),
        len(data.train),
        len(data.val),
        len(data.problems),
    )
    return data


def _file_names(dataset: Dataset, suffix: str | None) -> list[str]:
    """A unique file name per image: the source's name (suffix replaced when re-encoding), else the index."""
    names, seen = [], set()
    for i in range(len(dataset)):
        source = Path(str(_target(dataset, i).get("path") or f"{i:06d}.png"))
        name = source.stem + (suffix or source.suffix or ".png")
        if name in seen:
            name = f"{source.stem}_{i:06d}{suffix or source.suffix or '.png'}"
        seen.add(name)
        names.append(name)
    return names


def _file_backed(dataset: Dataset) -> bool:
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return isinstance(dataset, DetectionFileDataset)


def _save_image(dataset: Dataset, index: int, source: str, dest: Path, copy: bool) -> bool:
    """Copy the source file, or decode the item and encode it by ``dest``'s suffix; False if unreadable."""
    if copy and os.path.isfile(source):
        shutil.copyfile(source, dest)
        return True
    item = dataset[index]
    if item is None:
        return False
    array = item[0].permute(1, 2, 0).numpy()
    if dest.suffix.lower() in (".jpg", ".jpeg"):
        Image.fromarray(array).save(dest, quality=95)
    else:
        Image.fromarray(array).save(dest, compress_level=3)
    return True


def _write_split(
    dataset: Dataset, out_dir: Path, split: str, format: str, image_format: str | None
) -> tuple[list[dict], list[tuple[int, np.ndarray, np.ndarray]]]:
    suffix = None if image_format is None else "." + image_format.lower().lstrip(".")
    image_dir = out_dir / "images" / split
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir = out_dir / "labels" / split
    if format == "yolo":
        label_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    file_backed = _file_backed(dataset)
    ids = [int(_target(dataset, i)["image_id"]) for i in range(len(dataset))]
    if len(set(ids)) < len(ids):
        logger.info(
            "%s: image ids repeat in the %s split; numbering images 0..%d", out_dir, split, len(ids) - 1
        )
        ids = list(range(len(ids)))
    for i, name in enumerate(_file_names(dataset, suffix)):
        target = _target(dataset, i)
        height, width = _size(dataset, i)
        source = str(target.get("path", ""))
        copy = file_backed and (suffix is None or Path(source).suffix.lower() == suffix)
        if not _save_image(dataset, i, source, image_dir / name, copy):
            logger.warning("%s: unreadable, not written", source)
            continue
        boxes, labels = target["boxes"].numpy(), target["labels"].numpy()
        if format == "yolo":
            text = format_label_lines(boxes, labels, width, height)
            (label_dir / (Path(name).stem + ".txt")).write_text(text, encoding="utf-8")
        else:
            image_id = ids[i]
            images.append({"id": image_id, "width": width, "height": height, "file_name": name})
            annotations.append((image_id, boxes, labels))
    return images, annotations


def check_new_splits(out_dir: Path, splits: Iterable[str]) -> None:
    """An MMKitError when ``out_dir/images/<split>`` of one of ``splits`` already holds files."""
    for name in splits:
        image_dir = Path(out_dir) / "images" / name
        if image_dir.is_dir() and any(image_dir.iterdir()):
            raise MMKitError(f"{image_dir}: already exists and is not empty (choose another --out)")


def write_detection_dataset(
    dataset: Dataset | Mapping[str, Dataset],
    out_dir: str | os.PathLike,
    format: str = "yolo",
    classes: list[str] | None = None,
    *,
    split: str = "train",
    image_format: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write one split (``dataset``, named ``split``) or several ({split: dataset}) as YOLO or COCO.

    YOLO: ``images/<split>/``, ``labels/<split>/*.txt`` and ``data.yaml``; COCO: ``images/<split>/`` and
    ``annotations/instances_<split>.json``. Images are copied from their source file when there is one (and
    ``image_format`` is None or matches), else encoded as ``image_format`` ("png" default, or "jpg").
    An existing non-empty ``images/<split>`` is an MMKitError unless ``overwrite``. Returns the data.yaml
    (YOLO) or ``out_dir`` (COCO).
    """
    if format not in FORMATS:
        raise MMKitError(f"{format}: unknown detection format (known: {', '.join(FORMATS)})")
    if image_format is not None and image_format.lower().lstrip(".") not in IMAGE_FORMATS:
        raise MMKitError(f"{image_format}: unknown image format (known: {', '.join(IMAGE_FORMATS)})")
    splits = dict(dataset) if isinstance(dataset, Mapping) else {split: dataset}
    if classes is None:
        classes = next((getattr(d, "classes", None) for d in splits.values()), None)
        if classes is None:
            raise MMKitError(f"{out_dir}: class names are needed to write a detection dataset")
    out_dir = Path(out_dir)
    if not overwrite:
        check_new_splits(out_dir, splits)
    for name, data in splits.items():
        images, annotations = _write_split(data, out_dir, name, format, image_format)
        if format == "coco":
            write_coco_json(
                out_dir / "annotations" / f"instances_{name}.json", coco_dict(images, annotations, classes)
            )
        logger.info("%s: wrote %d %s images (%s)", out_dir, len(data), name, format)
    if format == "yolo":
        return write_data_yaml(out_dir, splits, classes)
    return out_dir


def convert_detection(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    to: str = "yolo",
    *,
    from_format: str | None = None,
    image_format: str | None = None,
) -> Path:
    """Convert any source ``load_detection_data`` reads to YOLO or COCO in ``dst``; returns what it wrote.

    The source's splits are kept as they are (nothing is held out); ``from_format`` ("yolo"/"coco"), when
    given, must match what ``src`` is. Skipped bad labels are logged, not written.
    """
    if to not in FORMATS:
        raise MMKitError(f"{to}: unknown detection format (known: {', '.join(FORMATS)})")
    kind, _ = detection_format(src)
    if from_format is not None and from_format != kind:
        raise MMKitError(f"{src}: is a {kind} dataset, not {from_format}")
    data = load_detection_data(src, val_split=0.0)
    splits = {"train": data.train}
    if len(data.val):
        splits["val"] = data.val
    return write_detection_dataset(splits, dst, format=to, classes=data.classes, image_format=image_format)
