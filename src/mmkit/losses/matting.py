"""Deep Image Matting's losses (Xu et al. 2017), over the unknown region of the trimap.

    unknown = trimap == 128                                    # [N, 1, H, W] bool
    loss = dim_loss(pred, alpha, fg, bg, image, unknown)       # 0.5 alpha-prediction + 0.5 compositional

- alpha prediction: the mean over unknown pixels of ``sqrt((α_p − α_g)² + ε²)``, ε = 1e-6 (a differentiable L1).
- compositional: the same penalty between the image and the composite the predicted alpha makes of the true
  foreground and background, ``α_p F + (1 − α_p) B``, averaged over the unknown pixels and the 3 channels.

Images (image, fg, bg) may be uint8 (divided by 255) or float in [0, 1]. An empty unknown region gives a zero loss.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["EPS", "alpha_prediction_loss", "compositional_loss", "dim_loss"]

EPS = 1e-6


def _unit(x: Tensor) -> Tensor:
    return x.float() / 255 if x.dtype == torch.uint8 else x.float()


def _masked_mean(error: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``error`` [N, C, H, W] over the pixels where ``mask`` [N, 1, H, W] is set, and over channels."""
    w = mask.to(error.dtype).expand_as(error)
    return (error * w).sum() / w.sum().clamp_min(1)


def alpha_prediction_loss(pred: Tensor, alpha: Tensor, unknown_mask: Tensor, eps: float = EPS) -> Tensor:
    """Mean of ``sqrt((pred − alpha)² + eps²)`` over the unknown pixels; pred and alpha [N, 1, H, W] in [0, 1]."""
    return _masked_mean(torch.sqrt((pred - alpha.to(pred.dtype)) ** 2 + eps * eps), unknown_mask)


def compositional_loss(
    pred: Tensor, fg: Tensor, bg: Tensor, image: Tensor, unknown_mask: Tensor, eps: float = EPS
) -> Tensor:
    """Mean of ``sqrt((pred·F + (1 − pred)·B − I)² + eps²)`` over the unknown pixels and the RGB channels."""
    fg, bg, image = _unit(fg), _unit(bg), _unit(image)
    comp = pred * fg + (1 - pred) * bg
    return _masked_mean(torch.sqrt((comp - image) ** 2 + eps * eps), unknown_mask)


def dim_loss(
    pred: Tensor,
    alpha: Tensor,
    fg: Tensor,
    bg: Tensor,
    image: Tensor,
    unknown_mask: Tensor,
    alpha_weight: float = 0.5,
) -> Tensor:
    """DIM's overall loss: ``alpha_weight`` x alpha prediction + (1 − alpha_weight) x compositional."""
    a = alpha_prediction_loss(pred, alpha, unknown_mask)
    c = compositional_loss(pred, fg, bg, image, unknown_mask)
    return alpha_weight * a + (1 - alpha_weight) * c
