"""`mmkit data show` for the face, video, generation and caption data: one function a kind, each loading the data
the way its task does and returning (summary line, JSON payload) after saving the grid."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import torch

from mmkit.data.registry import find_dataset
from mmkit.errors import MMKitError

FACES_PER_PERSON = 4
FACE_SIZE = 64
FRAMES_PER_CLIP = 8
CAPTION_CELL = 128  # px; wide enough for the start of a caption under each image


def folder_task(data: str) -> str | None:
    """The task whose loader reads this folder (or file), judged from cheap signs; None when none fits (then it is
    read as classification data)."""
    from mmkit.data.formats.video import is_video_file

    path = Path(data).expanduser()
    if path.suffix.lower() == ".json" and path.name.startswith(("captions_", "dataset_")):
        return "caption"
    if _is_detection(data):  # a data.yaml, a COCO instances JSON, or a folder with one
        return "detect"
    if path.is_file():
        return "video" if path.suffix.lower() == ".csv" else None
    if _glob(path, "annotations/captions_*.json", "captions_*.json", "dataset_*.json"):
        return "caption"
    if any(_has_dirs(path, *names) for names in (("trainA", "trainB"), ("A", "B"), ("train/A", "train/B"))):
        return "generate"
    if (path / "pairs.txt").is_file():
        return "face"
    videos = (is_video_file(f) for p in ("*/*", "train/*/*") for f in islice(path.glob(p), 100))
    if _glob(path, "*.tfrecord*", "train/*.tfrecord*") or any(videos):  # features, or clips in class folders
        return "video"
    return None


def _glob(path: Path, *patterns: str) -> bool:
    return any(next(path.glob(p), None) is not None for p in patterns)


def _has_dirs(path: Path, *names: str) -> bool:
    return all((path / name).is_dir() for name in names)


def _is_detection(spec: str) -> bool:
    from mmkit.data.detection import detection_format

    try:
        detection_format(spec)
        return True
    except MMKitError:
        return False


def _check_split(data: str, split: str, *names: str) -> None:
    """Before loading: an MMKitError when this kind of data has no split of that name."""
    if split not in names:
        raise MMKitError(f"{data}: has no {split} split (it has {', '.join(names)})")


def _split(data: str, splits: dict, split: str):
    """The split named ``split`` once loaded; an MMKitError when this source left it empty."""
    if splits[split] is None or len(splits[split]) == 0:
        raise MMKitError(f"{data}: its {split} split is empty")
    return splits[split]


def _sizes(splits: dict) -> dict[str, int]:
    return {k: len(v) if v is not None else 0 for k, v in splits.items()}


def _pick(total: int, k: int, seed: int) -> list[int]:
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:k].tolist()


def _rgb(image: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """uint8 [C, H, W] as 3 channels, resized to size x size (antialiased) when given."""
    from torchvision.transforms.v2 import functional as TF

    image = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    if size is not None and tuple(image.shape[-2:]) != (size, size):
        image = TF.resize(image, [size, size], antialias=True)
    return image


def show_generation(data: str, split: str, n: int, seed: int, out: Path) -> tuple[str, dict]:
    """Paired sets as A next to B (A resized to B's size), unpaired ones as rows of A samples then rows of B."""
    from mmkit.data.generation import load_generation_data
    from mmkit.report import save_image_grid

    builtin = find_dataset(data, "generate")
    if builtin is not None:
        kind = builtin.kind
    else:
        kind = "unpaired" if (Path(data).expanduser() / "trainA").is_dir() else "paired"
    _check_split(data, split, "train", "test")
    d = load_generation_data(data, kind, seed=seed)
    ds = _split(data, {"train": d.train, "test": d.test}, split)
    if kind == "paired":
        pairs = [ds[i] for i in _pick(len(ds), max(1, n // 2), seed)]
        cells = [_rgb(img, b.shape[-1]) for a, b in pairs for img in (a, b)]
        labels, nrow = ["A", "B"] * len(pairs), min(8, len(cells))
    else:
        half = max(1, n // 2)
        k = half if half <= 8 else half - half % 8  # whole rows of each domain
        a = [ds.a[i][0] for i in _pick(len(ds.a), k, seed)]
        b = [ds.b[i][0] for i in _pick(len(ds.b), k, seed + 1)]
        cells, labels, nrow = [_rgb(img) for img in a + b], ["A"] * len(a) + ["B"] * len(b), min(8, k)
    save_image_grid(torch.stack(cells), out, labels=labels, nrow=nrow, title=f"{d.source} ({split})")
    payload = {
        "name": d.source,
        "kind": kind,
        "description": builtin.description if builtin is not None else d.split,
        "channels": d.channels,
        "image_size": d.img_size,
        "channels_a": d.channels_a,
        "size_a": d.size_a,
        "sizes": _sizes({"train": d.train, "test": d.test}),
        "skipped": [{"path": p, "reason": r} for p, r in d.skipped],
        "grid": str(out),
    }
    return f"{d.summary()} -> {out}", payload


def show_faces(data: str, split: str, n: int, seed: int, out: Path) -> tuple[str, dict]:
    """A few faces of each of n / 4 random people, labelled by person; val holds the people never trained on."""
    from mmkit.data.faces import load_face_data
    from mmkit.report import save_image_grid

    _check_split(data, split, "train", "val")
    d = load_face_data(data, FACE_SIZE, seed=seed)
    splits = {"train": d.train_labels, "val": d.val_labels}
    labels = _split(data, splits, split)
    images, people = (d.train_images, d.train_people) if split == "train" else (d.val_images, d.val_people)
    per = min(FACES_PER_PERSON, n)
    idx = [
        i
        for p in _pick(len(people), max(1, n // per), seed)
        for i in (labels == p).nonzero()[:per, 0].tolist()
    ]
    save_image_grid(
        images[idx],
        out,
        labels=[people[int(labels[i])] for i in idx],
        nrow=2 * per,
        title=f"{d.source} ({split})",
    )
    payload = {
        "name": d.source,
        "sizes": _sizes(splits),
        "people": {"train": len(d.train_people), "val": len(d.val_people)},
        "pairs": len(d.val_pairs),
        "grid": str(out),
    }
    return f"{d.summary()} -> {out}", payload


def show_video(data: str, split: str, n: int, seed: int, out: Path) -> tuple[str, dict]:
    """n / 8 random clips, a row of 8 evenly spaced frames each, the first labelled with the clip's class."""
    from mmkit.data.videos import load_video_data
    from mmkit.report import save_image_grid

    _check_split(data, split, "train", "val")
    d = load_video_data(data, kind="clips", seed=seed)
    if d.kind != "clips":
        raise MMKitError(f"{data}: holds frame features, not pictures; nothing to show")
    splits = {"train": d.train, "val": d.val}
    ds = _split(data, splits, split)
    cells, labels = [], []
    for i in _pick(len(ds), max(1, n // FRAMES_PER_CLIP), seed):
        item = ds[i]
        if item is None:  # a video that failed to decode (logged by the loader)
            continue
        clip, frames, y = item
        ts = torch.linspace(0, frames - 1, FRAMES_PER_CLIP).round().long().tolist()
        names = [d.classes[y]] if isinstance(y, int) else [d.classes[c] for c in y.nonzero()[:, 0].tolist()]
        cells += [clip[t] for t in ts]
        labels += ["+".join(names)] + [f"t={t}" for t in ts[1:]]
    if not cells:
        raise MMKitError(f"{data}: none of the clips picked could be decoded")
    save_image_grid(
        torch.stack(cells), out, labels=labels, nrow=FRAMES_PER_CLIP, title=f"{d.source} ({split})"
    )
    payload = {"name": d.source, "classes": d.classes, "sizes": _sizes(splits), "grid": str(out)}
    return f"{d.summary()} -> {out}", payload


def show_captions(data: str, split: str, n: int, seed: int, out: Path) -> tuple[str, dict]:
    """n random images, each labelled with (the start of) its first reference caption."""
    from mmkit.data.captions import load_caption_data
    from mmkit.report import save_image_grid

    _check_split(data, split, "train", "val", "test")
    d = load_caption_data(data, seed=seed)
    splits = {"train": d.train, "val": d.val, "test": d.test}
    items = _split(data, splits, split)
    idx = _pick(len(items), n, seed)
    images = [_rgb(torch.from_numpy(items.image(i).copy()).permute(2, 0, 1), CAPTION_CELL) for i in idx]
    labels = [items[i].captions[0] if items[i].captions else "" for i in idx]
    save_image_grid(
        torch.stack(images), out, labels=labels, title=f"{d.name} ({split}), first reference caption"
    )
    sizes = _sizes(splits)
    payload = {
        "name": d.name,
        "image_size": d.image_size,
        "sizes": sizes,
        "skipped": [{"path": p, "reason": r} for p, r in d.skipped],
        "grid": str(out),
    }
    summary = f"{d.name}: train {sizes['train']} / val {sizes['val']} / test {sizes['test']} images -> {out}"
    return summary, payload


SHOW = {"generate": show_generation, "face": show_faces, "video": show_video, "caption": show_captions}
