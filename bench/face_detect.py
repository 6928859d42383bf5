"""MTCNN (real facenet-pytorch weights): detection rates on real images, and detection speed.

Quality: scikit-image's ``lfw_subset`` (100 faces, then 100 non-faces, 25×25 grayscale crops) upsampled
bilinearly to ``--lfw-size`` px (default 100), all 200 in one ``detect`` call; an image counts as "found" with
at least one detection. Also the face count on astronaut (one face), coffee and rocket (none). Default settings:
min face 20 px, thresholds 0.6 / 0.7 / 0.7, pyramid factor 0.709.

Speed: the astronaut photo resized to 640×480 (one face), ``detect`` on one image per call and on a batch of 8
copies per call (same-size images share the P-Net pyramid forwards), median of ``--iters`` calls after
``--warmup``. CPU with ``--threads`` (default 2); ``--device cuda`` on the GPU.

    .venv/bin/python bench/face_detect.py [--device cpu|cuda] [--lfw-size 100] [--quick]
"""

from __future__ import annotations

import time

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F
from common import base_parser, environment, parse_args, print_table, save_result, sync, timed

from mmkit.models.mtcnn import MTCNN, load_mtcnn


def _chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)


def lfw_images(size: int, per_class: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(faces, non-faces) of lfw_subset, upsampled to size×size uint8 (1 channel)."""
    lfw = torch.from_numpy(skimage.data.lfw_subset()).float()[:, None]
    x = F.interpolate(lfw, size=(size, size), mode="bilinear") * 255
    x = x.round().clamp(0, 255).to(torch.uint8)
    return list(x[:per_class]), list(x[100 : 100 + per_class])


def quality(model: MTCNN, device: torch.device, size: int, per_class: int) -> dict:
    faces, non_faces = lfw_images(size, per_class)
    t0 = time.perf_counter()
    dets = model.detect([im.to(device) for im in faces + non_faces])
    sync(device)
    wall = time.perf_counter() - t0
    found = np.array([len(d) > 0 for d in dets])
    photos = {}
    for name in ("astronaut", "coffee", "rocket"):
        det = model.detect(_chw(getattr(skimage.data, name)()).to(device))[0]
        photos[name] = {
            "faces": len(det),
            "boxes": [[round(v, 1) for v in b] for b in det.boxes.tolist()],
            "scores": [round(s, 4) for s in det.scores.tolist()],
        }
    return {
        "lfw_size": size,
        "lfw_faces": per_class,
        "lfw_non_faces": per_class,
        "lfw_face_rate": round(float(found[:per_class].mean()), 4),
        "lfw_non_face_rate": round(float(found[per_class:].mean()), 4),
        "lfw_faces_with_2plus_detections": int(sum(len(d) > 1 for d in dets[:per_class])),
        "lfw_detect_wall_s": round(wall, 3),
        "photos": photos,
    }


def speed(
    model: MTCNN, device: torch.device, batches: tuple[int, ...], warmup: int, iters: int
) -> list[dict]:
    photo = _chw(skimage.data.astronaut())
    photo = F.interpolate(photo[None].float(), size=(480, 640), mode="bilinear", antialias=True)[0]
    photo = photo.round().clamp(0, 255).to(torch.uint8).to(device)
    rows = []
    for b in batches:
        images = [photo] * b
        n_faces = sum(len(d) for d in model.detect(images))
        s = timed(lambda images=images: model.detect(images), device, warmup, iters)
        rows.append(
            {
                "image": "astronaut 640x480",
                "batch": b,
                "faces_per_call": n_faces,
                "s_per_call": round(s, 4),
                "ms_per_image": round(1000 * s / b, 2),
                "images_per_s": round(b / s, 1),
                "faces_per_s": round(n_faces / s, 1),
            }
        )
    return rows


def main() -> None:
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--lfw-size", type=int, default=100, help="lfw_subset images are upsampled to this size")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=7)
    args = parse_args(p)
    device = torch.device(args.device)
    per_class, batches, warmup, iters = 100, (1, 8), args.warmup, args.iters
    if device.type == "cuda":
        batches, warmup, iters = (1, 8, 32), max(warmup, 3), max(iters, 20)
    if args.quick:
        per_class, batches, warmup, iters = 10, (1, 2), 1, 2
    env = environment(device, args.threads if device.type == "cpu" else None)
    model = load_mtcnn(device=device)

    q = quality(model, device, args.lfw_size, per_class)
    print_table(
        ["set", "images", "found (≥1 detection)", "rate"],
        [
            [
                f"lfw_subset faces @{q['lfw_size']}px",
                per_class,
                round(q["lfw_face_rate"] * per_class),
                q["lfw_face_rate"],
            ],
            [
                f"lfw_subset non-faces @{q['lfw_size']}px",
                per_class,
                round(q["lfw_non_face_rate"] * per_class),
                q["lfw_non_face_rate"],
            ],
        ]
        + [[f"{name} (faces detected)", 1, r["faces"], "-"] for name, r in q["photos"].items()],
        title=f"MTCNN detection rates, {env['device']}",
        quick=args.quick,
    )
    s = speed(model, device, batches, warmup, iters)
    print_table(
        ["image", "batch", "ms/image", "images/s", "faces/s"],
        [[r["image"], r["batch"], r["ms_per_image"], r["images_per_s"], r["faces_per_s"]] for r in s],
        title=f"MTCNN speed, {env['device']}, torch {env['torch']}"
        + (f", {args.threads} threads" if device.type == "cpu" else ""),
    )
    save_result(
        f"face_detect_{device.type}",
        env,
        quick=args.quick,
        settings={"min_face_size": 20, "thresholds": [0.6, 0.7, 0.7], "factor": 0.709},
        quality=q,
        speed=s,
    )


if __name__ == "__main__":
    main()
