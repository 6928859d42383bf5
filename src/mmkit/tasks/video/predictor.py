"""Video classification: frame features into a temporal model (LSTM, GRU, NetVLAD, MoE, mean pooling), or a small
CNN + LSTM/GRU trained end to end on raw clips; YouTube-8M records read without TensorFlow.

    task = VideoTask("motion-clips", "cnn-lstm")            # then Trainer(task, cfg).fit()
    task = VideoTask("yt8m/", "lstm", level="frame")        # YouTube-8M-format records (ours or the real ones)
    evaluate("runs/video/x/best.pt", "yt8m/")               # GAP@20, Hit@1, PERR (+ top-1 for single-label data)
    predict("runs/video/x/best.pt", ["clip.mp4"])           # labels with scores per video (and per segment)

Data specs (`load_video_data`): the builtin ``motion-clips`` (synthetic moving digits and shapes, labelled by their
motion, in memory); a folder of YouTube-8M TFRecords (``train*.tfrecord`` / ``validate*.tfrecord``, with
``vocabulary.csv`` when present), which is also what ``mmkit video features`` writes for the user's own videos; or
video files in one folder per class (``train/`` and ``val/`` or ``test/`` splits, or one tree split by
``val_split``) or a CSV of ``path,label[,label...]``, decoded to ``frames`` frames of ``img_size`` px for the
end-to-end models.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from mmkit.data.videos import VideoData, load_video_data, prepare_features
from mmkit.engine import Runtime, Task, load_checkpoint, select_device
from mmkit.engine.logger import next_run_dir
from mmkit.errors import MMKitError
from mmkit.metrics.video import VideoMeter
from mmkit.models import get_model, get_model_info

log = logging.getLogger(__name__)

CLIP_MODELS = ("cnn-lstm", "cnn-gru", "cnn-mean")


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


class VideoTask(Task):
    name = "video"

    def __init__(
        self,
        data: str,
        model: str = "lstm",
        weights: str | None = None,
        level: str = "frame",
        max_frames: int = 300,
        frames: int = 16,
        img_size: int | None = None,
        val_split: float = 0.1,
        model_kwargs: dict[str, Any] | None = None,
        augment: bool = False,
    ) -> None:
        if level not in ("frame", "video"):
            raise MMKitError(f"--level {level}: choose frame or video")
        self.data_spec, self.model_name, self.weights = str(data), model, weights
        self.level, self.max_frames, self.frames, self.img_size = level, max_frames, frames, img_size
        self.val_split, self.augment = val_split, augment
        self.model_kwargs = dict(model_kwargs or {})
        self.last_eval: dict[str, float] | None = None

    def setup(self, cfg, rt: Runtime) -> None:
        info = get_model_info(self.model_name)
        if info.task != "video":
            raise MMKitError(f"--model {self.model_name}: a {info.task} model, not a video model")
        clips = self.model_name in CLIP_MODELS
        img = self.img_size or (info.default_input_size if clips else None)
        self.data: VideoData = load_video_data(
            self.data_spec,
            kind="clips" if clips else "features",
            level=self.level,
            max_frames=self.max_frames,
            frames=self.frames,
            img_size=img,
            val_split=self.val_split,
            seed=cfg.seed,
            augment=self.augment,
        )
        d = self.data
        if clips != (d.kind == "clips"):
            hint = (
                "a frame-feature model (lstm, gru, video-mean, netvlad, moe)"
                if d.kind == "features"
                else (
                    "a clip model (cnn-lstm, cnn-gru, cnn-mean), or extract features first: mmkit video features"
                )
            )
            raise MMKitError(f"{self.data_spec}: holds {d.kind}; use {hint}")
        in_chans = 3 if clips else d.feature_dim
        self.model = get_model(
            self.model_name, len(d.classes), weights=self.weights, in_chans=in_chans, **self.model_kwargs
        )
        self.multi_label = d.multi_label
        self.monitor = ("val/gap", "max") if d.multi_label else ("val/top1", "max")
        self.meta = VideoMeta(
            self.model_name,
            len(d.classes),
            list(d.classes),
            d.kind,
            d.multi_label,
            self.level,
            d.feature_dim,
            self.max_frames,
            img,
            self.frames if clips else None,
            d.extractor,
            self.data_spec,
            self.model_kwargs,
        )
        if rt.is_main:
            log.info("%s; %s", d.summary(), self.model_name)

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def train_dataset(self):
        return self.data.train

    def val_dataset(self):
        return self.data.val

    def default_workers(self) -> int:
        return self.data.workers

    def collate_fn(self):
        return self.data.collate

    def _targets(self, y: torch.Tensor) -> torch.Tensor:
        return y.float() if self.multi_label else y.long()

    def _criterion(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.multi_label:
            # summed over classes, averaged over videos: the starter code's CrossEntropyLoss scale
            return F.binary_cross_entropy_with_logits(logits.float(), y.float(), reduction="sum") / len(y)
        return F.cross_entropy(logits.float(), y.long())

    def loss(self, model, batch):
        x, n, y = batch
        logits = model(prepare_features(x), n)
        loss = self._criterion(logits, y)
        if self.multi_label:
            hit = y.gather(1, logits.argmax(1, keepdim=True)).float().mean()
            return loss, {"hit1": hit * 100}
        return loss, {"top1": (logits.argmax(1) == y).float().mean() * 100}

    @torch.no_grad()
    def evaluate(self, model, loader, rt):
        meter = run_meter(model, loader, rt, len(self.data.classes), self._criterion)
        m = meter.compute()
        self.last_eval = m
        out = {"val/loss": m["loss"], "val/gap": m["gap"], "val/hit1": m["hit_at_one"], "val/perr": m["perr"]}
        if "top1" in m:
            out["val/top1"] = 100 * m["top1"]
        return out

    def checkpoint_meta(self) -> dict[str, Any]:
        return asdict(self.meta)

    def report_sections(self, run_dir: Path, rt):
        from mmkit.report import Section

        if not self.last_eval:
            return []
        rows = [[k, round(float(v), 4)] for k, v in self.last_eval.items() if k != "count"]
        return [Section("Validation (last epoch)", table=(["metric", "value"], rows))]


def run_meter(model: nn.Module, loader: DataLoader, rt: Runtime, num_classes: int, criterion) -> VideoMeter:
    """GAP@20, Hit@1, PERR, loss (and top-1) over a loader, gathered from every rank."""
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


# ---------------------------------------------------------------------------------------------------------------------
# Using a trained video model


def load_video_model(weights: str | os.PathLike, device="cpu") -> tuple[nn.Module, VideoMeta]:
    path = Path(weights)
    if not path.is_file():
        raise MMKitError(f"{path}: no such weights file")
    ck = load_checkpoint(path)
    if ck.get("task") != "video":
        raise MMKitError(f"{path}: a {ck.get('task')} checkpoint, not a video model")
    meta = VideoMeta(**ck["meta"])
    in_chans = 3 if meta.kind == "clips" else meta.feature_dim
    net = get_model(meta.model, meta.num_classes, in_chans=in_chans, **meta.model_kwargs)
    try:
        net.load_state_dict(ck["model"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise MMKitError(f"{path}: weights do not fit {meta.model} as this mmkit builds it ({first})") from e
    return net.to(device).eval(), meta


def evaluate(
    weights: str,
    data: str,
    *,
    batch_size: int = 64,
    device: str = "auto",
    out: str | os.PathLike | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """GAP@20, Hit@1, PERR (and top-1 for single-label data) on the validation split of `data`."""
    rt = Runtime(select_device(device))
    net, meta = load_video_model(weights, rt.device)
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

    def criterion(logits, y):
        if meta.multi_label:
            return F.binary_cross_entropy_with_logits(logits.float(), y.float(), reduction="sum") / len(y)
        return F.cross_entropy(logits.float(), y.long())

    m = run_meter(net, loader, rt, meta.num_classes, criterion).compute()
    out_dir = Path(out) if out is not None else next_run_dir("runs", "video", "eval", False)
    out_dir.mkdir(parents=True, exist_ok=True)
    r = {
        "weights": str(weights),
        "data": str(data),
        "videos": len(d.val),
        **{k: float(v) for k, v in m.items()},
    }
    (out_dir / "metrics.json").write_text(json.dumps(r, indent=2))
    r["out_dir"] = str(out_dir)
    return r


def class_scores(net: nn.Module, meta: VideoMeta, x: torch.Tensor) -> torch.Tensor:
    """Class probabilities [C] of one video: x is [T, 3, S, S] uint8 frames or [T, D] features."""
    dev = next(net.parameters()).device
    with torch.no_grad():
        logits = net(x[None].to(dev), torch.tensor([len(x)], device=dev))[0].float().cpu()
    return logits.sigmoid() if meta.multi_label else logits.softmax(0)


def top_labels(p: torch.Tensor, classes: list[str], k: int) -> list[dict[str, Any]]:
    v, i = p.topk(min(k, len(p)))
    return [
        {"label": classes[j], "score": round(float(s), 4)}
        for s, j in zip(v.tolist(), i.tolist(), strict=True)
    ]


def predict(
    weights: str,
    videos: list[str],
    *,
    topk: int = 5,
    segment_seconds: float | None = None,
    device: str = "auto",
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Labels with scores per video; with `segment_seconds`, also per segment [start, end) of the video.

    Clip models see `meta.frames` frames spread over the video (or over each segment); feature models see the
    features that `mmkit video features` made for their training data, recomputed at the same fps."""
    from mmkit.data.formats.video import read_frames

    dev = select_device(device)
    net, meta = load_video_model(weights, dev)
    extractor = info = None
    if meta.kind == "features":
        if not meta.extractor:
            raise MMKitError(
                f"{weights}: trained on features that mmkit did not extract (e.g. YouTube-8M); "
                "predict needs a model trained on `mmkit video features` output or a clip model"
            )
        from mmkit.tasks.video_features import frame_features, load_extractor

        extractor, info = load_extractor(meta.extractor["backbone"], meta.extractor["weights"], dev)
    results, failures = [], []
    for path in videos:
        try:
            if meta.kind == "clips":
                frames, ts = read_frames(path, num_frames=meta.frames, size=meta.img_size)
                x = center_square(frames, meta.img_size)
            else:
                frames, ts = read_frames(path, fps=meta.extractor["fps"])
                x = frame_features(frames[: meta.max_frames], extractor, info)
                ts = ts[: meta.max_frames]
            entry: dict[str, Any] = {
                "path": path,
                "top": top_labels(class_scores(net, meta, x), meta.classes, topk),
            }
            if segment_seconds:
                entry["segments"] = segment_labels(net, meta, path, x, ts, segment_seconds, topk)
            results.append(entry)
        except MMKitError as e:
            failures.append((path, str(e)))
    return results, failures


def center_square(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Frames whose shorter side is `size`, center-cropped to size×size (as the video datasets do)."""
    h, w = frames.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return frames[..., top : top + size, left : left + size]


def segment_labels(net, meta: VideoMeta, path: str, x, ts, seconds: float, topk: int) -> list[dict[str, Any]]:
    from mmkit.data.formats.video import probe, read_frames

    duration = float(probe(path).duration or (float(ts[-1]) if len(ts) else 0.0))
    out = []
    n_seg = max(1, math.ceil(duration / seconds - 1e-9))
    if meta.kind == "clips":  # denser frames, then meta.frames of them spread over each segment
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
