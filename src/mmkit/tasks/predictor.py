"""Predictors: a trained (or pretrained) model ready to use, the same way for every task.

    p = mmkit.load("runs/classify/digits/best.pt")        # any mmkit checkpoint: its task picks the class
    p = mmkit.load("efficientnet_lite0:imagenet")          # a registered model with named weights
    p.predict(["photo.jpg"])                               # what `mmkit <task> predict` prints
    p.evaluate("digits")                                   # what `mmkit <task> eval` prints
    p.export("onnx")                                       # what `mmkit <task> export` writes

A task's predictor.py subclasses `Predictor`, sets `task`, annotates `meta` with the dataclass its checkpoints'
`meta` holds, builds the network a meta describes in `network` (and one with named weights in `from_named`, where the
registry has some), names the graph(s) `export` writes in `export_graphs` and exports the class as `PREDICTOR`.
Checkpoint loading and its error messages live here and in `mmkit.engine.checkpoint`, once.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, get_type_hints

import torch
from torch import nn

from mmkit.engine import (
    load_checkpoint,
    load_model_state,
    load_task_checkpoint,
    save_checkpoint,
    select_device,
)
from mmkit.engine.checkpoint import FORMAT, VERSION
from mmkit.errors import MMKitError
from mmkit.models import get_model_info
from mmkit.tasks.registry import get_task

if TYPE_CHECKING:
    from mmkit.export import Exported, Graph


class Predictor:
    """A network in eval mode on `device`, with the `meta` it was trained with and the `source` it came from."""

    task: ClassVar[str] = ""
    meta: Any  # a subclass names the dataclass its checkpoints store as `meta`: `meta: ClassifierMeta`

    def __init__(self, net: nn.Module, meta: Any, device: torch.device, source: str) -> None:
        self.net, self.meta, self.device, self.source = net.to(device).eval(), meta, device, source

    # --- loading --------------------------------------------------------------------------------------------------
    @classmethod
    def load(
        cls, weights: str | os.PathLike, *, model: str | None = None, device: str | torch.device = "cpu"
    ) -> Predictor:
        """From an mmkit checkpoint of this task, a registered weights name of `model` (e.g. "imagenet", or
        "model:weights" without `model`), or with `model` a plain state_dict file (where the task's `from_state_dict`
        can use one)."""
        dev = select_device(device) if isinstance(device, str) else device
        name = str(weights)
        if model is None and ":" in name and os.sep not in name and not Path(name).exists():
            model, name = name.split(":", 1)
        if model is not None and name in get_model_info(model).weights:
            return cls.from_named(model, name, dev)
        path = Path(weights)
        if not path.is_file() and model is None and name.isidentifier() and cls.named_weights():
            raise MMKitError(f"--weights {name}: named weights need --model (see `mmkit models list`)")
        ck = load_task_checkpoint(path, cls.task, get_task(cls.task).what, allow_plain=model is not None)
        if ck is None:  # a plain state_dict, for `model`
            return cls.from_state_dict(model, path, dev)
        return cls.from_checkpoint(ck, path, dev)

    @classmethod
    def named_weights(cls) -> list[str]:
        """The `model:weights` names this task's models have (e.g. efficientnet_lite0:imagenet)."""
        from mmkit.models import list_models

        return [f"{m}:{w}" for m in list_models(cls.task) for w in get_model_info(m).weights]

    @staticmethod
    def network(meta: Any) -> nn.Module:
        """The (untrained) network that `meta` describes."""
        raise NotImplementedError

    @classmethod
    def from_checkpoint(cls, ck: dict[str, Any], path: Path, device: torch.device) -> Predictor:
        """Build the network from the checkpoint's `meta` and load its `model` state."""
        meta = get_type_hints(cls)["meta"](**ck["meta"])
        return cls(cls.build(cls.network(meta), ck, path, meta.model), meta, device, str(path))

    @classmethod
    def from_state_dict(cls, model: str, path: Path, device: torch.device) -> Predictor:
        """A plain state_dict file for a registered `model`, where the task can feed one without a checkpoint."""
        raise MMKitError(
            f"{path}: not an mmkit checkpoint (a plain state_dict needs a task that can use one)"
        )

    @classmethod
    def from_named(cls, model: str, weights: str, device: torch.device) -> Predictor:
        raise MMKitError(f"{model}: named weights {weights} are not usable for {cls.task} here")

    def save(self, path: str | os.PathLike) -> Path:
        """The network and its meta as an mmkit checkpoint of this task (what `load` reads back)."""
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        ck = {
            "format": FORMAT,
            "version": VERSION,
            "task": self.task,
            "model": state,
            "meta": asdict(self.meta),
        }
        return save_checkpoint(ck, path)

    def beside_weights(self, suffix: str, out: str | os.PathLike | None = None) -> Path:
        """`out`, else the weights' path with `suffix` (for named weights "model-weights" + suffix, here)."""
        if out:
            return Path(out)
        source = Path(self.source)
        return (source if source.is_file() else Path(self.source.replace(":", "-"))).with_suffix(suffix)

    @staticmethod
    def build(net: nn.Module, ck: dict[str, Any], path: Path, model: str) -> nn.Module:
        """`net` with the checkpoint's weights loaded (a mismatch is one line naming the file)."""
        load_model_state(net, ck["model"], path, model)
        return net

    # --- using ----------------------------------------------------------------------------------------------------
    def predict(self, inputs: list[str | os.PathLike], **kwargs: Any) -> Any:
        raise MMKitError(f"{self.task}: predict is not available")

    def evaluate(self, data: str, **kwargs: Any) -> dict[str, Any]:
        raise MMKitError(f"{self.task}: eval is not available")

    def eval_dir(self, out: str | os.PathLike | None) -> Path:
        """Where `evaluate` writes (made): `out`, or a new runs/<task>/eval, eval2, ... folder."""
        from mmkit.engine.logger import next_run_dir

        out_dir = Path(out) if out is not None else next_run_dir("runs", self.task, "eval")
        out_dir.mkdir(parents=True, exist_ok=True)
        return out_dir

    def write_metrics(self, out_dir: Path, data: Any, **metrics: Any) -> dict[str, Any]:
        """`evaluate`'s result: the weights, the data and `metrics`, also written to `out_dir`/metrics.json."""
        result = {"weights": self.source, "data": str(data), **metrics}
        (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
        return result

    def export_graphs(self, net: nn.Module, **options: Any) -> list[Graph]:
        """The graph(s) `export` writes, built on `net` (a CPU copy of the network in eval mode): one `Graph` per
        file, each with its example inputs and the names of its inputs and outputs. `options`: the task's own export
        options (detect: `img_size`)."""
        raise MMKitError(f"{self.task}: export is not available")

    def export(
        self, fmt: str = "onnx", out: str | os.PathLike | None = None, check: bool = True, **options: Any
    ) -> list[Exported]:
        """The task's graph(s) (`export_graphs`) as ONNX or TorchScript beside the weights (or at `out`), each checked
        against PyTorch (ONNX Runtime for ONNX). One graph is written at that path; a pipeline of several writes one
        file per graph, its name before the suffix (best.encoder.onnx, best.step.onnx)."""
        from mmkit.export import export_graphs, suffix_of

        path = self.beside_weights(suffix_of(fmt), out)
        graphs = self.export_graphs(
            copy.deepcopy(self.net).cpu().eval(), **options
        )  # the predictor keeps its device
        return export_graphs(graphs, fmt, path, check=check)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r}, model={getattr(self.meta, 'model', '?')!r})"


def load(
    source: str | os.PathLike, *, model: str | None = None, device: str | torch.device = "cpu"
) -> Predictor:
    """The predictor of any mmkit checkpoint (its `task` picks the class), or of `"model:weights"` (a registered
    model's named weights, e.g. "efficientnet_lite0:imagenet"), or of named `source` weights with `model`."""
    path = Path(source)
    if path.is_file():
        ck = load_checkpoint(path)
        task = ck.get("task")
        dev = select_device(device) if isinstance(device, str) else device
        return get_task(str(task)).predictor().from_checkpoint(ck, path, dev)
    text = str(source)
    if model is None and ":" in text and os.sep not in text:
        model, text = text.split(":", 1)
    if model is None:
        raise MMKitError(
            f"{source}: no such checkpoint file (or give model:weights, e.g. efficientnet_lite0:imagenet)"
        )
    task = get_model_info(model).task
    return get_task(task).predictor().load(text, model=model, device=device)
