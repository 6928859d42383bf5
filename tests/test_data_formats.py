"""Readers for ImageFolder trees, image files, CIFAR pickles and IDX files, on tiny data written by the tests."""

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmkit.data import collate_skip_none, load_classification_data
from mmkit.data.formats.idx import read_idx
from mmkit.data.formats.images import read_image
from mmkit.errors import MMKitError

# ---------------------------------------------------------------- ImageFolder


def _save(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(array)
    if mode:
        img = img.convert(mode)
    img.save(path)


def _write_tree(root: Path, photos: dict, per_class: int = 4) -> None:
    """Classes cat/cup/space, ``per_class`` jpg/png crops each, one grayscale and one RGBA/palette image."""
    sources = {"cat": photos["chelsea"], "cup": photos["coffee"], "space": photos["astronaut"]}
    for name, photo in sources.items():
        for i in range(per_class):
            ext = "jpg" if i % 2 == 0 else "png"
            _save(root / name / f"{name}_{i}.{ext}", np.ascontiguousarray(photo[i : i + 40, i : i + 56]))
    _save(root / "cat" / "gray.png", photos["camera"])
    _save(root / "cup" / "rgba.png", photos["coffee"], mode="RGBA")
    _save(root / "space" / "palette.gif", photos["astronaut"], mode="P")


def test_image_folder_single_tree(tmp_path, photos):
    _write_tree(tmp_path, photos)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "cat" / ".hidden.jpg").write_bytes(b"ignored")
    data = load_classification_data(tmp_path, val_split=0.4, seed=1)
    assert data.classes == ["cat", "cup", "space"]
    assert (data.channels, data.image_size, data.hflip, data.test) == (3, None, True, None)
    assert data.mean == pytest.approx((0.485, 0.456, 0.406))
    assert len(data.train) + len(data.val) == 15 and len(data.val) == 6
    assert sorted(data.val.targets) == [0, 0, 1, 1, 2, 2]  # stratified: 2 of the 5 of each class
    assert data.skipped == []
    for i in range(len(data.train)):
        image, label = data.train[i]
        assert image.dtype == torch.uint8 and image.shape[0] == 3 and isinstance(label, int)
    again = load_classification_data(tmp_path, val_split=0.4, seed=1)
    assert again.val.samples == data.val.samples
    other = load_classification_data(tmp_path, val_split=0.4, seed=2)
    assert other.val.samples != data.val.samples


def test_image_folder_ilsvrc_layout(tmp_path, photos):
    _write_tree(tmp_path / "train", photos, per_class=2)
    _save(
        tmp_path / "val" / "cup" / "v.jpg", photos["coffee"]
    )  # val lacks classes: labels follow train's order
    _save(tmp_path / "test" / "space" / "t.png", photos["astronaut"])
    data = load_classification_data(tmp_path)
    assert data.classes == ["cat", "cup", "space"]
    assert len(data.train) == 9 and data.val.targets == [1] and data.test.targets == [2]
    assert data.name == str(tmp_path)


def test_image_folder_train_test_layout_carves_val(tmp_path, photos):
    _write_tree(tmp_path / "train", photos, per_class=3)
    _save(tmp_path / "test" / "cat" / "t.jpg", photos["chelsea"])
    data = load_classification_data(tmp_path, val_split=0.25)
    assert len(data.train) == 9 and len(data.val) == 3 and len(data.test) == 1


def test_image_folder_val_class_not_in_train(tmp_path, photos):
    _save(tmp_path / "train" / "cat" / "a.jpg", photos["chelsea"])
    _save(tmp_path / "val" / "dog" / "b.jpg", photos["chelsea"])
    with pytest.raises(MMKitError, match="dog"):
        load_classification_data(tmp_path)


def _truncated_jpeg(path: Path, photo: np.ndarray) -> None:
    _save(path, photo)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) * 2 // 3])


