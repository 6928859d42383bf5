"""Using a trained captioner: `CaptionPredictor` loads it, captions images and evaluates; BLEU-1..4 and CIDEr-D as
the COCO caption evaluation computes them.

    p = CaptionPredictor.load("runs/caption/x/best.pt")
    p.evaluate("caption-scenes", beam=3)                  # BLEU-1..4, CIDEr-D on the test split
    p.predict(["photo.jpg"], beam=3, save_dir="out/")     # + attention maps
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from mmkit.data.captions import CaptionDataset, load_caption_data
from mmkit.data.classification import collate_skip_none
from mmkit.data.formats.captions import Vocabulary
from mmkit.data.formats.images import read_image
from mmkit.data.transforms import BatchTransform
from mmkit.engine.logger import next_run_dir
from mmkit.errors import MMKitError
from mmkit.export import Graph
from mmkit.models import get_model
from mmkit.tasks.caption.exported import caption_graphs
from mmkit.tasks.predictor import Predictor

SENTENCE_MODELS = ("show-tell", "show-attend-tell")


@dataclass
class CaptionMeta:
    """What it takes to rebuild a captioner and feed it: stored in every caption checkpoint as `meta`."""

    model: str
    vocab: dict[str, Any]  # Vocabulary.to_dict()
    img_size: int
    mean: list[float]
    std: list[float]
    max_len: int = 20  # words per sentence
    max_sentences: int = 6  # paragraph model
    data: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def paragraph(self) -> bool:
        return self.model not in SENTENCE_MODELS

    @property
    def mode(self) -> str:
        """The `CaptionDataset` mode its references are read in."""
        return "paragraph" if self.paragraph else "sentence"


class SquareResize:
    """The dataset's image transform: uint8 [3, H, W] -> uint8 [3, size, size] (normalized on the batch later)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as TF

        if tuple(x.shape[-2:]) == (self.size, self.size):
            return x
        return TF.resize(x, [self.size, self.size], antialias=True)


def references(item, paragraph: bool) -> list[str]:
    """The references of an item: its sentences, or its paragraph."""
    if paragraph:
        if not item.paragraph:
            raise MMKitError(
                f"image {item.image_id}: no paragraph (the paragraph model needs paragraphs_*.json)"
            )
        return [item.paragraph]
    return list(item.captions)


def score_items(items: list, hyps: dict[int, str], paragraph: bool) -> dict[str, float]:
    """BLEU-1..4 and CIDEr-D of hypotheses (by item index) against the items' references."""
    from mmkit.metrics.captioning import score

    refs = {i: references(items[i], paragraph) for i in hyps}
    return score(refs, hyps)


def decode_batch(
    model: nn.Module, meta: CaptionMeta, vocab: Vocabulary, x: torch.Tensor, *, beam: int = 1, attention=False
) -> list:
    """Captions (paragraphs: sentences joined) of a normalized batch; with `attention`, (text, Caption) pairs."""
    from mmkit.models.captioner_decode import generate

    out = generate(model, x, beam=beam, max_len=meta.max_len + 1)
    if meta.paragraph:
        return [" ".join(_sentence(vocab, s) for s in p.sentences) for p in out]
    texts = [vocab.decode(c.tokens) for c in out]
    return list(zip(texts, out, strict=True)) if attention else texts


def _sentence(vocab: Vocabulary, tokens: list[int]) -> str:
    text = vocab.decode(tokens)
    return text if text.endswith(".") else text + " ."


# ---------------------------------------------------------------------------------------------------------------------
# Using a trained captioner


