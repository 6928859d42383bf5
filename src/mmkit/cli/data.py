"""`mmkit data list|show`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmkit.cli import common as c

app = typer.Typer(help="Datasets: builtin sets, readers, sample grids.", no_args_is_help=True)


@app.command("list", epilog="Example: mmkit data list")
def list_(json: c.Json = False) -> None:
    """Builtin datasets and whether they are available on this machine."""
    from mmkit.data.builtin import list_datasets

    infos = list_datasets()
    if json:
        c.emit("", {"datasets": [vars(i) for i in infos]}, True)
        return
    for i in infos:
        state = "available" if i.available else f"missing: {i.reason}"
        typer.echo(f"{i.name:<14} {i.task:<9} {i.num_classes:>4} classes  {i.size:<28} {state}")
    typer.echo(f"{sum(i.available for i in infos)}/{len(infos)} builtin datasets available")


@app.command(epilog="Example: mmkit data show fashion-mnist --out fashion.png")
def show(
    data: Annotated[str, typer.Argument(help="Builtin name or dataset folder.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="PNG to write (default: <name>-samples.png).")
    ] = None,
    n: Annotated[int, typer.Option("--n", help="Number of samples.")] = 64,
    split: Annotated[str, typer.Option("--split", help="train | val | test")] = "train",
    seed: c.Seed = 0,
    json: c.Json = False,
) -> None:
    """Save a grid of random samples with their labels, and print the dataset summary."""
    import torch

    from mmkit.data import load_classification_data
    from mmkit.errors import MMKitError
    from mmkit.report import save_image_grid

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
