"""Video data for the video task: one place that turns a data spec into train/val datasets of (x, n, y).

    d = load_video_data("motion-clips", kind="clips", frames=16, img_size=64)
    x, n, y = d.train[0]   # clips: uint8 [T, 3, S, S]; features: float32 [T, D] (or [D] at video level)

``n`` is the number of valid frames (the rest of ``x`` is padding), ``y`` a class index (single-label data) or a
multi-hot float vector (multi-label). Frame-level records come as uint8 (quantized) features: `prepare_features`
dequantizes a batch on the training device. Specs:
- ``motion-clips``: synthetic moving digits and shapes labelled by their motion (`mmkit.data.synthetic_videos`),
  1,800 train and 360 test clips of 16 frames at 64 px, in memory (about 15 s to draw); ``motion-clips-large``:
  5,400 training clips, the same test clips;
- a folder (or a file) of YouTube-8M TFRecords, also in its sub-folders (the real data's layout and
  ``mmkit data synth yt8m``'s): ``train*.tfrecord`` and ``validate*.tfrecord`` (else a seeded
  ``val_split`` of the records), classes from ``vocabulary.csv`` (``index,name``) when present, else from the labels;
  a ``features.json`` beside them (written by ``mmkit video features``) says how the features were made;
- video files in one folder per class (``train/`` + ``val/`` or ``test/``, or one tree split by ``val_split``) or a
  CSV of ``path,label[,label...]``, decoded to ``frames`` frames of ``img_size`` px.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from mmkit.data.registry import find_dataset
from mmkit.data.synthetic_videos import motion_clips, motion_label_maps
from mmkit.errors import MMKitError

log = logging.getLogger(__name__)

BUILTIN_CLIPS = "motion-clips"
# training clips per builtin name; both share the same 360 test clips
_CLIPS_TRAIN = {BUILTIN_CLIPS: 1800, "motion-clips-large": 5400}
_CLIPS_TEST = 360
_RECORD_GLOBS = ("*.tfrecord", "*.tfrecords", "*.tfr")


@dataclass
class VideoData:
    train: Dataset
    val: Dataset | None
    classes: list[str]
    kind: str  # "clips" or "features"
    multi_label: bool
    source: str
    feature_dim: int | None = None
    extractor: dict[str, Any] | None = None
    workers: int = 0  # DataLoader workers that suit this data by default
    collate: Any = None

    def summary(self) -> str:
        what = f"{self.feature_dim}-d frame features" if self.kind == "features" else "raw clips"
        labels = "multi-label" if self.multi_label else "single-label"
        n_val = len(self.val) if self.val is not None else 0
        return f"{self.source}: {len(self.train)} train / {n_val} val videos, {len(self.classes)} classes ({labels}), {what}"


class _Clips(Dataset):
    """In-memory clips uint8 [N, T, 3, S, S] with class indices.

    With ``label_maps`` (see `mmkit.data.synthetic_videos.motion_label_maps`) each access mirrors the clip
    left-right, upside down and plays it backwards, each with probability 1/2, and maps the label accordingly:
    eight versions of every clip, since a motion's label follows these transforms exactly."""

    def __init__(
        self, clips: torch.Tensor, labels: torch.Tensor, label_maps: dict[str, list[int]] | None = None
    ) -> None:
        self.clips, self.labels, self.label_maps = clips, labels, label_maps

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int):
        x, y = self.clips[i], int(self.labels[i])
        if self.label_maps:
            flips = (torch.rand(3) < 0.5).tolist()
            for flip, (name, dim) in zip(flips, (("hflip", -1), ("vflip", -2), ("reverse", 0)), strict=True):
                if flip:
                    x, y = x.flip(dim), self.label_maps[name][y]
        return x, self.clips.shape[1], y


class _FromFolder(Dataset):
    """(frames, T, label) from a VideoFolderDataset; None for a video that fails at access."""

    def __init__(self, ds) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        item = self.ds[i]
        if item is None:
            return None
        frames, label = item
        return frames, frames.shape[0], label


