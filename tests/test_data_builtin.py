"""Builtin datasets (digits, mnist5k, fashion-mnist), the dataset registry and list, and the stratified split."""

import ast
import dataclasses
import gzip
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from mmkit.data import (
    builtin,
    is_builtin,
    list_datasets,
    load_classification_data,
    registry,
    sources,
    stratified_split,
)
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
    monkeypatch.setattr(sources, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "nowhere")
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


def test_every_builtin_is_registered_once_with_a_loader_that_resolves():
    from mmkit.data.captions import CAPTION_BUILTINS
    from mmkit.data.detection import DETECTION_BUILTINS
    from mmkit.data.generation import BUILTINS as GENERATION_BUILTINS
    from mmkit.data.synthetic import DETECTION_CLASSES
    from mmkit.data.synthetic_videos import MOTIONS

    specs = registry.list_datasets()
    names = [s.name for s in specs]
    assert len(names) == len(set(names)) >= 18
    assert {s.task for s in specs} >= {"classify", "detect", "face", "video", "generate", "caption"}
    for spec in specs:
        assert callable(spec.loader()), spec.name
        ok, reason = spec.available()
        assert ok is (reason is None), spec.name
        assert spec.size and spec.description, spec.name
    assert registry.dataset_names("classify") == list(builtin._LOADERS)
    assert list(DETECTION_BUILTINS) == registry.dataset_names("detect")
    assert list(CAPTION_BUILTINS) == registry.dataset_names("caption")
    assert {n for n, (kind, _) in GENERATION_BUILTINS.items() if kind != "images"} == set(
        registry.dataset_names("generate")
    )
    assert all(
        registry.get_dataset(n).kind in ("paired", "unpaired") for n in registry.dataset_names("generate")
    )
    assert registry.get_dataset("digit-scenes").num_classes == len(DETECTION_CLASSES)
    assert registry.get_dataset("motion-clips-large").num_classes == len(MOTIONS)
    assert registry.find_dataset("digits", "detect") is None and registry.find_dataset("nope") is None
    with pytest.raises(MMKitError, match="nope: unknown builtin dataset .known: digits, mnist5k"):
        registry.get_dataset("nope")


def test_a_registered_dataset_loads_lists_and_shows_its_reason(monkeypatch, capsys):
    from mmkit.cli import app
    from mmkit.cli.common import run_cli

    calls = []
    spec = registry.DatasetSpec(
        "tiny-set", "classify", "a test set", "3 images", 2, lambda name, **kw: calls.append((name, kw)) or "data",
        available=lambda: (False, "not on this machine"),
    )  # fmt: skip
    monkeypatch.setitem(registry._REGISTRY, spec.name, spec)
    assert registry.register_dataset(spec) is spec  # the same spec again: nothing changes
    with pytest.raises(ValueError, match="tiny-set: a builtin dataset of that name is already registered"):
        registry.register_dataset(name="tiny-set", task="detect", description="", size="", load="m:f")
    again = registry.register_dataset(dataclasses.replace(spec, description="described again"))
    assert registry.get_dataset("tiny-set") is again  # the same loader: the same dataset, described again
    registry.register_dataset(spec)
    with pytest.raises(ValueError, match="module:function"):
        registry.DatasetSpec("x", "classify", "", "", load="no-colon")
    assert load_classification_data("tiny-set", val_split=0.2, seed=3) == "data"  # the loader behind the name
    assert calls == [("tiny-set", {"val_split": 0.2, "seed": 3})] and is_builtin("tiny-set")
    assert registry.get_dataset("digits").loader() is builtin.load_builtin  # "module:function", imported now
    assert run_cli(app, ["data", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].endswith(" builtin datasets available") and out[-1].split("/")[1].startswith(
        str(len(out) - 1)
    )
    row = next(line for line in out if line.startswith("tiny-set "))
    assert row.split()[1:4] == ["classify", "2", "classes"] and row.endswith("missing: not on this machine")
    assert run_cli(app, ["data", "list", "--json"]) == 0
    rows = {d["name"]: d for d in json.loads(capsys.readouterr().out)["datasets"]}
    assert rows["tiny-set"] == {"name": "tiny-set", "description": "a test set", "task": "classify",
                                "num_classes": 2, "size": "3 images", "available": False,
                                "reason": "not on this machine"}  # fmt: skip
    assert rows["digit-scenes"]["task"] == "detect" and rows["photo-sr"]["size"] == "paired"


def test_listing_the_datasets_imports_no_torch():
    code = (
        "import sys\nfrom mmkit.data.registry import list_datasets\n"
        "rows = [s.info() for s in list_datasets()]\n"
        "print(len(rows), 'torch' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[1] == "False"


def test_no_data_module_imports_a_private_name_of_another():
    src = Path(registry.__file__).parent
    bad = []
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mmkit"):
                bad += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert bad == []
