"""`mmkit analyze` speed: photos per second over a folder of N JPEG photos, ImageNet top-5 (EfficientNet-Lite0) and
faces (MTCNN), on the CPU by default.

The photos are made from scikit-image's colour pictures (astronaut, chelsea, coffee, rocket, hubble_deep_field, immunohistochemistry, retina): a seeded
random crop of 50-100 % of each side, resized so that its longer side is 480, 640, 800 or 1024 px, saved as JPEG
(quality 90). `analyze` runs as the command does (batches of `--batch-size`, decoding threads one batch ahead,
thumbnails, pictures with faces drawn, analysis.json, report.html). Reported: the end-to-end time (models loaded
included) and the steady rate, N / (total − model loading), the loading timed on its own beforehand.

    .venv/bin/python bench/analyze_speed.py [--photos 1000] [--batch-size 32] [--device cpu|cuda] [--quick]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import skimage.data
import torch
from common import base_parser, environment, parse_args, print_table, save_result, sync
from PIL import Image

from mmkit.apps.analyze import analyze, load_models

BASES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
SIDES = (480, 640, 800, 1024)


def make_photos(folder: Path, n: int, seed: int = 0) -> dict[str, float]:
    """`n` JPEG photos in `folder`; returns their mean size in megapixels and bytes."""
    rng = np.random.default_rng(seed)
    bases = [Image.fromarray(getattr(skimage.data, name)()).convert("RGB") for name in BASES]
    pixels, size = 0, 0
    for i in range(n):
        img = bases[i % len(bases)]
        w, h = img.size
        cw, ch = int(w * rng.uniform(0.5, 1.0)), int(h * rng.uniform(0.5, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        side = int(rng.choice(SIDES))
        s = side / max(cw, ch)
        photo = img.crop((x, y, x + cw, y + ch)).resize((round(cw * s), round(ch * s)), Image.BILINEAR)
        path = folder / f"photo_{i:05d}.jpg"
        photo.save(path, quality=90)
        pixels += photo.size[0] * photo.size[1]
        size += path.stat().st_size
    return {"mean_megapixels": round(pixels / n / 1e6, 3), "mean_bytes": round(size / n)}


def main() -> None:
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--photos", type=int, default=1000, help="photos in the folder (--quick: 50)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=None, help="decoding threads (default: analyze's, up to 4)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parse_args(p)
    n = 50 if args.quick else args.photos
    device = torch.device(args.device)
    env = environment(device, args.threads if device.type == "cpu" else None)
    with tempfile.TemporaryDirectory(prefix="mmkit-analyze-bench-") as tmp:
        folder, out = Path(tmp) / "photos", Path(tmp) / "out"
        folder.mkdir()
        photos = make_photos(folder, n)
        t0 = time.perf_counter()
        load_models(device=args.device).close()  # also warms the file cache for the timed run
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        doc = analyze(
            [folder],
            out,
            batch_size=args.batch_size,
            workers=args.workers,
            device=args.device,
            progress=False,
        )
        sync(device)
        total_s = time.perf_counter() - t0
    files = doc["files"]
    faces = sum(len(r["faces"]) for r in files)
    steady = n / max(total_s - load_s, 1e-9)
    row = {
        "models": "imagenet + faces",
        "photos": n,
        "analyzed": len(files),
        "errors": len(doc["errors"]),
        "faces": faces,
        "load_s": round(load_s, 2),
        "total_s": round(total_s, 2),
        "photos_per_s_end_to_end": round(n / total_s, 2),
        "photos_per_s": round(steady, 2),
        "ms_per_photo": round(1000 / steady, 1),
    }
    print_table(
        ["models", "photos", "faces", "load s", "total s", "photos/s (end to end)", "photos/s", "ms/photo"],
        [
            [
                row["models"],
                n,
                faces,
                row["load_s"],
                row["total_s"],
                row["photos_per_s_end_to_end"],
                row["photos_per_s"],
                row["ms_per_photo"],
            ]
        ],
        title=f"mmkit analyze, {env['device']}, torch {env['torch']}"
        + (f", {args.threads} threads" if device.type == "cpu" else ""),
        quick=args.quick,
    )
    save_result(
        f"analyze_speed_{device.type}",
        env,
        quick=args.quick,
        settings={"batch_size": args.batch_size, "workers": args.workers, "sides": SIDES, **photos},
        result=row,
    )


if __name__ == "__main__":
    main()
