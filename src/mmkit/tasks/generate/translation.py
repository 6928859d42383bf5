"""Image-to-image translation: `TranslationTask` trains pix2pix (paired A -> B: a U-Net generator, a PatchGAN
discriminator on the pair, + L1) and CycleGAN (unpaired A <-> B: two generators, two discriminators, cycle and
identity losses, image pools), adversarially on the engine's manual-optimization path.

    task = TranslationTask(data="photo-edges", model="pix2pix")
"""

from __future__ import annotations

import torch
from torch import nn

from mmkit.data.generation import to_signed
from mmkit.models import get_model
from mmkit.tasks.generate.common import GenerateMeta, ImageToImage, ModelSpec, pixel_fid, to_unit

# paired: pix2pix's conditional GAN + L1; unpaired: CycleGAN's cycle consistency
MODELS: dict[str, ModelSpec] = {
    "pix2pix": ModelSpec(kind="paired", verb="translate"),
    "cyclegan": ModelSpec(kind="unpaired", verb="translate"),
}


class TranslationTask(ImageToImage):
    """pix2pix and CycleGAN. Validation: PSNR against the true translations (where the test set has them) and, for
    unpaired data, a pixel FID against the real B images."""

    family = "translation models"
    MODELS = MODELS
    manual_optimization = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.paired = self.spec.kind == "paired"
        # paired data has true translations to score against; unpaired data is judged by the distribution
        self.monitor = ("val/psnr", "max") if self.paired else ("val/fid_pix", "min")

    @classmethod
    def build(cls, meta: GenerateMeta) -> nn.Module:
        return get_model(
            meta.model, in_chans=meta.channels_a, out_chans=meta.channels, img_size=meta.img_size,
            **meta.model_kwargs,
        )  # fmt: skip

    @classmethod
    def input_size(cls, meta: GenerateMeta) -> int | None:
        return meta.size_a  # the generators work at their training size

    def setup(self, cfg, rt) -> None:
        super().setup(cfg, rt)
        self.pools = None
        if not self.paired:
            from mmkit.models.translation import ImagePool

            self.pools = (ImagePool(50), ImagePool(50))

    def optimizers(self, cfg) -> dict[str, torch.optim.Optimizer]:
        return self.adversarial_optimizers(cfg, (0.5, 0.999))  # beta1 0.5: pix2pix, CycleGAN

    # --- training ---------------------------------------------------------------------------------------------------
    def training_step(self, ctx, batch) -> dict[str, torch.Tensor]:
        m = ctx.models["model"]
        a, b = (to_signed(t) for t in batch)
        return self._paired_step(ctx, m, a, b) if self.paired else self._unpaired_step(ctx, m, a, b)

    def _paired_step(self, ctx, m, a, b) -> dict[str, torch.Tensor]:
        from mmkit.models.gans import frozen
        from mmkit.models.translation import pix2pix_d_loss, pix2pix_g_loss

        with ctx.autocast():
            fake = m(a)
            d_loss, d_parts = pix2pix_d_loss(m, a, b, fake)
        ctx.backward(d_loss, "disc")
        ctx.step("disc")
        with frozen(m.discriminator), ctx.autocast():
            g_loss, g_parts = pix2pix_g_loss(m, a, b, fake, self.lambda_l1)
        ctx.backward(g_loss, "model")
        ctx.step("model")
        return {"loss": g_loss.detach(), "d_loss": d_loss.detach(), **g_parts}

    def _unpaired_step(self, ctx, m, a, b) -> dict[str, torch.Tensor]:
        from mmkit.models.gans import frozen
        from mmkit.models.translation import cyclegan_d_loss, cyclegan_g_loss

        with frozen(m.d_a, m.d_b), ctx.autocast():
            g_loss, parts, fake_a, fake_b = cyclegan_g_loss(m, a, b, self.lambda_cycle, self.lambda_identity)
        ctx.backward(g_loss, "model")
        ctx.step("model")
        pool_a, pool_b = self.pools
        with ctx.autocast():
            d_loss, _ = cyclegan_d_loss(m, a, b, pool_a.query(fake_a.detach()), pool_b.query(fake_b.detach()))
        ctx.backward(d_loss, "disc")
        ctx.step("disc")
        return {"loss": g_loss.detach(), "d_loss": d_loss.detach(), **parts}

    # --- evaluation -------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, model, loader, rt):
        from mmkit.metrics.generation import psnr

        model.eval()
        scores, real_b, fakes = [], [], []
        for _, b, fake in self.outputs(model, loader, rt.device):
            scores.append(psnr(to_unit(fake), to_unit(b)))
            real_b.append(b)
            fakes.append(fake)
        out = {}
        if self.paired or self.dataset.aligned_test:
            out["val/psnr"] = float(torch.cat(scores).mean())
        if not self.paired:
            out["val/fid_pix"] = pixel_fid(torch.cat(real_b), torch.cat(fakes))
        self.last_eval = out
        return out
