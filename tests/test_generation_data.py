"""Generation data: builtin image, paired and unpaired sets, and the folder layouts, read from files written here."""

import logging

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.feature import canny
from torchvision.transforms.v2 import functional as TF

from mmkit.data.generation import BUILTINS, load_generation_data, to_signed, to_uint8
from mmkit.data.photo_pairs import NOISE_SIGMA, photo_regions, tint
from mmkit.errors import MMKitError

CROPS = 24


def _check_item(item, kind):
    a, b = item
    assert a.dtype == torch.uint8 and a.ndim == 3
    if kind == "images":
        assert isinstance(b, int)
    else:
        assert b.dtype == torch.uint8 and b.ndim == 3


@pytest.mark.parametrize("name", list(BUILTINS))
def test_every_builtin_loads_with_its_shapes(name):
    kind = BUILTINS[name][0]
    d = load_generation_data(name, kind, crops=CROPS)
    assert d.kind == kind and name in d.summary()
    for ds in (d.train, d.test):
        assert len(ds) > 0
        _check_item(ds[0], kind)
        _check_item(ds[len(ds) - 1], kind)
    x = d.train[0][0]
    if kind == "images":
        labelled = name != "synthetic-faces"  # the faces are no classes to draw
        assert x.shape == (d.channels, d.img_size, d.img_size) and d.num_classes == (10 if labelled else 0)
        assert 0 <= d.train[0][1] < 10 if labelled else d.train[0][1] == -1
    else:
        a, b = d.test[0]
        assert a.shape == (d.channels_a, d.size_a, d.size_a) and b.shape == (
            d.channels,
            d.img_size,
            d.img_size,
        )
    if name.startswith("photo-"):
        assert len(d.train) == CROPS and len(d.test) >= 40  # every held-out tile


def test_uint8_and_signed_conversions_round_trip():
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    signed = to_signed(x)
    assert signed.min() == -1 and signed.max() == 1 and torch.equal(to_uint8(signed), x)
    assert torch.equal(to_uint8(torch.tensor([-3.0, 3.0])), torch.tensor([0, 255], dtype=torch.uint8))


def test_images_builtin_resizes_on_request():
    d = load_generation_data("digits", "images", img_size=16)
    assert d.train.images.shape[1:] == (1, 16, 16) and d.img_size == 16
    assert d.train.images.float().mean() > 10  # resized content, not blank


def test_photo_pairs_are_aligned():
    denoise = load_generation_data("photo-denoise", "paired", crops=CROPS).test
    residual = denoise.a.float() - denoise.b.float()
    assert 20 < residual.std() < NOISE_SIGMA + 1  # the noise (a little less where clipped)
    assert residual.mean().abs() < 1

    edges = load_generation_data("photo-edges", "paired", crops=CROPS).train
    for i in range(3):
        a, b = edges[i]
        expected = canny(TF.rgb_to_grayscale(b)[0].numpy() / 255, sigma=1.5)
        assert torch.equal(a[0] > 0, torch.from_numpy(expected))
        assert set(a.unique().tolist()) <= {0, 255}

    gray = load_generation_data("photo-colorize", "paired", crops=CROPS).test
    assert (gray.a.float() - TF.rgb_to_grayscale(gray.b).float()).abs().max() <= 1

    blur = load_generation_data("photo-deblur", "paired", crops=CROPS).test
    sharpness = lambda x: x.float().diff(dim=-1).abs().mean()  # noqa: E731
    assert sharpness(blur.a) < 0.6 * sharpness(blur.b)
    assert (blur.a.float() - blur.b.float()).abs().mean() < 15

    sr = load_generation_data("photo-sr", "paired", crops=CROPS).test
    assert sr.a.shape[-1] * 4 == sr.b.shape[-1]
    up = torch.nn.functional.interpolate(sr.a.float(), scale_factor=4, mode="bicubic")
    matched = (up - sr.b.float()).abs().mean()
    shuffled = (up - sr.b.float().roll(1, dims=0)).abs().mean()
    assert matched < 0.5 * shuffled


