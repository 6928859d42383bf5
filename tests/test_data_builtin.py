"""Builtin datasets (digits, mnist5k, fashion-mnist), the dataset list and the stratified split."""

import gzip
from collections import Counter

import numpy as np
import pytest
import torch

from mmkit.data import builtin, is_builtin, list_datasets, load_classification_data, stratified_split
from mmkit.errors import MMKitError


def _all_images(data) -> torch.Tensor:
    return torch.cat([data.train.images, data.val.images, data.test.images])


def test_digits_splits_and_dtypes():
    data = load_classification_data("digits", val_split=0.1, seed=0)
    assert data.classes == [str(i) for i in range(10)] and data.num_classes == 10
    assert (data.channels, data.image_size, data.hflip) == (1, 8, False)
    assert (len(data.train), len(data.val), len(data.test)) == (
        1294,
        144,
        359,
    )  # 20% test, then 10% of the rest
    image, label = data.train[0]
    assert image.dtype == torch.uint8 and image.shape == (1, 8, 8) and isinstance(label, int)
    assert int(_all_images(data).max()) == 255
    test_counts = Counter(data.test.targets)
    assert set(test_counts) == set(range(10)) and all(33 <= c <= 38 for c in test_counts.values())
    assert 0.2 < data.mean[0] < 0.4 and 0.3 < data.std[0] < 0.5
    other = load_classification_data("digits", val_split=0.1, seed=1)
    assert torch.equal(other.test.images, data.test.images)  # the test split is fixed
    assert not torch.equal(other.val.images, data.val.images)  # val follows the seed
    again = load_classification_data("digits", val_split=0.1, seed=0)
    assert torch.equal(again.val.images, data.val.images)


def test_mnist5k_loads_with_labels_from_the_last_column():
    data = load_classification_data("mnist5k")
    assert (data.channels, data.image_size, data.hflip) == (1, 28, False)
    assert (len(data.train), len(data.val), len(data.test)) == (3600, 400, 1000)
    labels = torch.tensor(data.train.targets + data.val.targets + data.test.targets)
    assert Counter(labels.tolist()) == dict.fromkeys(range(10), 500)
    images = _all_images(data).float()
    assert images[:, 0, 0].max() == 0 and images.amax() == 255  # background corner; ink
    ink = torch.stack([images[labels == c].mean() for c in range(10)])
    assert int(ink.argmin()) == 1 and int(ink.argmax()) == 0  # "1" has the least ink, "0" the most


@pytest.mark.skipif(builtin.fashion_mnist_dir() is None, reason="Fashion-MNIST IDX files are not installed")
def test_fashion_mnist():
    data = load_classification_data("fashion-mnist", val_split=0.1)
    assert (
        data.name == "fashion-mnist" and data.classes[0] == "T-shirt/top" and data.classes[9] == "Ankle boot"
    )
    assert (len(data.train), len(data.val), len(data.test)) == (54000, 6000, 10000)
    assert data.hflip is True and data.image_size == 28 and data.channels == 1
    assert data.mean[0] == pytest.approx(0.286, abs=0.002) and data.std[0] == pytest.approx(0.353, abs=0.002)
    assert Counter(data.test.targets) == dict.fromkeys(range(10), 1000)


def _write_fashion(directory, n: int = 10) -> None:
    directory.mkdir(parents=True)
    for split, count in (("train", n), ("t10k", n // 2)):
        images = np.full((count, 28, 28), 7, np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">u4").tobytes()
            (directory / f"{split}-{kind}-ubyte.gz").write_bytes(gzip.compress(header + array.tobytes()))


def test_fashion_mnist_location(tmp_path, monkeypatch):
    monkeypatch.setattr(builtin, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "nowhere")
    monkeypatch.setenv("MMKIT_DATA", str(tmp_path))
    with pytest.raises(
        MMKitError, match=r"apt-get install dataset-fashion-mnist.*\$MMKIT_DATA/fashion-mnist"
    ):
        load_classification_data("fashion-mnist")
    info = {d.name: d for d in list_datasets()}["fashion-mnist"]
    assert info.available is False and "apt-get install" in info.reason
    _write_fashion(tmp_path / "fashion-mnist", n=20)
    data = load_classification_data("fashion-mnist", val_split=0.5)
    assert (len(data.train), len(data.val), len(data.test)) == (10, 10, 10)
    assert data.classes[8] == "Bag"


def test_list_and_names():
    infos = {d.name: d for d in list_datasets()}
    assert set(infos) == {"digits", "mnist5k", "fashion-mnist"}
    assert infos["digits"].available and infos["digits"].reason is None
    assert all(d.task == "classify" and d.num_classes == 10 and d.size for d in infos.values())
    assert is_builtin("digits") and not is_builtin("mnist")
    with pytest.raises(MMKitError, match="mnist: no such builtin dataset .*digits, mnist5k, fashion-mnist"):
        load_classification_data("mnist")
    with pytest.raises(MMKitError, match="known: digits, mnist5k, fashion-mnist"):
        builtin.load_builtin("cifar")
    with pytest.raises(MMKitError, match="val_split"):
        load_classification_data("digits", val_split=1.0)


def test_stratified_split():
    labels = np.array([0] * 10 + [1] * 7 + [2] * 3 + [3])
    keep, split = stratified_split(labels, 0.3, seed=5)
    assert len(split) == round(0.3 * len(labels)) and len(keep) + len(split) == len(labels)
    assert not set(keep) & set(split)
    counts = Counter(labels[split].tolist())
    assert counts[0] == 3 and counts[1] in (2, 3) and counts[2] in (0, 1) and counts[3] == 0
    assert all(c in labels[keep] for c in range(4))  # every class keeps at least one training item
    again_keep, again_split = stratified_split(labels, 0.3, seed=5)
    assert np.array_equal(again_split, split)
    assert len(stratified_split(labels, 0.0, seed=0)[1]) == 0
