"""Image-matting metrics as the benchmarks report them, and two classical baselines.

The four errors of Rhemann et al. 2009 (alphamatting.com), computed as Deep Image Matting's evaluation code does
(Xu et al. 2017, ``compute_{sad,mse,gradient,connectivity}_loss.m``), over the unknown region of the trimap only
(``trimap == 128``), with alphas in [0, 1] (the code's ``alpha / 255``):

- SAD: ``Σ |α − α*|`` over the unknown region, / 1000.
- MSE: ``Σ (α − α*)²`` over the unknown region / its number of pixels (reported as is; papers often show it x1e3).
- Grad: ``Σ (|∇α| − |∇α*|)²`` over the unknown region, / 1000; ∇ by first-order Gaussian-derivative filters of
  σ 1.4 (``gaussgradient``: a 9x9 kernel, radius ceil(σ·sqrt(−2 ln(sqrt(2π)·σ·0.01))) = 4, scaled to unit L2 norm,
  replicated borders), here through ``scipy.ndimage.gaussian_filter(order=1)`` times that normalisation.
- Conn: ``Σ |φ(α) − φ(α*)|`` over the unknown region, / 1000, with ``φ(a) = 1 − d·[d ≥ 0.15]``, ``d = a − l`` and
  ``l`` a pixel's connectivity level: the last threshold (step 0.1) at which it still belongs to the largest
  4-connected component of both mattes thresholded (``α ≥ t`` and ``α* ≥ t``); 1 if it always does. The component
  is the largest foreground one, as MATLAB's ``bwconncomp`` gives (some Python ports count the background too).

Each function takes one matte pair as arrays or tensors of shape [H, W] or [1, H, W]: float alphas in [0, 1] (uint8
ones are divided by 255) and a trimap of 0 / 128 / 255. ``MattingMeter`` sums the errors over images and reports
their mean per image, as the benchmarks' tables do.

Baselines: ``trimap_baseline`` (unknown = 0.5) and ``guided_filter_baseline`` (He et al. 2010's guided filter of it,
guided by the grayscale image, known regions kept).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage
from skimage.measure import label

__all__ = [
    "GRAD_SIGMA",
    "MattingMeter",
    "connectivity_error",
    "fill_known",
    "gradient_error",
    "guided_filter",
    "guided_filter_baseline",
    "matting_errors",
    "mse_error",
    "sad_error",
    "trimap_baseline",
]

UNKNOWN = 128
GRAD_SIGMA = 1.4
CONN_STEP = 0.1
CONN_THETA = 0.15
_LUMA = np.array([0.299, 0.587, 0.114])


def _plane(x, name: str) -> np.ndarray:
    """A [H, W] float64 array from an array or tensor of shape [H, W] or [1, H, W]; uint8 alphas / 255."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim == 3 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 2:
        raise ValueError(f"{name} must be [H, W] or [1, H, W], got shape {x.shape}")
    return x.astype(np.float64) / 255 if x.dtype == np.uint8 else x.astype(np.float64)


def _trimap(trimap) -> np.ndarray:
    """A trimap ([H, W] or [1, H, W], values 0 / 128 / 255) as a [H, W] array of its own dtype."""
    t = trimap.detach().cpu().numpy() if isinstance(trimap, torch.Tensor) else np.asarray(trimap)
    if t.ndim == 3 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 2:
        raise ValueError(f"trimap must be [H, W] or [1, H, W], got shape {t.shape}")
    return t


def _unknown(trimap, shape: tuple[int, ...]) -> np.ndarray:
    t = _trimap(trimap)
    if t.shape != shape:
        raise ValueError(f"trimap has shape {t.shape}, the mattes {shape}")
    return t == UNKNOWN


def sad_error(pred, alpha, trimap) -> float:
    """Sum of absolute differences over the unknown region, / 1000."""
    p, a = _plane(pred, "pred"), _plane(alpha, "alpha")
    return float(np.abs(p - a)[_unknown(trimap, a.shape)].sum() / 1000)


def mse_error(pred, alpha, trimap) -> float:
    """Mean squared difference over the unknown region (0 when it is empty)."""
    p, a = _plane(pred, "pred"), _plane(alpha, "alpha")
    unknown = _unknown(trimap, a.shape)
    return float(((p - a) ** 2)[unknown].sum() / max(int(unknown.sum()), 1))


def _gradient_norm(sigma: float) -> tuple[int, float]:
    """DIM's kernel radius for ``sigma``, and the factor that scales scipy's separable Gaussian-derivative kernel
    (smoothing taps summing to 1, derivative taps ``−x/σ² · g``) to DIM's unit-L2-norm kernel."""
    radius = math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * 1e-2)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * x**2 / sigma**2)
    g /= g.sum()
    dg = -x / sigma**2 * g
    return radius, 1 / (np.linalg.norm(g) * np.linalg.norm(dg))


def _gradient_magnitude(a: np.ndarray, sigma: float) -> np.ndarray:
    radius, scale = _gradient_norm(sigma)
    gx = ndimage.gaussian_filter(a, sigma, order=(0, 1), mode="nearest", radius=radius)
    gy = ndimage.gaussian_filter(a, sigma, order=(1, 0), mode="nearest", radius=radius)
    return np.hypot(gx, gy) * scale


def gradient_error(pred, alpha, trimap, sigma: float = GRAD_SIGMA) -> float:
    """Σ (|∇pred| − |∇alpha|)² over the unknown region, / 1000 (Gaussian-derivative gradients of ``sigma``)."""
    p, a = _plane(pred, "pred"), _plane(alpha, "alpha")
    error = (_gradient_magnitude(p, sigma) - _gradient_magnitude(a, sigma)) ** 2
    return float(error[_unknown(trimap, a.shape)].sum() / 1000)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels = label(mask, connectivity=1)  # 4-connectivity, background 0
    if labels.max() == 0:
        return np.zeros_like(mask, dtype=bool)
    return labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1


