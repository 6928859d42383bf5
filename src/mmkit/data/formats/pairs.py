"""LFW ``pairs.txt``: the face-verification protocol file (read and write).

The file starts with a header: ``"<folds> <pairs per class per fold>"`` (``10 300`` in LFW's View 2),
or a single number for one fold (``pairsDevTest.txt`` starts with ``500``). Then, fold after fold, come
``per_fold`` matched lines ``name i j`` (two images of one person) and ``per_fold`` mismatched lines
``name1 i name2 j``. Fields are separated by tabs or spaces; image numbers are 1-based. In LFW, image ``i``
of ``name`` is the file ``<name>/<name>_<iiii>.jpg``; the same naming with ``.png`` (what ``mmkit data synth
identities`` writes) or ``.jpeg`` is found too. ``sample_pairs`` draws such a protocol for any identities.

Usage::

    from mmkit.data.formats.pairs import read_pairs, sample_pairs, write_pairs

    pairs = read_pairs("lfw/pairs.txt", root="lfw/lfw")  # [Pair(path1, path2, same, fold, ...), ...]
    write_pairs("pairs.txt", [("Abel_Pacheco", 1, "Abel_Pacheco", 4), ...], folds=10, per_fold=300)
    rows, per_fold, disjoint = sample_pairs({"id_0001": 12, "id_0002": 9, ...}, folds=10, per_fold=300)

A malformed line or a pair whose image is missing raises ``MMKitError("<pairs file>:<line>: <problem>")``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmkit.errors import MMKitError

__all__ = [
    "IMAGE_EXTENSIONS",
    "Pair",
    "image_name",
    "parse_pairs",
    "read_pairs",
    "resolve_image",
    "write_pairs",
]

IMAGE_EXTENSIONS = (".jpg", ".png", ".jpeg")  # tried in this order


@dataclass(frozen=True)
class Pair:
    """Two face images, whether they show the same identity, and the fold (0-based) the pair belongs to.

    ``name1``/``index1`` and ``name2``/``index2``: the identity names and 1-based image numbers in the file.
    """

    path1: Path
    path2: Path
    same: bool
    fold: int
    name1: str = ""
    index1: int = 0
    name2: str = ""
    index2: int = 0


def image_name(name: str, index: int, ext: str = ".jpg") -> str:
    """The relative path of image ``index`` (1-based) of ``name`` in LFW's naming: ``name/name_0001.jpg``."""
    return f"{name}/{name}_{index:04d}{ext}"


def resolve_image(root: Path, name: str, index: int) -> Path | None:
    """The existing file of image ``index`` of ``name`` under ``root`` (any of IMAGE_EXTENSIONS), or None."""
    for ext in IMAGE_EXTENSIONS:
        path = root / image_name(name, index, ext)
        if path.is_file():
            return path
    return None


def _header(fields: list[str], path: Path) -> tuple[int, int]:
    numbers = [int(f) if f.isdigit() else -1 for f in fields]
    if len(numbers) == 1 and numbers[0] > 0:
        return 1, numbers[0]
    if len(numbers) == 2 and min(numbers) > 0:
        return numbers[0], numbers[1]
    raise MMKitError(
        f"{path}:1: expected a header '<folds> <pairs per fold>' or '<pairs>', got {' '.join(fields)!r}"
    )


def _index(text: str, path: Path, lineno: int) -> int:
    if not text.isdigit() or int(text) < 1:
        raise MMKitError(f"{path}:{lineno}: image number {text!r} is not a positive integer")
    return int(text)


