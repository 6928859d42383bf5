"""Using a trained video model: `VideoPredictor` loads it, labels video files (whole and per segment), evaluates.

    p = VideoPredictor.load("runs/video/x/best.pt")
    p.evaluate("yt8m/")                                  # GAP@20, mAP, Hit@1, PERR (+ top-1 for single-label data)
    p.predict(["clip.mp4"], segment_seconds=5)           # labels with scores per video (and per segment)
    p.submission(["yt8m/test/"], "out.csv")              # the Kaggle top-20 CSV of YouTube-8M records

Clip models see `meta.frames` frames spread over the video (or over each segment); feature models see the features
that `mmkit video features` made for their training data, recomputed at the same fps (`features.py`).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from mmkit.data.formats.video import probe, read_frames
from mmkit.data.formats.youtube8m import read_records
from mmkit.data.videos import load_video_data, prepare_features
from mmkit.engine import Runtime
from mmkit.errors import MMKitError
from mmkit.export import Graph
from mmkit.metrics.video import VideoMeter
from mmkit.models import get_model
from mmkit.tasks.predictor import Predictor
from mmkit.tasks.video.features import FrameFeatures, frame_features, load_extractor


@dataclass
class VideoMeta:
    """What it takes to rebuild a video model and feed it: stored in every video checkpoint as `meta`."""

    model: str
    num_classes: int
    classes: list[str]
    kind: str  # "clips" (raw frames) or "features" (per-frame feature vectors)
    multi_label: bool
    level: str = "frame"  # features: frame or video level
    feature_dim: int | None = None
    max_frames: int = 300
    img_size: int | None = None  # clips
    frames: int | None = None  # clips: frames sampled per video
    extractor: dict[str, Any] | None = None  # features written by `mmkit video features`: how to redo them
    data: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def inputs(self) -> dict[str, int | None]:
        """The model builder's input argument: `in_chans` 3 (RGB) for clip models, `feature_dim` otherwise."""
        return {"in_chans": 3} if self.kind == "clips" else {"feature_dim": self.feature_dim}


