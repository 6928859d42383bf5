"""Using a trained matting model: `MattePredictor` loads it, predicts alphas and evaluates them against baselines."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from mmkit.data.formats.images import read_image
from mmkit.data.formats.matting import read_trimap
from mmkit.errors import MMKitError
from mmkit.export import Graph
from mmkit.metrics.matting import MattingMeter, fill_known, guided_filter_baseline, trimap_baseline
from mmkit.models import get_model
from mmkit.models.matting import matting_input
from mmkit.tasks.predictor import Predictor


@dataclass
class MatteMeta:
    """What it takes to rebuild a matting model: stored in every matte checkpoint as `meta`."""

    model: str
    img_size: int
    data: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)


def _items(batch: tuple[Any, ...]):
    """(image, alpha, trimap) per item of a collated batch (stacked tensors or lists)."""
    image, alpha, trimap = batch[:3]
    return zip(image, alpha, trimap, strict=True)


@torch.no_grad()
def alpha_of(
    net: nn.Module, image: torch.Tensor, trimap: torch.Tensor, device, autocast=None
) -> torch.Tensor:
    """The predicted alpha [H, W] (float, CPU) of one uint8 image [3, H, W] and trimap [1, H, W], known regions
    taken from the trimap."""
    x = matting_input(image.to(device)[None], trimap.to(device)[None])
    with autocast() if autocast is not None else contextlib.nullcontext():
        pred = net(x)
    return torch.from_numpy(fill_known(pred.float()[0].cpu(), trimap))


def run_matting_meter(
    net: nn.Module, loader, device, autocast: Callable | None = None, baselines: bool = False
) -> MattingMeter | tuple[MattingMeter, MattingMeter, MattingMeter]:
    """SAD/MSE/Grad/Conn of the model over a loader's images (known regions filled from the trimap); with
    `baselines`, also those of the trimap baseline and the guided-filter baseline on the same images."""
    net.eval()
    meter, tri, gf = MattingMeter(), MattingMeter(), MattingMeter()
    for batch in loader:
        for image, alpha, trimap in _items(batch):
            meter.update(alpha_of(net, image, trimap, device, autocast), alpha, trimap)
            if baselines:
                tri.update(trimap_baseline(trimap), alpha, trimap)
                gf.update(guided_filter_baseline(image, trimap), alpha, trimap)
    return (meter, tri, gf) if baselines else meter


def _rgb(image: torch.Tensor) -> torch.Tensor:
    return image.expand(3, -1, -1).contiguous() if image.shape[0] == 1 else image[:3]


def _checkerboard(h: int, w: int, square: int = 8) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return np.where(((yy // square) + (xx // square)) % 2 == 0, 0.9, 0.6)[..., None] * 255


class Matting(nn.Module):
    """A matting network on uint8 images and trimaps (`matting_input` inside), for export."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, trimap: torch.Tensor) -> torch.Tensor:
        return self.net(matting_input(image, trimap))


