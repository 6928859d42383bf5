"""Image-generation metrics: FID and KID on features of a pluggable network, Inception Score, PSNR and SSIM.

FID, KID and IS take images as the generate task holds them: float tensors in [-1, 1], NCHW. PSNR and SSIM take
images in [0, 1] with a data range of 1, as skimage and torchmetrics do (SSIM is not shift-invariant: on [-1, 1]
with a range of 2 it comes out lower), through a ``Fidelity`` convention whose name goes into every reported key.

- FID (Heusel et al. 2017): the Fréchet distance between Gaussians fitted to two feature sets (float64, covariance
  with N-1), computed as pytorch-fid / torchmetrics do, by the trace of the matrix square root of
  ``sigma1 @ sigma2`` (here through the symmetric form ``sqrt(s1) s2 sqrt(s1)``, which has the same eigenvalues).
- KID (Bińkowski et al. 2018): the unbiased MMD² with the polynomial kernel ``(x·y / d + 1)^3``, averaged over
  random subsets, as torchmetrics' ``KernelInceptionDistance`` (mean and population std over subsets).
- IS (Salimans et al. 2016): ``exp(E_x KL(p(y|x) || p(y)))`` over ``splits`` chunks, mean and std.
- PSNR / SSIM per image; SSIM with an 11-tap Gaussian window (σ 1.5), K1 0.01, K2 0.03 and population covariances
  (Wang et al. 2004), which is skimage's ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False)`` and torchmetrics' default window. ``Fidelity(y_channel=True, crop_border=s)`` is
  the super-resolution papers' convention: the BT.601 luma (MATLAB's ``rgb2ycbcr``) with ``s`` pixels cut from each
  side.

The feature network is any ``FeatureExtractor``: by default a classifier mmkit trained on the dataset
(``classifier_features``), or torchvision's Inception-v3 with its ImageNet weights when the file is present offline
(``inception_features``). Its ``name`` belongs in every reported result: FIDs from different networks do not compare.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmkit.errors import MMKitError

log = logging.getLogger(__name__)

_LUMINANCE = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


# ---------------------------------------------------------------------------------------------------------------
# Fréchet distance and KID


def feature_stats(feats: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (N-1 normalisation) of features [N, D], in float64."""
    x = _as_float64(feats)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"features must be [N, D] with N >= 2, got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((sigma + sigma.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``|mu1 - mu2|² + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^½)`` in float64.

    ``tr (s1 s2)^½`` is the sum of the square roots of the eigenvalues of ``s1 s2``, which equal those of the
    symmetric positive semi-definite ``s1^½ s2 s1^½``: eigvalsh of that is stable for singular covariances (fewer
    samples than dimensions), where pytorch-fid needs its eps-offset fallback for ``scipy.linalg.sqrtm``.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shapes do not match: mu {mu1.shape} {mu2.shape}, sigma {s1.shape} {s2.shape}")
    root1 = _psd_sqrt(s1)
    middle = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def fid_from_features(real_feats: Tensor | np.ndarray, fake_feats: Tensor | np.ndarray) -> float:
    """FID between two feature sets [N, D] and [M, D]."""
    return frechet_distance(*feature_stats(real_feats), *feature_stats(fake_feats))


def _poly_kernel(x: Tensor, y: Tensor, degree: int, gamma: float, coef0: float) -> Tensor:
    return (x @ y.T * gamma + coef0) ** degree


def _mmd2_unbiased(k_xx: Tensor, k_xy: Tensor, k_yy: Tensor) -> Tensor:
    m = k_xx.shape[0]
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return within - 2 * k_xy.sum() / (m * m)


