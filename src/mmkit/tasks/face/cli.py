"""`mmkit face detect|train|eval|enroll|identify|verify|list|remove|export`: options parsed here, the work done by
the task's predictor (`predictor.py`), detector (`detection.py`) and gallery (`gallery.py`)."""

from __future__ import annotations

from collections.abc import Callable
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


def _faces(key: str, face: Callable[[dict], str], total: Callable[[list[dict], dict], str]) -> Callable:
    """`show` for the commands that list the faces of each image: a line per image, `face(f)` for each face."""

    def line(r: dict) -> str:
        return f"{r['file']}: " + ("; ".join(face(f) for f in r["faces"]) or "no face")

    return lambda results, o, as_json: c.emit_items(key, results, [], as_json, line, total(results, o))


def _count(results: list[dict]) -> int:
    return sum(len(r["faces"]) for r in results)


def _found(face: dict) -> str:
    return f"{face['score']:.3f} {face['box']}"


def _detect_total(results: list[dict], options: dict) -> str:
    saved = f" -> {options['save_dir']}" if options["save_dir"] else ""
    return f"face detect: {_count(results)} faces in {len(results)} images{saved}"


def _match(face: dict) -> str:
    return f"{face['name']} ({face['distance']:.3f})"


def _identify_total(results: list[dict], _: dict) -> str:
    known = sum(f["name"] != "unknown" for r in results for f in r["faces"])
    return f"face identify: {_count(results)} faces, {known} recognized"


c.command(
    app,
    "detect",
    "mmkit.tasks.face.detection:detect",
    "images device",
    doc="Faces in each image (MTCNN): box [x1, y1, x2, y2] in pixels, score, five landmarks (eyes, nose, mouth).",
    example="mmkit face detect photo.jpg --save-dir out/",
    show=_faces("detections", _found, _detect_total),
    min_face=c.own("--min-face", "Smallest face to find, in pixels.", int, 20),
    crop_size=c.own("--crop-size", "Side of the aligned crops written.", int, 160),
    save_dir=c.own(
        "--save-dir", "Write each image with its faces drawn, and aligned crops in crops/.", Path | None, None
    ),
)


c.train_command(
    app,
    "face",
    FaceOptions,
    example="mmkit face train --data synthetic-faces-large   (the bench recipe: 20 epochs, ~95 % on held-out people)",
)


c.command(
    app,
    "eval",
    "mmkit.tasks.face.predictor:evaluate",
    "weights device out",
    doc="The LFW protocol: 10-fold accuracy (threshold chosen on the other 9 folds), VAL@FAR=1e-3, AUC, ROC PNG.",
    example="mmkit face eval --weights runs/face/train/best.pt --data faces/test --pairs faces/pairs.txt",
    show=c.summary(
        lambda r: (
            f"face eval: {r['pairs']} pairs  accuracy {100 * r['accuracy']:.2f} ± "
            f"{100 * r['accuracy_std']:.2f} %  VAL@FAR=1e-3 {100 * r['val_far']:.2f} %  AUC {r['auc']:.4f} -> "
            f"{r['out_dir']}"
        )
    ),
    data=c.own("--data -d", "The folder pairs.txt refers to; or a data spec (held-out people).", str),
    pairs=c.own("--pairs", "LFW-format pairs.txt (10 folds of same / different pairs).", Path | None, None),
    model=(ModelOpt, None),
    batch_size=256,
)

# The gallery commands: a face model (--weights, --model) on images, faces found by MTCNN unless --aligned
_GALLERY = dict(
    model=(ModelOpt, None),
    aligned=c.own(
        "--aligned", "Images are already face crops: skip detection, one face per image.", bool, False
    ),
)


c.command(
    app,
    "enroll",
    "mmkit.tasks.face.gallery:enroll",
    "images weights device",
    doc="Add a person's faces to the gallery: each image must show exactly one face, or nothing is enrolled.",
    example="mmkit face enroll --db faces.db --name ada --weights best.pt ada1.jpg ada2.jpg",
    show=c.summary(
        lambda r: (
            f"face enroll: {r['enrolled']} face{'s' if r['enrolled'] != 1 else ''} of {r['name']} "
            f"({r['faces_of_person']} in all) -> {r['db']}"
        )
    ),
    db=(Db, c.REQUIRED),
    name=c.own("--name", "The person's name.", str),
    **_GALLERY,
)

c.command(
    app,
    "identify",
    "mmkit.tasks.face.gallery:identify",
    "images weights device",
    doc="Every face in each image: the best match in the gallery and its distance, or 'unknown'.",
    example="mmkit face identify --db faces.db --weights best.pt party.jpg",
    show=_faces("identities", _match, _identify_total),
    db=(Db, c.REQUIRED),
    threshold=(Threshold, None),
    **_GALLERY,
)

c.command(
    app,
    "verify",
    "mmkit.tasks.face.gallery:verify",
    "weights device",
    doc="Same person or not: the most confident face of each image, its distance against the threshold.",
    example="mmkit face verify --weights best.pt a.jpg b.jpg",
    show=c.summary(
        lambda r: (
            f"face verify: {'same person' if r['same'] else 'different people'} (distance "
            f"{r['distance']:.3f}, threshold {r['threshold']:.3f})"
        )
    ),
    image1=(Annotated[Path, typer.Argument(help="First image.")], c.REQUIRED),
    image2=(Annotated[Path, typer.Argument(help="Second image.")], c.REQUIRED),
    threshold=(Threshold, None),
    **_GALLERY,
)


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
    doc=(
        "Export the embedder (uint8 face crops -> unit embeddings, normalization and flip test inside) and "
        "MTCNN's P-Net, R-Net and O-Net (the cascade around them, pyramid, crops and NMS, stays outside); "
        "each file is checked against PyTorch (ONNX Runtime for ONNX)."
    ),
    model=(ModelOpt, None),
)