class CaptionPredictor(Predictor):
    task = "caption"
    meta: CaptionMeta

    def __init__(self, net: nn.Module, meta: CaptionMeta, device: torch.device, source: str) -> None:
        super().__init__(net, meta, device, source)
        self.vocab = Vocabulary.from_dict(meta.vocab)
        self.norm = BatchTransform(False, meta.mean, meta.std, out_channels=3).to(device)

    @staticmethod
    def network(meta: CaptionMeta) -> nn.Module:
        return get_model(meta.model, vocab_size=len(Vocabulary.from_dict(meta.vocab)), **meta.model_kwargs)

    def export_graphs(self, net: nn.Module) -> list[Graph]:
        """The encoder (uint8 images [batch, 3, img_size, img_size] -> the decoder's start state) and one decoding
        step (previous tokens and state -> next-word logits and state); the loop, greedy or beam search, stays
        outside (`mmkit.tasks.caption.exported.greedy_decode` runs it over ONNX Runtime)."""
        meta, g = self.meta, torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (2, 3, meta.img_size, meta.img_size), dtype=torch.uint8, generator=g)
        return caption_graphs(net, BatchTransform(False, meta.mean, meta.std, out_channels=3), images)

    def caption(self, images: torch.Tensor, *, beam: int = 3, attention: bool = False) -> list:
        """`decode_batch` of uint8 (or float 0-255) images [B, 3, H, W] already at `meta.img_size`."""
        x = self.norm(images.to(self.device))
        return decode_batch(self.net, self.meta, self.vocab, x, beam=beam, attention=attention)

    def evaluate(
        self,
        data: str,
        *,
        beam: int = 3,
        split: str = "test",
        batch_size: int = 64,
        out: str | os.PathLike | None = None,
    ) -> dict[str, Any]:
        """BLEU-1..4 and CIDEr-D (COCO caption evaluation; BLEU 0-1, CIDEr-D as coco-caption reports it) on a split
        of `data`; writes metrics.json and captions.json (the COCO results format: image_id, caption)."""
        meta = self.meta
        d = load_caption_data(data)
        items = {"test": d.test, "val": d.val, "train": d.train}.get(split)
        if items is None:
            raise MMKitError(f"--split {split}: choose test, val or train")
        if not items:
            items, split = d.val, "val"
        if not items:
            raise MMKitError(f"{data}: no {split} images to evaluate")
        ds = CaptionDataset(
            items,
            self.vocab,
            transform=SquareResize(meta.img_size),
            max_len=meta.max_len,
            mode=meta.mode,
            max_sentences=meta.max_sentences,
            train=False,
        )
        hyps: dict[int, str] = {}
        for batch in DataLoader(ds, batch_size=batch_size, collate_fn=collate_skip_none):
            if batch is None:
                continue
            hyps.update(zip(batch[-1].tolist(), self.caption(batch[0], beam=beam), strict=True))
        m = score_items(items, hyps, meta.paragraph)
        out_dir = Path(out) if out is not None else next_run_dir("runs", "caption", "eval", False)
        out_dir.mkdir(parents=True, exist_ok=True)
        result = {
            "weights": self.source,
            "data": str(data),
            "split": split,
            "images": len(items),
            "beam": beam,
            **m,
        }
        result["scale"] = (
            "BLEU 0-1; CIDEr-D as coco-caption computes it (0-10, x100 in papers' tables is not applied)"
        )
        (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
        captions = [{"image_id": items[i].image_id, "caption": hyps[i]} for i in sorted(hyps)]
        (out_dir / "captions.json").write_text(json.dumps(captions, indent=1))
        result["out_dir"] = str(out_dir)
        return result

    def predict(
        self, images: list[str | os.PathLike], *, beam: int = 3, save_dir: str | os.PathLike | None = None
    ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """A caption (or paragraph) per image; with `save_dir`, each image with its caption and, for attention
        models, the attention map of every word drawn over it. Unreadable images are returned as (path, reason)
        failures."""
        meta, vocab = self.meta, self.vocab
        tf = SquareResize(meta.img_size)
        results, failures = [], []
        out_dir = Path(save_dir) if save_dir is not None else None
        for path in images:
            try:
                img = read_image(path)
            except MMKitError as e:
                failures.append((path, str(e)))
                continue
            x = tf(img)[None]
            r: dict[str, Any] = {"image": str(path)}
            words, attention, grid = [], None, None
            if meta.paragraph:
                r["caption"] = self.caption(x, beam=beam)[0]
            else:
                text, cap = self.caption(x, beam=beam, attention=True)[0]
                r["caption"], r["score"] = text, round(float(cap.score), 4)
                words, attention, grid = [vocab.decode([t]) for t in cap.tokens], cap.attention, cap.grid
            if out_dir is not None:
                from mmkit.report.captions import draw_caption

                pic = draw_caption(img, r["caption"], words, attention, grid, out_dir, Path(path).stem)
                r["picture"] = str(pic)
            results.append(r)
        return results, failures


PREDICTOR = CaptionPredictor


# The task's functions, as the CLI, serve, analyze and scripts call them: a predictor loaded from `weights`, then
# its method.


def load_captioner(weights: str | os.PathLike, device="cpu") -> tuple[nn.Module, CaptionMeta, Vocabulary]:
    p = CaptionPredictor.load(weights, device=device)
    return p.net, p.meta, p.vocab


def evaluate(weights: str | os.PathLike, data: str, *, device: str = "auto", **kw: Any) -> dict[str, Any]:
    """`CaptionPredictor.evaluate` of the checkpoint `weights` (beam, split, batch_size, out)."""
    return CaptionPredictor.load(weights, device=device).evaluate(data, **kw)


def predict(
    weights: str | os.PathLike, images: list[str], *, device: str = "auto", **kw: Any
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """`CaptionPredictor.predict` of the checkpoint `weights` (beam, save_dir)."""
    return CaptionPredictor.load(weights, device=device).predict(images, **kw)
