"""Per-frame CNN features of video files, written as YouTube-8M frame-level records, so one trainer reads the
user's own videos and the benchmark alike.

    r = extract(["clips/"], "feats/", backbone="efficientnet_lite0", weights="imagenet", fps=1.0)
    # feats/train0000.tfrecord, feats/validate0000.tfrecord, feats/vocabulary.csv, feats/features.json

Frames are sampled at `fps` (YouTube-8M: 1 per second), resized to the backbone's input size and normalized as its
weights expect; the feature is the input of the backbone's classifier (the pooled pre-logits). YouTube-8M stores
features quantized to 8 bits over [-2, 2] after PCA and whitening; here each frame feature is L2-normalized and
scaled to an RMS of 0.5 per component (`scale_features`) before the same quantization; post-ReLU features use only
the upper half of that range, and about 1 % of values (the largest) are clipped at 2. features.json records all
of this, so `mmkit video predict` redoes it on new videos.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.progress import Progress
from torch import nn

from mmkit.data.formats.video import is_video_file, read_frames
from mmkit.data.formats.youtube8m import write_records
from mmkit.data.walk import walk_files
from mmkit.engine import select_device
from mmkit.errors import MMKitError
from mmkit.models import classifier_head
from mmkit.tasks.classify.predictor import ClassifierPredictor

log = logging.getLogger(__name__)

FEATURE_RMS = 0.5


def scale_features(f: torch.Tensor) -> torch.Tensor:
    """[T, D] features, L2-normalized per frame and scaled to an RMS of FEATURE_RMS per component."""
    return F.normalize(f.float(), dim=-1) * (FEATURE_RMS * math.sqrt(f.shape[-1]))


class FrameFeatures(nn.Module):
    """A classifier whose final linear layer is bypassed: images [N, 3, S, S] (normalized) -> pre-logits [N, D]."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.head = net, classifier_head(net)
        self._captured: torch.Tensor | None = None
        self.head.register_forward_hook(self._capture)

    def _capture(self, module, inputs, output) -> None:
        self._captured = inputs[0]

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.net(x)
        out, self._captured = self._captured, None
        return out.flatten(1)


def load_extractor(backbone: str, weights: str, device: torch.device) -> tuple[FrameFeatures, dict[str, Any]]:
    """A registered image model with its named (or file) `weights` as a frame feature extractor, and how to feed it."""
    p = ClassifierPredictor.load(weights, model=backbone, device=device)
    net, meta = p.net, p.meta
    info = {
        "backbone": backbone,
        "weights": weights,
        "img_size": meta.img_size,
        "mean": list(meta.mean),
        "std": list(meta.std),
    }
    return FrameFeatures(net).eval(), info


@torch.no_grad()
def frame_features(
    frames: torch.Tensor, extractor: FrameFeatures, info: dict[str, Any], batch_size: int = 64
) -> torch.Tensor:
    """uint8 frames [T, 3, H, W] -> scaled features [T, D] (on the CPU)."""
    dev = next(extractor.parameters()).device
    size = info["img_size"]
    mean = torch.tensor(info["mean"], device=dev).view(1, 3, 1, 1)
    std = torch.tensor(info["std"], device=dev).view(1, 3, 1, 1)
    out = []
    for i in range(0, len(frames), batch_size):
        x = frames[i : i + batch_size].to(dev).float()
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False) / 255
        out.append(scale_features(extractor((x - mean) / std)).cpu())
    return torch.cat(out)


def _inputs(paths: list[str]) -> tuple[list[tuple[Path, int | None]], list[str]]:
    """(video, class index or None) for files and for folders of class folders; the class names."""
    classes: list[str] = []
    items: list[tuple[Path, str | None]] = []
    for p in map(Path, paths):
        if p.is_dir():
            subs = sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))
            for d in subs:
                items += [(f, d.name) for f in walk_files(d, recursive=False) if is_video_file(f.name)]
            if not subs:
                items += [(f, None) for f in walk_files(p, recursive=False) if is_video_file(f.name)]
        elif p.is_file():
            items.append((p, None))
        else:
            raise MMKitError(f"{p}: no such video file or folder")
    classes = sorted({c for _, c in items if c is not None})
    index = {c: i for i, c in enumerate(classes)}
    return [(f, index[c] if c is not None else None) for f, c in items], classes


def extract(
    videos: list[str | Path],
    out: str | Path,
    *,
    backbone: str = "efficientnet_lite0",
    weights: str = "imagenet",
    fps: float = 1.0,
    max_frames: int = 300,
    val_split: float = 0.2,
    batch_size: int = 64,
    device: str = "auto",
    seed: int = 0,
) -> dict[str, Any]:
    """Features of every video (unreadable ones are skipped with a warning naming them), written as
    train0000.tfrecord / validate0000.tfrecord (a seeded `val_split` of the videos), vocabulary.csv, features.json."""
    items, classes = _inputs([str(v) for v in videos])
    if not items:
        raise MMKitError(f"{', '.join(map(str, videos))}: no video files")
    dev = select_device(device)
    extractor, info = load_extractor(backbone, weights, dev)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(items), generator=g).tolist()
    n_val = round(len(items) * val_split) if classes else 0
    is_val = set(order[:n_val])
    records: dict[str, list[dict[str, Any]]] = {"train": [], "validate": []}
    skipped, n_frames, dim = [], 0, 0
    with Progress(transient=True) as bar:
        task = bar.add_task("features", total=len(items))
        for k, (path, label) in enumerate(items):
            try:
                frames, _ = read_frames(path, fps=fps)
            except MMKitError as e:
                log.warning("skipped: %s", e)
                skipped.append(str(path))
                bar.advance(task)
                continue
            feats = frame_features(frames[:max_frames], extractor, info, batch_size)
            n_frames, dim = n_frames + len(feats), feats.shape[1]
            rec = {
                "id": f"{path.parent.name}/{path.stem}" if label is not None else path.stem,
                "labels": [label] if label is not None else [],
                "rgb": feats.numpy(),
                "audio": feats.new_zeros(len(feats), 0).numpy(),
            }
            records["validate" if k in is_val else "train"].append(rec)
            bar.advance(task)
    written = {}
    for split, recs in records.items():
        if recs:
            written[split] = write_records(out / f"{split}0000.tfrecord", recs, level="frame")
    if classes:
        (out / "vocabulary.csv").write_text(
            "index,name\n" + "".join(f"{i},{c}\n" for i, c in enumerate(classes))
        )
    meta = {
        **info,
        "fps": fps,
        "max_frames": max_frames,
        "dim": dim,
        "scale": f"l2, rms {FEATURE_RMS}",
        "single_label": True,
        "classes": classes,
    }
    (out / "features.json").write_text(json.dumps(meta, indent=2))
    return {
        "out": str(out),
        "videos": sum(written.values()),
        "train": written.get("train", 0),
        "validate": written.get("validate", 0),
        "frames": n_frames,
        "dim": dim,
        "backbone": backbone,
        "classes": len(classes),
        "skipped": len(skipped),
        "skipped_files": skipped,
    }
