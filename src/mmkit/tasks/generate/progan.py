"""Progressive GAN (mmkit.models.progan) trained as Karras et al. train it: the networks grow on a schedule of
training images (`--phase-images` per phase: level 0, then each next level's fade-in and its training at full
weight), with WGAN-GP's loss plus the drift term, one critic step per generator step, and Adam (lr 1e-3, betas
(0, 0.99)). Sampling, validation and the grids are the GANs' (`GANTask`).

    task = ProGANTask(data="synthetic-faces", model="progan", phase_images=20000)

The stage lives in the model (buffers `images_seen`, `level`, `alpha`), so a checkpoint holds it and `--resume`
continues the schedule where it stopped. Each step first sets the stage of `images_seen` (`stage_at`), trains at it,
then counts its images. The validation FID (`val/fid_pix`, which picks best.pt) counts only once the model is grown
(top level, alpha 1; inf before), since samples of a smaller stage are upsampled and the pooled FID cannot see it;
`val/fid_pix_stage` is the FID at any stage, `val/side` and `val/alpha` the stage.
"""

from __future__ import annotations

import math

import torch

from mmkit.data.generation import to_signed
from mmkit.tasks.generate.gan import GANSpec, GANTask

MODELS: dict[str, GANSpec] = {
    # one critic step per generator step (the paper's), so no `critic` kind: the gradient penalty is in the step
    "progan": GANSpec(betas=(0.0, 0.99)),
}


class ProGANTask(GANTask):
    """The growing GAN on the engine's manual-optimization path: critic ("disc") then generator ("model")."""

    family = "progressive GANs"
    MODELS = MODELS

    def training_step(self, ctx, batch) -> dict[str, torch.Tensor]:
        from mmkit.models import gans
        from mmkit.models.progan import drift_loss, stage_at

        m = ctx.models["model"]
        m.set_stage(*stage_at(int(m.images_seen), self.phase_images, m.top_level))
        level, alpha = m.stage()
        x, _ = batch
        real = m.reals(to_signed(x))

        def critic(images: torch.Tensor) -> torch.Tensor:
            return m.discriminator(images, level, alpha)

        with ctx.autocast():
            fake = m.generator(torch.randn(len(real), m.latent_dim, device=real.device), level, alpha)
            real_scores = critic(real)
            d_loss = gans.wgan_d_loss(real_scores, critic(fake.detach())) + drift_loss(real_scores)
        d_loss = d_loss + gans.gradient_penalty(critic, real, fake)
        ctx.backward(d_loss, "disc")
        ctx.step("disc")
        with gans.frozen(m.discriminator), ctx.autocast():
            g_loss = gans.wgan_g_loss(critic(fake))
        ctx.backward(g_loss, "model")
        ctx.step("model")
        m.images_seen += len(real) * ctx.rt.world_size  # the images of all ranks' step
        return {"loss": g_loss.detach(), "g_loss": g_loss.detach(), "d_loss": d_loss.detach()}

    @torch.no_grad()
    def evaluate(self, model, loader, rt):
        fid = super().evaluate(model, loader, rt)["val/fid_pix"]
        self.last_eval = {
            "val/fid_pix": fid if model.grown else math.inf,
            "val/fid_pix_stage": fid,
            "val/side": float(model.side),
            "val/alpha": model.stage()[1],
        }
        return self.last_eval
