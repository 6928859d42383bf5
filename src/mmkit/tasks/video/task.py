"""Video classification as the engine trains it: `VideoTask`, its options being `VideoOptions`.

    task = VideoTask("motion-clips", "cnn-lstm")            # then Trainer(task, cfg).fit()
    task = VideoTask("yt8m/", "lstm", level="frame")        # YouTube-8M-format records (ours or the real ones)

Frame features go into a temporal model (LSTM, GRU, plain RNN, NetVLAD, DBoF, MoE, logistic, mean pooling), or a
small CNN + LSTM/GRU/RNN is trained end to end on raw clips. Data specs (`load_video_data`): the builtin
``motion-clips`` (synthetic moving digits and shapes, labelled by their motion, in memory); a folder of YouTube-8M
TFRecords (``train*.tfrecord`` / ``validate*.tfrecord``, with ``vocabulary.csv`` when present), which is also what
``mmkit video features`` writes for the user's own videos; or video files in one folder per class (``train/`` and
``val/`` or ``test/`` splits, or one tree split by ``val_split``) or a CSV of ``path,label[,label...]``, decoded to
``frames`` frames of ``img_size`` px for the end-to-end models.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from mmkit.data.videos import VideoData, load_video_data, prepare_features
from mmkit.engine import Runtime, Task
from mmkit.errors import MMKitError
from mmkit.models import get_model, get_model_info, list_models
from mmkit.tasks.video.options import CLIP_MODELS, LEVELS, VideoOptions
from mmkit.tasks.video.predictor import VideoMeta, run_meter, video_loss

log = logging.getLogger(__name__)


@dataclass(eq=False)
class VideoTask(VideoOptions, Task):
    """Trains a video classifier; its fields are the options of `mmkit video train`."""

    name = "video"

    def __post_init__(self) -> None:
        if not self.data:
            raise MMKitError("--data is required (motion-clips, a folder of TFRecords, or video folders)")
        if self.level not in LEVELS:
            raise MMKitError(f"--level {self.level}: choose frame or video")
        self.data = str(self.data)
        # --hidden, --layers and --bidirectional are model arguments with flags of their own (they win)
        flags = {"hidden": self.hidden, "layers": self.layers, "bidirectional": self.bidirectional or None}
        self.model_kwargs = {
            **(self.model_kwargs or {}),
            **{k: v for k, v in flags.items() if v is not None},
        }
        self.last_eval: dict[str, float] | None = None

    def setup(self, cfg, rt: Runtime) -> None:
        info = get_model_info(self.model)
        if info.task != "video":
            raise MMKitError(f"--model {self.model}: a {info.task} model, not a video model")
        clips = self.model in CLIP_MODELS
        img = self.img_size or (info.default_input_size if clips else None)
        self.dataset: VideoData = load_video_data(
            self.data,
            kind="clips" if clips else "features",
            level=self.level,
            max_frames=self.max_frames,
            frames=self.frames,
            img_size=img,
            val_split=self.val_split,
            seed=cfg.seed,
            augment=self.augment,
        )
        d = self.dataset
        if clips != (d.kind == "clips"):
            features = [m for m in list_models("video") if m not in CLIP_MODELS]
            hint = (
                f"a frame-feature model ({', '.join(features)})"
                if d.kind == "features"
                else f"a clip model ({', '.join(CLIP_MODELS)}), or extract features first: mmkit video features"
            )
            raise MMKitError(f"{self.data}: holds {d.kind}; use {hint}")
        self.multi_label = d.multi_label
        self.train_ds, self.val_ds = d.train, d.val
        self.monitor = ("val/gap", "max") if d.multi_label else ("val/top1", "max")
        self.meta = VideoMeta(
            self.model,
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
            self.data,
            self.model_kwargs,
        )
        self.net = get_model(
            self.model, len(d.classes), weights=self.weights, **self.meta.inputs, **self.model_kwargs
        )
        if rt.is_main:
            log.info("%s; %s", d.summary(), self.model)

    def default_workers(self) -> int:
        return self.dataset.workers

    def collate_fn(self):
        return self.dataset.collate

    def _criterion(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return video_loss(logits, y, self.multi_label)

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
        meter = run_meter(model, loader, rt, len(self.dataset.classes), self._criterion)
        m = meter.compute()
        self.last_eval = m
        out = {
            "val/loss": m["loss"],
            "val/gap": m["gap"],
            "val/map": m["map"],
            "val/hit1": m["hit_at_one"],
            "val/perr": m["perr"],
        }
        if "top1" in m:
            out["val/top1"] = 100 * m["top1"]
        return out

    def checkpoint_meta(self) -> dict[str, Any]:
        return asdict(self.meta)

    def report_sections(self, run_dir: Path, rt):
        # the report's plotting stack loads only when a run writes its report
        from mmkit.report import Section

        if not self.last_eval:
            return []
        rows = [[k, round(float(v), 4)] for k, v in self.last_eval.items() if k != "count"]
        return [Section("Validation (last epoch)", table=(["metric", "value"], rows))]
