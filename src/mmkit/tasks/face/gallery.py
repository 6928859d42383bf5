"""Applying face models to photos: MTCNN detection, and verification / identification against a SQLite gallery.

    dets = detect(["group.jpg"], save_dir="out/")            # [{"file", "faces": [{"box", "score", "landmarks"}]}]
    enroll("faces.db", "ada", ["ada1.jpg", "ada2.jpg"], weights="best.pt")
    identify("faces.db", ["party.jpg"], weights="best.pt")   # every face: best match and distance, or "unknown"
    verify("a.jpg", "b.jpg", weights="best.pt")              # same person or not, and the distance

Photos go through MTCNN and are aligned on their five landmarks to the embedder's input size; with
`aligned=True` each image is taken as one already-cropped face (the synthetic identities, LFW crops).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mmkit.data.formats.images import read_image
from mmkit.data.gallery import Gallery
from mmkit.engine import select_device
from mmkit.errors import MMKitError
from mmkit.tasks.face import embed, load_embedder

log = logging.getLogger(__name__)


@dataclass
class Face:
    """One face of a photo: where it is (pixels; None for an aligned crop) and its aligned crop."""

    file: str
    crop: torch.Tensor  # uint8 [3, S, S]
    box: list[float] | None = None
    score: float | None = None
    landmarks: list[list[float]] | None = None

    def where(self) -> dict[str, Any]:
        return {"box": self.box, "score": self.score, "landmarks": self.landmarks}


def _detector(device: torch.device):
    from mmkit.models.mtcnn import load_mtcnn

    return load_mtcnn(device=device)


def _round(t: torch.Tensor) -> list:
    return [round(float(v), 2) for v in t] if t.ndim == 1 else [_round(r) for r in t]


def find_faces(
    paths: list[str], size: int, *, aligned: bool = False, min_face: int = 20, device: str = "auto"
) -> list[list[Face]]:
    """The faces of each image, aligned to size×size: MTCNN + five-point alignment, or the whole image resized."""
    from mmkit.data.face_align import align_faces
    from mmkit.data.faces import resize_square

    images = [read_image(p) for p in paths]
    if aligned:
        return [
            [Face(str(p), resize_square(img[None], size)[0])] for p, img in zip(paths, images, strict=True)
        ]
    dev = select_device(device)
    dets = _detector(dev).detect([img.to(dev) for img in images], min_face_size=min_face)
    out = []
    for p, img, d in zip(paths, images, dets, strict=True):
        crops = align_faces(img, d.landmarks.cpu(), size=size)
        out.append(
            [
                Face(
                    str(p), crops[k], _round(d.boxes[k]), round(float(d.scores[k]), 4), _round(d.landmarks[k])
                )
                for k in range(len(d.scores))
            ]
        )
    return out


def detect(
    paths: list[str],
    *,
    save_dir: str | os.PathLike | None = None,
    min_face: int = 20,
    crop_size: int = 160,
    device: str = "auto",
) -> list[dict[str, Any]]:
    """Boxes, scores and five landmarks of every face; with save_dir, each picture with its faces drawn
    (`<stem>_faces.jpg`) and the aligned crops (`crops/<stem>_<k>.png`)."""
    from PIL import Image

    from mmkit.report.faces import draw_faces

    found = find_faces(paths, crop_size, min_face=min_face, device=device)
    out_dir = Path(save_dir) if save_dir is not None else None
    if out_dir is not None:
        (out_dir / "crops").mkdir(parents=True, exist_ok=True)
    results = []
    for p, faces in zip(paths, found, strict=True):
        entry = {"file": str(p), "faces": [f.where() for f in faces]}
        if out_dir is not None:
            stem = Path(p).stem
            boxes = torch.tensor([f.box for f in faces]).reshape(-1, 4)
            scores = torch.tensor([f.score for f in faces])
            marks = torch.tensor([f.landmarks for f in faces]).reshape(-1, 5, 2)
            draw_faces(read_image(p), boxes, scores, marks).save(out_dir / f"{stem}_faces.jpg", quality=92)
            entry["drawn"] = str(out_dir / f"{stem}_faces.jpg")
            for k, f in enumerate(faces):
                Image.fromarray(f.crop.permute(1, 2, 0).numpy()).save(out_dir / "crops" / f"{stem}_{k}.png")
        results.append(entry)
    return results


def open_gallery(db: str | os.PathLike, fingerprint: str, dim: int, *, must_exist: bool) -> Gallery:
    if must_exist and not Path(db).is_file():
        raise MMKitError(f"{db}: no such gallery; enroll someone first (mmkit face enroll --db {db} ...)")
    return Gallery(db, model=fingerprint, dim=dim)


def match_threshold(meta, threshold: float | None) -> float:
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
    paths: list[str],
    *,
    weights: str,
    model: str | None = None,
    aligned: bool = False,
    device: str = "auto",
) -> dict[str, Any]:
    """Add one face per image to `name`. Every image must show exactly one face; otherwise nothing is enrolled."""
    net, meta, fingerprint = load_embedder(weights, model, select_device(device))
    found = find_faces(paths, meta.img_size, aligned=aligned, device=device)
    for p, faces in zip(paths, found, strict=True):
        if len(faces) != 1:
            what = "no face" if not faces else f"{len(faces)} faces"
            raise MMKitError(
                f"{p}: {what} found; enrolling needs exactly one face per image (nothing enrolled)"
            )
    emb = embed(net, meta, torch.stack([faces[0].crop for faces in found]))
    with open_gallery(db, fingerprint, meta.embedding_dim, must_exist=False) as g:
        g.enroll(name, emb, [str(p) for p in paths])
        count = dict(g.people())[name.strip()]
    return {"db": str(db), "name": name.strip(), "enrolled": len(paths), "faces_of_person": count}


def identify(
    db: str | os.PathLike,
    paths: list[str],
    *,
    weights: str,
    model: str | None = None,
    threshold: float | None = None,
    aligned: bool = False,
    device: str = "auto",
) -> list[dict[str, Any]]:
    """Every face of every image: its best match in the gallery and the distance, or "unknown" past threshold."""
    net, meta, fingerprint = load_embedder(weights, model, select_device(device))
    thr = match_threshold(meta, threshold)
    found = find_faces(paths, meta.img_size, aligned=aligned, device=device)
    with open_gallery(db, fingerprint, meta.embedding_dim, must_exist=True) as g:
        results = []
        for p, faces in zip(paths, found, strict=True):
            matches = g.identify(embed(net, meta, torch.stack([f.crop for f in faces])), thr) if faces else []
            results.append(
                {
                    "file": str(p),
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
    path1: str,
    path2: str,
    *,
    weights: str,
    model: str | None = None,
    threshold: float | None = None,
    aligned: bool = False,
    device: str = "auto",
) -> dict[str, Any]:
    """Whether the most confident face of each image is the same person."""
    net, meta, _ = load_embedder(weights, model, select_device(device))
    thr = match_threshold(meta, threshold)
    found = find_faces([path1, path2], meta.img_size, aligned=aligned, device=device)
    for p, faces in zip((path1, path2), found, strict=True):
        if not faces:
            raise MMKitError(f"{p}: no face found")
    emb = embed(net, meta, torch.stack([faces[0].crop for faces in found]))
    d = float((emb[0] - emb[1]).square().sum())
    return {"file1": path1, "file2": path2, "distance": round(d, 4), "threshold": thr, "same": d <= thr}


def list_people(db: str | os.PathLike) -> list[dict[str, Any]]:
    """(name, faces) of everyone enrolled; the gallery's model is not needed to read it."""
    return [{"name": n, "faces": c} for n, c in Gallery.read_people(db)]


def remove(db: str | os.PathLike, name: str) -> dict[str, Any]:
    return {"db": str(db), "name": name, "removed_faces": Gallery.remove_from(db, name)}
