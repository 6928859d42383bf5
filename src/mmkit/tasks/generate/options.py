"""`generate`'s options, declared once (the CLI, config.yaml and the family tasks read them), and its recipes.

`mmkit generate train` is one command for the three families (GANs, translation, restoration), so the options of
every family are here; each family reads its own (the GAN ones are ignored by pix2pix, and so on).
"""

from __future__ import annotations

from dataclasses import dataclass

from mmkit.options import Recipes, model_args_option, option

GAN, TRANSLATION, PHOTOS = "GANs", "Translation", "Photo sets"


@dataclass
class GenerateOptions:
    data: str = option(
        "",
        "--data",
        "-d",
        help="fashion-mnist | mnist5k | digits | photo-edges | photo-colorize | photo-denoise | photo-deblur | "
        "photo-sr | digits-fashion | day-tinted, or a folder (images; A|B or A/ B/ pairs; trainA/ trainB/).",
    )
    model: str = option(
        "dcgan",
        "--model",
        "-m",
        help="gan | dcgan | wgan-gp | cgan | acgan | pix2pix | cyclegan | lapsrn | rednet",
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
    n_critic: int = option(5, help="WGAN-GP: critic steps per generator step.", panel=GAN)
    mode_seeking: float | None = option(
        None,
        help="cgan/acgan: weight of the mode-seeking loss (MSGAN) against ignoring z; 0: off "
        "(default: 1 for cgan, 0.3 for acgan).",
        panel=GAN,
    )
    lambda_l1: float = option(100.0, help="pix2pix: weight of the L1 loss.", panel=TRANSLATION)
    lambda_cycle: float = option(10.0, help="CycleGAN: cycle loss weight.", panel=TRANSLATION)
    lambda_identity: float = option(
        0.5, help="CycleGAN: identity loss weight, times --lambda-cycle.", panel=TRANSLATION
    )
    model_kwargs: dict = model_args_option()


# `defaults` were the train command's engine overrides (the papers' constant lr 2e-4, no weight decay, no clipping;
# GANs and translation build Adam with their papers' betas themselves, --optimizer applies to LapSRN and RED-Net).
# Per builtin: the README's commands and bench/generate_quality.py's settings (bench/README.md), so that
# `mmkit generate train --data <builtin>` with no other flag trains the model the set is made for, as measured.
RECIPES = Recipes(
    defaults=dict(lr=2e-4, weight_decay=0.0, schedule="constant", grad_clip=0.0),
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
    },
)  # fmt: skip