def test_corrupt_files_are_skipped_and_listed(tmp_path, photos, caplog):
    _write_tree(tmp_path, photos, per_class=2)
    _truncated_jpeg(tmp_path / "cat" / "cut.jpg", photos["chelsea"])
    (tmp_path / "cup" / "text.jpg").write_text("this is a text file, not a JPEG\n")
    data = load_classification_data(tmp_path, val_split=0.3)
    skipped = dict(data.skipped)
    assert set(skipped) == {str(tmp_path / "cat" / "cut.jpg"), str(tmp_path / "cup" / "text.jpg")}
    assert "truncated" in skipped[str(tmp_path / "cat" / "cut.jpg")]
    assert "not an image" in skipped[str(tmp_path / "cup" / "text.jpg")]
    assert len(data.train) + len(data.val) == 9
    assert sum("text.jpg" in r.getMessage() for r in caplog.records if r.levelname == "WARNING") == 1


def test_file_failing_at_decode_time_gives_none(tmp_path, photos, caplog):
    _write_tree(tmp_path, photos, per_class=2)
    data = load_classification_data(tmp_path, val_split=0.0)
    path = Path(data.train.samples[0][0])
    path.write_bytes(b"gone bad after indexing")
    assert data.train[0] is None
    assert str(path) in caplog.text
    batch = collate_skip_none([None, (torch.zeros(3, 2, 2, dtype=torch.uint8), 1), (torch.ones(3, 2, 2), 2)])
    assert batch[0].shape == (2, 3, 2, 2) and batch[1].tolist() == [1, 2]
    assert collate_skip_none([None, None]) is None


def test_read_image(tmp_path, photos):
    gray, rgba = tmp_path / "g.png", tmp_path / "a.png"
    _save(gray, photos["camera"])
    _save(rgba, photos["coffee"], mode="RGBA")
    g = read_image(gray)
    assert g.shape == (3, 48, 64) and g.dtype == torch.uint8
    assert torch.equal(g[0], g[1]) and torch.equal(g[0], torch.from_numpy(photos["camera"]))
    assert torch.equal(read_image(rgba), torch.from_numpy(photos["coffee"]).permute(2, 0, 1))
    # a phone photo stored sideways with EXIF orientation 6 ("rotate 90° clockwise to view") comes out upright
    upright = photos["coffee"]
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # what the camera wrote: the view turned 90° ccw
    exif = Image.Exif()
    exif[0x0112] = 6
    phone = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(phone, exif=exif, quality=100)
    assert read_image(phone).shape == (3, *upright.shape[:2])
    cut = tmp_path / "cut.jpg"
    _truncated_jpeg(cut, photos["rocket"])
    with pytest.raises(MMKitError, match=f"{cut}: cannot read image"):
        read_image(cut)


def test_folder_errors(tmp_path):
    with pytest.raises(MMKitError, match="no such file or directory"):
        load_classification_data(tmp_path / "missing")
    with pytest.raises(MMKitError, match="is empty"):
        load_classification_data(tmp_path)
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(MMKitError, match="no class folders"):
        load_classification_data(tmp_path)
    (tmp_path / "cls").mkdir()
    with pytest.raises(MMKitError, match="no image files"):
        load_classification_data(tmp_path)
    with pytest.raises(MMKitError, match="not a directory"):
        load_classification_data(tmp_path / "a.jpg")


# ---------------------------------------------------------------- CIFAR


def _dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))


def _batch(n: int, num_classes: int, rng, label_key: str = "labels") -> dict:
    return {
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        label_key.encode(): [int(i % num_classes) for i in range(n)],
        b"batch_label": b"test batch",
    }


def test_cifar10(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "cifar-10-batches-py"
    names = [b"airplane", b"automobile", b"bird"]
    _dump(root / "batches.meta", {b"label_names": names, b"num_vis": 3072})
    batches = [_batch(6, 3, rng) for _ in range(2)]
    for i, batch in enumerate(batches, start=1):
        _dump(root / f"data_batch_{i}", batch)
    _dump(root / "test_batch", _batch(3, 3, rng))
    data = load_classification_data(tmp_path, val_split=0.25, seed=0)  # the parent folder is found too
    assert data.classes == ["airplane", "automobile", "bird"]
    assert (data.channels, data.image_size, data.hflip) == (3, 32, True)
    assert (len(data.train), len(data.val), len(data.test)) == (9, 3, 3)
    images = torch.cat([data.train.images, data.val.images])
    expected = torch.from_numpy(np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32))
    assert sorted(map(bytes, images.flatten(1).numpy())) == sorted(map(bytes, expected.flatten(1).numpy()))
    assert data.test[0][0].shape == (3, 32, 32) and data.test[0][0].dtype == torch.uint8


