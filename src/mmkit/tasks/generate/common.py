"""Generation: GANs (label/noise → image), image-to-image translation (pix2pix, CycleGAN), super-resolution (LapSRN)
and restoration (RED-Net), trained on the engine; sample grids every epoch.

    task = GenerateTask("fashion-mnist", "dcgan")        # then Trainer(task, cfg).fit()
    task = GenerateTask("photo-sr", "lapsrn")            # paired low-res -> high-res crops of real photos

The adversarial models train on the engine's manual-optimization path with two optimizers, "model" (the
generator(s)) and "disc" (the discriminator(s) or critic); LapSRN and RED-Net have one loss and train like any
other model. Images are float in [-1, 1] inside the models; datasets give uint8 (`mmkit.data.generation`).
Using a trained model (sample, translate, upscale, restore) and its evaluation (FID, KID, IS, PSNR, SSIM) are in
`mmkit.tasks.generate_apply`.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mmkit.data.generation import (
    DEFAULT_PHOTO_CROPS,
    GenerationData,
    load_generation_data,
    to_signed,
    to_uint8,
)
from mmkit.engine import Runtime, Task
from mmkit.errors import MMKitError
from mmkit.models import get_model, get_model_info

log = logging.getLogger(__name__)

GAN_MODELS = ("gan", "dcgan", "wgan-gp", "cgan", "acgan")
CONDITIONAL = ("cgan", "acgan")
# Weight of the mode-seeking loss by default (bench/README.md): the AC-GAN's class loss already separates the
# classes, and weight 1 pulls its samples into ambiguous shapes; the cGAN at 0.3 still draws near-copies per class.
MODE_SEEKING = {"cgan": 1.0, "acgan": 0.3}
DATA_KIND = {
    **{m: "images" for m in GAN_MODELS},
    "pix2pix": "paired",
    "lapsrn": "paired",
    "rednet": "paired",
    "cyclegan": "unpaired",
}
ADVERSARIAL = (*GAN_MODELS, "pix2pix", "cyclegan")
GRID_SEED = 1234  # the fixed noise of the per-epoch sample grids


@dataclass
class GenerateMeta:
    """What it takes to rebuild a generator and feed it: stored in every generate checkpoint as `meta`."""

    model: str
    data: str
    kind: str  # images | paired | unpaired
    channels: int  # of the generated images
    img_size: int
    channels_a: int | None = None  # inputs of translation / SR / restoration
    size_a: int | None = None
    classes: list[str] = field(default_factory=list)
    latent_dim: int = 0
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def conditional(self) -> bool:
        return self.model in CONDITIONAL


def build_generator(meta: GenerateMeta) -> nn.Module:
    """The registered model that `meta` describes (untrained)."""
    kw = dict(meta.model_kwargs)
    if meta.model in GAN_MODELS:
        k = len(meta.classes) if meta.conditional else 0
        return get_model(meta.model, k, in_chans=meta.channels, img_size=meta.img_size, **kw)
    if meta.model in ("pix2pix", "cyclegan"):
        return get_model(
            meta.model, 0, in_chans=meta.channels_a, out_chans=meta.channels, img_size=meta.img_size, **kw
        )
    return get_model(meta.model, 0, in_chans=meta.channels, **kw)


def translate_batch(model: nn.Module, meta: GenerateMeta, a: torch.Tensor) -> torch.Tensor:
    """The model's output in [-1, 1] for inputs a in [-1, 1] (pix2pix, CycleGAN A→B, LapSRN's last level, RED-Net)."""
    if meta.model == "lapsrn":
        return model(a)[-1].clamp(-1, 1)
    if meta.model == "cyclegan":
        return model.g_ab(a)
    return model(a).clamp(-1, 1)


def pixel_fid(real: torch.Tensor, fake: torch.Tensor, cells: int = 8) -> float:
    """A cheap FID on images pooled to cells×cells (per channel): the validation signal while training, not the
    reported metric (that one uses a trained feature network: `generate eval`)."""
    from mmkit.metrics.generation import fid_from_features

    def feats(x):
        return F.adaptive_avg_pool2d(x.float(), cells).flatten(1)

    return fid_from_features(feats(real), feats(fake))


class GenerateTask(Task):
    name = "generate"

    def __init__(
        self,
        data: str,
        model: str = "dcgan",
        weights: str | None = None,
        img_size: int | None = None,
        crops: int = DEFAULT_PHOTO_CROPS,
        latent_dim: int = 100,
        n_critic: int = 5,
        mode_seeking: float | None = None,
        lambda_l1: float = 100.0,
        lambda_cycle: float = 10.0,
        lambda_identity: float = 0.5,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if model not in DATA_KIND:
            raise MMKitError(f"--model {model}: not a generation model (one of {', '.join(DATA_KIND)})")
        self.data_spec, self.model_name, self.weights, self.img_size = str(data), model, weights, img_size
        self.crops = crops
        self.latent_dim, self.n_critic = latent_dim, n_critic
        self.mode_seeking = MODE_SEEKING.get(model, 0.0) if mode_seeking is None else mode_seeking
        self.lambda_l1, self.lambda_cycle, self.lambda_identity = lambda_l1, lambda_cycle, lambda_identity
        self.model_kwargs = dict(model_kwargs or {})
        self.manual_optimization = model in ADVERSARIAL
        self.monitor = ("val/fid_pix", "min") if model in (*GAN_MODELS, "cyclegan") else ("val/psnr", "max")
        self.last_eval: dict[str, float] | None = None
        self.last_grid: Path | None = None
        self._steps = 0

    # --- building ---------------------------------------------------------------------------------------------------
    def setup(self, cfg, rt: Runtime) -> None:
        if rt.distributed:
            raise MMKitError(
                "generate train: DDP is not supported for the generation models (run one process)"
            )
        info = get_model_info(self.model_name)
        if info.task != "generate":
            raise MMKitError(f"--model {self.model_name}: a {info.task} model, not a generation model")
        kind = DATA_KIND[self.model_name]
        self.data: GenerationData = load_generation_data(
            self.data_spec, kind, self.img_size, seed=cfg.seed, crops=self.crops
        )
        d = self.data
        if self.model_name in CONDITIONAL and d.num_classes < 2:
            raise MMKitError(f"{self.data_spec}: has no class labels, which {self.model_name} needs")
        if self.model_name == "rednet" and (d.channels_a, d.size_a) != (d.channels, d.img_size):
            raise MMKitError(
                f"{self.data_spec}: inputs and targets differ in size or channels; rednet needs equal"
            )
        kwargs = dict(self.model_kwargs)
        if self.model_name in GAN_MODELS:
            kwargs.setdefault("latent_dim", self.latent_dim)
        if self.model_name == "lapsrn":
            scale = d.img_size // (d.size_a or d.img_size)
            if d.channels_a != d.channels or scale not in (2, 4, 8) or scale * d.size_a != d.img_size:
                raise MMKitError(
                    f"{self.data_spec}: not super-resolution pairs (low-res inputs at 1/2, 1/4 or 1/8)"
                )
            kwargs.setdefault("scale", scale)
        self.meta = GenerateMeta(
            self.model_name,
            self.data_spec,
            kind,
            d.channels,
            d.img_size,
            d.channels_a,
            d.size_a,
            list(d.classes) if self.model_name in CONDITIONAL else [],
            kwargs.get("latent_dim", 0),
            kwargs,
        )
        self.model = build_generator(self.meta)
        if self.weights:
            from mmkit.tasks.generate_apply import load_generator

            self.model.load_state_dict(load_generator(self.weights)[0].state_dict())
        self.pools = None
        if self.model_name == "cyclegan":
            from mmkit.models.translation import ImagePool

            self.pools = (ImagePool(50), ImagePool(50))
        if rt.is_main:
            log.info("%s; %s", d.summary(), self.model_name)

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def optimizers(self, cfg) -> dict[str, torch.optim.Optimizer]:
        if not self.manual_optimization:
            return super().optimizers(cfg)
        m = self.model
        if self.model_name == "cyclegan":
            g_params = itertools.chain(m.g_ab.parameters(), m.g_ba.parameters())
            d_params = itertools.chain(m.d_a.parameters(), m.d_b.parameters())
        elif self.model_name == "pix2pix":
            g_params, d_params = m.generator.parameters(), m.discriminator.parameters()
        else:
            g_params, d_params = m.generator_parameters(), m.discriminator_parameters()
        # The papers' Adam settings: beta1 0.5 (DCGAN, pix2pix, CycleGAN), (0, 0.9) for WGAN-GP
        betas = (0.0, 0.9) if self.model_name == "wgan-gp" else (0.5, 0.999)
        return {
            "model": torch.optim.Adam(g_params, lr=cfg.lr, betas=betas),
            "disc": torch.optim.Adam(d_params, lr=cfg.lr, betas=betas),
        }

    def train_dataset(self):
        return self.data.train

    def val_dataset(self):
        return self.data.test

    # --- training ---------------------------------------------------------------------------------------------------
    def loss(self, model, batch):
        a, b = (to_signed(t) for t in batch)
        if self.model_name == "lapsrn":
            from mmkit.models.restoration import lapsrn_loss

            loss = lapsrn_loss(model(a), b)
        else:
            loss = F.mse_loss(model(a), b)
        return loss, {}

    def training_step(self, ctx, batch) -> dict[str, torch.Tensor]:
        model = ctx.models["model"]
        self._steps += 1
        if self.model_name in GAN_MODELS:
            return self._gan_step(ctx, model, batch)
        if self.model_name == "pix2pix":
            return self._pix2pix_step(ctx, model, batch)
        return self._cyclegan_step(ctx, model, batch)

    def _gan_step(self, ctx, m, batch) -> dict[str, torch.Tensor]:
        from mmkit.models import gans

        x, y = batch
        real = to_signed(x)
        labels = y.long() if self.model_name in CONDITIONAL else None
        n = len(real)
        acgan, wgan = self.model_name == "acgan", self.model_name == "wgan-gp"
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
        if wgan:
            d_loss = d_loss + gans.gradient_penalty(m.critic, real, fake, labels)
        ctx.backward(d_loss, "disc")
        ctx.step("disc")
        logs = {"d_loss": d_loss.detach()}
        if wgan and self._steps % self.n_critic:
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

    def _pix2pix_step(self, ctx, m, batch) -> dict[str, torch.Tensor]:
        from mmkit.models.gans import frozen
        from mmkit.models.translation import pix2pix_d_loss, pix2pix_g_loss

        a, b = (to_signed(t) for t in batch)
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

    def _cyclegan_step(self, ctx, m, batch) -> dict[str, torch.Tensor]:
        from mmkit.models.gans import frozen
        from mmkit.models.translation import cyclegan_d_loss, cyclegan_g_loss

        a, b = (to_signed(t) for t in batch)
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
        dev = rt.device
        if self.model_name in GAN_MODELS:
            real, labels = [], []
            for x, y in loader:
                real.append(to_signed(x.to(dev)))
                labels.append(y.to(dev))
                if sum(len(r) for r in real) >= 2000:
                    break
            real_t, y_t = torch.cat(real), torch.cat(labels)
            fake = model.sample(len(real_t), y_t.long() if self.model_name in CONDITIONAL else None)
            out = {"val/fid_pix": pixel_fid(real_t, fake)}
        else:
            scores, base, real_b, fakes = [], [], [], []
            for a, b in loader:
                a, b = to_signed(a.to(dev)), to_signed(b.to(dev))
                fake = translate_batch(model, self.meta, a)
                scores.append(psnr(fake, b))
                if self.model_name == "lapsrn":
                    from mmkit.metrics.generation import bicubic_upscale

                    base.append(psnr(bicubic_upscale(a, b.shape[-1]), b))
                elif self.model_name == "rednet":
                    base.append(psnr(a, b))
                real_b.append(b)
                fakes.append(fake)
            out = {"val/psnr": float(torch.cat(scores).mean())}
            if base:
                out["val/psnr_baseline"] = float(torch.cat(base).mean())
            if self.model_name == "cyclegan":
                out["val/fid_pix"] = pixel_fid(torch.cat(real_b), torch.cat(fakes))
                if not self.data.aligned_test:
                    out.pop("val/psnr")
        self.last_eval = out
        return out

    def on_epoch_end(self, epoch: int, run_dir: Path | None, rt: Runtime) -> None:
        if run_dir is None:
            return
        from mmkit.report import save_image_grid

        model = self.model
        was_training = model.training
        model.eval()
        with torch.no_grad():
            grid, nrow, labels = self._grid(model, rt.device)
        model.train(was_training)
        self.last_grid = save_image_grid(
            to_uint8(grid.cpu()), run_dir / "samples" / f"epoch_{epoch:03d}.png", nrow=nrow, labels=labels,
            title=f"{self.model_name}, epoch {epoch}",
        )  # fmt: skip

    def _grid(self, model, dev) -> tuple[torch.Tensor, int, list[str] | None]:
        """GANs: 64 samples from fixed noise (conditional: a row per class); others: input | output | target."""
        if self.model_name in GAN_MODELS:
            g = torch.Generator().manual_seed(GRID_SEED)
            k = len(self.meta.classes)
            n = 10 * k if k else 64
            z = torch.randn(n, model.latent_dim, generator=g).to(dev)
            labels = torch.arange(n, device=dev) // 10 if k else None
            x = model.sample(n, labels, z=z)
            return x, 10 if k else 8, ([self.meta.classes[i // 10] for i in range(n)] if k else None)
        rows = []
        for i in range(min(8, len(self.data.test))):
            a, b = (to_signed(t[None].to(dev)) for t in self.data.test[i])
            fake = translate_batch(model, self.meta, a)
            rows += [_as_output(a, fake), fake, b]
        return torch.cat(rows), 3, None

    def checkpoint_meta(self) -> dict[str, Any]:
        return asdict(self.meta)

    def report_sections(self, run_dir: Path, rt):
        from mmkit.report import Section

        sections = []
        if self.last_grid is not None:
            caption = (
                "fixed noise" if self.model_name in GAN_MODELS else "input | output | target, test images"
            )
            sections.append(Section("Samples (last epoch)", images=[(self.last_grid, caption)]))
        if self.last_eval:
            rows = [[k, round(float(v), 4)] for k, v in self.last_eval.items()]
            sections.append(Section("Validation (last epoch)", table=(["metric", "value"], rows)))
        return sections


def _as_output(a: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """An input shown beside outputs: resized (nearest) to their size and channels."""
    if a.shape[-1] != like.shape[-1]:
        a = F.interpolate(a, size=like.shape[-2:], mode="nearest")
    if a.shape[1] != like.shape[1]:
        a = a.expand(-1, like.shape[1], -1, -1) if a.shape[1] == 1 else a.mean(1, keepdim=True)
    return a