class MattePredictor(Predictor):
    task = "matte"
    meta: MatteMeta

    @staticmethod
    def network(meta: MatteMeta) -> nn.Module:
        return get_model(meta.model, **meta.model_kwargs)

    def export_graphs(self, net: nn.Module) -> list[Graph]:
        """uint8 images [batch, 3, H, W] and trimaps [batch, 1, H, W] of 0 / 128 / 255 -> alphas [batch, 1, H, W] in
        [0, 1], any H and W (the padding to the network's stride is inside). Setting the trimap's known regions
        (`fill_known`, as `predict` does) stays outside."""
        # sides off the network's stride, so that the padding is traced
        g, shape = torch.Generator().manual_seed(0), (2, 1, self.meta.img_size + 5, self.meta.img_size + 3)
        image = torch.randint(0, 256, (2, 3, *shape[2:]), dtype=torch.uint8, generator=g)
        trimap = torch.tensor([0, 128, 255], dtype=torch.uint8)[torch.randint(0, 3, shape, generator=g)]
        pixels = {0: "batch", 2: "height", 3: "width"}
        axes = {"image": pixels, "trimap": pixels, "alpha": pixels}
        return [Graph("matting", Matting(net), (image, trimap), ["image", "trimap"], ["alpha"], axes)]

    def predict_alpha(self, image: torch.Tensor, trimap: torch.Tensor) -> torch.Tensor:
        """The alpha [H, W] in [0, 1] of a uint8 image [3, H, W] and a uint8 trimap [1, H, W] of 0/128/255."""
        return alpha_of(self.net, _rgb(image), trimap, self.device)

    def predict(
        self,
        images: list[str | os.PathLike],
        trimaps: list[str | os.PathLike] | None = None,
        *,
        out: str | os.PathLike = "runs/matte/predict",
    ) -> list[dict[str, Any]]:
        """For each image and its trimap: the alpha as an 8-bit PNG and the foreground composited on a
        checkerboard, in `out` (`alpha.png` and `composite.png` for one image, `<stem>_alpha.png`, ... for more)."""
        trimaps = list(trimaps or [])
        if len(trimaps) != len(images):
            raise MMKitError(f"{len(images)} images but {len(trimaps)} trimaps: give one --trimap per image")
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        results = []
        for path, tpath in zip(images, trimaps, strict=True):
            image, trimap = _rgb(read_image(path)), read_trimap(tpath)
            if trimap.shape[-2:] != image.shape[-2:]:
                raise MMKitError(
                    f"{tpath}: {trimap.shape[-1]}x{trimap.shape[-2]} pixels, but its image {Path(path).name} "
                    f"has {image.shape[-1]}x{image.shape[-2]}"
                )
            alpha = self.predict_alpha(image, trimap).numpy()
            prefix = "" if len(images) == 1 else f"{Path(path).stem}_"
            a8 = np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8)
            alpha_png, comp_png = out_dir / f"{prefix}alpha.png", out_dir / f"{prefix}composite.png"
            Image.fromarray(a8).save(alpha_png)
            rgb = image.permute(1, 2, 0).numpy().astype(np.float64)
            comp = alpha[..., None] * rgb + (1 - alpha[..., None]) * _checkerboard(*alpha.shape)
            Image.fromarray(np.clip(comp + 0.5, 0, 255).astype(np.uint8)).save(comp_png)
            t = trimap[0].numpy()
            results.append(
                {
                    "path": str(path),
                    "trimap": str(tpath),
                    "alpha": str(alpha_png),
                    "composite": str(comp_png),
                    "unknown_pixels": int((t == 128).sum()),
                    "mean_alpha": float(alpha.mean()),
                }
            )
        return results

    def evaluate(
        self, data: str, *, out: str | os.PathLike | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """SAD/MSE/Grad/Conn over `data`'s held-out images (the builtin's 200 test composites, or a folder's
        test/), with the trimap and guided-filter baselines on the same images; writes metrics.json."""
        from torch.utils.data import DataLoader, Subset

        from mmkit.tasks.matte.data import collate_matting, load_matting_data

        d = load_matting_data(data, train_size=1, img_size=self.meta.img_size)
        ds = d.test if limit is None else Subset(d.test, range(min(limit, len(d.test))))
        loader = DataLoader(ds, batch_size=16, collate_fn=collate_matting)
        meter, tri, gf = run_matting_meter(self.net, loader, self.device, baselines=True)
        m = meter.compute()
        baselines = {
            "trimap": {k: v for k, v in tri.compute().items() if k != "images"},
            "guided_filter": {k: v for k, v in gf.compute().items() if k != "images"},
        }
        out_dir = self.eval_dir(out)
        result = self.write_metrics(out_dir, data, images=m.pop("images"), **m, baselines=baselines)
        result["out"] = str(out_dir)
        return result


PREDICTOR = MattePredictor


# The task's functions, as the CLI and scripts call them: a predictor loaded from `weights`, then its method.


def load_matting_model(weights, device="cpu") -> tuple[nn.Module, MatteMeta]:
    p = MattePredictor.load(weights, device=device)
    return p.net, p.meta


def evaluate(weights, data: str, *, device: str = "auto", **kw: Any) -> dict[str, Any]:
    return MattePredictor.load(weights, device=device).evaluate(data, **kw)


def predict(weights, images, trimaps, *, device: str = "auto", **kw: Any) -> list[dict[str, Any]]:
    return MattePredictor.load(weights, device=device).predict(images, trimaps, **kw)
