"""Synthetic face identities: determinism, open-set split, pairs.txt, parameter and nuisance variety, CLI."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmkit.cli import app
from mmkit.cli.common import run_cli
from mmkit.data.formats.pairs import read_pairs
from mmkit.data.synthetic_faces import (
    HAIR_STYLES,
    identity_arrays,
    identity_params,
    image_rng,
    make_identities,
    render_face,
    render_identity_image,
    sample_nuisance,
)
from mmkit.errors import MMKitError

SMALL = {"n_identities": 12, "images_per_identity": 3, "size": 32, "test_fraction": 0.34}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("faces") / "set"
    return out, make_identities(out, **SMALL, n_pairs_folds=2, pairs_per_fold=3, seed=5)


def test_identity_arrays_shapes_and_determinism():
    images, labels, names = identity_arrays(4, 3, size=48, seed=1)
    assert images.shape == (12, 48, 48, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert names == ["id_0000", "id_0001", "id_0002", "id_0003"]
    again, _, _ = identity_arrays(4, 3, size=48, seed=1)
    assert np.array_equal(images, again)
    other, _, _ = identity_arrays(4, 3, size=48, seed=2)
    assert not np.array_equal(images, other)
    # an identity's images do not depend on how many identities are drawn
    assert np.array_equal(identity_arrays(2, 3, size=48, seed=1)[0], images[:6])


def test_files_are_identical_across_runs_and_worker_counts(written, tmp_path):
    out, _ = written
    again = tmp_path / "again"
    make_identities(again, **SMALL, n_pairs_folds=2, pairs_per_fold=3, seed=5, workers=2)
    first, second = _files(out), _files(again)
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []
    # the PNGs hold the same pixels as the in-memory variant
    images, _, names = identity_arrays(SMALL["n_identities"], 3, size=32, seed=5)
    for i, name in enumerate(names):
        split = "train" if (out / "train" / name).is_dir() else "test"
        for k in range(3):
            png = np.asarray(Image.open(out / split / name / f"{name}_{k + 1:04d}.png"))
            assert np.array_equal(png, images[3 * i + k]), (name, k)


def test_open_set_split_and_counts(written):
    out, summary = written
    train = {p.name for p in (out / "train").iterdir()}
    test = {p.name for p in (out / "test").iterdir()}
    assert not train & test
    assert train | test == {f"id_{i:04d}" for i in range(12)}
    assert len(test) == summary["test_identities"] == round(0.34 * 12)
    assert len(train) == summary["train_identities"] == 12 - len(test)
    for split in ("train", "test"):
        for folder in (out / split).iterdir():
            assert sorted(p.name for p in folder.iterdir()) == [
                f"{folder.name}_{k:04d}.png" for k in (1, 2, 3)
            ]
            with Image.open(folder / f"{folder.name}_0001.png") as img:
                assert img.size == (32, 32) and img.mode == "RGB"
    assert summary["train_images"] == 3 * len(train) and summary["test_images"] == 3 * len(test)
    readme = (out / "README.txt").read_text()
    assert readme.startswith("mmkit synthetic face identities\n") and "seed 5" in readme


def test_pairs_parse_back_with_labels_and_folds(written):
    out, summary = written
    pairs = read_pairs(out / "pairs.txt", out / "test")
    test = {p.name for p in (out / "test").iterdir()}
    assert len(pairs) == summary["pairs"] == 2 * 2 * 3
    for fold in (0, 1):
        in_fold = [p for p in pairs if p.fold == fold]
        assert [p.same for p in in_fold] == [True] * 3 + [False] * 3
        keys = [(p.name1, p.index1, p.name2, p.index2) for p in in_fold]
        assert len(set(keys)) == len(keys)  # no pair twice in a fold
    for p in pairs:
        assert p.same == (p.name1 == p.name2) == (p.path1.parent == p.path2.parent)
        assert p.path1.is_file() and p.path2.is_file() and {p.name1, p.name2} <= test
        assert p.path1 != p.path2
    # 4 test identities, 2 folds: folds hold disjoint identities, as LFW's do
    assert summary["identity_disjoint_folds"]
    fold_names = [{n for p in pairs if p.fold == f for n in (p.name1, p.name2)} for f in (0, 1)]
    assert not fold_names[0] & fold_names[1]


def test_identities_differ_in_parameters():
    params = [identity_params(0, i) for i in range(60)]
    vectors = np.array([[v for v in dataclasses.astuple(p) if isinstance(v, float)] for p in params])
    assert vectors.shape[1] >= 25  # many continuous traits
    assert all(len(np.unique(vectors[:, j])) == 60 for j in range(vectors.shape[1]))
    gaps = np.linalg.norm(vectors[:, None] - vectors[None], axis=-1)[np.triu_indices(60, 1)]
    assert gaps.min() > 0
    assert len({p.hair_style for p in params}) >= 4 and {p.hair_style for p in params} <= set(HAIR_STYLES)
    assert len({p.skin for p in params}) == 60 and len({p.hair_color for p in params}) == 60
    assert {p.glasses for p in params} > {"none"} and {p.facial_hair for p in params} > {"none"}
    assert identity_params(0, 7) == identity_params(0, 7) != identity_params(1, 7)


def test_nuisance_varies_between_images_of_one_identity():
    nuisances = [sample_nuisance(image_rng(0, 3, k)) for k in range(8)]
    for field in ("angle", "scale", "yaw", "brightness", "contrast", "smile", "texture_seed"):
        values = [getattr(n, field) for n in nuisances]
        assert len(set(values)) == 8, field
    assert all(-15 <= n.angle <= 15 and 0.9 <= n.scale <= 1.1 for n in nuisances)
    params = identity_params(0, 3)
    images = [np.asarray(render_face(params, n, 64), np.float32) for n in nuisances]
    diffs = [np.abs(images[i] - images[j]).mean() for i in range(8) for j in range(i + 1, 8)]
    assert min(diffs) > 3  # every two images of one identity differ visibly
    # same identity and nuisance: same image; another identity under the same nuisance: another image
    assert np.array_equal(np.asarray(render_face(params, nuisances[0], 64)), images[0])
    other = np.asarray(render_face(identity_params(0, 4), nuisances[0], 64), np.float32)
    assert np.abs(other - images[0]).mean() > 1


def test_render_sizes_and_all_occluders():
    params = identity_params(0, 0)
    base = sample_nuisance(image_rng(0, 0, 0))
    for size in (32, 96, 160):
        assert render_identity_image(params, image_rng(0, 0, 0), size).size == (size, size)
    plain = np.asarray(render_face(params, dataclasses.replace(base, occluder="none"), 64), np.float32)
    for occluder in ("bar", "sunglasses", "hat"):
        covered = np.asarray(
            render_face(params, dataclasses.replace(base, occluder=occluder), 64), np.float32
        )
        assert np.abs(covered - plain).max() > 40, occluder


def test_refuses_a_foreign_folder_and_replaces_its_own(written, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(MMKitError, match="not empty"):
        make_identities(foreign, n_identities=4, images_per_identity=2, size=32)
    assert (foreign / "notes.txt").read_text() == "keep me" and len(list(foreign.iterdir())) == 1
    with pytest.raises(MMKitError, match="not a folder"):
        make_identities(foreign / "notes.txt", n_identities=4, images_per_identity=2, size=32)
    # a previous output is replaced: nothing stale stays behind
    own = tmp_path / "own"
    make_identities(own, n_identities=10, images_per_identity=2, size=32, test_fraction=0.3, n_pairs_folds=1)
    make_identities(own, n_identities=5, images_per_identity=2, size=32, test_fraction=0.4, n_pairs_folds=1)
    names = {p.name for split in ("train", "test") for p in (own / split).iterdir()}
    assert names == {f"id_{i:04d}" for i in range(5)}
    with pytest.raises(MMKitError, match="images >= 2"):
        make_identities(tmp_path / "bad", n_identities=5, images_per_identity=1, size=32)


def test_pairs_per_fold_is_capped_by_what_the_test_set_gives(tmp_path):
    s = make_identities(tmp_path / "f", n_identities=6, images_per_identity=3, size=32, test_fraction=0.34,
                        n_pairs_folds=2, pairs_per_fold=50)  # fmt: skip
    # 2 test identities, fewer than 2 per fold: every fold uses both; 2 x 3 matched pairs exist
    assert not s["identity_disjoint_folds"] and s["pairs_per_fold"] == 6 and s["pairs"] == 2 * 2 * 6
    assert len(read_pairs(tmp_path / "f" / "pairs.txt", tmp_path / "f" / "test")) == 24


def mmkit(capsys, *args) -> tuple[int, str, str]:
    code = run_cli(app, [str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_synth_identities(tmp_path, capsys):
    args = ["--identities", 6, "--images", 3, "--size", 32, "--seed", 2, "--folds", 1, "--pairs-per-fold", 4]
    code, out, err = mmkit(capsys, "data", "synth", "identities", "--out", tmp_path / "a", *args, "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["train_identities"] == 4 and payload["test_identities"] == 2 and payload["pairs"] == 8
    assert len(read_pairs(tmp_path / "a" / "pairs.txt", tmp_path / "a" / "test")) == 8
    code, out, err = mmkit(capsys, "data", "synth", "identities", "--out", tmp_path / "b", *args)
    assert code == 0, err
    assert out.startswith("synth identities: 4 train + 2 test identities x 3 images (32 px), 8 test pairs")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x.txt").write_text("x")
    code, out, err = mmkit(capsys, "data", "synth", "identities", "--out", tmp_path / "c", *args)
    assert code == 2 and "error:" in err and "not empty" in err
