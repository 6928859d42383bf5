"""Matting data: synthetic composites (exact alpha, trimaps, split hygiene) and the Composition-1k folder format."""

import numpy as np
import pytest
import torch
from PIL import Image

from mmkit.data.formats.matting import read_alpha, read_matting_folder, read_trimap, write_matting_folder
from mmkit.data.photo_pairs import photo_regions
from mmkit.data.synthetic_matting import (
    TEST_TRIMAP_WIDTH,
    SyntheticMatting,
    composite,
    make_trimap,
    matting_splits,
    write_synthetic_matting,
)
from mmkit.errors import MMKitError


@pytest.fixture(scope="module")
def splits():
    return matting_splits(n_train=16, n_test=12, seed=3)


def test_items_have_the_documented_types_and_shapes(splits):
    train, test = splits
    assert len(train) == 16 and len(test) == 12
    for ds in splits:
        for i in (0, len(ds) - 1):
            image, alpha, trimap, fg, bg = ds[i]
            h, w = image.shape[1:]
            assert image.dtype == fg.dtype == bg.dtype == trimap.dtype == torch.uint8
            assert alpha.dtype == torch.float32 and alpha.shape == trimap.shape == (1, h, w)
            assert fg.shape == bg.shape == image.shape == (3, h, w)
            assert 64 <= h <= 96 and 64 <= w <= 96
            assert alpha.min() >= 0 and alpha.max() <= 1 and (alpha > 0).any()
            assert set(trimap.unique().tolist()) <= {0, 128, 255}
    assert train[0][0].shape == (3, 64, 64)  # train items are square, so they batch


def test_composite_is_alpha_f_plus_one_minus_alpha_b(splits):
    for ds in splits:
        for i in range(4):
            image, alpha, _, fg, bg = ds[i]
            a = alpha.double()
            exact = a * fg.double() + (1 - a) * bg.double()
            assert (image.double() - exact).abs().max() <= 0.5  # only the uint8 rounding
            assert torch.equal(image, exact.round().to(torch.uint8))
            # alpha is quantized to k/255, so an 8-bit PNG keeps it exactly
            assert torch.equal((alpha * 255).round() / 255, alpha)


def test_mattes_are_soft_and_partly_opaque(splits):
    train, _ = splits
    mixed = [((a > 0) & (a < 1)).sum().item() for _, a, *_ in (train[i] for i in range(len(train)))]
    assert all(m > 0 for m in mixed)  # every matte has fractional pixels (anti-aliased edges at least)
    assert sum((a == 1).any().item() for _, a, *_ in (train[i] for i in range(len(train)))) >= len(train) // 2