class _SingleLabel(Dataset):
    """Multi-hot records whose videos carry exactly one label, as class indices (softmax training)."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        x, n, y = self.ds[i]
        return x, n, int(y.argmax())

    def __getitems__(self, indices: list[int]):
        from mmkit.data.formats.youtube8m_dataset import PrebuiltBatch

        items = (
            self.ds.__getitems__(indices)
            if hasattr(self.ds, "__getitems__")
            else [self.ds[i] for i in indices]
        )
        if not isinstance(items, PrebuiltBatch):
            return [(x, n, int(y.argmax())) for x, n, y in items]
        x, n, y = items.collated
        batch = PrebuiltBatch((x[k], int(n[k]), int(y[k].argmax())) for k in range(len(x)))
        batch.collated = (x, n, y.argmax(1))
        return batch


def load_video_data(
    spec: str,
    *,
    kind: str,
    level: str = "frame",
    max_frames: int = 300,
    frames: int = 16,
    img_size: int | None = 64,
    val_split: float = 0.1,
    seed: int = 0,
    augment: bool = False,
) -> VideoData:
    """Resolve a data spec (see the module docstring). `kind` is what the model takes: "clips" or "features".

    ``augment``: motion-clips' training clips are mirrored and reversed at random, labels mapped to match."""
    builtin = find_dataset(spec, "video")
    if builtin is not None:
        return builtin.load_data(frames=frames, img_size=img_size or 64, augment=augment)
    path = Path(spec)
    if not path.exists():
        raise MMKitError(
            f"{path}: no such dataset (give {BUILTIN_CLIPS}, a folder of TFRecords, or video folders)"
        )
    records = _record_files(path)
    if records:
        return _records(path, records, level, max_frames, val_split, seed)
    if kind == "features":
        raise MMKitError(
            f"{path}: no TFRecord files; for videos, extract features first (mmkit video features) "
            "or train a clip model (cnn-lstm, cnn-gru, cnn-mean)"
        )
    return _video_files(path, frames, img_size or 64, val_split, seed)


def load_builtin_clips(name: str, frames: int = 16, img_size: int = 64, augment: bool = False) -> VideoData:
    """The builtin ``motion-clips`` or ``motion-clips-large`` (its loader in the dataset registry), drawn in memory.
    ``augment``: training clips are mirrored and reversed at random, labels mapped to match."""
    tr, ytr, classes = motion_clips(_CLIPS_TRAIN[name], frames=frames, size=img_size, seed=0, split="train")
    te, yte, _ = motion_clips(_CLIPS_TEST, frames=frames, size=img_size, seed=0, split="test")
    maps = motion_label_maps(list(classes)) if augment else None
    return VideoData(
        _Clips(torch.as_tensor(tr), torch.as_tensor(ytr), maps),
        _Clips(torch.as_tensor(te), torch.as_tensor(yte)),
        list(classes),
        "clips",
        False,
        name,
    )


def _record_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if path.suffix in (".tfrecord", ".tfrecords", ".tfr") else []
    return sorted({f for g in _RECORD_GLOBS for pattern in (g, f"*/{g}") for f in path.glob(pattern)})


def _vocabulary(folder: Path) -> list[str] | None:
    """Class names by index from vocabulary.csv: ``index,name`` rows, or the real YouTube-8M file, whose header
    names its columns (``Index,TrainVideoCount,KnowledgeGraphId,Name,...``): then the ``Index`` and ``Name`` ones."""
    vocab = folder / "vocabulary.csv"
    if not vocab.is_file():
        return None
    names: dict[int, str] = {}
    col_index, col_name = 0, 1
    with vocab.open(newline="") as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            if not row:
                continue
            if lineno == 1 and not row[0].strip().isdigit():  # a header: find the columns by name
                header = [h.strip().lower() for h in row]
                col_index = header.index("index") if "index" in header else 0
                col_name = header.index("name") if "name" in header else 1
                continue
            try:
                name = row[col_name] if len(row) > col_name and row[col_name] else str(row[col_index])
                names[int(row[col_index])] = name
            except (ValueError, IndexError) as e:
                raise MMKitError(f"{vocab}:{lineno}: expected 'index,name', got {','.join(row)!r}") from e
    if not names:
        raise MMKitError(f"{vocab}: no classes")
    return [names.get(i, str(i)) for i in range(max(names) + 1)]


