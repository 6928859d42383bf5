"""Image captioning: a CNN encoder and an LSTM decoder (Show-and-Tell), with soft attention (Show-Attend-and-Tell),
or a hierarchical paragraph decoder; BLEU-1..4 and CIDEr-D as the COCO caption evaluation computes them.

    task = CaptionTask("caption-scenes", "show-attend-tell")     # then Trainer(task, cfg).fit()
    evaluate("runs/caption/x/best.pt", "caption-scenes", beam=3) # BLEU-1..4, CIDEr-D on the test split
    predict("runs/caption/x/best.pt", ["photo.jpg"], beam=3, save_dir="out/")   # + attention maps

The vocabulary is built from the training captions (words seen at least ``min_count`` times) and saved in the
checkpoint with everything else it takes to caption a new image (`CaptionMeta`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from mmkit.data.captions import CaptionData, CaptionDataset, load_caption_data
from mmkit.data.classification import collate_skip_none
from mmkit.data.formats.captions import Vocabulary, tokenize
from mmkit.data.formats.images import read_image
from mmkit.data.transforms import BatchTransform
from mmkit.engine import Runtime, Task, load_checkpoint, select_device
from mmkit.engine.logger import next_run_dir
from mmkit.errors import MMKitError
from mmkit.models import get_model, get_model_info, get_weights

log = logging.getLogger(__name__)

DEFAULT_MEAN, DEFAULT_STD = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
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


class SquareResize:
    """The dataset's image transform: uint8 [3, H, W] -> uint8 [3, size, size] (normalized on the batch later)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as TF

        if tuple(x.shape[-2:]) == (self.size, self.size):
            return x
        return TF.resize(x, [self.size, self.size], antialias=True)