def connectivity_error(pred, alpha, trimap, step: float = CONN_STEP, theta: float = CONN_THETA) -> float:
    """Σ |φ(pred) − φ(alpha)| over the unknown region, / 1000 (see the module docstring)."""
    p, a = _plane(pred, "pred"), _plane(alpha, "alpha")
    n = round(1 / step)
    thresholds = np.arange(n + 1) / n  # 0, 0.1, ..., 1 (exact tenths)
    level = np.full(a.shape, -1.0)
    for i in range(1, n + 1):
        omega = _largest_component((p >= thresholds[i]) & (a >= thresholds[i]))
        level[(level == -1) & ~omega] = thresholds[i - 1]
    level[level == -1] = 1
    dp, da = p - level, a - level
    phi_p, phi_a = 1 - dp * (dp >= theta), 1 - da * (da >= theta)
    return float(np.abs(phi_p - phi_a)[_unknown(trimap, a.shape)].sum() / 1000)


def matting_errors(pred, alpha, trimap) -> dict[str, float]:
    """``{"sad", "mse", "grad", "conn"}`` of one matte."""
    return {
        "sad": sad_error(pred, alpha, trimap),
        "mse": mse_error(pred, alpha, trimap),
        "grad": gradient_error(pred, alpha, trimap),
        "conn": connectivity_error(pred, alpha, trimap),
    }


class MattingMeter:
    """Accumulates SAD, MSE, Grad and Conn over images; ``compute()`` gives their means per image.

    ``update(pred, alpha, trimap)`` takes one matte ([H, W] or [1, H, W]) or a batch ([N, 1, H, W]); ``grad`` and
    ``conn`` (the slow two, ~1 ms per 100x100 image each) can be left out with ``full=False``."""

    KEYS = ("sad", "mse", "grad", "conn")

    def __init__(self, full: bool = True) -> None:
        self.full = full
        self.reset()

    def reset(self) -> None:
        self.sums = dict.fromkeys(self.KEYS if self.full else self.KEYS[:2], 0.0)
        self.count = 0

    def update(self, pred, alpha, trimap) -> None:
        if np.ndim(pred) == 4:
            for k in range(len(pred)):
                self.update(pred[k], alpha[k], trimap[k])
            return
        errors = (
            matting_errors(pred, alpha, trimap)
            if self.full
            else {"sad": sad_error(pred, alpha, trimap), "mse": mse_error(pred, alpha, trimap)}
        )
        for key, value in errors.items():
            self.sums[key] += value
        self.count += 1

    def compute(self) -> dict[str, float]:
        """Mean of each error per image, and ``images``: how many were seen."""
        means = {key: total / max(self.count, 1) for key, total in self.sums.items()}
        return {**means, "images": self.count}

    def summary(self) -> str:
        m = self.compute()
        parts = [f"SAD {m['sad']:.3f}", f"MSE {m['mse']:.4f}"]
        if self.full:
            parts += [f"Grad {m['grad']:.3f}", f"Conn {m['conn']:.3f}"]
        return f"{', '.join(parts)} over {self.count} images (SAD, Grad, Conn / 1000)"


# ---------------------------------------------------------------------------------------------------------------
# Baselines


def fill_known(pred, trimap) -> np.ndarray:
    """``pred`` ([H, W] or [1, H, W]) with the trimap's known regions set to 0 and 1: float64 [H, W]."""
    p, t = _plane(pred, "pred").copy(), _trimap(trimap)
    p[t == 0] = 0
    p[t == 255] = 1
    return p


def trimap_baseline(trimap) -> np.ndarray:
    """The trimap read as a matte: background 0, unknown 0.5, foreground 1; float64 [H, W]."""
    t = _trimap(trimap)
    return np.where(t == 255, 1.0, np.where(t == UNKNOWN, 0.5, 0.0))


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the (2r+1)² window clipped to the image (He et al.'s boxfilter divided by its pixel count)."""
    size = 2 * radius + 1
    total = ndimage.uniform_filter(x, size, mode="constant")
    count = ndimage.uniform_filter(np.ones_like(x), size, mode="constant")
    return total / count


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al. 2010's guided filter of ``src`` by a gray ``guide`` ([H, W] float arrays): the per-window linear
    model ``q = a·I + b`` with ``a = cov(I, p) / (var(I) + eps)``, its coefficients averaged over windows."""
    mean_i, mean_p = _box(guide, radius), _box(src, radius)
    var_i = _box(guide * guide, radius) - mean_i * mean_i
    cov_ip = _box(guide * src, radius) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return _box(a, radius) * guide + _box(b, radius)


def guided_filter_baseline(image, trimap, radius: int = 8, eps: float = 1e-3) -> np.ndarray:
    """The trimap baseline guided-filtered by the image's gray level (RGB uint8 [3, H, W] -> [0, 1]), clipped to
    [0, 1], with the trimap's known regions kept; float64 [H, W]."""
    im = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    im = im.astype(np.float64) / 255 if im.dtype == np.uint8 else im.astype(np.float64)
    gray = np.tensordot(_LUMA, im, axes=1) if im.ndim == 3 and im.shape[0] == 3 else im.reshape(im.shape[-2:])
    base = trimap_baseline(trimap)
    out = np.clip(guided_filter(gray, base, radius, eps), 0, 1)
    known = base != 0.5
    out[known] = base[known]
    return out
