"""Face-identity data for metric learning: one folder per person, held-out people for open-set verification.

    data = load_face_data("synthetic-faces", img_size=64)      # or a folder, see below
    data.train_images  # uint8 [N, 3, S, S], every face resized to img_size
    data.val_pairs     # Pairs(i, j, same, fold) into data.val_images: the LFW protocol's pairs

A data spec is one of
- ``synthetic-faces``: the builtin synthetic identities (`mmkit.data.synthetic_faces`), generated in memory:
  240 training identities and 60 held-out ones, 12 images each, 64 px (about 8 s to draw);
  ``synthetic-faces-large``: 1,000 training identities, the same 60 held-out ones (about 30 s to draw);
- a folder written by ``mmkit data synth identities`` or laid out the same way: ``train/<person>/*``, and
  ``test/<person>/*`` with ``pairs.txt`` (LFW format) for validation; without ``pairs.txt`` pairs are drawn;
- a plain folder of person folders (``<person>/*``, e.g. LFW itself): a seeded 20 % of the people are held out.
Faces are expected to be cropped and roughly aligned already (``mmkit face detect --save-dir`` writes such crops).
Everything is decoded once into memory (LFW's 13,233 faces at 160 px take 1 GB).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mmkit.data.formats.imagefolder import index_image_folder
from mmkit.data.formats.images import read_image
from mmkit.data.registry import find_dataset
from mmkit.data.synthetic_faces import identity_arrays
from mmkit.errors import MMKitError

log = logging.getLogger(__name__)

BUILTIN_FACES = "synthetic-faces"
BUILTIN_FACES_LARGE = "synthetic-faces-large"
_IMAGES_PER_PERSON, _RENDER_SIZE, _LARGE_TRAIN = 12, 64, 1000


@dataclass
class Pairs:
    """Verification pairs as indices into one image tensor: same person or not, and the fold of each pair."""

    i: torch.Tensor  # int64 [P]
    j: torch.Tensor  # int64 [P]
    same: torch.Tensor  # bool [P]
    fold: torch.Tensor  # int64 [P]

    def __len__(self) -> int:
        return len(self.same)


@dataclass
class FaceData:
    train_images: torch.Tensor  # uint8 [N, 3, S, S]
    train_labels: torch.Tensor  # int64 [N]
    train_people: list[str]
    val_images: torch.Tensor  # uint8 [M, 3, S, S], people never in train
    val_labels: torch.Tensor  # int64 [M] (indices into val_people)
    val_people: list[str]
    val_pairs: Pairs
    source: str

    def summary(self) -> str:
        return (
            f"{self.source}: {len(self.train_people)} people / {len(self.train_labels)} faces for training, "
            f"{len(self.val_people)} held-out people / {len(self.val_labels)} faces, {len(self.val_pairs)} pairs"
        )


def sample_pairs(labels: torch.Tensor, folds: int = 10, per_fold: int = 300, seed: int = 0) -> Pairs:
    """LFW-style pairs among `labels`: per fold `per_fold` same-person and `per_fold` different-person pairs, drawn
    without repeating a pair (fewer when the set is too small). Folds are disjoint in pairs, not in people."""
    g = np.random.default_rng(seed)
    labels_np = labels.numpy()
    by_person = [np.flatnonzero(labels_np == p) for p in np.unique(labels_np)]
    multi = [idx for idx in by_person if len(idx) >= 2]
    if not multi or len(by_person) < 2:
        raise MMKitError("verification pairs need at least two people, one of them with two faces")
    seen: set[tuple[int, int]] = set()
    rows: list[tuple[int, int, bool, int]] = []
    for fold in range(folds):
        for same in (True, False):
            made, tries = 0, 0
            while made < per_fold and tries < per_fold * 20:
                tries += 1
                if same:
                    idx = multi[g.integers(len(multi))]
                    a, b = g.choice(idx, 2, replace=False)
                else:
                    pa, pb = g.choice(len(by_person), 2, replace=False)
                    a, b = g.choice(by_person[pa]), g.choice(by_person[pb])
                key = (int(min(a, b)), int(max(a, b)))
                if key in seen:
                    continue
                seen.add(key)
                rows.append((key[0], key[1], same, fold))
                made += 1
    t = torch.tensor([(a, b, int(s), f) for a, b, s, f in rows], dtype=torch.int64)
    return Pairs(t[:, 0], t[:, 1], t[:, 2].bool(), t[:, 3])


def resize_square(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [N, C, H, W] resized to size×size (bilinear, antialiased), rounded back to uint8."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    x = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def load_person_folders(root: Path, size: int) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str]]:
    """Decode every face of ``root/<person>/*`` resized to size×size: (images, labels, people, file paths).
    Unreadable files are skipped with a warning naming them (see `index_image_folder`)."""
    ds, skipped = index_image_folder(root)
    if skipped:
        log.warning("%s: %d unreadable image(s) skipped", root, len(skipped))
    paths = [p for p, _ in ds.samples]

    def load(path: str) -> torch.Tensor:
        return resize_square(read_image(path)[None], size)[0]

    with ThreadPoolExecutor(max_workers=4) as pool:
        images = list(pool.map(load, paths, chunksize=64))
    return torch.stack(images), torch.tensor(ds.targets, dtype=torch.int64), list(ds.classes), paths


def _pairs_from_file(pairs_file: Path, paths: list[str]) -> Pairs:
    from mmkit.data.formats.pairs import read_pairs

    index = {str(Path(p).resolve()): k for k, p in enumerate(paths)}
    rows = []
    for pair in read_pairs(pairs_file, pairs_file.parent / "test"):
        a, b = str(Path(pair.path1).resolve()), str(Path(pair.path2).resolve())
        if a not in index or b not in index:
            raise MMKitError(
                f"{pairs_file}: pair {pair.path1} / {pair.path2} names an image that was not loaded"
            )
        rows.append((index[a], index[b], int(pair.same), pair.fold))
    t = torch.tensor(rows, dtype=torch.int64)
    return Pairs(t[:, 0], t[:, 1], t[:, 2].bool(), t[:, 3])


def _split_people(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = int(labels.max()) + 1
    g = torch.Generator().manual_seed(seed)
    held = torch.randperm(n, generator=g)[: max(2, round(n * fraction))]
    is_val = torch.isin(labels, held)
    return ~is_val, is_val


def _relabel(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels renumbered 0..K-1 in order of first appearance of the sorted old labels; (new labels, old ids)."""
    old, new = torch.unique(labels, return_inverse=True)
    return new, old


def load_face_data(spec: str, img_size: int, seed: int = 0, val_fraction: float = 0.2) -> FaceData:
    """Resolve a data spec (see the module docstring) to in-memory faces and validation pairs."""
    builtin = find_dataset(spec, "face")
    if builtin is not None:
        return builtin.load_data(img_size=img_size)
    root = Path(spec)
    if not root.exists():
        raise MMKitError(f"{root}: no such dataset (give a folder of person folders, or {BUILTIN_FACES})")
    if not root.is_dir():
        raise MMKitError(f"{root}: not a folder (give a folder of person folders, or {BUILTIN_FACES})")
    if (root / "train").is_dir():
        tr_img, tr_lab, tr_people, _ = load_person_folders(root / "train", img_size)
        if not (root / "test").is_dir():
            raise MMKitError(f"{root}: has train/ but no test/ folder of held-out people")
        va_img, va_lab, va_people, va_paths = load_person_folders(root / "test", img_size)
        overlap = sorted(set(tr_people) & set(va_people))
        if overlap:
            raise MMKitError(
                f"{root}: people in both train/ and test/ ({', '.join(overlap[:3])}); not an open set"
            )
        pairs_file = root / "pairs.txt"
        pairs = (
            _pairs_from_file(pairs_file, va_paths)
            if pairs_file.is_file()
            else sample_pairs(va_lab, seed=seed)
        )
        return FaceData(tr_img, tr_lab, tr_people, va_img, va_lab, va_people, pairs, str(root))
    images, labels, people, _ = load_person_folders(root, img_size)
    tr, va = _split_people(labels, val_fraction, seed)
    tr_lab, tr_old = _relabel(labels[tr])
    va_lab, va_old = _relabel(labels[va])
    return FaceData(
        images[tr],
        tr_lab,
        [people[i] for i in tr_old.tolist()],
        images[va],
        va_lab,
        [people[i] for i in va_old.tolist()],
        sample_pairs(va_lab, seed=seed),
        str(root),
    )


def _arrays(n: int, start: int, size: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    images, labels, names = identity_arrays(n, _IMAGES_PER_PERSON, _RENDER_SIZE, seed=0, start=start)
    x = resize_square(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), size)
    return x, torch.from_numpy(labels).long(), names


def load_builtin_faces(name: str, img_size: int = 64) -> FaceData:
    """The builtin ``synthetic-faces`` or ``synthetic-faces-large`` (its loader in the dataset registry). Held out:
    identities 240-299 for both sets; training: 0-239, and 300-1059 as well for the large set."""
    train = [_arrays(240, 0, img_size)]
    if name == BUILTIN_FACES_LARGE:
        train.append(_arrays(_LARGE_TRAIN - 240, 300, img_size))
    offsets = [0, 240]
    tr_img = torch.cat([t[0] for t in train])
    tr_lab = torch.cat([t[1] + off for t, off in zip(train, offsets, strict=False)])
    tr_names = [n for t in train for n in t[2]]
    va_img, va_lab, va_names = _arrays(60, 240, img_size)
    return FaceData(tr_img, tr_lab, tr_names, va_img, va_lab, va_names, sample_pairs(va_lab, seed=1), name)