def kid(
    feats_real: Tensor | np.ndarray,
    feats_fake: Tensor | np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance: (mean, std) of the unbiased polynomial-kernel MMD² over random subsets.

    Each subset draws ``subset_size`` real and fake features without replacement (``subset_size`` is lowered to
    the smaller set's size when needed, with a log line); ``gamma`` defaults to 1 / D. The std is the population
    std over subsets, as torchmetrics reports it.
    """
    real, fake = torch.from_numpy(_as_float64(feats_real)), torch.from_numpy(_as_float64(feats_fake))
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"features must be [N, D] and [M, D], got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    size = min(subset_size, real.shape[0], fake.shape[0])
    if size < 2:
        raise ValueError("KID needs at least 2 real and 2 fake features")
    if size < subset_size:
        log.info("KID: subset size lowered from %d to %d (the smaller feature set)", subset_size, size)
    gamma = 1.0 / real.shape[1] if gamma is None else gamma
    gen = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(subsets):
        x = real[torch.randperm(real.shape[0], generator=gen)[:size]]
        y = fake[torch.randperm(fake.shape[0], generator=gen)[:size]]
        k_xx = _poly_kernel(x, x, degree, gamma, coef0)
        k_yy = _poly_kernel(y, y, degree, gamma, coef0)
        k_xy = _poly_kernel(x, y, degree, gamma, coef0)
        scores.append(_mmd2_unbiased(k_xx, k_xy, k_yy))
    values = torch.stack(scores)
    return float(values.mean()), float(values.std(correction=0))


def inception_score(probs: Tensor | np.ndarray, splits: int = 10) -> tuple[float, float]:
    """Inception Score of class probabilities [N, C]: mean and std of ``exp(mean KL(p(y|x) || p(y)))`` over
    ``splits`` consecutive chunks (as Salimans et al.'s code; shuffle beforehand if the order is not random)."""
    p = _as_float64(probs)
    if p.ndim != 2 or p.shape[0] < splits:
        raise ValueError(f"probs must be [N, C] with N >= splits ({splits}), got shape {p.shape}")
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0)
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


# ---------------------------------------------------------------------------------------------------------------
# PSNR and SSIM


def _check_pair(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(
            f"pred and target must be [N, C, H, W] of one shape, got {pred.shape} and {target.shape}"
        )
    return pred.detach().double(), target.detach().double()


def psnr(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """Per-image PSNR in dB [N] (float64) of batches [N, C, H, W] in [0, 1] (``data_range`` 1)."""
    p, t = _check_pair(pred, target)
    mse = (p - t).pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(data_range**2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """Per-image SSIM [N] (float64) of batches [N, C, H, W] in [0, 1], averaged over channels and valid window
    positions.

    Equals skimage's ``structural_similarity(pred, target, data_range=1, channel_axis=..., gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False)`` (the Wang et al. window; skimage's default, a 7×7 uniform window with
    sample covariances, gives other values): skimage filters the whole image and then drops a 5-pixel border, which
    leaves exactly the positions where the 11×11 window fits, as this 'valid' convolution does. Images need sides
    >= 11. The constants scale with ``data_range``, so [0, 255] images with ``data_range=255`` score the same.
    """
    p, t = _check_pair(pred, target)
    n, c, h, w = p.shape
    if min(h, w) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11, got {h}x{w}")
    g = _gaussian_window().to(p.device)
    kernel_h, kernel_w = g.view(1, 1, 11, 1).repeat(c, 1, 1, 1), g.view(1, 1, 1, 11).repeat(c, 1, 1, 1)

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(F.conv2d(x, kernel_h, groups=c), kernel_w, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_p, mu_t = blur(p), blur(t)
    var_p = blur(p * p) - mu_p**2
    var_t = blur(t * t) - mu_t**2
    cov = blur(p * t) - mu_p * mu_t
    num = (2 * mu_p * mu_t + c1) * (2 * cov + c2)
    den = (mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2)
    return (num / den).flatten(1).mean(dim=1)


# ITU-R BT.601 luma as MATLAB's rgb2ycbcr computes it: Y = 16 + 65.481 R + 128.553 G + 24.966 B, R, G, B in [0, 1]
_BT601_Y = (65.481, 128.553, 24.966)


def rgb_to_y(images: Tensor) -> Tensor:
    """The luma Y [N, 1, H, W] of RGB images [N, 3, H, W] in [0, 1], as super-resolution papers compute it (BT.601,
    MATLAB's ``rgb2ycbcr``), divided by 255: values in [16/255, 235/255], scored with a data range of 1 (the papers'
    range of 255 on the 0..255 scale). One-channel images are their own luma and come back unchanged."""
    if images.shape[1] == 1:
        return images
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [N, 3, H, W] RGB or [N, 1, H, W], got {tuple(images.shape)}")
    w = torch.tensor(_BT601_Y, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (16 + (images * w).sum(dim=1, keepdim=True)) / 255


@dataclass(frozen=True)
class Fidelity:
    """How PSNR and SSIM are taken: on every channel in [0, 1] (``rgb``, as skimage and torchmetrics) or on the
    luma (``y``, ``rgb_to_y``, as super-resolution papers), with ``crop_border`` pixels cut from each side first
    (the papers cut the scale factor). The conventions give different numbers, so ``name`` (``rgb``, ``y_crop4``,
    ...) is part of every key reported: ``psnr_rgb``, ``ssim_y_crop4``."""

    y_channel: bool = False
    crop_border: int = 0

    def __post_init__(self) -> None:
        if self.crop_border < 0:
            raise MMKitError(f"--crop-border {self.crop_border}: must be 0 or more")

    @property
    def name(self) -> str:
        return ("y" if self.y_channel else "rgb") + (f"_crop{self.crop_border}" if self.crop_border else "")

    def prepare(self, images: Tensor) -> Tensor:
        """uint8 images (0..255) or float images in [0, 1], [N, C, H, W]: float64 in [0, 1], as they are scored."""
        x = images.detach().double() / 255 if images.dtype == torch.uint8 else images.detach().double()
        if self.y_channel:
            x = rgb_to_y(x)
        b = self.crop_border
        if b:
            h, w = x.shape[-2:]
            if min(h, w) <= 2 * b:
                raise MMKitError(f"--crop-border {b}: leaves nothing of a {w}x{h} image")
            x = x[..., b : h - b, b : w - b]
        return x

    def __call__(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Per-image PSNR and SSIM [N] under this convention, keyed ``psnr_<name>``, ``ssim_<name>``. SSIM is NaN
        for images under 11×11 (after cropping), where its window does not fit."""
        p, t = self.prepare(pred), self.prepare(target)
        fits = min(p.shape[-2:]) >= 11
        return {
            f"psnr_{self.name}": psnr(p, t),
            f"ssim_{self.name}": ssim(p, t) if fits else torch.full((len(p),), float("nan"), dtype=p.dtype),
        }


def bicubic_upscale(images: Tensor, size: tuple[int, int] | int) -> Tensor:
    """Bicubic upsampling of [-1, 1] images to ``size``, clamped to [-1, 1]: the baseline an SR model must beat."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    return F.interpolate(images.float(), size=size, mode="bicubic", align_corners=False).clamp(-1, 1)


# ---------------------------------------------------------------------------------------------------------------
# Feature networks


class FeatureExtractor(Protocol):
    """Maps images [N, C, H, W] in [-1, 1] to (features [N, D], class probabilities [N, K] or None), on the CPU."""

    name: str

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor | None]: ...


class ClassifierInput(Protocol):
    """What a classifier was fed (mmkit's ``ClassifierMeta`` has these fields)."""

    mean: Sequence[float]
    std: Sequence[float]
    img_size: int
    in_chans: int


class NetworkFeatures:
    """A ``FeatureExtractor`` from a classifier: features are the input of its final linear layer (the pre-logits,
    captured by a forward hook), probabilities the softmax of its output. ``preprocess`` maps [-1, 1] images to
    what the network takes."""

    def __init__(
        self,
        model: nn.Module,
        preprocess: Callable[[Tensor], Tensor],
        name: str,
        batch_size: int = 256,
    ) -> None:
        from mmkit.models import classifier_head

        self.model, self.preprocess, self.name, self.batch_size = model.eval(), preprocess, name, batch_size
        self._head = classifier_head(model)

    @torch.inference_mode()
    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        if images.ndim != 4:
            raise ValueError(f"images must be [N, C, H, W], got {tuple(images.shape)}")
        device = next(self.model.parameters()).device
        captured: list[Tensor] = []
        hook = self._head.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0]))
        feats, probs = [], []
        try:
            for part in images.split(self.batch_size):
                captured.clear()
                logits = self.model(self.preprocess(part.to(device).float()))
                feats.append(captured[-1].flatten(1).float().cpu())
                probs.append(logits.float().softmax(dim=1).cpu())
        finally:
            hook.remove()
        return torch.cat(feats), torch.cat(probs)


def _stats(values: Sequence[float], channels: int) -> Tensor:
    v = [float(x) for x in values]
    if len(v) == 1:
        v = v * channels
    elif len(v) == 3 and channels == 1:
        v = [sum(w * x for w, x in zip(_LUMINANCE, v, strict=True))]
    if len(v) != channels:
        raise ValueError(f"{len(values)} normalisation values for {channels} channels")
    return torch.tensor(v).view(1, channels, 1, 1)


def _match_channels(x: Tensor, channels: int) -> Tensor:
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1)
    if x.shape[1] == 3 and channels == 1:
        w = torch.tensor(_LUMINANCE, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x * w).sum(dim=1, keepdim=True)
    raise ValueError(f"cannot feed {x.shape[1]}-channel images to a {channels}-channel network")


def classifier_features(
    model: nn.Module, meta: ClassifierInput, name: str | None = None, batch_size: int = 256
) -> NetworkFeatures:
    """Features of a trained mmkit classifier (e.g. ``load_classifier``'s model and meta) for FID/KID/IS.

    Images in [-1, 1] are quantised to 8 bits (as saved images would be, so real and generated images are treated
    alike), resized to ``meta.img_size`` (bilinear, antialiased) when they differ, converted to the network's
    channels (1→3 by repeating, 3→1 by luminance) and normalised with ``meta.mean``/``meta.std``.
    """
    size, chans = int(meta.img_size), int(meta.in_chans)
    mean, std = _stats(meta.mean, chans), _stats(meta.std, chans)

    def preprocess(x: Tensor) -> Tensor:
        x = ((x.clamp(-1, 1) + 1) * 127.5).round() / 255
        if tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            x = (x * 255).round().clamp(0, 255) / 255  # the classifier saw resized uint8 images
        x = _match_channels(x, chans)
        return (x - mean.to(x.device)) / std.to(x.device)

    model_name = getattr(meta, "model", type(model).__name__)
    data = getattr(meta, "data", None)
    default = f"{model_name} classifier" + (f" trained on {data}" if data else "")
    return NetworkFeatures(model, preprocess, name or default, batch_size)


INCEPTION_NAME = "inception_v3 (torchvision ImageNet weights, 2048-d pool features; not the TF FID Inception)"


def inception_features(device: torch.device | str = "cpu", batch_size: int = 64) -> NetworkFeatures:
    """torchvision's Inception-v3 with its ImageNet weights, when the file is present offline (``$MMKIT_WEIGHTS`` or
    the torch hub cache); ``MMKitError`` saying so otherwise. Nothing is downloaded.

    Images are resized to 299×299 (bilinear, as pytorch-fid) and fed in [-1, 1], which is what torchvision's
    ``transform_input`` turns ImageNet-normalised input into. These are not the TensorFlow FID weights that
    published FIDs use, so scores compare only with other scores from this network (see ``INCEPTION_NAME``).
    """
    from torchvision import models as tvm

    from mmkit.models import get_weights, load_state_dict_file

    locate = get_weights("inception_v3", "imagenet").locate
    try:
        path = locate()
    except MMKitError as e:
        raise MMKitError(f"Inception-v3 weights are not available offline: {e}") from e
    state = {k: v for k, v in load_state_dict_file(path).items() if not k.startswith("AuxLogits.")}
    net = tvm.inception_v3(weights=None, aux_logits=False, init_weights=False, transform_input=False)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise MMKitError(f"{path}: does not fit torchvision's inception_v3 ({first})") from e

    def preprocess(x: Tensor) -> Tensor:
        x = F.interpolate(x.clamp(-1, 1), size=(299, 299), mode="bilinear", align_corners=False)
        return _match_channels(x, 3)

    return NetworkFeatures(net.to(device), preprocess, INCEPTION_NAME, batch_size)


# ---------------------------------------------------------------------------------------------------------------
# Baselines


def naive_gaussian_samples(images: Tensor, n: int, seed: int = 0) -> Tensor:
    """``n`` samples of a Gaussian with the per-pixel mean and full covariance of ``images`` [N, C, H, W] in
    [-1, 1], clipped to [-1, 1]: the naive generator a GAN has to beat.

    The covariance (float64) is factored once by ``eigh`` (negative round-off eigenvalues set to 0), so 784-d or
    3072-d images sample quickly; samples are ``mean + z @ (V sqrt(λ))ᵀ``. With no more images than pixels (64x64 RGB
    faces: 12,288-d, a covariance eigh cannot afford) the same Gaussian is drawn from the images themselves:
    ``mean + g @ centred / sqrt(N - 1)``, g ~ N(0, I_N), whose covariance is that of the images.
    """
    if images.ndim != 4 or images.shape[0] < 2:
        raise ValueError(f"images must be [N, C, H, W] with N >= 2, got {tuple(images.shape)}")
    x = images.detach().flatten(1).double().cpu()
    mean = x.mean(dim=0)
    centred = x - mean
    gen = torch.Generator().manual_seed(seed)
    if x.shape[0] <= x.shape[1]:
        g = torch.randn(n, x.shape[0], generator=gen, dtype=torch.float64)
        samples = mean + g @ centred / (x.shape[0] - 1) ** 0.5
        return samples.clamp(-1, 1).float().view(n, *images.shape[1:])
    cov = centred.T @ centred / (x.shape[0] - 1)
    vals, vecs = torch.linalg.eigh(cov)
    factor = vecs * vals.clamp_min(0).sqrt()
    z = torch.randn(n, x.shape[1], generator=gen, dtype=torch.float64)
    samples = mean + z @ factor.T
    return samples.clamp(-1, 1).float().view(n, *images.shape[1:])


def _as_float64(x: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)
