"""Image matting as the engine trains it: `MatteTask`, its options being `MatteOptions`."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import torch

from mmkit.engine import Runtime, Task
from mmkit.errors import MMKitError
from mmkit.losses.matting import alpha_prediction_loss, dim_loss
from mmkit.models import get_model, get_model_info
from mmkit.models.matting import matting_input
from mmkit.tasks.matte.data import MattingData, collate_matting, load_matting_data
from mmkit.tasks.matte.options import MatteOptions
from mmkit.tasks.matte.predictor import MatteMeta, run_matting_meter

log = logging.getLogger(__name__)


@dataclass(eq=False)
class MatteTask(MatteOptions, Task):
    """Trains a matting model; its fields are the options of `mmkit matte train`."""

    name = "matte"
    monitor = ("val/sad", "min")

    def __post_init__(self) -> None:
        if not self.data:
            raise MMKitError("--data is required (matting-composites, or a matting folder)")
        if not 0 <= self.alpha_weight <= 1:
            raise MMKitError(f"--alpha-weight {self.alpha_weight}: must be in [0, 1]")
        if self.img_size < 16:
            raise MMKitError(f"--img-size {self.img_size}: at least 16 px")
        if self.train_size < 1:
            raise MMKitError(f"--train-size {self.train_size}: at least 1")
        if get_model_info(self.model).task != "matte":
            raise MMKitError(f"--model {self.model}: not a matting model (see `mmkit models list`)")
        self.model_kwargs = dict(self.model_kwargs or {})

    def setup(self, cfg, rt: Runtime) -> None:
        self.dataset: MattingData = load_matting_data(
            self.data, self.train_size, self.img_size, seed=cfg.seed
        )
        self.train_ds, self.val_ds = self.dataset.train, self.dataset.test
        self.net = get_model(self.model, **self.model_kwargs)
        self.meta = MatteMeta(self.model, self.img_size, self.data, self.model_kwargs)
        if rt.is_main:
            d = self.dataset
            log.info(
                "%s: %d train / %d held-out composites, %s at %dpx",
                d.name, len(d.train), len(d.test), self.model, self.img_size,
            )  # fmt: skip

    def collate_fn(self):
        return collate_matting

    def default_workers(self) -> int:
        return 0

    def loss(self, model, batch):
        image, alpha, trimap, fg, bg = batch
        pred = model(matting_input(image, trimap)).float()
        unknown = trimap == 128
        if fg is not None and bg is not None:
            loss = dim_loss(pred, alpha, fg, bg, image, unknown, self.alpha_weight)
        else:  # folders hold no foreground and background: the alpha-prediction loss alone
            loss = alpha_prediction_loss(pred, alpha, unknown)
        return loss, {"alpha_l1": ((pred - alpha).abs() * unknown).sum() / unknown.sum().clamp_min(1)}

    @torch.no_grad()
    def evaluate(self, model, loader, rt):
        meter = run_matting_meter(model, loader, rt.device, autocast=rt.autocast)
        return {f"val/{k}": v for k, v in meter.compute().items() if k != "images"}

    def checkpoint_meta(self) -> dict[str, Any]:
        return asdict(self.meta)