def test_items_are_deterministic_and_seeded_by_index():
    a, b = SyntheticMatting(4, seed=7), SyntheticMatting(4, seed=7)
    for x, y in zip(a[2], b[2], strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(a[1][1], a[2][1])
    assert not torch.equal(SyntheticMatting(4, seed=8)[2][0], a[2][0])
    with pytest.raises(IndexError):
        a[4]


def test_test_split_does_not_depend_on_the_training_seed_and_uses_test_backgrounds():
    (_, test0), (_, test1) = matting_splits(4, 6, seed=0), matting_splits(4, 6, seed=1)
    for i in range(6):
        assert torch.equal(test0[i][0], test1[i][0])
    # every test background is a crop of a test region, never of a train region
    regions = photo_regions()
    for i in range(6):
        bg = test0[i][4].permute(1, 2, 0).numpy()
        h, w = bg.shape[:2]
        assert any(_contains(test, bg) for _, _, test in regions)
        assert not any(_contains(train, bg) for _, train, _ in regions)


def _contains(region: np.ndarray, crop: np.ndarray) -> bool:
    h, w = crop.shape[:2]
    ys, xs = np.nonzero((region[: region.shape[0] - h + 1, : region.shape[1] - w + 1] == crop[0, 0]).all(-1))
    return any(np.array_equal(region[y : y + h, x : x + w], crop) for y, x in zip(ys, xs, strict=True))


def test_trimap_unknown_band_covers_every_fractional_pixel(splits):
    for ds in splits:
        for i in range(len(ds)):
            _, alpha, trimap, _, _ = ds[i]
            fractional = (alpha > 0) & (alpha < 1)
            assert (trimap[fractional] == 128).all()
            assert (alpha[trimap == 255] == 1).all() and (alpha[trimap == 0] == 0).all()


def test_make_trimap_by_hand():
    alpha = np.zeros((9, 9), np.float32)
    alpha[2:7, 2:7] = 1
    alpha[4, 7] = 0.5
    t = make_trimap(alpha, 1)
    assert t.dtype == np.uint8 and t.shape == (9, 9)
    assert (t[3:6, 3:6] == 255).all() and (t[2, 2:7] == 128).all() and t[4, 7] == 128 and t[4, 8] == 128
    assert t[0, 0] == 0 and t[1, 4] == 128 and t[0, 4] == 0  # a disk of radius 1: 1 px around alpha > 0
    assert ((t == 255) == (alpha == 1)).sum() < 81  # the foreground was eroded
    t0 = make_trimap(alpha, 0)
    assert (t0[alpha == 1] == 255).all() and t0[4, 7] == 128 and (t0[alpha == 0] == 0).all()
    # a Generator draws the width; a tensor comes back as a tensor of the same shape
    tt = make_trimap(torch.from_numpy(alpha)[None], np.random.default_rng(0), widths=(2, 2))
    assert (
        isinstance(tt, torch.Tensor)
        and tt.shape == (1, 9, 9)
        and torch.equal(tt[0], torch.from_numpy(make_trimap(alpha, 2)))
    )
    # the image border does not erode the foreground
    assert (make_trimap(np.ones((5, 5), np.float32), 2) == 255).all()


def test_test_trimaps_have_the_fixed_width():
    _, test = matting_splits(2, 3)
    _, alpha, trimap, _, _ = test[1]
    assert torch.equal(trimap, make_trimap(alpha, TEST_TRIMAP_WIDTH))


def test_composite_function_rounds_and_clips():
    alpha = np.array([[0.0, 0.5, 1.0]], np.float32)
    fg = np.full((3, 1, 3), 255, np.uint8)
    bg = np.zeros((3, 1, 3), np.uint8)
    assert composite(alpha, fg, bg)[:, 0].tolist() == [[0, 128, 255]] * 3


# ---------------------------------------------------------------------------------------------------------------
# Folder format


def test_folder_round_trips_what_the_writer_wrote(tmp_path, splits):
    train, test = splits
    write_matting_folder(train, tmp_path / "train")
    write_matting_folder(test, tmp_path / "test")
    for split, ds in (("train", train), ("test", test)):
        back = read_matting_folder(tmp_path, split)
        assert len(back) == len(ds) and back.has_trimaps
        for i in (0, 5, len(ds) - 1):
            image, alpha, trimap = back[i]
            want = ds[i]
            assert torch.equal(image, want[0]) and torch.equal(trimap, want[2])
            assert alpha.dtype == torch.float32 and torch.equal(alpha, want[1])


def test_folder_without_trimaps_or_splits(tmp_path):
    items = [(torch.full((3, 5, 7), 9, dtype=torch.uint8), torch.linspace(0, 1, 35).view(1, 5, 7), None)]
    write_matting_folder(items, tmp_path)
    assert not (tmp_path / "trimaps").exists()
    ds = read_matting_folder(tmp_path)
    image, alpha, trimap = ds[0]
    assert trimap is None and image.shape == (3, 5, 7)
    assert (alpha - items[0][1]).abs().max() <= 0.5 / 255 + 1e-6  # 8 bits
    with pytest.raises(MMKitError, match="no train split"):
        read_matting_folder(tmp_path, "train")


def test_missing_alpha_is_one_error_naming_the_file(tmp_path, splits):
    write_matting_folder([splits[0][i] for i in range(3)], tmp_path)
    (tmp_path / "alphas" / "000001.png").unlink()
    with pytest.raises(MMKitError, match=r"images/000001\.png: no alpha matte") as e:
        read_matting_folder(tmp_path)
    assert "\n" not in str(e.value)


def test_size_mismatch_and_unreadable_files_name_the_file(tmp_path, splits):
    write_matting_folder([splits[0][i] for i in range(2)], tmp_path)
    Image.new("L", (10, 12)).save(tmp_path / "alphas" / "000000.png")
    with pytest.raises(
        MMKitError, match=r"alphas/000000\.png: 10x12 pixels, but its image 000000\.png has 64x64"
    ):
        read_matting_folder(tmp_path)
    Image.new("L", (64, 64)).save(tmp_path / "alphas" / "000000.png")
    (tmp_path / "images" / "000001.png").write_bytes(b"not a png")
    with pytest.raises(MMKitError, match=r"images/000001\.png: cannot read image"):
        read_matting_folder(tmp_path)
    ds = read_matting_folder(tmp_path, check_sizes=False)
    with pytest.raises(MMKitError, match=r"000001\.png: cannot read image"):
        ds[1]


def test_orphan_alpha_and_missing_folders_are_errors(tmp_path, splits):
    write_matting_folder([splits[0][0]], tmp_path)
    Image.new("L", (64, 64)).save(tmp_path / "alphas" / "extra.png")
    with pytest.raises(MMKitError, match=r"alphas/extra\.png: no image"):
        read_matting_folder(tmp_path)
    with pytest.raises(MMKitError, match="not found"):
        read_matting_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MMKitError, match="not a matting folder"):
        read_matting_folder(tmp_path / "empty")


def test_alias_folders_16_bit_alphas_and_trimap_snapping(tmp_path):
    for d in ("merged", "alpha_copy", "trimaps"):
        (tmp_path / d).mkdir()
    Image.new("RGB", (4, 3), (10, 20, 30)).save(tmp_path / "merged" / "a.jpg")
    Image.fromarray(np.full((3, 4), 65535, np.uint16)).save(tmp_path / "alpha_copy" / "a.png")
    Image.fromarray(np.array([[0, 60, 100, 128], [150, 200, 255, 90], [0, 0, 0, 0]], np.uint8)).save(
        tmp_path / "trimaps" / "a.png"
    )
    image, alpha, trimap = read_matting_folder(tmp_path)[0]
    assert image.shape == (3, 3, 4) and torch.equal(alpha, torch.ones(1, 3, 4))
    assert trimap[0, :2].tolist() == [[0, 0, 128, 128], [128, 255, 255, 128]]
    assert torch.equal(read_alpha(tmp_path / "alpha_copy" / "a.png"), alpha)
    assert torch.equal(read_trimap(tmp_path / "trimaps" / "a.png"), trimap)


def test_write_synthetic_matting_writes_both_splits(tmp_path):
    write_synthetic_matting(tmp_path, n_train=3, n_test=2, seed=0)
    train, test = read_matting_folder(tmp_path, "train"), read_matting_folder(tmp_path, "test")
    assert len(train) == 3 and len(test) == 2
    assert torch.equal(test[1][1], matting_splits(3, 2)[1][1][1])
