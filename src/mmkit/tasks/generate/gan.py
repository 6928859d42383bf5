"""GANs: noise (and, for the conditional ones, a label) -> image. `GANTask` trains GAN, DCGAN, WGAN, WGAN-GP, cGAN
and AC-GAN on the engine's manual-optimization path, with two optimizers: "model" (the generator) and "disc" (the
discriminator or critic).

    task = GANTask(data="fashion-mnist", model="dcgan")      # then Trainer(task, cfg).fit()
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mmkit.data.generation import GenerationData, to_signed
from mmkit.errors import MMKitError
from mmkit.models import get_model
from mmkit.tasks.generate.common import GRID_SEED, AdversarialFamily, AdversarialSpec, GenerateMeta, pixel_fid


@dataclass(frozen=True)
class GANSpec(AdversarialSpec):
    kind: str = "images"
    verb: str = "sample"
    conditional: bool = False  # draws a given label (needs labelled data)
    class_head: bool = False  # AC-GAN: the discriminator also classifies
    # Default weight of the mode-seeking loss (bench/README.md): the AC-GAN's class loss already separates the
    # classes, and weight 1 pulls its samples into ambiguous shapes; the cGAN at 0.3 still draws near-copies per class.
    mode_seeking: float = 0.0


MODELS: dict[str, GANSpec] = {
    "gan": GANSpec(),
    "dcgan": GANSpec(),
    # Arjovsky et al.: a critic clipped to [-c, c] (c = 0.01), RMSprop at 5e-5 (the recipe), 5 critic steps
    "wgan": GANSpec(critic="clip", optimizer="rmsprop"),
    "wgan-gp": GANSpec(critic="penalty", betas=(0.0, 0.9)),
    "cgan": GANSpec(conditional=True, mode_seeking=1.0),
    "acgan": GANSpec(conditional=True, class_head=True, mode_seeking=0.3),
}
GAN_MODELS = tuple(MODELS)
CONDITIONAL = tuple(m for m, s in MODELS.items() if s.conditional)
MODE_SEEKING = {m: s.mode_seeking for m, s in MODELS.items() if s.conditional}
VAL_SAMPLES = 2000  # real test images (and as many samples) of the per-epoch pixel FID


class GANTask(AdversarialFamily):
    """Unconditional and conditional GANs; conditional ones add the mode-seeking loss (MSGAN)."""

    family = "GANs"
    MODELS = MODELS
    grid_caption = "fixed noise"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode_seeking is None:
            self.mode_seeking = self.spec.mode_seeking

    @classmethod
    def build(cls, meta: GenerateMeta) -> nn.Module:
        k = len(meta.classes) if meta.conditional else None  # only conditional GANs have classes
        return get_model(meta.model, k, in_chans=meta.channels, img_size=meta.img_size, **meta.model_kwargs)

    def builder_kwargs(self, d: GenerationData) -> dict:
        if self.spec.conditional and d.num_classes < 2:
            raise MMKitError(f"{self.data}: has no class labels, which {self.model} needs")
        return {"latent_dim": self.latent_dim, **self.model_kwargs}

    def meta_classes(self, d: GenerationData) -> list[str]:
        return list(d.classes) if self.spec.conditional else []

    # --- training ---------------------------------------------------------------------------------------------------
    def training_step(self, ctx, batch) -> dict[str, torch.Tensor]:
        from mmkit.models import gans

        m = ctx.models["model"]
        generator_turn = self.generator_turn()
        x, y = batch
        real = to_signed(x)
        labels = y.long() if self.spec.conditional else None
        n = len(real)
        wgan, acgan = bool(self.spec.critic), self.spec.class_head
        with ctx.autocast():
            fake = m.generator(torch.randn(n, m.latent_dim, device=real.device), labels).detach()
            if wgan:
                d_loss = gans.wgan_d_loss(m.critic(real, labels), m.critic(fake, labels))
            elif acgan:
                # The class head learns from real images only: trained on the fakes too (the paper's choice), it
                # follows whatever the generator draws for a label, and the classes drift from the real ones.
                (adv_r, cls_r), (adv_f, _) = m.discriminator(real), m.discriminator(fake)
                d_loss = gans.d_loss(adv_r, adv_f) + gans.aux_class_loss(cls_r, labels)
            else:
                d_loss = gans.d_loss(m.discriminator(real, labels), m.discriminator(fake, labels))
        if self.spec.critic == "penalty":
            d_loss = d_loss + gans.gradient_penalty(m.critic, real, fake, labels)
        ctx.backward(d_loss, "disc")
        ctx.step("disc")
        self.critic_stepped(m.critic)
        logs = {"d_loss": d_loss.detach()}
        if not generator_turn:
            return {"loss": d_loss.detach(), **logs}  # the critic trains n_critic times per generator step
        seeking = self.mode_seeking if labels is not None and n >= 2 else 0.0
        if seeking:
            # pairs of fakes with one label and two noises: the second half repeats the first's labels
            labels = torch.cat([labels[: n // 2], labels[: n // 2], labels[2 * (n // 2) :]])
        with gans.frozen(m.discriminator), ctx.autocast():
            z = torch.randn(n, m.latent_dim, device=real.device)
            fake = m.generator(z, labels)
            if wgan:
                g_loss = gans.wgan_g_loss(m.critic(fake, labels))
            elif acgan:
                adv, cls = m.discriminator(fake)
                g_loss = gans.g_loss(adv) + gans.aux_class_loss(cls, labels)
            else:
                g_loss = gans.g_loss(m.discriminator(fake, labels))
            if seeking:
                ms = gans.mode_seeking_loss(fake, z)
                logs["ms_loss"] = ms.detach()
                g_loss = g_loss + seeking * ms
        ctx.backward(g_loss, "model")
        ctx.step("model")
        return {"loss": g_loss.detach(), "g_loss": g_loss.detach(), **logs}

    # --- evaluation -------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, model, loader, rt):
        model.eval()
        dev = rt.device
        real, labels = [], []
        for x, y in loader:
            real.append(to_signed(x.to(dev)))
            labels.append(y.to(dev))
            if sum(len(r) for r in real) >= VAL_SAMPLES // rt.world_size:  # this rank's share
                break
        real_t, y_t = torch.cat(real), torch.cat(labels)
        fake = model.sample(len(real_t), y_t.long() if self.spec.conditional else None)
        self.last_eval = {"val/fid_pix": pixel_fid(real_t, fake, rt)}
        return self.last_eval

    def grid(self, net, dev):
        """64 samples from fixed noise; conditional: a row of 10 per class."""
        g = torch.Generator().manual_seed(GRID_SEED)
        k = len(self.meta.classes)
        n = 10 * k if k else 64
        z = torch.randn(n, net.latent_dim, generator=g).to(dev)
        labels = torch.arange(n, device=dev) // 10 if k else None
        x = net.sample(n, labels, z=z)
        return x, 10 if k else 8, ([self.meta.classes[i // 10] for i in range(n)] if k else None)
