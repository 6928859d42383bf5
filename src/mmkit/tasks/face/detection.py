"""Finding faces in photos: MTCNN boxes, scores and five landmarks, and crops aligned on the landmarks.

    detect(["group.jpg"], save_dir="out/")      # [{"file", "faces": [{"box", "score", "landmarks"}]}]
    find_faces(["group.jpg"], 160)              # [[Face(file, crop, box, score, landmarks), ...]] per image

With `aligned=True` each image is taken as one already-cropped face (the synthetic identities, LFW crops).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from mmkit.data.face_align import align_faces
from mmkit.data.faces import resize_square
from mmkit.data.formats.images import read_image
from mmkit.engine import select_device
from mmkit.models.mtcnn import load_mtcnn
from mmkit.report.faces import draw_faces


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
    return load_mtcnn(device=device)


def _round(t: torch.Tensor) -> list:
    return [round(float(v), 2) for v in t] if t.ndim == 1 else [_round(r) for r in t]


def find_faces(
    paths: list[str],
    size: int,
    *,
    aligned: bool = False,
    min_face: int = 20,
    device: str | torch.device = "auto",
) -> list[list[Face]]:
    """The faces of each image, aligned to size×size: MTCNN + five-point alignment, or the whole image resized."""
    images = [read_image(p) for p in paths]
    if aligned:
        return [
            [Face(str(p), resize_square(img[None], size)[0])] for p, img in zip(paths, images, strict=True)
        ]
    dev = select_device(device) if isinstance(device, str) else device
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
    images: list[str],
    *,
    save_dir: str | os.PathLike | None = None,
    min_face: int = 20,
    crop_size: int = 160,
    device: str | torch.device = "auto",
) -> list[dict[str, Any]]:
    """Boxes, scores and five landmarks of every face; with save_dir, each picture with its faces drawn
    (`<stem>_faces.jpg`) and the aligned crops (`crops/<stem>_<k>.png`)."""
    found = find_faces(images, crop_size, min_face=min_face, device=device)
    out_dir = Path(save_dir) if save_dir is not None else None
    if out_dir is not None:
        (out_dir / "crops").mkdir(parents=True, exist_ok=True)
    results = []
    for p, faces in zip(images, found, strict=True):
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