def test_photo_split_keeps_test_pixels_out_of_training():
    import skimage.data

    for name, train, test in photo_regions():
        full = getattr(skimage.data, name)()
        full = full[0] if isinstance(full, tuple) else full
        axis = 1 if full.shape[1] >= full.shape[0] else 0
        assert np.array_equal(np.concatenate([train, test], axis=axis), full)
        assert test.shape[axis] == pytest.approx(0.25 * full.shape[axis], abs=1)
    one = load_generation_data("photo-deblur", "paired", crops=CROPS, seed=0)
    same = load_generation_data("photo-deblur", "paired", crops=CROPS, seed=0)
    other = load_generation_data("photo-deblur", "paired", crops=CROPS, seed=1)
    items = lambda d: torch.stack([d.train[i][1] for i in range(len(d.train))])  # noqa: E731
    assert torch.equal(items(one), items(same)) and not torch.equal(items(one), items(other))
    assert torch.equal(one.test.b, other.test.b)  # the test tiles do not depend on the seed


def test_unpaired_builtins():
    d = load_generation_data("day-tinted", "unpaired", crops=CROPS)
    a, b = d.test[3]
    assert d.aligned_test and torch.equal(b, tint(a[None])[0])
    assert b.float().mean() < a.float().mean()  # darker
    assert (b[0].float() / b[2].float().clamp_min(1)).mean() > (
        a[0].float() / a[2].float().clamp_min(1)
    ).mean()
    torch.manual_seed(0)
    draws = {tuple(d.train[0][1].flatten()[:64].tolist()) for _ in range(5)}
    assert len(draws) > 1  # b is drawn at random in training
    assert torch.equal(d.test[0][1], d.test[0][1])

    digits = load_generation_data("digits-fashion", "unpaired")
    assert len(digits.train) == 60000 and len(digits.test) == 10000
    a, b = digits.test[5]
    assert a.shape == b.shape == (1, 28, 28)


def test_bad_specs_and_kinds():
    with pytest.raises(MMKitError, match="photo-edges.*photo-sr"):
        load_generation_data("no-such-set", "paired")
    with pytest.raises(MMKitError, match="photo-edges: a builtin paired dataset, not images"):
        load_generation_data("photo-edges", "images")
    with pytest.raises(MMKitError, match="unknown kind"):
        load_generation_data("digits", "video")
    with pytest.raises(MMKitError, match="not a multiple of 4"):
        load_generation_data("photo-sr", "paired", img_size=30)


# ---------------------------------------------------------------------------------------------------------------
# Folders


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _pattern(seed, h=24, w=24):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_side_by_side_pairs_with_train_and_test_folders(tmp_path):
    for split, n in (("train", 4), ("test", 2)):
        for i in range(n):
            a = _pattern(i)
            _save(tmp_path / split / f"{i}.png", np.concatenate([a, 255 - a], axis=1))
    d = load_generation_data(tmp_path, "paired", img_size=24)
    assert len(d.train) == 4 and len(d.test) == 2 and d.size_a == 24
    a, b = d.train[1]
    assert torch.equal(a, torch.from_numpy(_pattern(1)).permute(2, 0, 1))
    assert torch.equal(b, 255 - a)


def test_a_b_folders_match_by_name_and_report_missing_partners(tmp_path):
    for i in range(10):
        _save(tmp_path / "A" / f"im{i}.png", _pattern(i))
        _save(tmp_path / "B" / f"im{i}.png", 255 - _pattern(i))
    d = load_generation_data(tmp_path, "paired", img_size=24)
    assert len(d.train) == 9 and len(d.test) == 1  # 10% held out
    for ds in (d.train, d.test):
        a, b = ds[0]
        assert torch.equal(b, 255 - a)
    _save(tmp_path / "A" / "lonely.png", _pattern(99))
    with pytest.raises(MMKitError, match="lonely.png"):
        load_generation_data(tmp_path, "paired")


def test_super_resolution_folders_keep_the_size_ratio(tmp_path):
    for i in range(3):
        _save(tmp_path / "A" / f"{i}.png", _pattern(i, 8, 8))
        _save(tmp_path / "B" / f"{i}.png", _pattern(i, 32, 32))
    d = load_generation_data(tmp_path, "paired", img_size=32)
    a, b = d.train[0]
    assert a.shape == (3, 8, 8) and b.shape == (3, 32, 32) and d.size_a == 8


