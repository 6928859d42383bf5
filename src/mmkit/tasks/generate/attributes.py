"""The attribute check of text-to-image models on `caption-scenes`: does a generated image hold what its prompt
names?

A reader (a smallcnn with 22 sigmoid outputs, on images pooled to 32 px) learns from 20,000 real training scenes
(`caption-scenes-large`) which colours (6), sizes (2), forms (circle, square, triangle, digit) and digits (0-9) an
image holds: the sets its objects have. A generated image matches its prompt on an attribute when the set the reader
reads equals the set the caption names (every object of a caption-scenes caption is named with its colour and
size). Checked: colour, size, form, and kind (which shapes and which digits exactly); "all" is colour, size and form
together, the digits apart: at 32 px the reader tells one small digit from another in too few real scenes for them
to make a ceiling (bench/README.md).

`attribute_check` reports the share of matches of a model's samples for the test captions, beside the reader on
the real test images (the ceiling: what the reader gets right) and on the real images against other scenes'
captions (the floor: agreement by chance).

    reader = attribute_reader("cpu")                  # trained once (READER_EPOCHS), cached like the FID network
    r = attribute_check("runs/generate/stackgan/last.pt")
    r["generated"]["all"], r["real"]["all"], r["other_captions"]["all"]
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from mmkit.data.captions import load_caption_data
from mmkit.data.generation import to_signed
from mmkit.data.synthetic_captions import COLORS, SHAPES, SIZES, SceneSpec
from mmkit.engine import Task, load_checkpoint
from mmkit.errors import MMKitError
from mmkit.models import get_model

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


def _scenes(split: str, data: str = DATA) -> tuple[Any, torch.Tensor]:
    """`split` of caption-scenes (or its large variant): the scenes and their uint8 images [N, 3, 64, 64]."""
    scenes = load_caption_data(data).split(split)
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


def attribute_reader(device="cpu") -> nn.Module:
    """The reader, trained once on caption-scenes (READER_EPOCHS) and kept in the feature-network cache
    (``$MMKIT_HOME/feature-nets/caption-scenes-attributes``)."""
    from mmkit.engine import TrainConfig, Trainer
    from mmkit.tasks.generate.predictor import _cache_dir as cache_dir

    ckpt = cache_dir() / f"{DATA}-attributes" / "best.pt"
    if not ckpt.is_file():
        log.info("training the attribute reader (smallcnn, %d epochs) -> %s", READER_EPOCHS, ckpt)
        cfg = TrainConfig(
            task="generate-attributes", name=DATA, project=str(cache_dir().parent), epochs=READER_EPOCHS,
            batch_size=64, lr=2e-3, device=str(device), exist_ok=True,
        )  # fmt: skip
        with torch.enable_grad():
            fit = Trainer(AttributeReaderTask(), cfg, progress=False).fit()
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        os.replace(fit.run_dir / "best.pt", ckpt)
    reader = _reader()
    reader.load_state_dict(load_checkpoint(ckpt)["model"])
    return reader.to(device).eval()


@torch.no_grad()
def attribute_check(
    weights: str | os.PathLike, *, samples: int = 1, seed: int = 0, device: str = "cpu", batch_size: int = 100
) -> dict[str, Any]:
    """The share of matches (per attribute and all three) of a text-to-image model's images for caption-scenes'
    test captions (scene i: its caption i mod 5; `samples` images each), of the real test images (ceiling), and of
    the real images against a random other scene's caption (floor); and generated / ceiling."""
    from mmkit.tasks.generate.predictor import GeneratorPredictor
    from mmkit.tasks.generate.text2image import encode_captions

    p = GeneratorPredictor.load(weights, device=device)
    if not p.meta.vocab:
        raise MMKitError(f"{weights}: a {p.meta.model} model does not draw from text")
    reader = attribute_reader(p.device)
    scenes, real = _scenes("test")
    n = len(scenes)
    target = scene_targets([scenes.spec(i) for i in range(n)])
    tokens = encode_captions(p.meta, [scenes[i].captions[i % 5] for i in range(n)]).repeat(samples, 1)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(len(tokens), p.net.latent_dim, generator=g)
    batches = zip(tokens.split(batch_size), z.split(batch_size), strict=True)
    fake = torch.cat([p.net.sample(len(t), t, z=zz).cpu() for t, zz in batches])
    read_real = read_attributes(reader, to_signed(real))
    order = torch.randperm(n, generator=g)
    other = torch.empty(n, dtype=torch.long)
    other[order] = order.roll(1)  # a random other scene for each (no scene its own)
    result = {
        "weights": str(weights),
        "model": p.meta.model,
        "captions": n,
        "images": len(fake),
        "generated": shares(read_attributes(reader, fake), target.repeat(samples, 1)),
        "real": shares(read_real, target),
        "other_captions": shares(read_real, target[other]),
    }
    result["of_ceiling"] = {k: v / max(result["real"][k], 1e-9) for k, v in result["generated"].items()}
    return result
