"""`mmkit generate train|sample|translate|upscale|restore|eval|export`: options parsed here, the work done by the
family tasks (train) and the task's predictor (`predictor.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmkit.cli import common as c
from mmkit.errors import MMKitError
from mmkit.tasks.generate.options import TILE, GenerateOptions

app = typer.Typer(no_args_is_help=True)  # its help: the package docstring (SPEC.help)

OutDir = Annotated[Path, typer.Option("--out", "-o", help="Folder for the output images.")]


c.train_command(
    app,
    "generate",
    GenerateOptions,
    example="mmkit generate train --data photo-sr   (the LapSRN x4 recipe: +1.3 dB over bicubic). GANs and "
    "translation models train with their papers' optimizers (Adam and its betas; RMSprop for WGAN and DualGAN); "
    "--optimizer applies to LapSRN and RED-Net.",
)


c.command(
    app,
    "sample",
    "mmkit.tasks.generate.predictor:sample",
    "weights seed device",
    doc="A grid of samples from a GAN (one class with --label; every class in turn without it).",
    example="mmkit generate sample --weights runs/generate/exp/best.pt --n 64 --out grid.png",
    show=c.summary(lambda r: f"generate sample: {r['n']} images -> {r['out']}"),
    n=(Annotated[int, typer.Option("--n", help="Number of samples.")], 64),
    label=(
        Annotated[int | None, typer.Option("--label", help="Conditional models: the class to draw.")],
        None,
    ),
    out=(Annotated[Path, typer.Option("--out", "-o", help="The grid PNG.")], Path("samples.png")),
    text=c.own(
        "--text", "Text-to-image models (gan-int-cls, stackgan): the caption to draw.", str | None, None
    ),
)


def _image_command(verb: str, out_default: str, doc: str, example: str, check=None, **options) -> None:
    """Register `generate <verb> IMAGES --weights W`: the model applied to image files, written to --out;
    `check(weights, **options)` first refuses a model that does not fit the command's own `options`."""

    def run(weights: str, images: list[Path], out: Path, device: str, tile: int, **kw) -> tuple[list, list]:
        from mmkit.tasks.generate.predictor import apply

        if check is not None:
            check(weights, **kw)
        return apply(weights, [str(p) for p in images], out_dir=out, verb=verb, device=device, tile=tile)

    c.command(
        app,
        verb,
        run,
        "images weights device",
        doc=doc,
        example=example,
        show=c.items(
            "images",
            lambda r: f"{r['image']} ({r['size_in'][1]}x{r['size_in'][0]}) -> {r['out']}",
            lambda results, o: f"generate {verb}: {len(results)} images -> {o['out']}",
        ),
        out=(OutDir, Path(out_default)),
        tile=c.own(
            "--tile", "Images run at their own size; larger ones in overlapping tiles this wide.", int, TILE
        ),
        **options,
    )


def _check_scale(weights: str, scale: int | None) -> None:
    if scale is not None:
        from mmkit.tasks.generate.predictor import load_generator

        _, meta = load_generator(weights)
        trained = meta.img_size // (meta.size_a or meta.img_size)
        if trained != scale:
            raise MMKitError(f"--scale {scale}: {weights} upscales x{trained}")


_image_command(
    "translate", "translated", "Translate images with a pix2pix, CycleGAN, DiscoGAN or DualGAN (A → B) model.",
    "mmkit generate translate --weights runs/generate/p2p/best.pt edges.png --out out/",
)  # fmt: skip
_image_command(
    "upscale", "upscaled", "Super-resolve images with a LapSRN model (its training scale).",
    "mmkit generate upscale --weights runs/generate/sr/best.pt small.png --scale 4",
    check=_check_scale,
    scale=(Annotated[int | None, typer.Option("--scale", help="Check: the model's scale (2, 4 or 8).")], None),
)  # fmt: skip
_image_command(
    "restore", "restored", "Denoise or deblur images with a RED-Net model.",
    "mmkit generate restore --weights runs/generate/dn/best.pt noisy.png --out clean/",
)  # fmt: skip


def _scores(r: dict, prefix: str = "") -> str:
    """The PSNR and SSIM of an eval result, under their keys (which name the convention: psnr_rgb, ...)."""
    psnr, ssim = f"{prefix}psnr_{r['convention']}", f"{prefix}ssim_{r['convention']}"
    return f"{psnr} {r[psnr]:.2f} dB  {ssim} {r[ssim]:.4f}"


