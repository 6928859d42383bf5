"""`face`'s training options, declared once (the CLI, config.yaml and `FaceTask` read them), and its recipes."""

from __future__ import annotations

from dataclasses import dataclass

from mmkit.options import Recipes, model_args_option, option

LOSSES = ("triplet", "arcface", "softmax")
MINING = ("semihard", "hard", "all")


@dataclass
class FaceOptions:
    data: str = option(
        "",
        "--data",
        "-d",
        help="synthetic-faces(-large), a folder from `mmkit data synth identities`, or person folders.",
    )
    model: str = option("facenet-light", "--model", "-m", help="facenet-light | facenet")
    weights: str | None = option(
        None, "--weights", "-w", help="Start from weights (a file or vggface2 for facenet)."
    )
    img_size: int | None = option(None, help="Face crop size (default: the model's, 64 or 160).")
    embedding_dim: int = option(128, help="Embedding width.")
    # `loss_type`, not `loss`: a field named `loss` would hide the engine's `Task.loss` method
    loss_type: str = option(
        "triplet", "--loss", help="triplet (online mining over P people x K faces) | arcface | softmax"
    )
    margin: float | None = option(None, help="Triplet margin (0.2) or ArcFace angular margin (0.5).")
    mining: str = option("semihard", help="semihard | hard | all")
    images_per_person: int = option(
        4, "--images-per-person", "-k", help="K faces of each person in a triplet batch."
    )
    augment: bool = option(True, "--augment/--no-augment", help="Random shifts and horizontal flips.")
    model_kwargs: dict = model_args_option()
    flip_test: bool = option(
        True,
        "--flip-test/--no-flip-test",
        help="Embed each face with its mirror image (validation, gallery).",
    )


# bench/face_quality.py's recipe (95.1 % 10-fold accuracy on held-out people after training on synthetic-faces-large;
# lr 1e-2 also beat 3e-3 on the 240 people of synthetic-faces, see bench/README.md): `mmkit face train --data
# synthetic-faces-large` with no other flag runs it. The crop size is left to the model (facenet-light: 64 px).
_BENCH = dict(
    model="facenet-light", embedding_dim=128, loss_type="triplet", mining="semihard", images_per_person=4,
    epochs=20, batch_size=128, lr=1e-2, optimizer="adamw", weight_decay=5e-4, schedule="cosine", warmup=1.0,
)  # fmt: skip

RECIPES = Recipes(
    # what `mmkit face train` used before recipes were data (folders and unknown names get these)
    defaults=dict(epochs=20, batch_size=128, lr=3e-3, weight_decay=5e-4, warmup=1.0),
    by_data={"synthetic-faces": _BENCH, "synthetic-faces-large": _BENCH},
)