def parse_pairs(path: str | os.PathLike) -> tuple[int, int, list[tuple[str, int, str, int, int, int]]]:
    """(folds, per_fold, records) of a pairs file, without looking at images.

    A record is ``(name1, index1, name2, index2, fold, line_number)``; matched pairs have ``name1 == name2``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MMKitError(f"{path}: pairs file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise MMKitError(f"{path}: cannot read pairs file ({e})") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise MMKitError(f"{path}: pairs file is empty")
    folds, per_fold = _header(lines[0].split(), path)
    expected = folds * 2 * per_fold
    if len(lines) - 1 != expected:
        raise MMKitError(
            f"{path}: header says {folds} folds x {per_fold} matched + {per_fold} mismatched pairs "
            f"({expected} lines), found {len(lines) - 1} lines"
        )
    records = []
    for k, line in enumerate(lines[1:]):
        lineno = k + 2
        fields = line.split()
        fold, matched = k // (2 * per_fold), k % (2 * per_fold) < per_fold
        if matched:
            if len(fields) != 3:
                got = line.strip()
                raise MMKitError(
                    f"{path}:{lineno}: expected a matched pair 'name i j' (fold {fold + 1}), got {got!r}"
                )
            name, i, j = fields
            records.append((name, _index(i, path, lineno), name, _index(j, path, lineno), fold, lineno))
        else:
            if len(fields) != 4:
                raise MMKitError(
                    f"{path}:{lineno}: expected a mismatched pair 'name1 i name2 j' (fold {fold + 1}), "
                    f"got {line.strip()!r}"
                )
            name1, i, name2, j = fields
            if name1 == name2:
                raise MMKitError(f"{path}:{lineno}: mismatched pair names {name1!r} twice")
            records.append((name1, _index(i, path, lineno), name2, _index(j, path, lineno), fold, lineno))
    return folds, per_fold, records


def read_pairs(path: str | os.PathLike, root: str | os.PathLike, *, check_files: bool = True) -> list[Pair]:
    """The pairs of an LFW-format ``path``, image paths resolved under ``root`` (``root/name/name_0001.*``).

    With ``check_files=False`` nothing is looked up and paths use ``.jpg`` (LFW's extension).
    """
    path, root = Path(path), Path(root)
    _, _, records = parse_pairs(path)
    if check_files and not root.is_dir():
        raise MMKitError(f"{root}: image folder of {path} not found")
    pairs = []
    for name1, i1, name2, i2, fold, lineno in records:
        files = []
        for name, index in ((name1, i1), (name2, i2)):
            file = resolve_image(root, name, index) if check_files else root / image_name(name, index)
            if file is None:
                tried = "|".join(IMAGE_EXTENSIONS)
                raise MMKitError(
                    f"{path}:{lineno}: image {root / image_name(name, index, '')}({tried}) not found"
                )
            files.append(file)
        pairs.append(Pair(files[0], files[1], name1 == name2, fold, name1, i1, name2, i2))
    return pairs


def write_pairs(
    path: str | os.PathLike,
    pairs: Iterable[Pair | Sequence],
    folds: int,
    per_fold: int,
) -> Path:
    """Write ``pairs`` (Pair objects or ``(name1, index1, name2, index2)`` tuples, in file order: per fold,
    ``per_fold`` matched then ``per_fold`` mismatched) as an LFW pairs file, header ``folds per_fold``."""
    rows = [(p.name1, p.index1, p.name2, p.index2) if isinstance(p, Pair) else tuple(p) for p in pairs]
    if folds < 1 or per_fold < 1 or len(rows) != folds * 2 * per_fold:
        raise ValueError(f"need folds * 2 * per_fold = {folds * 2 * per_fold} pairs, got {len(rows)}")
    lines = [f"{folds}\t{per_fold}"]
    for k, (name1, i1, name2, i2) in enumerate(rows):
        matched = k % (2 * per_fold) < per_fold
        if (name1 == name2) != matched:
            kind = "matched" if matched else "mismatched"
            raise ValueError(f"pair {k} ({name1} {i1} / {name2} {i2}) is in a {kind} block")
        if not name1 or not name2 or any(c.isspace() for c in name1 + name2) or min(i1, i2) < 1:
            raise ValueError(f"pair {k}: names need no spaces and image numbers start at 1, got {rows[k]}")
        lines.append(f"{name1}\t{i1}\t{i2}" if matched else f"{name1}\t{i1}\t{name2}\t{i2}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _numbering(group: list[int], counts: list[int]) -> tuple:
    """A fold's identities and image counts with cumulative numbers of their matched pairs and of the image
    pairs of each two identities (upper-triangle order), to decode pair numbers."""
    m = np.array(counts, np.int64)
    a, b = np.triu_indices(len(group), 1)
    return group, m, np.cumsum(m * (m - 1) // 2), a, b, np.cumsum(m[a] * m[b])


def _capacity(blocks: list[tuple]) -> int:
    """Distinct matched and mismatched pairs the poorest fold can give."""
    return min(min(int(s[-1]) if len(s) else 0, int(d[-1]) if len(d) else 0) for _, _, s, _, _, d in blocks)


def sample_pairs(
    counts: Mapping[str, int], folds: int = 10, per_fold: int = 300, rng: np.random.Generator | int = 0
) -> tuple[list[tuple[str, int, str, int]], int, bool]:
    """Draw an LFW-style protocol over identities with ``counts[name]`` images each (numbered from 1).

    Returns ``(rows, per_fold, disjoint)``: rows ``(name1, i, name2, j)`` in ``write_pairs`` order (per fold,
    matched then mismatched, each block sorted), the pairs per class per fold actually drawn (``per_fold``, or
    fewer when the poorest fold has fewer distinct pairs), and whether folds hold disjoint identities (as in
    LFW; done when there are 2 or more identities per fold and each fold then has pairs of both kinds, else
    every fold draws from all identities).
    No pair repeats within a fold: pairs are numbered and drawn without replacement, then decoded.
    """
    rng = np.random.default_rng(rng) if isinstance(rng, int) else rng
    names = sorted(counts)
    everyone = list(range(len(names)))
    disjoint = len(names) >= 2 * folds
    if disjoint:
        groups = [sorted(g.tolist()) for g in np.array_split(rng.permutation(len(names)), folds)]
        blocks = [_numbering(g, [counts[names[k]] for k in g]) for g in groups]
        if _capacity(blocks) < 1:  # a fold of single-image identities: let folds share identities
            disjoint = False
    if not disjoint:
        blocks = [_numbering(everyone, [counts[n] for n in names])] * folds
    per_fold = min(per_fold, _capacity(blocks))
    if per_fold < 1:
        raise MMKitError(
            f"{len(names)} identities give no matched and mismatched pair in every fold of {folds}"
        )
    rows: list[tuple[str, int, str, int]] = []
    for g, m, same, a, b, diff in blocks:
        matched = []
        for pick in rng.choice(int(same[-1]), per_fold, replace=False).tolist():
            k = int(np.searchsorted(same, pick, side="right"))
            i, j = np.triu_indices(int(m[k]), 1)
            r = pick - (int(same[k - 1]) if k else 0)
            matched.append((names[g[k]], int(i[r]) + 1, names[g[k]], int(j[r]) + 1))
        mismatched = []
        for pick in rng.choice(int(diff[-1]), per_fold, replace=False).tolist():
            k = int(np.searchsorted(diff, pick, side="right"))
            r = pick - (int(diff[k - 1]) if k else 0)
            p, q = int(a[k]), int(b[k])
            mismatched.append((names[g[p]], r // int(m[q]) + 1, names[g[q]], r % int(m[q]) + 1))
        rows += sorted(matched) + sorted(mismatched)
    return rows, per_fold, disjoint