@app.command(
    "eval",
    epilog="Examples: mmkit generate eval --weights runs/generate/exp/best.pt --json\n\n"
    "mmkit generate eval --pred outputs/ --target ground_truth/ --y-channel --crop-border 4   (SR papers' PSNR/SSIM)",
)
def eval_(
    weights: Annotated[
        str | None,
        typer.Option("--weights", "-w", help="A generation checkpoint (runs/generate/<name>/best.pt)."),
    ] = None,
    pred: Annotated[
        Path | None,
        typer.Option(
            "--pred", help="Instead of --weights: a folder of output images, scored against --target."
        ),
    ] = None,
    target: Annotated[
        Path | None,
        typer.Option(
            "--target", help="With --pred: the folder of true images, paired with --pred's by name."
        ),
    ] = None,
    y_channel: Annotated[
        bool,
        typer.Option(
            "--y-channel",
            help="PSNR/SSIM on the luma (BT.601, MATLAB rgb2ycbcr), as super-resolution papers report them "
            "(default: every RGB channel in [0, 1], as skimage and torchmetrics).",
        ),
    ] = False,
    crop_border: Annotated[
        int,
        typer.Option(
            "--crop-border", help="Pixels cut from each side before PSNR/SSIM (SR papers: the scale)."
        ),
    ] = 0,
    data: Annotated[
        str | None,
        typer.Option("--data", "-d", help="Real data to compare with (default: the training data)."),
    ] = None,
    features: Annotated[
        str,
        typer.Option(
            "--features",
            help="FID/KID features: auto (a smallcnn trained on the data, cached), inception, or a classifier "
            "checkpoint.",
        ),
    ] = "auto",
    n: Annotated[
        int,
        typer.Option("--n", help="GANs: samples (and real test images) compared; text to image: captions."),
    ] = 10000,
    batch_size: c.BatchSize = 256,
    device: c.Device = "auto",
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for metrics.json (and per_image.csv with --pred).")
    ] = None,
    json: c.Json = False,
) -> None:
    """GANs: FID, KID, IS (and label accuracy for conditional models); text to image: the attribute check and FID;
    others: PSNR and SSIM against a baseline.
    With --pred and --target instead of --weights: PSNR and SSIM of two folders of images, paired by name."""
    from mmkit.metrics.generation import Fidelity

    fidelity = Fidelity(y_channel, crop_border)
    if pred is not None or target is not None:
        if weights is not None:
            raise MMKitError(
                "--weights with --pred/--target: give a model or two folders of images, not both"
            )
        if pred is None or target is None:
            raise MMKitError("--pred and --target go together: the output images and the true ones")
        from mmkit.tasks.generate.folders import evaluate_folders

        r = evaluate_folders(pred, target, fidelity=fidelity, out=out)
        line = f"generate eval: {r['images']} image pairs  {_scores(r)}  per image: {r['per_image_csv']}"
        c.emit(f"{line} -> {r['out_dir']}", r, json)
        return
    if weights is None:
        raise MMKitError("give --weights (a generation model) or --pred and --target (two folders of images)")
    from mmkit.tasks.generate.predictor import evaluate

    r = evaluate(
        weights,
        data=data,
        features=features,
        n=n,
        batch_size=batch_size,
        device=device,
        fidelity=fidelity,
        out=out,
    )
    if "generated" in r:  # text to image: the attribute check
        share = {k: f"{100 * r[k]['all']:.1f} %" for k in ("generated", "real", "other_captions")}
        line = (
            f"generate eval: {r['captions']} test captions  attributes matched {share['generated']} (real images "
            f"{share['real']}, other captions {share['other_captions']})  FID {r['fid']:.3f}  KID {r['kid']:.4f}"
            f"  (features: {r['feature_network']})"
        )
    elif "fid" in r:
        extra = f"  IS {r['inception_score']:.2f}" if "inception_score" in r else ""
        extra += f"  label accuracy {100 * r['label_accuracy']:.1f} %" if "label_accuracy" in r else ""
        line = (
            f"generate eval: {r['samples']} samples  FID {r['fid']:.3f}  KID {r['kid']:.4f}{extra}"
            f"  (features: {r['feature_network']})"
        )
    else:
        base = f"  ({r['baseline']}: {_scores(r, 'baseline_')})" if "baseline" in r else ""
        line = f"generate eval: {r['images']} test images  {_scores(r)}{base}"
    c.emit(f"{line} -> {r['out_dir']}", r, json)


c.export_command(
    app,
    "generate",
    doc=(
        "Export the generator (GANs: noise and labels -> images; the others: images -> images, in [-1, 1]), "
        "checked against PyTorch (ONNX Runtime for ONNX)."
    ),
)
