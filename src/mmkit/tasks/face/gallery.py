"""Who is it: verification and identification against a SQLite gallery of enrolled faces.

    enroll("faces.db", "ada", ["ada1.jpg", "ada2.jpg"], weights="best.pt")
    identify("faces.db", ["party.jpg"], weights="best.pt")   # every face: best match and distance, or "unknown"
    verify("a.jpg", "b.jpg", weights="best.pt")              # same person or not, and the distance

Photos go through MTCNN and are aligned on their five landmarks to the embedder's input size (`find_faces`); with
`aligned=True` each image is taken as one already-cropped face. A gallery is tied to the embedding space of the
weights that filled it (`FacePredictor.fingerprint`); the threshold defaults to the checkpoint's validated one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from mmkit.data.gallery import Gallery
from mmkit.errors import MMKitError
from mmkit.tasks.face.detection import find_faces
from mmkit.tasks.face.predictor import FaceMeta, FacePredictor


def open_gallery(db: str | os.PathLike, fingerprint: str, dim: int, *, must_exist: bool) -> Gallery:
    if must_exist and not Path(db).is_file():
        raise MMKitError(f"{db}: no such gallery; enroll someone first (mmkit face enroll --db {db} ...)")
    return Gallery(db, model=fingerprint, dim=dim)


def match_threshold(meta: FaceMeta, threshold: float | None) -> float:
    """`threshold` if given, else the one the checkpoint validated (squared L2)."""
    if threshold is not None:
        return threshold
    if meta.threshold is None:
        raise MMKitError(
            "--threshold: these weights carry no validated threshold; give one (squared L2, 0..4)"
        )
    return float(meta.threshold)


def enroll(
    db: str | os.PathLike,
    name: str,
    images: list[str],
    *,
    weights: str,
    model: str | None = None,
    aligned: bool = False,
    device: str = "auto",
) -> dict[str, Any]:
    """Add one face per image to `name`. Every image must show exactly one face; otherwise nothing is enrolled."""
    p = FacePredictor.load(weights, model=model, device=device)
    found = find_faces(images, p.meta.img_size, aligned=aligned, device=p.device)
    for path, faces in zip(images, found, strict=True):
        if len(faces) != 1:
            what = "no face" if not faces else f"{len(faces)} faces"
            raise MMKitError(
                f"{path}: {what} found; enrolling needs exactly one face per image (nothing enrolled)"
            )
    emb = p.embed(torch.stack([faces[0].crop for faces in found]))
    with open_gallery(db, p.fingerprint, p.meta.embedding_dim, must_exist=False) as g:
        g.enroll(name, emb, [str(path) for path in images])
        count = dict(g.people())[name.strip()]
    return {"db": str(db), "name": name.strip(), "enrolled": len(images), "faces_of_person": count}


def identify(
    db: str | os.PathLike,
    images: list[str],
    *,
    weights: str,
    model: str | None = None,
    threshold: float | None = None,
    aligned: bool = False,
    device: str = "auto",
) -> list[dict[str, Any]]:
    """Every face of every image: its best match in the gallery and the distance, or "unknown" past threshold."""
    p = FacePredictor.load(weights, model=model, device=device)
    thr = match_threshold(p.meta, threshold)
    found = find_faces(images, p.meta.img_size, aligned=aligned, device=p.device)
    with open_gallery(db, p.fingerprint, p.meta.embedding_dim, must_exist=True) as g:
        results = []
        for path, faces in zip(images, found, strict=True):
            matches = g.identify(p.embed(torch.stack([f.crop for f in faces])), thr) if faces else []
            results.append(
                {
                    "file": str(path),
                    "faces": [
                        {
                            **f.where(),
                            "name": m.name or "unknown",
                            "distance": round(m.distance, 4),
                            "nearest": m.nearest,
                        }
                        for f, m in zip(faces, matches, strict=True)
                    ],
                }
            )
    return results


def verify(
    image1: str,
    image2: str,
    *,
    weights: str,
    model: str | None = None,
    threshold: float | None = None,
    aligned: bool = False,
    device: str = "auto",
) -> dict[str, Any]:
    """Whether the most confident face of each image is the same person."""
    p = FacePredictor.load(weights, model=model, device=device)
    thr = match_threshold(p.meta, threshold)
    found = find_faces([image1, image2], p.meta.img_size, aligned=aligned, device=p.device)
    for path, faces in zip((image1, image2), found, strict=True):
        if not faces:
            raise MMKitError(f"{path}: no face found")
    emb = p.embed(torch.stack([faces[0].crop for faces in found]))
    d = float((emb[0] - emb[1]).square().sum())
    return {
        "file1": str(image1),
        "file2": str(image2),
        "distance": round(d, 4),
        "threshold": thr,
        "same": d <= thr,
    }


def list_people(db: str | os.PathLike) -> list[dict[str, Any]]:
    """(name, faces) of everyone enrolled; the gallery's model is not needed to read it."""
    return [{"name": n, "faces": c} for n, c in Gallery.read_people(db)]


def remove(db: str | os.PathLike, name: str) -> dict[str, Any]:
    return {"db": str(db), "name": name, "removed_faces": Gallery.remove_from(db, name)}
