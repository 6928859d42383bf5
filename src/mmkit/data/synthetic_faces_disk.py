"""The synthetic identities on disk: ``train/<person>/*.png``, ``test/<person>/*.png`` (people never in train) and an
LFW-style ``pairs.txt`` over the test people, as ``mmkit data synth identities`` writes them.

    summary = make_identities(Path("faces"), n_identities=300, images_per_identity=12, size=64, seed=0)

The faces themselves are drawn by `mmkit.data.synthetic_faces`; the files hold the same pixels as its
``identity_arrays``.
"""

from __future__ import annotations

import logging
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from mmkit.data.formats.pairs import image_name, sample_pairs, write_pairs
from mmkit.data.synthetic_faces import (
    _STREAM_PAIRS,
    _STREAM_SPLIT,
    README_MARKER,
    _check,
    identity_name,
    identity_params,
    image_rng,
    render_identity_image,
)
from mmkit.errors import MMKitError

logger = logging.getLogger(__name__)


def _write_identity(folder: Path, seed: int, identity: int, name: str, images: int, size: int) -> None:
    params = identity_params(seed, identity)
    (folder / name).mkdir(parents=True, exist_ok=True)
    for k in range(images):
        image = render_identity_image(params, image_rng(seed, identity, k), size)
        image.save(folder / image_name(name, k + 1, ".png"), format="PNG")


def _prepare(out: Path) -> None:
    """Refuse a folder that holds anything but a previous output; clear what a previous output wrote."""
    if out.exists() and not out.is_dir():
        raise MMKitError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        readme = out / "README.txt"
        first = readme.read_text(encoding="utf-8").split("\n", 1)[0] if readme.is_file() else ""
        if first != README_MARKER:
            raise MMKitError(
                f"{out}: not empty and not written by `mmkit data synth identities` (choose another folder)"
            )
        for entry in ("train", "test"):
            shutil.rmtree(out / entry, ignore_errors=True)
        (out / "pairs.txt").unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def make_identities(
    out: Path,
    n_identities: int = 300,
    images_per_identity: int = 12,
    size: int = 64,
    test_fraction: float = 0.2,
    n_pairs_folds: int = 10,
    pairs_per_fold: int = 300,
    seed: int = 0,
    workers: int = 1,
) -> dict:
    """Write ``out/train/<name>/``, ``out/test/<name>/`` (disjoint identities: an open set), ``out/pairs.txt``
    (LFW format, test identities only) and ``out/README.txt``; return a summary dict.

    ``round(test_fraction * n)`` identities (at least 2) go to test. Pairs come from ``sample_pairs``: folds
    of disjoint identities, as LFW's, when there are at least 2 test identities per fold; ``pairs_per_fold``
    is lowered (with a warning) to what the smallest fold gives without repeating a pair. ``workers`` > 1
    writes identities in that many processes (same bytes). ``out`` must be new, empty, or a previous output
    (whose train/, test/ and pairs.txt are then replaced).
    """
    out = Path(out)
    _check(n_identities, images_per_identity, size, seed)
    if images_per_identity < 2 or not 0 <= test_fraction < 1 or n_pairs_folds < 1 or pairs_per_fold < 1:
        got = f"{images_per_identity}, {test_fraction}, {n_pairs_folds}, {pairs_per_fold}"
        raise MMKitError(f"need images >= 2, test fraction in [0, 1), folds >= 1 and pairs >= 1, got {got}")
    n_test = max(2, round(test_fraction * n_identities)) if test_fraction > 0 else 0
    if n_test >= n_identities:
        raise MMKitError(f"{n_identities} identities leave none for training after {n_test} test identities")
    _prepare(out)
    start = time.perf_counter()
    settings = f"seed {seed}, {n_identities} identities x {images_per_identity} images, {size} px, "
    settings += f"test fraction {test_fraction}"
    (out / "README.txt").write_text(f"{README_MARKER}\n(incomplete) {settings}\n", encoding="utf-8")
    order = np.random.default_rng((seed, _STREAM_SPLIT)).permutation(n_identities)
    test_ids = sorted(int(i) for i in order[:n_test])
    test_set = set(test_ids)
    names = {i: identity_name(i, n_identities) for i in range(n_identities)}
    folders = [out / ("test" if i in test_set else "train") for i in range(n_identities)]
    jobs = [(folders[i], seed, i, names[i], images_per_identity, size) for i in range(n_identities)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            chunk = max(1, len(jobs) // (4 * workers))
            list(pool.map(_write_identity, *zip(*jobs, strict=True), chunksize=chunk))
    else:
        for job in jobs:
            _write_identity(*job)
    seconds = time.perf_counter() - start
    n_pairs, per_fold, disjoint = 0, 0, False
    if n_test:
        counts = {names[i]: images_per_identity for i in test_ids}
        rng = np.random.default_rng((seed, _STREAM_PAIRS))
        rows, per_fold, disjoint = sample_pairs(counts, n_pairs_folds, pairs_per_fold, rng)
        if per_fold < pairs_per_fold:
            logger.warning(
                "pairs.txt: %d pairs per fold asked, the test set gives %d", pairs_per_fold, per_fold
            )
        write_pairs(out / "pairs.txt", rows, n_pairs_folds, per_fold)
        n_pairs = len(rows)
    n_images = n_identities * images_per_identity
    n_train = n_identities - n_test
    summary = {
        "out": str(out), "seed": seed, "size": size, "identities": n_identities, "train_identities": n_train,
        "test_identities": n_test, "images_per_identity": images_per_identity,
        "train_images": n_train * images_per_identity, "test_images": n_test * images_per_identity,
        "folds": n_pairs_folds if n_test else 0, "pairs_per_fold": per_fold, "pairs": n_pairs,
        "identity_disjoint_folds": disjoint, "seconds": round(seconds, 3),
        "images_per_s": round(n_images / max(seconds, 1e-9), 1),
    }  # fmt: skip
    (out / "README.txt").write_text(_readme(settings, summary), encoding="utf-8")
    logger.info("wrote %d images of %d identities in %.1f s", n_images, n_identities, seconds)
    return summary


def _readme(settings: str, s: dict) -> str:
    n = s["pairs_per_fold"]
    folds = "no test identities, no pairs.txt\n"
    if s["pairs"]:
        folds = (
            f"pairs.txt: LFW pairs format over the test identities, header '{s['folds']} {n}', per fold {n}\n"
            f"matched lines 'name i j' then {n} mismatched lines 'name1 i name2 j' (1-based image numbers);\n"
            f"folds use {'disjoint identities' if s['identity_disjoint_folds'] else 'all test identities'}.\n"
        )
    return (
        f"{README_MARKER}\n"
        f"Written by mmkit.data.synthetic_faces.make_identities: {settings}.\n"
        f"Stylised frontal faces; an identity is a random parameter vector, each image draws new pose,\n"
        f"lighting, background, expression, occlusion, noise and blur. Same seed -> identical files.\n\n"
        f"train/: {s['train_identities']} identities, test/: {s['test_identities']} others (open set).\n"
        f"Image k of identity id_NNNN is <split>/id_NNNN/id_NNNN_<kkkk>.png (LFW's naming, k from 1).\n"
        f"{folds}Read them with mmkit.data.formats.pairs.read_pairs('pairs.txt', root='test').\n"
    )