class CaptionTask(Task):
    name = "caption"
    monitor = ("val/CIDEr-D", "max")

    def __init__(
        self,
        data: str,
        model: str = "show-attend-tell",
        weights: str | None = None,
        encoder: str = "smallcnn",
        encoder_weights: str | None = None,
        freeze_encoder: bool = False,
        img_size: int | None = None,
        min_count: int = 2,
        max_len: int = 20,
        max_sentences: int = 6,
        attention_weight: float = 1.0,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.data_spec, self.model_name, self.weights = str(data), model, weights
        self.encoder, self.encoder_weights, self.freeze_encoder = encoder, encoder_weights, freeze_encoder
        self.img_size, self.min_count, self.max_len, self.max_sentences = (
            img_size,
            min_count,
            max_len,
            max_sentences,
        )
        self.attention_weight = attention_weight
        self.model_kwargs = dict(model_kwargs or {})
        self.last_eval: dict[str, float] | None = None
        self.last_samples: list[tuple[str, str, str]] = []

    def setup(self, cfg, rt: Runtime) -> None:
        info = get_model_info(self.model_name)
        if info.task != "caption":
            raise MMKitError(f"--model {self.model_name}: a {info.task} model, not a captioner")
        get_model_info(self.encoder)  # an unknown encoder fails here, before the data is read
        w = get_weights(self.encoder, self.encoder_weights) if self.encoder_weights else None
        self.data: CaptionData = load_caption_data(self.data_spec, seed=cfg.seed)
        img = self.img_size or (
            w.input_size if w else (self.data.image_size or _natural_size(self.data.train))
        )
        mean, std = (list(w.mean), list(w.std)) if w else (DEFAULT_MEAN, DEFAULT_STD)
        paragraph = self.model_name not in SENTENCE_MODELS
        texts = [p for it in self.data.train for p in _texts(it, paragraph)]
        self.vocab = Vocabulary.build([tokenize(t) for t in texts], min_count=self.min_count)
        kwargs = {"encoder": self.encoder, **self.model_kwargs}
        if paragraph:
            kwargs.setdefault("s_max", self.max_sentences)
        build = dict(kwargs, encoder_weights=self.encoder_weights, freeze_encoder=self.freeze_encoder)
        self.model = get_model(self.model_name, len(self.vocab), weights=self.weights, **build)
        self.meta = CaptionMeta(
            self.model_name,
            self.vocab.to_dict(),
            img,
            mean,
            std,
            self.max_len,
            self.max_sentences,
            self.data_spec,
            kwargs,  # without encoder_weights: a checkpoint holds the trained encoder itself
        )
        mode = "paragraph" if paragraph else "sentence"
        tf = SquareResize(img)
        common = dict(transform=tf, max_len=self.max_len, mode=mode, max_sentences=self.max_sentences)
        self.train_ds = CaptionDataset(self.data.train, self.vocab, train=True, **common)
        self.val_items = self.data.val
        self.val_ds = CaptionDataset(self.data.val, self.vocab, train=False, **common)
        self.norm = BatchTransform(False, mean, std, out_channels=3)
        if rt.is_main:
            sizes = self.data.sizes()
            log.info(
                "%s: %d train / %d val images; vocabulary %d words (min count %d); %s on %s at %dpx",
                self.data.name,
                sizes["train"],
                sizes["val"],
                len(self.vocab),
                self.min_count,
                self.model_name,
                self.encoder,
                img,
            )

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def train_dataset(self):
        return self.train_ds

    def val_dataset(self):
        return self.val_ds

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
            (str(self.val_items[i].image_id), merged[i], _texts(self.val_items[i], self.meta.paragraph)[0])
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


def _texts(item, paragraph: bool) -> list[str]:
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

    refs = {i: _texts(items[i], paragraph) for i in hyps}
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


def load_captioner(weights: str | os.PathLike, device="cpu") -> tuple[nn.Module, CaptionMeta, Vocabulary]:
    path = Path(weights)
    if not path.is_file():
        raise MMKitError(f"{path}: no such weights file")
    ck = load_checkpoint(path)
    if ck.get("task") != "caption":
        raise MMKitError(f"{path}: a {ck.get('task')} checkpoint, not a captioner")
    meta = CaptionMeta(**ck["meta"])
    vocab = Vocabulary.from_dict(meta.vocab)
    net = get_model(meta.model, len(vocab), **meta.model_kwargs)
    try:
        net.load_state_dict(ck["model"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise MMKitError(f"{path}: weights do not fit {meta.model} as this mmkit builds it ({first})") from e
    return net.to(device).eval(), meta, vocab


def evaluate(
    weights: str,
    data: str,
    *,
    beam: int = 3,
    split: str = "test",
    batch_size: int = 64,
    device: str = "auto",
    out: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """BLEU-1..4 and CIDEr-D (COCO caption evaluation; BLEU 0-1, CIDEr-D as coco-caption reports it) on a split of
    `data`; writes metrics.json and captions.json (the COCO results format: image_id, caption)."""
    dev = select_device(device)
    net, meta, vocab = load_captioner(weights, dev)
    d = load_caption_data(data)
    items = {"test": d.test, "val": d.val, "train": d.train}.get(split)
    if items is None:
        raise MMKitError(f"--split {split}: choose test, val or train")
    if not items:
        items, split = d.val, "val"
    if not items:
        raise MMKitError(f"{data}: no {split} images to evaluate")
    mode = "paragraph" if meta.paragraph else "sentence"
    ds = CaptionDataset(
        items,
        vocab,
        transform=SquareResize(meta.img_size),
        max_len=meta.max_len,
        mode=mode,
        max_sentences=meta.max_sentences,
        train=False,
    )
    norm = BatchTransform(False, meta.mean, meta.std, out_channels=3).to(dev)
    hyps: dict[int, str] = {}
    for batch in DataLoader(ds, batch_size=batch_size, collate_fn=collate_skip_none):
        if batch is None:
            continue
        texts = decode_batch(net, meta, vocab, norm(batch[0].to(dev)), beam=beam)
        hyps.update(zip(batch[-1].tolist(), texts, strict=True))
    m = score_items(items, hyps, meta.paragraph)
    out_dir = Path(out) if out is not None else next_run_dir("runs", "caption", "eval", False)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "weights": str(weights),
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
    weights: str,
    images: list[str],
    *,
    beam: int = 3,
    device: str = "auto",
    save_dir: str | os.PathLike | None = None,
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """A caption (or paragraph) per image; with `save_dir`, each image with its caption and, for attention models,
    the attention map of every word drawn over it. Unreadable images are returned as (path, reason) failures."""
    dev = select_device(device)
    net, meta, vocab = load_captioner(weights, dev)
    tf = SquareResize(meta.img_size)
    norm = BatchTransform(False, meta.mean, meta.std, out_channels=3).to(dev)
    results, failures = [], []
    out_dir = Path(save_dir) if save_dir is not None else None
    for path in images:
        try:
            img = read_image(path)
        except MMKitError as e:
            failures.append((path, str(e)))
            continue
        x = norm(tf(img)[None].to(dev))
        r: dict[str, Any] = {"image": str(path)}
        if meta.paragraph:
            r["caption"] = decode_batch(net, meta, vocab, x, beam=beam)[0]
        else:
            text, cap = decode_batch(net, meta, vocab, x, beam=beam, attention=True)[0]
            r["caption"], r["score"] = text, round(float(cap.score), 4)
            if out_dir is not None:
                from mmkit.report.captions import draw_caption

                words = [vocab.decode([t]) for t in cap.tokens]
                r["picture"] = str(
                    draw_caption(img, text, words, cap.attention, cap.grid, out_dir, Path(path).stem)
                )
        if out_dir is not None and "picture" not in r:
            from mmkit.report.captions import draw_caption

            r["picture"] = str(draw_caption(img, r["caption"], [], None, None, out_dir, Path(path).stem))
        results.append(r)
    return results, failures
