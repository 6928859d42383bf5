"""`mmkit matte train|eval|predict|export`: options parsed here, the work done by the task's predictor."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmkit.cli import common as c
from mmkit.tasks.matte.options import BUILTIN, MatteOptions

app = typer.Typer(no_args_is_help=True)  # its help: the package docstring (SPEC.help)


c.train_command(
    app,
    "matte",
    MatteOptions,
    example=f"mmkit matte train --data {BUILTIN}   (the recipe: dim-small, 2,000 composites at 64 px, 6 epochs)",
)


def _matte_scores(r: dict) -> str:
    """The model's SAD, MSE, Grad and Conn over the unknown region, then the two baselines'."""
    lines = [f"matte eval: {r['images']} images of {r['data']} (SAD, Grad, Conn / 1000) -> {r['out']}"]
    rows = [("model", r), ("trimap baseline", r["baselines"]["trimap"])]
    rows.append(("guided-filter baseline", r["baselines"]["guided_filter"]))
    for name, m in rows:
        lines.append(
            f"  {name:<23} SAD {m['sad']:.3f}  MSE {m['mse']:.4f}  Grad {m['grad']:.3f}  Conn {m['conn']:.3f}"
        )
    return "\n".join(lines)


c.command(
    app,
    "eval",
    "mmkit.tasks.matte.predictor:evaluate",
    "weights device out",
    doc="SAD, MSE, Grad and Conn over the unknown region of the held-out images, with the trimap (unknown = 0.5) "
    "and guided-filter baselines on the same images.",
    example=f"mmkit matte eval --weights runs/matte/exp/best.pt --data {BUILTIN}",
    show=c.summary(_matte_scores),
    data=BUILTIN,
    limit=c.own("--limit", "Evaluate the first N held-out images.", int | None, None),
)


@app.command(
    epilog="Example: mmkit matte predict photo.png --trimap trimap.png --weights runs/matte/exp/best.pt --out out"
)
def predict(
    image: Annotated[Path, typer.Argument(help="Image file.")],
    trimap: Annotated[
        Path, typer.Option("--trimap", "-t", help="Its trimap: 0 background, 128 unknown, 255 fg.")
    ],
    weights: c.Weights,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for alpha.png and composite.png.")] = Path(
        "runs/matte/predict"
    ),
    device: c.Device = "auto",
    json: c.Json = False,
) -> None:
    """The alpha matte of an image given its trimap: alpha.png, and composite.png (the cut-out on a checkerboard)."""
    from mmkit.tasks.matte.predictor import predict as run

    (r,) = run(weights, [image], [trimap], device=device, out=out)
    c.emit(f"matte predict: {r['path']} -> {r['alpha']}, {r['composite']}", {"predictions": [r]}, json)


c.export_command(
    app,
    "matte",
    doc=(
        "Export the matting network (uint8 image and trimap of any size -> alpha), checked against PyTorch "
        "(ONNX Runtime for ONNX); filling the trimap's known regions stays outside."
    ),
)