def video_loss(logits: torch.Tensor, y: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """Cross-entropy for single-label data; for multi-label data the binary cross-entropy summed over classes and
    averaged over videos (the YouTube-8M starter code's CrossEntropyLoss scale)."""
    if multi_label:
        return F.binary_cross_entropy_with_logits(logits.float(), y.float(), reduction="sum") / len(y)
    return F.cross_entropy(logits.float(), y.long())


def run_meter(model: nn.Module, loader: DataLoader, rt: Runtime, num_classes: int, criterion) -> VideoMeter:
    """GAP@20, mAP, Hit@1, PERR, loss (and top-1) over a loader, gathered from every rank."""
    meter = VideoMeter(num_classes, top_k=20)
    model.eval()
    for batch in loader:
        if batch is None:  # every video of the batch failed to decode (already reported)
            continue
        x, n, y = rt.move(batch)
        with rt.autocast():
            logits = model(prepare_features(x), n)
        meter.update(logits.float(), y, criterion(logits, y) * len(y))
    if rt.distributed:
        meter.load_states(rt.gather_objects(meter.state()))
    return meter


def batch_scores(net: nn.Module, meta: VideoMeta, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Class probabilities [B, C] of a batch of videos (sigmoid for multi-label models, softmax otherwise)."""
    dev = next(net.parameters()).device
    with torch.no_grad():
        logits = net(x.to(dev), lengths.to(dev)).float().cpu()
    return logits.sigmoid() if meta.multi_label else logits.softmax(1)


def class_scores(net: nn.Module, meta: VideoMeta, x: torch.Tensor) -> torch.Tensor:
    """Class probabilities [C] of one video: x is [T, 3, S, S] uint8 frames or [T, D] features."""
    return batch_scores(net, meta, x[None], torch.tensor([len(x)]))[0]


def top_labels(p: torch.Tensor, classes: list[str], k: int) -> list[dict[str, Any]]:
    v, i = p.topk(min(k, len(p)))
    return [
        {"label": classes[j], "score": round(float(s), 4)}
        for s, j in zip(v.tolist(), i.tolist(), strict=True)
    ]


def record_batches(
    paths: list[str], meta: VideoMeta, batch_size: int
) -> Iterator[tuple[list[str], torch.Tensor, torch.Tensor]]:
    """(video ids, features, lengths) batches of the YouTube-8M records in `paths` (files, folders, globs), as the
    model was trained on them: frame level [B, max_frames, D] (the first max_frames frames, zero-padded), or video
    level [B, D]."""
    ids: list[str] = []
    rows: list[np.ndarray] = []
    for rec in read_records(paths, level=meta.level):
        x = np.concatenate([rec["rgb"], rec["audio"]], axis=-1)[: meta.max_frames]
        if x.shape[-1] != meta.feature_dim:
            raise MMKitError(
                f"video {rec['id']}: {x.shape[-1]} features per frame, the model takes {meta.feature_dim}"
            )
        ids.append(rec["id"])
        rows.append(x)
        if len(rows) == batch_size:
            yield ids, *_stack(rows, meta)
            ids, rows = [], []
    if rows:
        yield ids, *_stack(rows, meta)


def _stack(rows: list[np.ndarray], meta: VideoMeta) -> tuple[torch.Tensor, torch.Tensor]:
    """Video-level rows [D] as [B, D]; frame-level rows [T_i, D] zero-padded to [B, max_frames, D]; and lengths."""
    if meta.level == "video":
        return torch.from_numpy(np.stack(rows)), torch.ones(len(rows), dtype=torch.int64)
    x = torch.zeros(len(rows), meta.max_frames, meta.feature_dim)
    for i, r in enumerate(rows):
        x[i, : len(r)] = torch.from_numpy(r)
    return x, torch.tensor([len(r) for r in rows], dtype=torch.int64)


def center_square(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Frames whose shorter side is `size`, center-cropped to size×size (as the video datasets do)."""
    h, w = frames.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return frames[..., top : top + size, left : left + size]


def segment_labels(net, meta: VideoMeta, path: str, x, ts, seconds: float, topk: int) -> list[dict[str, Any]]:
    """Labels of each `seconds`-long segment [start, end) of the video at `path`, whose model input `x` has the
    timestamps `ts` (clip models read denser frames again, then `meta.frames` of them spread over each segment)."""
    duration = float(probe(path).duration or (float(ts[-1]) if len(ts) else 0.0))
    out = []
    n_seg = max(1, math.ceil(duration / seconds - 1e-9))
    if meta.kind == "clips":
        fps = max(1.0, meta.frames / seconds)
        frames, ts = read_frames(path, fps=fps, size=meta.img_size)
        x = center_square(frames, meta.img_size)
    ts = torch.as_tensor(ts, dtype=torch.float64)
    for k in range(n_seg):
        start, end = k * seconds, min((k + 1) * seconds, duration)
        idx = ((ts >= start) & (ts < end if k < n_seg - 1 else ts <= end)).nonzero().flatten()
        if len(idx) == 0:
            continue
        if meta.kind == "clips" and len(idx) > meta.frames:
            idx = idx[torch.linspace(0, len(idx) - 1, meta.frames).round().long()]
        p = class_scores(net, meta, x[idx])
        out.append({"start": round(start, 2), "end": round(end, 2), "top": top_labels(p, meta.classes, topk)})
    return out


class VideoPredictor(Predictor):
    task = "video"
    meta: VideoMeta

    def __init__(self, net: nn.Module, meta: VideoMeta, device: torch.device, source: str) -> None:
        super().__init__(net, meta, device, source)
        self._extractor: tuple[FrameFeatures, dict[str, Any]] | None = None

    @staticmethod
    def network(meta: VideoMeta) -> nn.Module:
        return get_model(meta.model, meta.num_classes, **meta.inputs, **meta.model_kwargs)

    def export_graphs(self, net: nn.Module) -> list[Graph]:
        """The classifier of whole videos -> logits [batch, classes] (sigmoid or softmax outside): clip models
        (CNN + RNN) take uint8 frames [batch, frames, 3, S, S], frame-level feature models float features
        [batch, frames, D], both with each video's frame count `lengths` [batch] (batch and frames may change);
        video-level models take features [batch, D]. The features themselves (`mmkit video features`) stay outside."""
        meta, g = self.meta, torch.Generator().manual_seed(0)
        if meta.kind == "features" and meta.level == "video":
            x = torch.randn(2, meta.feature_dim, generator=g)
            return [Graph("classifier", net, (x,), ["features"], ["logits"])]
        t = max(2, meta.frames or 8)
        if meta.kind == "clips":
            x = torch.randint(0, 256, (2, t, 3, meta.img_size, meta.img_size), dtype=torch.uint8, generator=g)
        else:
            x = torch.randn(2, t, meta.feature_dim, generator=g)
        name = "frames" if meta.kind == "clips" else "features"
        axes = {name: {0: "batch", 1: "frames"}, "lengths": {0: "batch"}, "logits": {0: "batch"}}
        lengths = torch.tensor([t, t - 1])  # the second video padded by one frame
        return [Graph("classifier", net, (x, lengths), [name, "lengths"], ["logits"], axes)]

    def extractor(self) -> tuple[FrameFeatures, dict[str, Any]]:
        """Feature models: the image model that made their training features, and how it was fed (loaded once)."""
        if self._extractor is None:
            ext = self.meta.extractor
            if not ext:
                raise MMKitError(
                    f"{self.source}: trained on features that mmkit did not extract (e.g. YouTube-8M); "
                    "predict needs a model trained on `mmkit video features` output or a clip model"
                )
            self._extractor = load_extractor(ext["backbone"], ext["weights"], self.device)
        return self._extractor

    def inputs(self, path: str | os.PathLike) -> tuple[torch.Tensor, Any]:
        """The model input of one video file and its frame timestamps: frames [T, 3, S, S] (clip models) or
        features [T, D]."""
        meta = self.meta
        if meta.kind == "clips":
            frames, ts = read_frames(path, num_frames=meta.frames, size=meta.img_size)
            return center_square(frames, meta.img_size), ts
        frames, ts = read_frames(path, fps=meta.extractor["fps"])
        return frame_features(frames[: meta.max_frames], *self.extractor()), ts[: meta.max_frames]

    def predict(
        self, videos: list[str], *, topk: int = 5, segment_seconds: float | None = None
    ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """Labels with scores per video; with `segment_seconds`, also per segment [start, end) of the video.
        Returns (predictions, failures) where failures are (path, reason)."""
        if self.meta.kind == "features":
            self.extractor()  # a model that cannot predict says so once, not once per video
        results, failures = [], []
        for path in videos:
            try:
                x, ts = self.inputs(path)
                entry: dict[str, Any] = {
                    "path": path,
                    "top": top_labels(class_scores(self.net, self.meta, x), self.meta.classes, topk),
                }
                if segment_seconds:
                    entry["segments"] = segment_labels(
                        self.net, self.meta, path, x, ts, segment_seconds, topk
                    )
                results.append(entry)
            except MMKitError as e:
                failures.append((path, str(e)))
        return results, failures

    def submission(
        self, records: list[str], out: str | os.PathLike, *, topk: int = 20, batch_size: int = 64
    ) -> dict[str, Any]:
        """Write the Kaggle YouTube-8M submission for every video of the TFRecord `records` (files, folders,
        globs; e.g. the test partition): the starter code's `inference.py` format, a header
        ``VideoId,LabelConfidencePairs`` then one line per video, its id and its top-k "label score" pairs by
        descending score (label = class index, score = probability, printed as %g)."""
        if self.meta.kind != "features":
            raise MMKitError(
                f"{self.source}: --submission needs a model of YouTube-8M features, not a clip model"
            )
        if topk < 1:
            raise MMKitError(f"--topk {topk}: at least 1")
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        videos = 0
        with open(out, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["VideoId", "LabelConfidencePairs"])
            for ids, x, lengths in record_batches(records, self.meta, batch_size):
                top, labels = batch_scores(self.net, self.meta, x, lengths).topk(
                    min(topk, self.meta.num_classes)
                )
                for vid, s, c in zip(ids, top.tolist(), labels.tolist(), strict=True):
                    w.writerow(
                        [vid, " ".join(f"{label} {score:g}" for label, score in zip(c, s, strict=True))]
                    )
                videos += len(ids)
        return {
            "weights": self.source,
            "videos": videos,
            "topk": min(topk, self.meta.num_classes),
            "out": str(out),
        }

    def evaluate(
        self,
        data: str,
        *,
        batch_size: int = 64,
        out: str | os.PathLike | None = None,
        workers: int | None = None,
    ) -> dict[str, Any]:
        """GAP@20, mAP, Hit@1, PERR (and top-1 for single-label data) on the validation split of `data`, and the AP
        of each class that has a positive there ("per_class_ap": {class name: AP})."""
        rt, meta = Runtime(self.device), self.meta
        d = load_video_data(
            data,
            kind=meta.kind,
            level=meta.level,
            max_frames=meta.max_frames,
            frames=meta.frames or 16,
            img_size=meta.img_size,
            val_split=0.1,
            seed=0,
        )
        if len(d.classes) != meta.num_classes:
            raise MMKitError(f"{data}: {len(d.classes)} classes, but the model predicts {meta.num_classes}")
        if d.val is None or len(d.val) == 0:
            raise MMKitError(f"{data}: no validation videos")
        loader = DataLoader(
            d.val,
            batch_size=batch_size,
            num_workers=d.workers if workers is None else workers,
            collate_fn=d.collate,
        )
        criterion = partial(video_loss, multi_label=meta.multi_label)
        meter = run_meter(self.net, loader, rt, meta.num_classes, criterion)
        m = meter.compute()
        out_dir = self.eval_dir(out)
        per_class_ap = {
            c: float(ap)
            for c, ap in zip(meta.classes, meter.per_class_ap(), strict=True)
            if not math.isnan(ap)
        }
        r = self.write_metrics(
            out_dir, data, videos=len(d.val), **{k: float(v) for k, v in m.items()}, per_class_ap=per_class_ap
        )
        r["out_dir"] = str(out_dir)
        return r


PREDICTOR = VideoPredictor


# The task's functions, as the CLI, analyze and serve call them: a predictor loaded from `weights`, then its method.


def load_video_model(weights: str | os.PathLike, device="cpu") -> tuple[nn.Module, VideoMeta]:
    p = VideoPredictor.load(weights, device=device)
    return p.net, p.meta


def evaluate(weights: str, data: str, *, device: str = "auto", **kw: Any) -> dict[str, Any]:
    """GAP@20, mAP (and per-class AP), Hit@1, PERR (and top-1 for single-label data) on the validation split of
    `data`; `kw`: batch_size, out, workers."""
    return VideoPredictor.load(weights, device=device).evaluate(data, **kw)


def write_submission(
    weights: str, records: list[str], out: str | os.PathLike, *, device: str = "auto", **kw: Any
) -> dict[str, Any]:
    """The Kaggle YouTube-8M submission CSV of the videos in `records` (`kw`: topk, batch_size)."""
    return VideoPredictor.load(weights, device=device).submission(records, out, **kw)


def predict(
    weights: str, videos: list[str], *, device: str = "auto", **kw: Any
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Labels with scores per video (`kw`: topk, segment_seconds); (predictions, failures)."""
    return VideoPredictor.load(weights, device=device).predict(videos, **kw)
