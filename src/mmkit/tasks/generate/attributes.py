"""The attribute check of text-to-image models on `caption-scenes`: does a generated image hold what its prompt
names?

A reader (a smallcnn with 22 sigmoid outputs, on images pooled to 32 px) learns from 20,000 real training scenes
(`caption-scenes-large`) which colours (6), sizes (2), forms (circle, square, triangle, digit) and digits (0-9) an
image holds: the sets its objects have. A generated image matches its prompt on an attribute when the set the reader
reads equals the set the caption names (every object of a caption-scenes caption is named with its colour and
size). Checked: colour, size, form, and kind (which shapes and which digits exactly); "all" is colour, size and form
together, the digits apart: at 32 px the reader tells one small digit from another in too few real scenes for them
to make a ceiling (bench/README.md).

`check` reports the share of matches of a model's samples for the test captions (`scene_prompts`, drawn by
`draw_prompts`), beside the reader on the real test images (the ceiling: what the reader gets right) and on the real
images against other scenes' captions (the floor: agreement by chance). `mmkit generate eval` on a text-to-image
model runs it (with FID in the reader's features, `reader_features`), as does
`mmkit.tasks.generate.predictor.attribute_check` (a checkpoint's check alone):

    reader = attribute_reader(cache, "cpu")           # trained once (READER_EPOCHS), cached like the FID network
    prompts = scene_prompts()
    r = check(reader, draw_prompts(net, meta, prompts.captions), prompts)
    r["generated"]["all"], r["real"]["all"], r["other_captions"]["all"]
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from mmkit.data.captions import load_caption_data
from mmkit.data.generation import to_signed, to_uint8
from mmkit.data.synthetic_captions import COLORS, SHAPES, SIZES, SceneSpec
from mmkit.engine import Task, load_checkpoint
from mmkit.metrics.generation import NetworkFeatures
from mmkit.models import get_model
from mmkit.tasks.generate.common import GenerateMeta

log = logging.getLogger(__name__)

DIGITS = tuple(str(d) for d in range(10))

DATA = "caption-scenes"
# the reader trains on the same scenes, 20,000 of them (its val and the test are caption-scenes')
READER_DATA = "caption-scenes-large"
# The reader's outputs: the colours, sizes, forms (each shape, or a digit) and digits a scene holds (22, in order)
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "colour": tuple(COLORS),
    "size": SIZES,
    "form": (*SHAPES, "digit"),
    "digit": DIGITS,
}
OUTPUTS = [value for values in ATTRIBUTES.values() for value in values]
CHECKS = ("colour", "size", "form", "kind")  # kind: which shape or which digit (the sets of both)
READER_EPOCHS = 4
READER_SIZE = 32  # the reader sees images average-pooled to this side (objects 5-10 px tall)
READER = dict(num_classes=len(OUTPUTS), in_chans=3, pool_size=3)  # smallcnn's options


def scene_targets(specs: list[SceneSpec]) -> torch.Tensor:
    """Multi-hot [N, 22]: the colours, sizes, forms and digits of each scene's objects (`OUTPUTS` order)."""
    index = {value: i for i, value in enumerate(OUTPUTS)}
    y = torch.zeros(len(specs), len(OUTPUTS))
    for row, spec in enumerate(specs):
        for obj in spec.objects:
            digit = obj.kind in DIGITS
            y[row, [index[obj.color], index[obj.size], index["digit" if digit else obj.kind]]] = 1
            if digit:
                y[row, index[obj.kind]] = 1
    return y


