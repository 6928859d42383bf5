"""`generate`'s options, declared once (the CLI, config.yaml and the family tasks read them), and its recipes.

`mmkit generate train` is one command for the three families (GANs, translation, restoration), so the options of
every family are here; each family reads its own (the GAN ones are ignored by pix2pix, and so on).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mmkit.options import Recipes, model_args_option, option

GAN, TRANSLATION, PHOTOS = "GANs", "Translation", "Photo sets"
TILE = 1024  # translate/restore/upscale: images with a side over this run in overlapping tiles of this side


@dataclass
class GenerateOptions:
    data: str = option(
        "",
        "--data",
        "-d",
        help="fashion-mnist | mnist5k | digits | synthetic-faces | photo-edges | photo-colorize | photo-denoise | photo-deblur | "
        "photo-sr | digits-fashion | day-tinted | caption-scenes (text to image), or a folder (images; A|B or A/ B/ "
        "pairs; trainA/ trainB/; captions for text to image).",
    )
    model: str = option(
        "dcgan",
        "--model",
        "-m",
        help="gan | dcgan | wgan | wgan-gp | cgan | acgan | lapgan | cc-lapgan | progan | pix2pix | cyclegan | discogan | dualgan | lapsrn | rednet "
        "| gan-int-cls | stackgan",
    )
    weights: str | None = option(None, "--weights", "-w", help="Start from a checkpoint.")
    img_size: int | None = option(None, help="Resize builtin images / crop size of photo sets / folders.")
    crops: int = option(
        4000,  # mmkit.data.generation.DEFAULT_PHOTO_CROPS (not imported: that module loads torch)
        help="Photo sets: training crops per epoch (random, drawn on access).",
        panel=PHOTOS,
        min=1,
    )
    latent_dim: int = option(100, help="GANs: noise dimensions.", panel=GAN)
    n_critic: int = option(
        5, help="WGAN, WGAN-GP, DualGAN: critic steps per generator step.", panel=GAN, min=1
    )
    weight_clip: float = option(
        0.01,
        help="WGAN, DualGAN: the critic's weights are clipped to [-c, c] after each of its steps.",
        panel=GAN,
    )
    mode_seeking: float | None = option(
        None,
        help="cgan/acgan: weight of the mode-seeking loss (MSGAN) against ignoring z; 0: off "
        "(default: 1 for cgan, 0.3 for acgan).",
        panel=GAN,
    )
    phase_images: int = option(
        20000,
        help="ProGAN: training images per phase of its growth (the first level, then each next level's fade-in "
        "and its training at full weight).",
        panel=GAN,
        min=1,
    )
    lambda_l1: float = option(100.0, help="pix2pix: weight of the L1 loss.", panel=TRANSLATION)
    lambda_cycle: float | None = option(
        None,
        help="CycleGAN, DiscoGAN, DualGAN: weight of the cycle (reconstruction) loss "
        "(default: the papers' 10, 1 and 100).",
        panel=TRANSLATION,
    )
    lambda_identity: float = option(
        0.5, help="CycleGAN: identity loss weight, times --lambda-cycle.", panel=TRANSLATION
    )
    model_kwargs: dict = model_args_option()


@dataclass(frozen=True)
class ModelRecipes(Recipes):
    """`Recipes` with one more layer, by model, between `defaults` and a builtin's recipe: a model's paper settings
    whatever the data (the builtin's recipe, when tuned for that model, still wins)."""

    by_model: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def for_data(self, data: str | None, model: str | None = None) -> dict[str, Any]:
        chosen = model or (self.by_data.get(str(data), {}).get("model") if data else None)
        own = self.by_model.get(chosen, {}) if chosen else {}
        return Recipes({**self.defaults, **own}, self.by_data).for_data(data, model)


# `defaults` were the train command's engine overrides (the papers' constant lr 2e-4, no weight decay, no clipping;
# GANs and translation build their papers' optimizers themselves (Adam and its betas, or RMSprop), --optimizer
# applies to LapSRN and RED-Net). `by_model`: a model's paper settings on any data.
# Per builtin: the README's commands and bench/generate_quality.py's settings (bench/README.md), so that
# `mmkit generate train --data <builtin>` with no other flag trains the model the set is made for, as measured.
RECIPES = ModelRecipes(
    defaults=dict(lr=2e-4, weight_decay=0.0, schedule="constant", grad_clip=0.0),
    # the papers' RMSprop learning rate beside a clipped critic (Arjovsky et al. 2017; Yi et al. 2017)
    by_model={"wgan": dict(lr=5e-5, optimizer="rmsprop"), "dualgan": dict(lr=5e-5, optimizer="rmsprop"),
              "progan": dict(lr=1e-3)},  # Karras et al.'s Adam lr
    by_data={
        # DCGAN, 5 epochs, batch 64: FID 7.20 against the naive generator's 41.32
        "fashion-mnist": dict(model="dcgan", epochs=5, batch_size=64),
        # LapSRN x4, 20,000 fresh crops an epoch: +1.30 dB over bicubic
        "photo-sr": dict(
            model="lapsrn", epochs=4, crops=20000, lr=1e-3, optimizer="adam", schedule="cosine", batch_size=16,
        ),
        # the demo's AC-GAN: readable digits, one column per class, in 15 epochs
        "mnist5k": dict(model="acgan", epochs=15, batch_size=64),
        "photo-edges": dict(model="pix2pix", epochs=10),
        "photo-denoise": dict(model="rednet", epochs=10, lr=1e-3),
        # the model each remaining set is made for (no tuned settings measured)
        "photo-colorize": dict(model="pix2pix"),
        "photo-deblur": dict(model="rednet"),
        "digits-fashion": dict(model="cyclegan"),
        "day-tinted": dict(model="cyclegan"),
        # text to image: StackGAN, 6 epochs of the 3,000 scenes at batch 32 (a few CPU minutes; bench/text2image.py)
        "caption-scenes": dict(model="stackgan", epochs=6, batch_size=32),
        # ProGAN grown 4 -> 64 px on a CPU budget: 900 images a phase (the paper's 800,000), full size after 8,100
        # of the 8,640 images of 3 epochs (bench/pyramid_gans.py)
        "synthetic-faces": dict(model="progan", epochs=3, batch_size=16, phase_images=900),
    },
)  # fmt: skip
