"""Text -> image: GAN-INT-CLS and StackGAN on captioned images. `Text2ImageTask` trains on the engine's
manual-optimization path with three optimizers: "text" (the sentence encoder and its image encoder, by the
contrastive loss), "disc" (the matching-aware discriminators) and "model" (the generator stages), all on each batch.

    task = Text2ImageTask(data="caption-scenes", model="stackgan")     # then Trainer(task, cfg).fit()
    images = draw(net, meta, "a large red digit 3", z)                 # a trained model, one caption

The data is any caption source `mmkit.data.captions.load_caption_data` reads (the builtin `caption-scenes`: 3,000
synthetic 64 px scenes, five captions each): each training item pairs an image with one of its captions, drawn
afresh every epoch; the vocabulary (words seen twice or more) is built from the training captions and kept in the
checkpoint's meta (`GenerateMeta.vocab`), so `mmkit generate sample --text ...` encodes a prompt as training did.

The text encoder trains jointly with the GAN, by its own loss: a contrastive image-text loss on the same batches
(`mmkit.models.text2image.contrastive_loss`), and the GAN reads its embedding detached. Each step: the encoders'
step; then the discriminators' step, each on (real, right text) as real and (real, wrong text: the batch's
captions shifted by one) and (fake, right text) as fake; then the generator's step, the non-saturating loss of
every stage, plus the KL of the conditioning augmentation (StackGAN) or the generator's loss on interpolated
embeddings (GAN-INT, beta = 0.5, between each caption and the shifted one).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from mmkit.data.captions import CaptionDataset, load_caption_data
from mmkit.data.formats.captions import Vocabulary, tokenize
from mmkit.data.generation import GenerationData, resize_crop, to_signed
from mmkit.errors import MMKitError
from mmkit.models import get_model
from mmkit.tasks.generate.common import (
    GRID_SEED,
    AdversarialFamily,
    AdversarialSpec,
    GenerateMeta,
    gather,
    pixel_fid,
)

DEFAULT_SIZE = 64  # of caption sources without a size of their own (folders)
MAX_WORDS = 32  # caption tokens kept (caption-scenes' longest is 27)
MIN_COUNT = 2  # a training-caption word seen fewer times reads as <unk>
TEXT_LR = 1e-3  # the encoders' Adam learning rate (the contrastive loss; the GAN's is --lr)


@dataclass(frozen=True)
class Text2ImageSpec(AdversarialSpec):
    kind: str = "captions"
    verb: str = "sample"
    interpolation: float = 0.0  # GAN-INT: beta of the interpolated embeddings G also learns from; 0: none
    kl_weight: float = (
        0.0  # StackGAN: weight of the conditioning augmentation's KL (summed over its dimensions)
    )


MODELS: dict[str, Text2ImageSpec] = {
    "gan-int-cls": Text2ImageSpec(interpolation=0.5),
    # the authors' code: 2 x the KL's mean over the condition's 64 dimensions
    "stackgan": Text2ImageSpec(kl_weight=2 / 64),
}


@dataclass
class CaptionImages(GenerationData):
    """Captioned images as generation data: items (uint8 image, caption token ids, index); `vocab` the words."""

    vocab: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.source}: captioned images {self.channels}ch {self.img_size}px, {len(self.vocab)} words, "
            f"{len(self.train)} train / {len(self.test)} val"
        )


def load_caption_images(spec: str, img_size: int | None = None, seed: int = 0) -> CaptionImages:
    """`spec`'s train split (a random caption of each image per access) and val split (its first caption), images
    resized and centre-cropped to `img_size` (default: the source's own, else 64)."""
    d = load_caption_data(spec, seed=seed)
    size = img_size or d.image_size or DEFAULT_SIZE
    vocab = Vocabulary.build(
        (tokenize(c) for i in range(len(d.train)) for c in d.train[i].captions), min_count=MIN_COUNT
    )
    resize = functools.partial(resize_crop, size=size)

    def split(items, train: bool) -> CaptionDataset:
        return CaptionDataset(items, vocab, resize, max_len=MAX_WORDS, train=train)

    words = vocab.itos[len(Vocabulary.SPECIALS) :]
    return CaptionImages("captions", split(d.train, True), split(d.val, False), 3, size, spec, vocab=words)


def encode_captions(meta: GenerateMeta, texts: list[str]) -> torch.Tensor:
    """Token ids [len(texts), MAX_WORDS + 2] of captions, with the vocabulary the model trained with."""
    vocab = Vocabulary(meta.vocab)
    rows = [vocab.encode(tokenize(t), MAX_WORDS) for t in texts]
    return torch.tensor([r + [Vocabulary.PAD] * (MAX_WORDS + 2 - len(r)) for r in rows], dtype=torch.int64)


def draw(net: nn.Module, meta: GenerateMeta, text: str | None, z: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] of caption `text`, one per row of noise `z` (`mmkit generate sample --text`)."""
    if not meta.vocab:
        raise MMKitError(f"--text: a {meta.model} model does not read text")
    if not text or not text.strip():
        raise MMKitError(
            f"--text is required: a {meta.model} model draws a caption, e.g. --text 'a large red digit 3'"
        )
    tokens = encode_captions(meta, [text])
    if not bool((tokens > Vocabulary.UNK).any()):  # every word <unk>
        raise MMKitError(f"--text {text!r}: none of its words is in the model's vocabulary")
    return net.sample(len(z), tokens, z=z)


class Text2ImageTask(AdversarialFamily):
    """GAN-INT-CLS and StackGAN: matching-aware discriminators, a jointly trained sentence encoder."""

    family = "text-to-image GANs"
    MODELS = MODELS
    grid_caption = "a row per validation caption (the first 8), fixed noise"

    @classmethod
    def build(cls, meta: GenerateMeta) -> nn.Module:
        return get_model(meta.model, in_chans=meta.channels, img_size=meta.img_size, **meta.model_kwargs)

    def load_data(self, cfg) -> CaptionImages:
        return load_caption_images(self.data, self.img_size, seed=cfg.seed)

    def builder_kwargs(self, d: CaptionImages) -> dict:
        return {
            "latent_dim": self.latent_dim,
            "vocab_size": len(d.vocab) + len(Vocabulary.SPECIALS),
            **self.model_kwargs,
        }

    def setup(self, cfg, rt) -> None:
        super().setup(cfg, rt)
        self.meta.vocab = self.dataset.vocab

    def optimizers(self, cfg) -> dict[str, torch.optim.Optimizer]:
        return {
            **super().optimizers(cfg),
            "text": torch.optim.Adam(self.net.text_parameters(), lr=TEXT_LR),
        }

    # --- training ---------------------------------------------------------------------------------------------------
    def training_step(self, ctx, batch) -> dict[str, torch.Tensor]:
        from mmkit.models import gans
        from mmkit.models import text2image as t2i

        m = ctx.models["model"]
        x, tokens, _ = batch
        real = to_signed(x)
        with ctx.autocast():
            e = m.embed(tokens)
            text_loss = t2i.contrastive_loss(m.image_encoder(real), e)
        ctx.backward(text_loss, "text")
        ctx.step("text")
        e = e.detach()
        wrong = e.roll(1, 0)  # each image with the next one's caption
        reals = [real if s == real.shape[-1] else F.adaptive_avg_pool2d(real, s) for s in m.stage_sizes]
        z = torch.randn(len(real), m.latent_dim, device=real.device)
        with ctx.autocast():
            fakes, kl = m.generate(z, e)
            d_loss = sum(
                t2i.matching_d_loss(d.judge(h, e), d.judge(h, wrong), d(fake.detach(), e))
                for d, r, fake in zip(m.discriminators, reals, fakes, strict=True)
                for h in [d.features(r)]
            )
        ctx.backward(d_loss, "disc")
        ctx.step("disc")
        logs = {"text_loss": text_loss.detach(), "d_loss": d_loss.detach()}
        with gans.frozen(m.discriminators), ctx.autocast():
            g_loss = self._adversarial(m, fakes, e)
            if self.spec.kl_weight:
                logs["kl"] = kl.detach()
                g_loss = g_loss + self.spec.kl_weight * kl
            if self.spec.interpolation:
                e_int = t2i.interpolate(e, wrong, self.spec.interpolation)
                fakes_int, _ = m.generate(torch.randn_like(z), e_int)
                g_loss = g_loss + self._adversarial(m, fakes_int, e_int)
        ctx.backward(g_loss, "model")
        ctx.step("model")
        return {"loss": g_loss.detach(), "g_loss": g_loss.detach(), **logs}

    @staticmethod
    def _adversarial(m: nn.Module, fakes: list[torch.Tensor], e: torch.Tensor) -> torch.Tensor:
        """The generator's non-saturating loss, summed over the stages, each against its own discriminator."""
        from mmkit.models.gans import g_loss

        return sum(g_loss(d(fake, e)) for d, fake in zip(m.discriminators, fakes, strict=True))

    # --- evaluation -------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, model, loader, rt):
        """Pixel FID of one sample per validation caption against the validation images, and the text encoder's
        retrieval: the share of validation images whose own caption is the nearest of all (top-1)."""
        model.eval()
        real, fake, img_emb, txt_emb = [], [], [], []
        for x, tokens, _ in loader:
            x, tokens = to_signed(x.to(rt.device)), tokens.to(rt.device)
            real.append(x)
            fake.append(model.sample(len(x), tokens))
            img_emb.append(F.normalize(model.image_encoder(x), dim=1))
            txt_emb.append(F.normalize(model.embed(tokens), dim=1))
        img_t, txt_t = gather(rt, torch.cat(img_emb), torch.cat(txt_emb))
        sim = img_t @ txt_t.T
        top1 = (sim.argmax(1) == torch.arange(len(sim), device=sim.device)).float().mean()
        self.last_eval = {
            "val/fid_pix": pixel_fid(torch.cat(real), torch.cat(fake), rt),
            "val/text_top1": float(top1),
        }
        return self.last_eval

    def grid(self, net, dev):
        """8 validation captions (rows) x 8 fixed noises."""
        val = self.dataset.test
        rows = min(8, len(val))
        tokens = torch.stack([val[i][1] for i in range(rows)]).repeat_interleave(8, 0)
        z = torch.randn(8 * rows, net.latent_dim, generator=torch.Generator().manual_seed(GRID_SEED))
        return net.sample(8 * rows, tokens, z=z.to(dev)), 8, None