def matches(read: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per image [N] (bool): whether the set read equals the target set, per attribute (CHECKS: kind is the shapes
    and the digits), and for colour, size and form together ("all")."""
    sizes = [len(v) for v in ATTRIBUTES.values()]
    r, t = (dict(zip(ATTRIBUTES, x.bool().split(sizes, dim=1), strict=True)) for x in (read, target))
    out = {k: (r[k] == t[k]).all(1) for k in ("colour", "size", "form")}
    shapes = slice(0, len(SHAPES))
    out["kind"] = (r["form"][:, shapes] == t["form"][:, shapes]).all(1) & (r["digit"] == t["digit"]).all(1)
    out["all"] = out["colour"] & out["size"] & out["form"]
    return out


def shares(read: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """The share of images matching their target, per attribute and for all three."""
    return {k: float(v.float().mean()) for k, v in matches(read, target).items()}


@torch.no_grad()
def read_attributes(reader: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """What the reader sees in images [N, 3, 64, 64] in [-1, 1]: bool [N, 22] (sigmoid > 0.5)."""
    dev = next(reader.parameters()).device
    reader.eval()
    out = [reader(images[i : i + batch_size].to(dev)).cpu() > 0 for i in range(0, len(images), batch_size)]
    return torch.cat(out)


@functools.lru_cache(maxsize=2)
def _scene_data(data: str):
    """caption-scenes (or its large variant), drawn once per process: every load draws all its in-memory scenes."""
    return load_caption_data(data)


def _scenes(split: str, data: str = DATA) -> tuple[Any, torch.Tensor]:
    """`split` of caption-scenes (or its large variant): the scenes and their uint8 images [N, 3, 64, 64]."""
    scenes = _scene_data(data).split(split)
    images = torch.stack([torch.from_numpy(scenes.image(i)).permute(2, 0, 1) for i in range(len(scenes))])
    return scenes, images


def _reader() -> nn.Module:
    """Images [N, 3, 64, 64] in [-1, 1], average-pooled to READER_SIZE -> smallcnn -> 22 logits."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(READER_SIZE), get_model("smallcnn", **READER))


class AttributeReaderTask(Task):
    """The reader's training: caption-scenes-large's 20,000 train images (drawn once, kept in memory), multi-label BCE;
    monitored on caption-scenes' val images (all three attributes matching)."""

    name = "generate-attributes"
    monitor = ("val/all", "max")

    def setup(self, cfg, rt) -> None:
        self.net = _reader()
        for split in ("train", "val"):
            scenes, images = _scenes(split, READER_DATA if split == "train" else DATA)
            ds = TensorDataset(images, scene_targets([scenes.spec(i) for i in range(len(scenes))]))
            setattr(self, f"{split}_ds", ds)

    def loss(self, model, batch):
        x, y = batch
        return F.binary_cross_entropy_with_logits(model(to_signed(x)), y), {}

    @torch.no_grad()
    def evaluate(self, model, loader, rt):
        model.eval()
        read, target = [], []
        for x, y in loader:
            read.append(model(to_signed(x.to(rt.device))).cpu() > 0)
            target.append(y)
        return {f"val/{k}": v for k, v in shares(torch.cat(read), torch.cat(target)).items()}

    def checkpoint_meta(self) -> dict[str, Any]:
        return {"outputs": OUTPUTS, "size": READER_SIZE, **READER}


def attribute_reader(cache: Path, device="cpu") -> nn.Module:
    """The reader, trained once on caption-scenes (READER_EPOCHS) and kept in the feature-network cache `cache`
    (``$MMKIT_HOME/feature-nets``, as ``caption-scenes-attributes``)."""
    from mmkit.engine import TrainConfig, Trainer

    ckpt = cache / f"{DATA}-attributes" / "best.pt"
    if not ckpt.is_file():
        log.info("training the attribute reader (smallcnn, %d epochs) -> %s", READER_EPOCHS, ckpt)
        cfg = TrainConfig(
            task="generate-attributes", name=DATA, project=str(cache.parent), epochs=READER_EPOCHS,
            batch_size=64, lr=2e-3, device=str(device), exist_ok=True,
        )  # fmt: skip
        with torch.enable_grad():
            fit = Trainer(AttributeReaderTask(), cfg, progress=False).fit()
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        os.replace(fit.run_dir / "best.pt", ckpt)
    reader = _reader()
    reader.load_state_dict(load_checkpoint(ckpt)["model"])
    return reader.to(device).eval()


def reader_features(reader: nn.Module) -> NetworkFeatures:
    """The reader as FID/KID's feature network (its pre-logits), on images quantised to 8 bits as real ones are."""
    name = f"smallcnn attribute reader trained on {READER_DATA} (mmkit, cached)"
    return NetworkFeatures(reader, lambda x: to_signed(to_uint8(x)), name)


@dataclass
class Prompts:
    """caption-scenes' test scenes as prompts: scene i's caption i mod 5, the multi-hot [n, 22] of what it names
    (`scene_targets`) and the scene's real image [n, 3, 64, 64] in [-1, 1]."""

    captions: list[str]
    targets: torch.Tensor
    real: torch.Tensor


def scene_prompts(n: int | None = None) -> Prompts:
    """The first `n` (default all 300) test scenes of caption-scenes as `Prompts`."""
    scenes, real = _scenes("test")
    n = len(scenes) if n is None else min(n, len(scenes))
    targets = scene_targets([scenes.spec(i) for i in range(n)])
    return Prompts([scenes[i].captions[i % 5] for i in range(n)], targets, to_signed(real[:n]))


@torch.no_grad()
def draw_prompts(
    net: nn.Module,
    meta: GenerateMeta,
    captions: list[str],
    samples: int = 1,
    seed: int = 0,
    batch_size: int = 100,
) -> torch.Tensor:
    """`samples` images in [-1, 1] of each caption (all captions once, then again, ...) from a text-to-image model,
    its noise drawn from `seed`; on the CPU."""
    from mmkit.tasks.generate.text2image import encode_captions

    dev = next(net.parameters()).device
    tokens = encode_captions(meta, captions).repeat(samples, 1)
    z = torch.randn(len(tokens), net.latent_dim, generator=torch.Generator().manual_seed(seed))
    batches = zip(tokens.split(batch_size), z.split(batch_size), strict=True)
    return torch.cat([net.sample(len(t), t.to(dev), z=zz.to(dev)).cpu() for t, zz in batches])


def check(reader: nn.Module, fake: torch.Tensor, prompts: Prompts, seed: int = 0) -> dict[str, Any]:
    """The share of matches (per attribute and all three) of the images `fake` drawn for the prompts (as
    `draw_prompts` orders them), of the real test images (ceiling), and of the real images against a random other
    scene's caption (floor, that scene drawn from `seed`); and generated / ceiling."""
    n = len(prompts.captions)
    read_real = read_attributes(reader, prompts.real)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    other = torch.empty(n, dtype=torch.long)
    other[order] = order.roll(1)  # a random other scene for each (no scene its own)
    result = {
        "captions": n,
        "images": len(fake),
        "generated": shares(read_attributes(reader, fake), prompts.targets.repeat(len(fake) // n, 1)),
        "real": shares(read_real, prompts.targets),
        "other_captions": shares(read_real, prompts.targets[other]),
    }
    result["of_ceiling"] = {k: v / max(result["real"][k], 1e-9) for k, v in result["generated"].items()}
    return result