def test_unpaired_folders(tmp_path):
    for side, n in (("trainA", 5), ("trainB", 3), ("testA", 2), ("testB", 2)):
        for i in range(n):
            _save(tmp_path / side / f"{i}.jpg", _pattern(i, 40, 30))
    d = load_generation_data(tmp_path, "unpaired", img_size=16)
    assert len(d.train) == 5 and len(d.test) == 2 and not d.aligned_test
    a, b = d.train[4]
    assert a.shape == b.shape == (3, 16, 16)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    with pytest.raises(MMKitError, match="trainA/ and trainB/"):
        load_generation_data(tmp_path / "other", "unpaired")


def test_image_folders_with_and_without_classes(tmp_path):
    for cls in ("cats", "dogs"):
        for i in range(5):
            _save(tmp_path / "classes" / cls / f"{i}.png", _pattern(i, 20, 30))
    d = load_generation_data(tmp_path / "classes", "images", img_size=16)
    assert d.classes == ["cats", "dogs"] and len(d.train) + len(d.test) == 10 and len(d.test) == 1
    x, label = d.train[0]
    assert x.shape == (3, 16, 16) and label in (0, 1)
    for i in range(4):
        _save(tmp_path / "flat" / f"{i}.png", _pattern(i))
    flat = load_generation_data(tmp_path / "flat", "images")
    assert flat.classes == [] and flat.train[0][1] == -1 and flat.img_size == 64


def test_unreadable_and_empty_folders(tmp_path, caplog):
    for i in range(3):
        _save(tmp_path / "imgs" / f"{i}.png", _pattern(i))
    (tmp_path / "imgs" / "broken.png").write_bytes(b"not a png at all")
    with caplog.at_level(logging.WARNING):
        d = load_generation_data(tmp_path / "imgs", "images")
    assert [p for p, _ in d.skipped] == [str(tmp_path / "imgs" / "broken.png")]
    assert "broken.png" in caplog.text and len(d.train) + len(d.test) == 3

    (tmp_path / "empty").mkdir()
    with pytest.raises(MMKitError, match="empty"):
        load_generation_data(tmp_path / "empty", "images")
    _save(tmp_path / "single" / "only.png", _pattern(0))
    with pytest.raises(MMKitError, match="single: 1 item"):
        load_generation_data(tmp_path / "single", "images")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"junk")
    with pytest.raises(MMKitError, match="bad: no readable"):
        load_generation_data(tmp_path / "bad", "paired")
    # a file that breaks after indexing is named when it is read
    path = tmp_path / "imgs" / "0.png"
    path.write_bytes(b"gone")
    ds = d.train if str(path) in [p for p, _ in d.train.samples] else d.test
    index = [p for p, _ in ds.samples].index(str(path))
    with pytest.raises(MMKitError, match="0.png"):
        ds[index]


@pytest.mark.parametrize("augment", [False, True])
def test_photo_training_crops_are_drawn_on_access_from_the_train_regions(augment):
    from numpy.lib.stride_tricks import sliding_window_view

    from mmkit.data.photo_pairs import TrainPairs, downscale

    pairs = TrainPairs("sr", 16, n=3, seed=7, augment=augment)
    rng = np.random.default_rng(0)  # two small random regions stand in for the photos' (a fast search)
    regions = pairs.regions = [rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(2)]
    pairs.p = np.array([0.5, 0.5])
    for i in range(len(pairs)):
        a, b = pairs[i]
        again_a, again_b = pairs[i]
        assert torch.equal(a, again_a) and torch.equal(b, again_b)  # the same item on every read
        assert torch.equal(a, downscale(b[None], 0)[0])
        crop = b.permute(1, 2, 0).numpy()
        views = [crop] if not augment else [np.rot90(c, k) for c in (crop, crop[:, ::-1]) for k in range(4)]
        found = any(
            (sliding_window_view(r, crop.shape) == v).all(axis=(-3, -2, -1)).any()
            for r in regions
            for v in views
        )
        assert found  # a crop of a train region (up to a flip and a rotation when augmented)
    with pytest.raises(IndexError):
        pairs[3]
