"""`mmkit data list|show`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmkit.cli import common as c
from mmkit.data.registry import list_datasets

app = typer.Typer(help="Datasets: builtin sets, readers, sample grids.", no_args_is_help=True)


@app.command("list", epilog="Example: mmkit data list")
def list_(json: c.Json = False) -> None:
    """Builtin datasets and whether they are available on this machine."""
    infos = [spec.info() for spec in list_datasets()]
    if json:
        c.emit("", {"datasets": [vars(i) for i in infos]}, True)
        return
    name_width = max([21] + [len(i.name) for i in infos])
    size_width = max([30] + [len(i.size) for i in infos])
    for i in infos:
        state = "available" if i.available else f"missing: {i.reason}"
        classes = f"{i.num_classes:>4} classes" if i.num_classes else "   - classes"  # captions: a vocabulary
        typer.echo(f"{i.name:<{name_width}} {i.task:<9} {classes}  {i.size:<{size_width}} {state}")
    typer.echo(f"{sum(i.available for i in infos)}/{len(infos)} builtin datasets available")


@app.command(epilog="Example: mmkit data show fashion-mnist --out fashion.png")
def show(
    data: Annotated[str, typer.Argument(help="Builtin name or dataset folder.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="PNG to write (default: <name>-samples.png).")
    ] = None,
    n: Annotated[
        int, typer.Option("--n", help="Number of samples (grid cells: a pair takes 2, a clip's row 8).")
    ] = 64,
    split: Annotated[
        str,
        typer.Option(
            "--split", help="train | val | test (generation: train | test; faces, video: train | val)"
        ),
    ] = "train",
    seed: c.Seed = 0,
    json: c.Json = False,
) -> None:
    """Save a grid of random samples with their labels, and print the dataset summary. Classification and face
    data: labelled images; detection: boxes drawn; video: a row of frames a clip; generation: A next to B (or A
    samples and B samples); captions: images with the start of a reference caption."""
    import torch

    from mmkit.cli.data_show import SHOW, folder_task
    from mmkit.data import load_classification_data
    from mmkit.errors import MMKitError
    from mmkit.report import save_image_grid

    if n < 1:
        raise MMKitError(f"--n must be at least 1, got {n}")
    tasks = {spec.name: spec.task for spec in list_datasets()}
    if data not in tasks and not Path(data).expanduser().exists():
        raise MMKitError(f"{data}: no such builtin dataset ({', '.join(tasks)}) or path")
    task = tasks.get(data) or folder_task(data)
    if task in SHOW:
        out = out or Path(f"{Path(str(data)).name}-samples.png")
        summary, payload = SHOW[task](data, split, n, seed, out)
        return c.emit(summary, payload, json)
    if task == "detect":
        return _show_detection(data, out, n, split, seed, json)
    if task not in (None, "classify"):
        raise MMKitError(f"{data}: a builtin {task} dataset; `mmkit data show` draws no {task} samples yet")
    d = load_classification_data(data, seed=seed)
    ds = {"train": d.train, "val": d.val, "test": d.test}.get(split)
    if ds is None or len(ds) == 0:
        raise MMKitError(f"{data}: has no {split} split")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=g)[:n].tolist()
    items = [ds[i] for i in idx]
    items = [it for it in items if it is not None]
    imgs = [img for img, _ in items]
    size = max(max(i.shape[-2:]) for i in imgs)
    imgs = [
        torch.nn.functional.interpolate(i[None].float(), size=(size, size)).to(torch.uint8)[0] for i in imgs
    ]
    out = out or Path(f"{Path(str(data)).name}-samples.png")
    save_image_grid(
        torch.stack(imgs), out, labels=[d.classes[y] for _, y in items], title=f"{d.name} ({split})"
    )
    sizes = {
        k: (len(v) if v is not None else 0) for k, v in (("train", d.train), ("val", d.val), ("test", d.test))
    }
    payload = {
        "name": d.name,
        "classes": d.classes,
        "channels": d.channels,
        "image_size": d.image_size,
        "sizes": sizes,
        "skipped": [{"path": p, "reason": r} for p, r in d.skipped],
        "grid": str(out),
    }
    summary = (
        f"{d.name}: {len(d.classes)} classes, train {sizes['train']} / val {sizes['val']} / test {sizes['test']}"
        f"{f', {len(d.skipped)} unreadable files skipped' if d.skipped else ''} -> {out}"
    )
    c.emit(summary, payload, json)


synth = typer.Typer(help="Deterministic synthetic datasets.", no_args_is_help=True)
app.add_typer(synth, name="synth")


@synth.command("detection", epilog="Example: mmkit data synth detection --out scenes/ --format yolo --n 500")
def synth_detection(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    format: Annotated[str, typer.Option("--format", "-f", help="yolo | coco")] = "yolo",
    n: Annotated[int, typer.Option("--n", help="Training scenes (val gets n // 10).")] = 1000,
    seed: c.Seed = 0,
    img_size: Annotated[int, typer.Option("--img-size", help="Scene size in pixels.")] = 256,
    json: c.Json = False,
) -> None:
    """MNIST digits and shapes pasted at random scales on textured canvases, with exact boxes."""
    from mmkit.data.synthetic import write_synthetic_detection

    r = write_synthetic_detection(out, n=n, seed=seed, format=format, img_size=img_size)
    c.emit(
        f"synth detection: {n} train + {max(1, n // 10)} val scenes ({format}) -> {r}",
        {"out": str(out), "format": format, "n": n, "path": str(r)},
        json,
    )


@synth.command("captions", epilog="Example: mmkit data synth captions --out scenes/ --n 3000 --img-size 64")
def synth_captions(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    n: Annotated[int, typer.Option("--n", help="Training scenes (val and test get n // 10 each).")] = 3000,
    seed: c.Seed = 0,
    img_size: Annotated[int, typer.Option("--img-size", help="Scene size in pixels (>= 32).")] = 64,
    json: c.Json = False,
) -> None:
    """Colored MNIST digits and shapes in a row or a column, each scene with 5 reference captions (COCO
    captions JSON) and a paragraph (paragraphs_<split>.json); images/*.png."""
    from mmkit.data.synthetic_captions import write_synthetic_captions
    from mmkit.errors import MMKitError

    if n < 1 or img_size < 32:
        raise MMKitError(f"--n must be >= 1 and --img-size >= 32, got {n} and {img_size}")
    r = write_synthetic_captions(out, n=n, seed=seed, img_size=img_size)
    n_eval = max(1, n // 10)
    c.emit(
        f"synth captions: {n} train + {n_eval} val + {n_eval} test scenes ({img_size} px, 5 captions and a "
        f"paragraph each) -> {r}",
        {"out": str(r), "train": n, "val": n_eval, "test": n_eval, "img_size": img_size},
        json,
    )


@synth.command(
    "identities", epilog="Example: mmkit data synth identities --out faces/ --identities 300 --images 12"
)
def synth_identities(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder (new, empty, or a previous output).")
    ],
    identities: Annotated[int, typer.Option("--identities", help="Number of identities.")] = 300,
    images: Annotated[int, typer.Option("--images", help="Images per identity.")] = 12,
    size: Annotated[int, typer.Option("--size", help="Image size in pixels (32-512).")] = 64,
    test_fraction: Annotated[
        float, typer.Option("--test-fraction", help="Share of identities held out for test/ and pairs.txt.")
    ] = 0.2,
    folds: Annotated[int, typer.Option("--folds", help="Folds in pairs.txt.")] = 10,
    pairs_per_fold: Annotated[
        int, typer.Option("--pairs-per-fold", help="Matched (and mismatched) pairs per fold.")
    ] = 300,
    workers: Annotated[int, typer.Option("--workers", help="Processes writing images (same bytes).")] = 1,
    seed: c.Seed = 0,
    json: c.Json = False,
) -> None:
    """Stylised synthetic faces, one random parameter vector per identity; pose, lighting, background and
    occlusion vary per image. Writes train/ and test/ (disjoint identities) and an LFW pairs.txt for test/."""
    from mmkit.data.synthetic_faces import make_identities

    s = make_identities(
        out,
        n_identities=identities,
        images_per_identity=images,
        size=size,
        test_fraction=test_fraction,
        n_pairs_folds=folds,
        pairs_per_fold=pairs_per_fold,
        seed=seed,
        workers=workers,
    )
    c.emit(
        f"synth identities: {s['train_identities']} train + {s['test_identities']} test identities x "
        f"{images} images ({size} px), {s['pairs']} test pairs in {s['folds']} folds, "
        f"{s['images_per_s']:.0f} images/s -> {out}",
        s,
        json,
    )


c.command(
    synth,
    "yt8m",
    "mmkit.data.synthetic_yt8m:write_synthetic_yt8m",
    "seed",
    doc="YouTube-8M-format TFRecords with learnable multi-label structure: class prototypes active in a segment of "
    "each video, co-occurring classes, noise. Same seed, same bytes.",
    example="mmkit data synth yt8m --out yt8m/ --level frame --videos 2000",
    show=c.summary(
        lambda s: (
            f"synth yt8m: {s['train']} train + {s['validate']} validate {s['level']}-level videos, "
            f"{s['classes']} classes, {s['rgb_dim']}+{s['audio_dim']} features -> {s['out']}"
        )
    ),
    out=(
        Annotated[
            Path, typer.Option("--out", "-o", help="Output folder (train/, validate/, vocabulary.csv).")
        ],
        c.REQUIRED,
    ),
    level=c.own("--level", "frame | video", str, "frame"),
    videos=c.own("--videos", "Training videos (validate gets videos // 5).", int, 2000),
    classes=c.own("--classes", "Number of classes.", int, 20),
    frames=c.own("--frames", "Most frames per video (each has 50-100 %).", int, 60),
    rgb_dim=c.own("--rgb-dim", "Width of the rgb features.", int, 1024),
    audio_dim=c.own("--audio-dim", "Width of the audio features.", int, 128),
)


@synth.command(
    "videos", epilog="Example: mmkit data synth videos --out motion/ --n 900 --frames 16 --size 64"
)
def synth_videos(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    n: Annotated[int, typer.Option("--n", help="Training clips (test gets n // 5); 9 motion classes.")] = 900,
    frames: Annotated[int, typer.Option("--frames", help="Frames per clip.")] = 16,
    size: Annotated[int, typer.Option("--size", help="Frame size in pixels (even).")] = 64,
    seed: c.Seed = 0,
    json: c.Json = False,
) -> None:
    """Moving MNIST digits and shapes whose motion is the label (left, right, up, down, rotate-cw, rotate-ccw,
    grow, shrink, bounce), with distractors; H.264 mp4 files in train/<class>/ and test/<class>/."""
    from mmkit.data.synthetic_videos import write_videos

    s = write_videos(out, n_train=n, n_test=max(1, n // 5), frames=frames, size=size, seed=seed)
    c.emit(
        f"synth videos: {s['train']} train + {s['test']} test clips, {len(s['classes'])} motion classes, "
        f"{frames} frames of {size} px, {s['clips_per_s']:.0f} clips/s -> {out}",
        s,
        json,
    )


@app.command(epilog="Example: mmkit data convert --from coco --to yolo coco_dir/ yolo_dir/")
def convert(
    src: Annotated[
        str, typer.Argument(help="Source dataset (data.yaml, COCO folder/JSON, or a builtin name).")
    ],
    dst: Annotated[Path, typer.Argument(help="Output folder.")],
    from_: Annotated[
        str | None, typer.Option("--from", help="yolo | coco (checked against what src is).")
    ] = None,
    to: Annotated[str, typer.Option("--to", help="yolo | coco")] = "yolo",
    json: c.Json = False,
) -> None:
    """Convert a detection dataset between YOLO txt + data.yaml and COCO JSON."""
    from mmkit.data.detection import convert_detection

    r = convert_detection(src, dst, to=to, from_format=from_)
    c.emit(f"convert: {src} -> {r} ({to})", {"src": src, "dst": str(dst), "to": to, "path": str(r)}, json)


def _show_detection(data: str, out: Path | None, n: int, split: str, seed: int, as_json: bool) -> None:
    import torch
    from torchvision.utils import draw_bounding_boxes

    from mmkit.data.detection import load_detection_data
    from mmkit.errors import MMKitError
    from mmkit.report import save_image_grid

    d = load_detection_data(data, seed=seed)
    ds = {"train": d.train, "val": d.val}.get(split)
    if ds is None or len(ds) == 0:
        raise MMKitError(f"{data}: has no {split} split")
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[: min(n, 16)].tolist()
    pics = []
    for i in idx:
        item = ds[i]
        if item is None:
            continue
        img, t = item
        labels = [d.classes[int(k)] for k in t["labels"]]
        pic = draw_bounding_boxes(img, t["boxes"], labels, colors="red", width=2) if len(labels) else img
        pics.append(torch.nn.functional.interpolate(pic[None].float(), size=(256, 256)).to(torch.uint8)[0])
    out = out or Path(f"{Path(str(data)).name}-samples.png")
    save_image_grid(torch.stack(pics), out, nrow=4, title=f"{d.name} ({split}), boxes drawn")
    s = d.summary()
    summary = (
        f"{d.name}: {len(d.classes)} classes, train {s['train']['images']} images / {s['train']['boxes']} boxes, "
        f"val {s['val']['images']} / {s['val']['boxes']}, {s['problems']} label problems -> {out}"
    )
    c.emit(
        summary,
        {"name": d.name, "classes": d.classes, "summary": s, "problems": d.problems, "grid": str(out)},
        as_json,
    )
