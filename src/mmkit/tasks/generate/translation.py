"""Image-to-image translation: `TranslationTask` trains pix2pix (paired A -> B: a U-Net generator, a PatchGAN
discriminator on the pair, + L1) and the unpaired models (A <-> B: two generators, two discriminators, a cycle
reconstruction loss): CycleGAN, DiscoGAN and DualGAN, adversarially on the engine's manual-optimization path.

    task = TranslationTask(data="photo-edges", model="pix2pix")
    task = TranslationTask(data="day-tinted", model="dualgan")
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mmkit.data.generation import to_signed
from mmkit.models import get_model
from mmkit.tasks.generate.common import (
    AdversarialFamily,
    AdversarialSpec,
    GenerateMeta,
    ImageToImage,
    gather,
    pixel_fid,
    to_unit,
)


@dataclass(frozen=True)
class UnpairedSpec(AdversarialSpec):
    """An unpaired model's losses (`mmkit.models.translation`: `ADVERSARIAL`, `RECONSTRUCTION`) and training."""

    kind: str = "unpaired"
    verb: str = "translate"
    adversarial: str = "lsgan"  # lsgan | bce | wgan
    reconstruction: str = "l1"  # the cycle term's distance: l1 | l2
    lambda_cycle: float = 10.0  # its weight unless --lambda-cycle is given
    identity: bool = False  # CycleGAN's identity term (--lambda-identity)
    pool: int = 0  # the history of fakes the discriminators see (ImagePool)


MODELS: dict[str, AdversarialSpec] = {
    "pix2pix": AdversarialSpec(kind="paired", verb="translate"),
    "cyclegan": UnpairedSpec(identity=True, pool=50),
    # Kim et al.: BCE GAN + the code's MSE reconstruction, the four terms summed (lambda 1), Adam (0.5, 0.999)
    "discogan": UnpairedSpec(adversarial="bce", reconstruction="l2", lambda_cycle=1.0),
    # Yi et al.: WGAN critics clipped to [-c, c], RMSprop (5e-5, the recipe), lambda_U = lambda_V in [100, 1000]
    "dualgan": UnpairedSpec(adversarial="wgan", lambda_cycle=100.0, optimizer="rmsprop", critic="clip"),
}


class TranslationTask(AdversarialFamily, ImageToImage):
    """pix2pix, CycleGAN, DiscoGAN and DualGAN. Validation: PSNR against the true translations (where the test set
    has them) and, for unpaired data, a pixel FID against the real B images."""

    family = "translation models"
    MODELS = MODELS

    def __post_init__(self) -> None:
        super().__post_init__()
        self.paired = self.spec.kind == "paired"
        if not self.paired and self.lambda_cycle is None:
            self.lambda_cycle = self.spec.lambda_cycle
        # paired data has true translations to score against; unpaired data is judged by the distribution
        self.monitor = ("val/psnr", "max") if self.paired else ("val/fid_pix", "min")

    @classmethod
    def build(cls, meta: GenerateMeta) -> nn.Module:
        return get_model(
            meta.model, in_chans=meta.channels_a, out_chans=meta.channels, img_size=meta.img_size,
            **meta.model_kwargs,
        )  # fmt: skip

    def setup(self, cfg, rt) -> None:
        super().setup(cfg, rt)
        if not self.paired:
            from mmkit.models.translation import ImagePool

            self.state.pools = [ImagePool(self.spec.pool), ImagePool(self.spec.pool)]  # fakes A, fakes B

    @property
    def pools(self) -> list:
        """The image pools of the unpaired models (in the checkpointed `TrainingState`); none for pix2pix."""
        return self.state.pools

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
        """The generators' step (every step, or every n_critic-th beside Wasserstein critics), then the
        discriminators' on the fakes (through the image pools)."""
        from mmkit.models.gans import frozen
        from mmkit.models.translation import cyclegan_d_loss, cyclegan_g_loss

        spec, logs = self.spec, {}
        if self.generator_turn():
            identity = self.lambda_identity if spec.identity else 0.0
            with frozen(m.d_a, m.d_b), ctx.autocast():
                g_loss, parts, fake_a, fake_b = cyclegan_g_loss(
                    m, a, b, self.lambda_cycle, identity, spec.adversarial, spec.reconstruction
                )
            ctx.backward(g_loss, "model")
            ctx.step("model")
            logs = {"g_loss": g_loss.detach(), **parts}
        else:
            with torch.no_grad(), ctx.autocast():
                fake_a, fake_b = m.g_ba(b), m.g_ab(a)
        pool_a, pool_b = self.pools
        with ctx.autocast():
            d_loss, _ = cyclegan_d_loss(
                m, a, b, pool_a.query(fake_a.detach()), pool_b.query(fake_b.detach()), spec.adversarial
            )
        ctx.backward(d_loss, "disc")
        ctx.step("disc")
        self.critic_stepped(m.d_a, m.d_b)
        return {"loss": logs.get("g_loss", d_loss.detach()), "d_loss": d_loss.detach(), **logs}

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
            out["val/psnr"] = float(gather(rt, torch.cat(scores))[0].mean())
        if not self.paired:
            out["val/fid_pix"] = pixel_fid(torch.cat(real_b), torch.cat(fakes), rt)
        self.last_eval = out
        return out
