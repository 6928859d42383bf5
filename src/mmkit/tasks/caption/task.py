"""Image captioning as the engine trains it: `CaptionTask`, its options being `CaptionOptions`.

A CNN encoder and an LSTM decoder (Show-and-Tell), with soft attention (Show-Attend-and-Tell), or a hierarchical
paragraph decoder, trained with teacher forcing and validated each epoch by greedy decoding scored with BLEU-1..4
and CIDEr-D.

    task = CaptionTask(data="caption-scenes", model="show-attend-tell")     # then Trainer(task, cfg).fit()

The vocabulary is built from the training captions (words seen at least ``min_count`` times) and saved in the
checkpoint with everything else it takes to caption a new image (`CaptionMeta`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from mmkit.data.captions import CaptionData, CaptionDataset, load_caption_data
from mmkit.data.classification import collate_skip_none
from mmkit.data.formats.captions import Vocabulary, tokenize
from mmkit.data.transforms import BatchTransform
from mmkit.engine import Runtime, Task
from mmkit.errors import MMKitError
from mmkit.models import get_model, get_model_info, get_weights
from mmkit.tasks.caption.options import CaptionOptions
from mmkit.tasks.caption.predictor import (
    SENTENCE_MODELS,
    CaptionMeta,
    SquareResize,
    decode_batch,
    references,
    score_items,
)

log = logging.getLogger(__name__)

DEFAULT_MEAN, DEFAULT_STD = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]


@dataclass(eq=False)
class CaptionTask(CaptionOptions, Task):
    """Trains a captioner; its fields are the options of `mmkit caption train`."""

    name = "caption"
    monitor = ("val/CIDEr-D", "max")

    def __post_init__(self) -> None:
        if not self.data:
            raise MMKitError("--data is required (caption-scenes, or a captions folder / JSON)")
        self.data = str(self.data)
        info = get_model_info(self.model)
        if info.task != "caption":
            raise MMKitError(f"--model {self.model}: a {info.task} model, not a captioner")
        get_model_info(self.encoder)  # an unknown encoder fails here, before the data is read
        self.model_kwargs = dict(self.model_kwargs or {})
        self.last_eval: dict[str, float] | None = None
        self.last_samples: list[tuple[str, str, str]] = []

    def setup(self, cfg, rt: Runtime) -> None:
        named = self.encoder_weights in get_model_info(self.encoder).weights  # else a file: a classify run's
        w = get_weights(self.encoder, self.encoder_weights) if named else None
        self.dataset: CaptionData = load_caption_data(self.data, seed=cfg.seed)
        d = self.dataset
        img = self.img_size or (w.input_size if w else (d.image_size or _natural_size(d.train)))
        mean, std = (list(w.mean), list(w.std)) if w else (DEFAULT_MEAN, DEFAULT_STD)
        paragraph = self.model not in SENTENCE_MODELS
        texts = [p for it in d.train for p in references(it, paragraph)]
        self.vocab = Vocabulary.build([tokenize(t) for t in texts], min_count=self.min_count)
        kwargs = {"encoder": self.encoder, **self.model_kwargs}
        if paragraph:
            kwargs.setdefault("s_max", self.max_sentences)
        self.meta = meta = CaptionMeta(
            self.model,
            self.vocab.to_dict(),
            img,
            mean,
            std,
            self.max_len,
            self.max_sentences,
            self.data,
            kwargs,  # without encoder_weights: a checkpoint holds the trained encoder itself
        )
        self.net = get_model(
            self.model,
            vocab_size=len(self.vocab),
            weights=self.weights,
            encoder_weights=self.encoder_weights,
            freeze_encoder=self.freeze_encoder,
            **kwargs,
        )
        if self.net.vocab_size != len(self.vocab):
            raise MMKitError(
                f"--weights {self.weights}: a vocabulary of {self.net.vocab_size} words; this data's has "
                f"{len(self.vocab)} (at --min-count {self.min_count})"
            )
        common = dict(
            transform=SquareResize(img),
            max_len=self.max_len,
            mode=meta.mode,
            max_sentences=self.max_sentences,
        )
        self.train_ds = CaptionDataset(d.train, self.vocab, train=True, **common)
        self.val_items = d.val
        self.val_ds = CaptionDataset(d.val, self.vocab, train=False, **common)
        self.norm = BatchTransform(False, mean, std, out_channels=3)
        if rt.is_main:
            sizes = d.sizes()
            log.info(
                "%s: %d train / %d val images; vocabulary %d words (min count %d); %s on %s at %dpx",
                d.name,
                sizes["train"],
                sizes["val"],
                len(self.vocab),
                self.min_count,
                self.model,
                self.encoder,
                img,
            )

    def collate_fn(self):
        return collate_skip_none

    def _forward_loss(self, model, x, batch):
        """The loss of a batch whose images ``x`` are already normalized."""
        from mmkit.models.captioner import caption_loss

        tokens, n = batch[1], (batch[2] if self.meta.paragraph else None)
        out = model(x, tokens) if n is None else model(x, tokens, n)
        return caption_loss(out, tokens, n_sentences=n, attention_weight=self.attention_weight)

    def loss(self, model, batch):
        loss, logs = self._forward_loss(model, self.norm(batch[0]), batch)
        return loss, {k: v.detach().float() for k, v in logs.items() if torch.is_tensor(v)}

    @torch.no_grad()
    def evaluate(self, model, loader, rt):
        """Validation loss, then greedy captions of the validation images scored against all their references."""
        model.eval()
        total = torch.zeros(2, device=rt.device)
        hyps: dict[int, str] = {}
        for batch in loader:
            if batch is None:  # every image of the batch was unreadable (already reported)
                continue
            batch = rt.move(batch)
            x = self.norm(batch[0])
            with rt.autocast():
                loss, _ = self._forward_loss(model, x, batch)
            total += torch.stack(
                [loss.float() * len(batch[0]), torch.tensor(len(batch[0]), device=rt.device)]
            )
            texts = decode_batch(model, self.meta, self.vocab, x, beam=1)
            hyps.update(zip(batch[-1].tolist(), texts, strict=True))
        rt.all_reduce_([total])
        merged: dict[int, str] = {}
        for part in rt.gather_objects(hyps):
            merged.update(part)
        m = score_items(self.val_items, merged, self.meta.paragraph)
        self.last_eval = m
        self.last_samples = [
            (
                str(self.val_items[i].image_id),
                merged[i],
                references(self.val_items[i], self.meta.paragraph)[0],
            )
            for i in sorted(merged)[:8]
        ]
        return {"val/loss": float(total[0] / total[1].clamp(min=1)), **{f"val/{k}": v for k, v in m.items()}}

    def checkpoint_meta(self) -> dict[str, Any]:
        return asdict(self.meta)

    def report_sections(self, run_dir: Path, rt):
        from mmkit.report import Section

        if not self.last_eval:
            return []
        rows = [[k, round(float(v), 4)] for k, v in self.last_eval.items()]
        samples = [[i, h, r] for i, h, r in self.last_samples]
        return [
            Section(
                "Validation captions (greedy, last epoch; BLEU on a 0-1 scale)",
                table=(["metric", "value"], rows),
            ),
            Section("Sample captions", table=(["image", "generated", "a reference"], samples)),
        ]


def _natural_size(split) -> int:
    """Input size for images read from files: the first image's shorter side, at most 224."""
    if len(split) == 0:
        raise MMKitError("no training images")
    h, w = split.image(0).shape[:2]
    return min(h, w, 224)
