"""Matting metrics (SAD, MSE, Grad, Conn as DIM's evaluation code computes them) and the two classical baselines."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from mmkit.data.synthetic_matting import matting_splits
from mmkit.metrics.matting import (
    MattingMeter,
    connectivity_error,
    fill_known,
    gradient_error,
    guided_filter,
    guided_filter_baseline,
    matting_errors,
    mse_error,
    sad_error,
    trimap_baseline,
)


@pytest.fixture
def case():
    rng = np.random.default_rng(0)
    alpha = rng.uniform(0, 0.5, (10, 10))
    trimap = np.zeros((10, 10), np.uint8)
    trimap[2:7] = 128  # 50 unknown pixels
    trimap[7:] = 255
    return alpha, trimap


def test_perfect_prediction_scores_zero(case):
    alpha, trimap = case
    errors = matting_errors(alpha, alpha, trimap)
    assert errors == {"sad": 0.0, "mse": 0.0, "grad": 0.0, "conn": 0.0}


def test_sad_and_mse_of_a_known_perturbation(case):
    alpha, trimap = case
    pred = alpha.copy()
    pred[2:5] += 0.2  # 30 unknown pixels off by 0.2
    pred[0] += 0.5  # known pixels do not count
    assert sad_error(pred, alpha, trimap) == pytest.approx(30 * 0.2 / 1000)
    assert mse_error(pred, alpha, trimap) == pytest.approx(30 * 0.2**2 / 50)
    # tensors [1, H, W] and uint8 mattes (/ 255) give the same numbers
    t = torch.from_numpy
    assert sad_error(t(pred)[None], t(alpha)[None], t(trimap)[None]) == pytest.approx(0.006)
    a8, p8 = np.zeros((2, 2), np.uint8), np.full((2, 2), 51, np.uint8)
    assert sad_error(p8, a8, np.full((2, 2), 128, np.uint8)) == pytest.approx(4 * 0.2 / 1000)
    assert mse_error(alpha, alpha, np.zeros((10, 10), np.uint8)) == 0  # no unknown pixel


# ---------------------------------------------------------------------------------------------------------------
# Gradient error: DIM's gaussgradient, written out as in its evaluation code


def _gauss(x, sigma):
    return np.exp(-(x**2) / (2 * sigma**2)) / (sigma * np.sqrt(2 * np.pi))


def _dim_gaussgradient(im, sigma):
    half = int(np.ceil(sigma * np.sqrt(-2 * np.log(np.sqrt(2 * np.pi) * sigma * 1e-2))))
    size = 2 * half + 1
    hx = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            hx[i, j] = _gauss(i - half, sigma) * -(j - half) * _gauss(j - half, sigma) / sigma**2
    hx /= np.sqrt(np.sum(np.abs(hx) * np.abs(hx)))
    return ndimage.convolve(im, hx, mode="nearest"), ndimage.convolve(im, hx.T, mode="nearest")


def _dim_gradient_loss(pred, target, trimap):
    px, py = _dim_gaussgradient(pred, 1.4)
    tx, ty = _dim_gaussgradient(target, 1.4)
    error = (np.sqrt(px**2 + py**2) - np.sqrt(tx**2 + ty**2)) ** 2
    return np.sum(error[trimap == 128]) / 1000


def test_gradient_error_matches_dim_code():
    rng = np.random.default_rng(1)
    for shape in ((40, 50), (7, 5)):
        pred, target = rng.random(shape), ndimage.gaussian_filter(rng.random(shape), 2)
        trimap = rng.choice(np.array([0, 128, 255], np.uint8), shape)
        assert gradient_error(pred, target, trimap) == pytest.approx(
            _dim_gradient_loss(pred, target, trimap), rel=1e-9
        )


def test_gradient_error_by_hand():
    # an impulse: the 9x9 kernel (radius 4) fits in a 9x9 image, so the squared gradient magnitudes sum to the
    # squared L2 norms of the x and y kernels, 1 + 1
    pred = np.zeros((9, 9))
    pred[4, 4] = 1
    unknown = np.full((9, 9), 128, np.uint8)
    assert gradient_error(pred, np.zeros((9, 9)), unknown) == pytest.approx(2 / 1000)
    # a constant offset has the same gradients
    ramp = np.tile(np.linspace(0, 0.5, 5), (5, 1))
    assert gradient_error(ramp + 0.3, ramp, np.full((5, 5), 128, np.uint8)) == pytest.approx(0, abs=1e-15)


# ---------------------------------------------------------------------------------------------------------------
# Connectivity error: DIM's compute_connectivity_error.m, written out with scipy's labelling


def _dim_connectivity_loss(pred, target, trimap, step=0.1):
    level = -np.ones(pred.shape)
    steps = [k / 10 for k in range(11)]
    for i in range(1, len(steps)):
        labels, n = ndimage.label((pred >= steps[i]) & (target >= steps[i]))  # 4-connected
        omega = np.zeros(pred.shape, bool)
        if n:
            sizes = ndimage.sum(np.ones(pred.shape), labels, range(1, n + 1))
            omega = labels == 1 + int(np.argmax(sizes))
        level[(level == -1) & ~omega] = steps[i - 1]
    level[level == -1] = 1
    pd, td = pred - level, target - level
    pphi, tphi = 1 - pd * (pd >= 0.15), 1 - td * (td >= 0.15)
    return np.sum(np.abs(pphi - tphi)[trimap == 128]) / 1000


def test_connectivity_by_hand():
    # 5x5 target all 1; the centre of pred drops to 0.35: it leaves the component at 0.4, so its level is 0.3;
    # pred's phi there is 1 (0.05 < 0.15), target's 1 - 0.7
    target, pred = np.ones((5, 5)), np.ones((5, 5))
    pred[2, 2] = 0.35
    unknown = np.full((5, 5), 128, np.uint8)
    assert connectivity_error(pred, target, unknown) == pytest.approx(0.7 / 1000)
    # a row cut by a hole: the two pixels left of it are an island (level 0, in both mattes), so only the hole
    # itself (pred phi 1, target phi 0) counts
    target, pred = np.ones((1, 6)), np.array([[1, 1, 0, 1, 1, 1.0]])
    assert connectivity_error(pred, target, np.full((1, 6), 128, np.uint8)) == pytest.approx(1 / 1000)
    # the background (0) is never the largest component
    target, pred = np.zeros((4, 4)), np.zeros((4, 4))
    pred[0, 0] = 1
    assert connectivity_error(pred, target, np.full((4, 4), 128, np.uint8)) == pytest.approx(1 / 1000)


def test_connectivity_matches_a_direct_reimplementation():
    rng = np.random.default_rng(2)
    for _ in range(3):
        target = np.clip(ndimage.gaussian_filter(rng.random((30, 40)), 2) * 4 - 1.5, 0, 1)
        pred = np.clip(target + rng.normal(0, 0.2, target.shape), 0, 1)
        trimap = np.where(target > 0.9, 255, np.where(target > 0, 128, 0)).astype(np.uint8)
        trimap[:5] = 128
        got = connectivity_error(pred, target, trimap)
        assert got > 0 and got == pytest.approx(_dim_connectivity_loss(pred, target, trimap), rel=1e-12)


def test_meter_means_per_image_and_takes_batches(case):
    alpha, trimap = case
    pred = alpha + 0.1
    meter = MattingMeter()
    meter.update(alpha, alpha, trimap)
    meter.update(torch.from_numpy(pred)[None], torch.from_numpy(alpha)[None], torch.from_numpy(trimap)[None])
    m = meter.compute()
    one = matting_errors(pred, alpha, trimap)
    assert m["images"] == 2 and all(m[k] == pytest.approx(one[k] / 2) for k in one)
    batch = MattingMeter(full=False)
    stack = torch.stack
    batch.update(
        stack([torch.from_numpy(pred)[None]] * 3),
        stack([torch.from_numpy(alpha)[None]] * 3),
        torch.from_numpy(trimap)[None, None].expand(3, 1, 10, 10),
    )
    assert batch.compute() == pytest.approx({"sad": one["sad"], "mse": one["mse"], "images": 3})
    assert "SAD" in meter.summary() and "Conn" in meter.summary()


# ---------------------------------------------------------------------------------------------------------------
# Baselines


def test_trimap_baseline_and_fill_known():
    trimap = np.array([[0, 128, 255]], np.uint8)
    assert trimap_baseline(trimap).tolist() == [[0.0, 0.5, 1.0]]
    assert fill_known(np.full((1, 3), 0.7), trimap).tolist() == [[0.0, 0.7, 1.0]]


def test_guided_filter_keeps_edges_of_its_own_guide_and_smooths_flat_ones():
    step = np.zeros((12, 12))
    step[:, 6:] = 1
    assert np.abs(guided_filter(step, step, 3, 1e-6) - step).max() < 1e-3  # edge-preserving
    noisy = np.random.default_rng(0).random((12, 12))
    flat = guided_filter(np.ones((12, 12)), noisy, 2, 1e-3)  # no structure in the guide: a box mean
    assert flat.std() < noisy.std() / 2


def test_guided_filter_baseline_beats_trimap_baseline_on_held_out_composites():
    _, test = matting_splits(n_train=1, n_test=40)
    trimap_meter, guided_meter = MattingMeter(full=False), MattingMeter(full=False)
    for i in range(len(test)):
        image, alpha, trimap, _, _ = test[i]
        guided = guided_filter_baseline(image, trimap)
        assert guided.min() >= 0 and guided.max() <= 1
        assert (guided[trimap[0] == 255] == 1).all() and (guided[trimap[0] == 0] == 0).all()
        trimap_meter.update(trimap_baseline(trimap), alpha, trimap)
        guided_meter.update(guided, alpha, trimap)
    t, g = trimap_meter.compute(), guided_meter.compute()
    assert g["sad"] < 0.85 * t["sad"] and g["mse"] < 0.75 * t["mse"]
