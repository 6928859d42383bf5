"""`mmkit face detect|train|eval|enroll|identify|verify|list|remove|export`: options parsed here, the work done by
the task's predictor (`predictor.py`), detector (`detection.py`) and gallery (`gallery.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmkit.cli import common as c
from mmkit.tasks.face.options import FaceOptions

app = typer.Typer(no_args_is_help=True)  # its help: the package docstring (SPEC.help)

ModelOpt = Annotated[
    str | None, typer.Option("--model", "-m", help="With a weights name: facenet (vggface2, casia-webface).")
]
Db = Annotated[Path, typer.Option("--db", help="The gallery: an SQLite file.")]
Threshold = Annotated[
    float | None,
    typer.Option("--threshold", help="Squared L2 distance for 'same person' (default: the checkpoint's)."),
]
Aligned = Annotated[
    bool,
    typer.Option("--aligned", help="Images are already face crops: skip detection, one face per image."),
]


@app.command(epilog="Example: mmkit face detect photo.jpg --save-dir out/")
def detect(
    images: c.Images,
    min_face: Annotated[int, typer.Option("--min-face", help="Smallest face to find, in pixels.")] = 20,
    crop_size: Annotated[int, typer.Option("--crop-size", help="Side of the aligned crops written.")] = 160,
    device: c.Device = "auto",
    save_dir: Annotated[
        Path | None,
        typer.Option(
            "--save-dir", help="Write each image with its faces drawn, and aligned crops in crops/."
        ),
    ] = None,
    json: c.Json = False,
) -> None:
    """Faces in each image (MTCNN): box [x1, y1, x2, y2] in pixels, score, five landmarks (eyes, nose, mouth)."""
    from mmkit.tasks.face.detection import detect as run

    results = run(
        [str(p) for p in images], save_dir=save_dir, min_face=min_face, crop_size=crop_size, device=device
    )
    if json:
        c.emit("", {"detections": results}, True)
        return
    for r in results:
        faces = "; ".join(f"{f['score']:.3f} {f['box']}" for f in r["faces"]) or "no face"
        typer.echo(f"{r['file']}: {faces}")
    n = sum(len(r["faces"]) for r in results)
    typer.echo(f"face detect: {n} faces in {len(results)} images" + (f" -> {save_dir}" if save_dir else ""))


c.train_command(
    app,
    "face",
    FaceOptions,
    example="mmkit face train --data synthetic-faces-large   (the bench recipe: 20 epochs, ~95 % on held-out people)",
)


@app.command(
    "eval",
    epilog="Example: mmkit face eval --weights runs/face/train/best.pt --data faces/test --pairs faces/pairs.txt",
)
def eval_(
    weights: c.Weights,
    data: Annotated[
        str,
        typer.Option(
            "--data", "-d", help="The folder pairs.txt refers to; or a data spec (held-out people)."
        ),
    ],
    pairs: Annotated[
        Path | None,
        typer.Option("--pairs", help="LFW-format pairs.txt (10 folds of same / different pairs)."),
    ] = None,
    model: ModelOpt = None,
    batch_size: c.BatchSize = 256,
    device: c.Device = "auto",
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for metrics.json, roc.png, pair_distances.csv.")
    ] = None,
    json: c.Json = False,
) -> None:
    """The LFW protocol: 10-fold accuracy (threshold chosen on the other 9 folds), VAL@FAR=1e-3, AUC, ROC PNG."""
    from mmkit.tasks.face.predictor import evaluate

    r = evaluate(weights, data, pairs=pairs, model=model, batch_size=batch_size, device=device, out=out)
    summary = (
        f"face eval: {r['pairs']} pairs  accuracy {100 * r['accuracy']:.2f} ± {100 * r['accuracy_std']:.2f} %  "
        f"VAL@FAR=1e-3 {100 * r['val_far']:.2f} %  AUC {r['auc']:.4f} -> {r['out_dir']}"
    )
    c.emit(summary, r, json)


@app.command(epilog="Example: mmkit face enroll --db faces.db --name ada --weights best.pt ada1.jpg ada2.jpg")
def enroll(
    images: c.Images,
    db: Db,
    name: Annotated[str, typer.Option("--name", help="The person's name.")],
    weights: c.Weights,
    model: ModelOpt = None,
    aligned: Aligned = False,
    device: c.Device = "auto",
    json: c.Json = False,
) -> None:
    """Add a person's faces to the gallery: each image must show exactly one face, or nothing is enrolled."""
    from mmkit.tasks.face.gallery import enroll as run

    r = run(db, name, [str(p) for p in images], weights=weights, model=model, aligned=aligned, device=device)
    c.emit(
        f"face enroll: {r['enrolled']} face{'s' if r['enrolled'] != 1 else ''} of {r['name']} ({r['faces_of_person']} in all) -> {db}",
        r,
        json,
    )


