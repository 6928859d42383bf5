"""Generation as the engine trains it: three families, each its own Task, picked by the model's name.

    task = make_task(data="fashion-mnist", model="dcgan")    # a GANTask; then Trainer(task, cfg).fit()
    task = make_task(data="photo-sr", model="lapsrn")        # a RestorationTask

`MODEL_FAMILY` is the one place that maps model names to families; a family's own `MODELS` table holds each
model's settings (conditional, its critic and optimizer, losses, super-resolution, ...).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mmkit.errors import MMKitError
from mmkit.models.translation import tiled
from mmkit.tasks.generate.common import GenerateFamily, GenerateMeta, ImageToImage, ModelSpec
from mmkit.tasks.generate.gan import GANTask
from mmkit.tasks.generate.lapgan import LAPGANTask
from mmkit.tasks.generate.options import TILE, GenerateOptions
from mmkit.tasks.generate.progan import ProGANTask
from mmkit.tasks.generate.restoration import RestorationTask
from mmkit.tasks.generate.text2image import Text2ImageTask
from mmkit.tasks.generate.translation import TranslationTask

MODEL_FAMILY: dict[str, type[GenerateFamily]] = {
    "gan": GANTask,
    "dcgan": GANTask,
    "wgan": GANTask,
    "wgan-gp": GANTask,
    "cgan": GANTask,
    "acgan": GANTask,
    "lapgan": LAPGANTask,
    "cc-lapgan": LAPGANTask,
    "progan": ProGANTask,
    "pix2pix": TranslationTask,
    "cyclegan": TranslationTask,
    "discogan": TranslationTask,
    "dualgan": TranslationTask,
    "lapsrn": RestorationTask,
    "rednet": RestorationTask,
    "gan-int-cls": Text2ImageTask,
    "stackgan": Text2ImageTask,
}


def family_of(model: str) -> type[GenerateFamily]:
    """The Task class that trains generation model `model`."""
    if model not in MODEL_FAMILY:
        raise MMKitError(f"--model {model}: not a generation model (one of {', '.join(MODEL_FAMILY)})")
    return MODEL_FAMILY[model]


def model_spec(model: str) -> ModelSpec:
    """What `model` trains on and what `mmkit generate <verb>` does with it."""
    return family_of(model).MODELS[model]


def make_task(
    data: str = GenerateOptions.data, model: str = GenerateOptions.model, **options: Any
) -> GenerateFamily:
    """The family Task of `model`, with the options of `mmkit generate train` (the CLI's factory)."""
    return family_of(model)(data=data, model=model, **options)


# The name scripts used when generation was one class: `GenerateTask(data=..., model=...)` builds the family's task.
GenerateTask = make_task


def build_generator(meta: GenerateMeta) -> nn.Module:
    """The registered model that `meta` describes (untrained)."""
    return family_of(meta.model).build(meta)


def translate_batch(model: nn.Module, meta: GenerateMeta, a: torch.Tensor) -> torch.Tensor:
    """The model's output in [-1, 1] for inputs a in [-1, 1] (pix2pix, the unpaired models' A→B, LapSRN's last
    level, RED-Net), at any height and width (the translation generators pad to the multiple they need)."""
    family = family_of(meta.model)
    if not issubclass(family, ImageToImage):
        raise MMKitError(f"{meta.model}: draws images from noise; it does not translate inputs")
    return family.translate(model, meta, a)


def translate_image(
    model: nn.Module, meta: GenerateMeta, a: torch.Tensor, tile: int = TILE, overlap: int | None = None
) -> torch.Tensor:
    """`translate_batch` on images of any size at their own size: in one go when both sides are at most `tile`
    px, else on overlapping tiles blended together (`mmkit.models.translation.tiled`; `overlap` default tile // 4),
    so that a large image needs no more memory than a tile. CycleGAN's InstanceNorm then normalises each tile by its
    own statistics: the tiles come near the whole image's result, not to it, hence a default tile (1024 px) that
    keeps ordinary photos whole."""
    return tiled(lambda x: translate_batch(model, meta, x), a, tile, overlap)