def test_cifar100_uses_fine_labels(tmp_path):
    rng = np.random.default_rng(1)
    fine = [f"class{i}".encode() for i in range(5)]
    _dump(tmp_path / "meta", {b"fine_label_names": fine, b"coarse_label_names": [b"a", b"b"]})
    train = _batch(10, 5, rng, "fine_labels") | {b"coarse_labels": [0] * 10}
    _dump(tmp_path / "train", train)
    _dump(tmp_path / "test", _batch(5, 5, rng, "fine_labels") | {b"coarse_labels": [1] * 5})
    data = load_classification_data(tmp_path, val_split=0.2)
    assert data.classes == [f"class{i}" for i in range(5)]
    assert sorted(data.train.targets + data.val.targets) == sorted(train[b"fine_labels"])
    assert sorted(data.test.targets) == [0, 1, 2, 3, 4]


class _Evil:
    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_cifar_malformed_and_unsafe_pickles(tmp_path):
    _dump(tmp_path / "batches.meta", {b"label_names": [b"a", b"b"]})
    (tmp_path / "data_batch_1").write_bytes(b"\x80\x02garbage")
    with pytest.raises(MMKitError, match="data_batch_1: not a CIFAR pickle"):
        load_classification_data(tmp_path)
    target = tmp_path / "pwned"
    _dump(tmp_path / "data_batch_1", {b"data": _Evil(str(target)), b"labels": []})
    with pytest.raises(MMKitError, match="refusing to load global"):
        load_classification_data(tmp_path)
    assert not target.exists()
    _dump(tmp_path / "data_batch_1", {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})
    with pytest.raises(MMKitError, match=r"shape \[N, 3072\]"):
        load_classification_data(tmp_path)


# ---------------------------------------------------------------- IDX


def _idx_bytes(array: np.ndarray) -> bytes:
    code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + array.tobytes()


def _write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    raw = _idx_bytes(array)
    path.write_bytes(gzip.compress(raw) if gz else raw)


def test_idx_dir_gz_and_raw(tmp_path):
    rng = np.random.default_rng(0)
    train_x, train_y = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), np.arange(20, dtype=np.uint8) % 4
    test_x, test_y = rng.integers(0, 256, (4, 28, 28), dtype=np.uint8), np.arange(4, dtype=np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", train_x, gz=True)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", train_y, gz=True)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", test_x, gz=False)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", test_y, gz=False)
    assert np.array_equal(read_idx(tmp_path / "t10k-images-idx3-ubyte"), test_x)
    data = load_classification_data(tmp_path, val_split=0.2)
    assert data.classes == ["0", "1", "2", "3"] and data.hflip is False
    assert (data.channels, data.image_size) == (1, 28)
    assert (len(data.train), len(data.val), len(data.test)) == (16, 4, 4)
    assert sorted(data.val.targets) == [0, 1, 2, 3]
    assert torch.equal(data.test.images[:, 0], torch.from_numpy(test_x)) and data.test.targets == [0, 1, 2, 3]
    assert data.mean[0] == pytest.approx(train_x.mean() / 255, abs=1e-3)


def test_idx_errors(tmp_path):
    good = np.arange(12, dtype=">i4").reshape(3, 4)
    _write_idx(tmp_path / "ints.idx", good, gz=False)
    out = read_idx(tmp_path / "ints.idx")
    assert out.dtype == np.int32 and np.array_equal(out, good)
    bad = bytearray(_idx_bytes(np.zeros((2, 3, 3), np.uint8)))
    bad[0] = 8
    (tmp_path / "train-images-idx3-ubyte").write_bytes(bytes(bad))
    with pytest.raises(MMKitError, match="bad magic number"):
        read_idx(tmp_path / "train-images-idx3-ubyte")
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(2, np.uint8), gz=False)
    with pytest.raises(MMKitError, match="train-images-idx3-ubyte: not an IDX file"):
        load_classification_data(tmp_path)
    (tmp_path / "short.gz").write_bytes(gzip.compress(_idx_bytes(np.zeros((2, 3, 3), np.uint8))[:-1]))
    with pytest.raises(MMKitError, match="wrong IDX data length"):
        read_idx(tmp_path / "short.gz")
