"""Restoration and super-resolution: `RestorationTask` trains LapSRN (x2/x4/x8 super-resolution, a Charbonnier loss
on every pyramid level) and RED-Net (denoising, deblurring: input and output of one size, MSE), each with one
loss and one optimizer, like any other model on the engine.

    task = RestorationTask(data="photo-sr", model="lapsrn")       # paired low-res -> high-res crops of real photos
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mmkit.data.generation import GenerationData, to_signed
from mmkit.errors import MMKitError
from mmkit.models import get_model
from mmkit.tasks.generate.common import GenerateMeta, ImageToImage, ModelSpec, baseline, gather, to_unit


@dataclass(frozen=True)
class RestorationSpec(ModelSpec):
    kind: str = "paired"
    verb: str = "restore"

    @property
    def super_resolution(self) -> bool:
        """Low-res inputs at 1/scale of the targets; the network returns its pyramid, finest level last."""
        return self.verb == "upscale"


MODELS: dict[str, RestorationSpec] = {
    "lapsrn": RestorationSpec(verb="upscale"),
    "rednet": RestorationSpec(verb="restore"),
}


class RestorationTask(ImageToImage):
    """LapSRN and RED-Net. Validation: PSNR (RGB, [0, 1]), beside the baseline to beat (bicubic upscaling, the
    degraded input)."""

    family = "restoration models"
    MODELS = MODELS
    monitor = ("val/psnr", "max")

    @classmethod
    def build(cls, meta: GenerateMeta) -> nn.Module:
        return get_model(meta.model, in_chans=meta.channels, **meta.model_kwargs)

    @classmethod
    def translate(cls, net: nn.Module, meta: GenerateMeta, a: torch.Tensor) -> torch.Tensor:
        out = net(a)
        return (out[-1] if cls.MODELS[meta.model].super_resolution else out).clamp(-1, 1)

    def builder_kwargs(self, d: GenerationData) -> dict:
        kwargs = dict(self.model_kwargs)
        if not self.spec.super_resolution:
            if (d.channels_a, d.size_a) != (d.channels, d.img_size):
                raise MMKitError(
                    f"{self.data}: inputs and targets differ in size or channels; {self.model} needs equal"
                )
            return kwargs
        scale = d.img_size // (d.size_a or d.img_size)
        if d.channels_a != d.channels or scale not in (2, 4, 8) or scale * d.size_a != d.img_size:
            raise MMKitError(f"{self.data}: not super-resolution pairs (low-res inputs at 1/2, 1/4 or 1/8)")
        kwargs.setdefault("scale", scale)
        return kwargs

    def loss(self, model, batch):
        a, b = (to_signed(t) for t in batch)
        if self.spec.super_resolution:
            from mmkit.models.restoration import lapsrn_loss

            return lapsrn_loss(model(a), b), {}
        return F.mse_loss(model(a), b), {}

    @torch.no_grad()
    def evaluate(self, model, loader, rt):
        from mmkit.metrics.generation import psnr

        model.eval()
        scores, base = [], []
        for a, b, fake in self.outputs(model, loader, rt.device):
            scores.append(psnr(to_unit(fake), to_unit(b)))
            ref = baseline(a, b)
            if ref is not None:
                base.append(psnr(to_unit(ref[1]), to_unit(b)))
        out = {"val/psnr": float(gather(rt, torch.cat(scores))[0].mean())}
        if base:
            out["val/psnr_baseline"] = float(gather(rt, torch.cat(base))[0].mean())
        self.last_eval = out
        return out
