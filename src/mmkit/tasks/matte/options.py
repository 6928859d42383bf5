"""`matte`'s options, declared once (the CLI, config.yaml and `MatteTask` read them), and its recipes."""

from __future__ import annotations

from dataclasses import dataclass

from mmkit.options import Recipes, model_args_option, option

BUILTIN = "matting-composites"


@dataclass
class MatteOptions:
    data: str = option(
        BUILTIN,
        "--data",
        "-d",
        help=f"{BUILTIN} (synthetic composites with an exact alpha), or a matting folder "
        "(train/ and test/, each with images/, alphas/ and optional trimaps/).",
    )
    model: str = option("dim-small", "--model", "-m", help="Matting model (`mmkit models list`).")
    img_size: int = option(64, help="Training crop size (the builtin draws its train items at this size).")
    train_size: int = option(2000, help=f"Training composites drawn from {BUILTIN} (drawn on access).")
    alpha_weight: float = option(
        0.5, help="Weight of the alpha-prediction loss; the compositional loss gets 1 - it."
    )
    model_kwargs: dict = model_args_option()


# The recipe of bench/matte_quality.py: `mmkit matte train --data matting-composites` with no other flag reaches it.
RECIPES = Recipes(
    defaults=dict(epochs=6, batch_size=32, lr=3e-3, optimizer="adamw", weight_decay=1e-4, schedule="onecycle"),
    by_data={
        BUILTIN: dict(
            model="dim-small", img_size=64, train_size=2000, epochs=6, batch_size=32, lr=3e-3,
            optimizer="adamw", weight_decay=1e-4, schedule="onecycle",
        ),
    },
)  # fmt: skip
