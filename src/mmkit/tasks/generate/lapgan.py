"""LAPGAN and CC-LAPGAN (mmkit.models.lapgan) trained as Denton et al. train them: every level of the pyramid is its
own conditional GAN, fed by the real images' Gaussian pyramid, with one optimizer over all the generators ("model")
and one over all the discriminators ("disc"). Sampling, validation and the grids are the GANs' (`GANTask`).

    task = LAPGANTask(data="mnist5k", model="lapgan")      # then Trainer(task, cfg).fit()
"""

from __future__ import annotations

import torch

from mmkit.data.generation import to_signed
from mmkit.tasks.generate.gan import GANSpec, GANTask

MODELS: dict[str, GANSpec] = {
    "lapgan": GANSpec(),
    "cc-lapgan": GANSpec(conditional=True),  # the class at every level (Denton's class-conditional model)
}


class LAPGANTask(GANTask):
    """One training step updates every level: the coarsest GAN on the coarsest real images, each finer level's
    generator on the real upsampled coarser image, each discriminator on that level's real images against its
    generator's (non-saturating BCE, as DCGAN)."""

    family = "LAPGANs"
    MODELS = MODELS

    def training_step(self, ctx, batch) -> dict[str, torch.Tensor]:
        from mmkit.models import gans
        from mmkit.models.lapgan import gaussian_pyramid

        m = ctx.models["model"]
        x, y = batch
        labels = y.long() if self.spec.conditional else None
        reals = gaussian_pyramid(to_signed(x), len(m.sizes))[::-1]  # coarse first, as m.sizes
        judges = m.discriminator
        with ctx.autocast():
            z = torch.randn(len(x), m.latent_dim, device=x.device)
            fakes = m.generator.training_fakes(reals, z, labels)
            per_level = [
                gans.d_loss(d(real, labels), d(fake.detach(), labels))
                for d, real, fake in zip(judges, reals, fakes, strict=True)
            ]
            d_loss = torch.stack(per_level).sum()
        ctx.backward(d_loss, "disc")
        ctx.step("disc")
        with gans.frozen(judges), ctx.autocast():
            g_loss = torch.stack(
                [gans.g_loss(d(f, labels)) for d, f in zip(judges, fakes, strict=True)]
            ).sum()
        ctx.backward(g_loss, "model")
        ctx.step("model")
        levels = {f"d_{s}px_loss": v.detach() for s, v in zip(m.sizes, per_level, strict=True)}
        return {"loss": g_loss.detach(), "g_loss": g_loss.detach(), "d_loss": d_loss.detach(), **levels}