def _records(
    root: Path, files: list[Path], level: str, max_frames: int, val_split: float, seed: int
) -> VideoData:
    from mmkit.data.formats.youtube8m import read_records
    from mmkit.data.formats.youtube8m_dataset import YouTube8MDataset, collate

    folder = root if root.is_dir() else root.parent
    extractor = None
    if (folder / "features.json").is_file():
        try:
            extractor = json.loads((folder / "features.json").read_text())
        except json.JSONDecodeError as e:
            raise MMKitError(f"{folder / 'features.json'}: not valid JSON ({e.msg}, line {e.lineno})") from e
    classes = _vocabulary(folder)
    if classes is None:  # no vocabulary: every label seen
        top = max((max(r["labels"], default=-1) for r in read_records(files, level=level)), default=-1)
        if top < 0:
            raise MMKitError(f"{folder}: records carry no labels")
        classes = [str(i) for i in range(top + 1)]
    unlabelled = [f for f in files if f.name.startswith("test")]  # YouTube-8M's test partition has no labels
    if unlabelled:
        log.info("%s: %d test*.tfrecord file(s) left out (unlabelled in YouTube-8M)", root, len(unlabelled))
        files = [f for f in files if f not in unlabelled]
    train_files = [f for f in files if f.name.startswith("train")]
    val_files = [f for f in files if f.name.startswith(("validate", "val"))]
    # frame level: uint8 batches, dequantized by the task on its device (`prepare_features`)
    kw = dict(level=level, num_classes=len(classes), max_frames=max_frames, dequantize=level == "video")
    if train_files and val_files:
        train: Dataset = YouTube8MDataset(train_files, **kw)
        val: Dataset | None = YouTube8MDataset(val_files, **kw)
        dim = train.feature_dim
    else:
        full = YouTube8MDataset(files, **kw)
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(full), generator=g).tolist()
        n_val = round(len(full) * val_split)
        train, val = Subset(full, order[n_val:]), Subset(full, order[:n_val])
        dim = full.feature_dim
    single = bool(extractor and extractor.get("single_label"))
    if single:
        train, val = _SingleLabel(train), (_SingleLabel(val) if val is not None else None)
    return VideoData(
        train, val, classes, "features", not single, str(root), dim, extractor, workers=1, collate=collate
    )


def _video_files(path: Path, frames: int, size: int, val_split: float, seed: int) -> VideoData:
    from mmkit.data.classification import collate_skip_none
    from mmkit.data.formats.video import VideoFolderDataset

    splits = {s: path / s for s in ("train", "val", "test")} if path.is_dir() else {}
    if path.is_dir() and splits["train"].is_dir():
        train = VideoFolderDataset(splits["train"], num_frames=frames, size=size)
        held = splits["val"] if splits["val"].is_dir() else splits["test"]
        val = (
            VideoFolderDataset(held, num_frames=frames, size=size, classes=train.classes)
            if held.is_dir()
            else None
        )
        tr_ds, va_ds = _FromFolder(train), (_FromFolder(val) if val is not None else None)
    else:
        full = VideoFolderDataset(path, num_frames=frames, size=size)
        train = full
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(full), generator=g).tolist()
        n_val = round(len(full) * val_split)
        tr_ds, va_ds = Subset(_FromFolder(full), order[n_val:]), Subset(_FromFolder(full), order[:n_val])
    return VideoData(
        tr_ds,
        va_ds,
        list(train.classes),
        "clips",
        bool(train.multi_label),
        str(path),
        workers=2,
        collate=collate_skip_none,
    )


def prepare_features(x: torch.Tensor) -> torch.Tensor:
    """A batch as the model takes it: quantized uint8 frame features dequantized to float; anything else as is."""
    from mmkit.data.formats.youtube8m import dequantize_batch

    return dequantize_batch(x) if x.dtype == torch.uint8 and x.dim() == 3 else x