@app.command(epilog="Example: mmkit face identify --db faces.db --weights best.pt party.jpg")
def identify(
    images: c.Images,
    db: Db,
    weights: c.Weights,
    model: ModelOpt = None,
    threshold: Threshold = None,
    aligned: Aligned = False,
    device: c.Device = "auto",
    json: c.Json = False,
) -> None:
    """Every face in each image: the best match in the gallery and its distance, or 'unknown'."""
    from mmkit.tasks.face.gallery import identify as run

    results = run(
        db,
        [str(p) for p in images],
        weights=weights,
        model=model,
        threshold=threshold,
        aligned=aligned,
        device=device,
    )
    if json:
        c.emit("", {"identities": results}, True)
        return
    for r in results:
        faces = "; ".join(f"{f['name']} ({f['distance']:.3f})" for f in r["faces"]) or "no face"
        typer.echo(f"{r['file']}: {faces}")
    n = sum(len(r["faces"]) for r in results)
    known = sum(f["name"] != "unknown" for r in results for f in r["faces"])
    typer.echo(f"face identify: {n} faces, {known} recognized")


@app.command(epilog="Example: mmkit face verify --weights best.pt a.jpg b.jpg")
def verify(
    image1: Annotated[Path, typer.Argument(help="First image.")],
    image2: Annotated[Path, typer.Argument(help="Second image.")],
    weights: c.Weights,
    model: ModelOpt = None,
    threshold: Threshold = None,
    aligned: Aligned = False,
    device: c.Device = "auto",
    json: c.Json = False,
) -> None:
    """Same person or not: the most confident face of each image, its distance against the threshold."""
    from mmkit.tasks.face.gallery import verify as run

    r = run(
        str(image1),
        str(image2),
        weights=weights,
        model=model,
        threshold=threshold,
        aligned=aligned,
        device=device,
    )
    verdict = "same person" if r["same"] else "different people"
    c.emit(f"face verify: {verdict} (distance {r['distance']:.3f}, threshold {r['threshold']:.3f})", r, json)


@app.command("list", epilog="Example: mmkit face list --db faces.db")
def list_(db: Db, json: c.Json = False) -> None:
    """The people in the gallery and how many faces each has."""
    from mmkit.tasks.face.gallery import list_people

    people = list_people(db)
    if not json:
        for p in people:
            typer.echo(f"{p['name']}\t{p['faces']}")
    c.emit(f"face list: {len(people)} people in {db}", {"db": str(db), "people": people}, json)


@app.command(epilog="Example: mmkit face remove --db faces.db --name ada")
def remove(
    db: Db, name: Annotated[str, typer.Option("--name", help="The person to forget.")], json: c.Json = False
) -> None:
    """Forget a person and their faces."""
    from mmkit.tasks.face.gallery import remove as run

    r = run(db, name)
    c.emit(f"face remove: {name} ({r['removed_faces']} faces) from {db}", r, json)


c.export_command(
    app,
    "face",
    example="mmkit face export --weights runs/face/exp/best.pt --format onnx",
    doc=(
        "Export the embedder (uint8 face crops -> unit embeddings, normalization and flip test inside) and "
        "MTCNN's P-Net, R-Net and O-Net (the cascade around them, pyramid, crops and NMS, stays outside); "
        "each file is checked against PyTorch (ONNX Runtime for ONNX)."
    ),
    model=ModelOpt,
)
