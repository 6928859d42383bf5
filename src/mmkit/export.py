"""Export a model to ONNX or TorchScript, checked against PyTorch.

Files are written atomically (temporary file, then `os.replace`), from the model in eval mode; with `check=True`
the exported file is run (ONNX Runtime on the CPU, or the reloaded TorchScript module) on the example inputs and
the largest absolute difference from PyTorch's outputs is returned.

    export_onnx(net, torch.randn(2, 3, 64, 64), "net.onnx")                  # one input "input", one output "output"
    export_onnx(step, (prev, h, c), "step.onnx", input_names=["prev", "h", "c"], output_names=["logits", ...])
    export_graphs([Graph("encoder", ...), Graph("step", ...)], "onnx", Path("best.onnx"))  # best.encoder.onnx, ...

A model of several inputs takes them as a tuple; by default axis 0 (the batch) of every named input and output
may change size, and `dynamic_axes` names others (frame count, image height and width).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from mmkit.errors import MMKitError

log = logging.getLogger(__name__)

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript"}
Inputs = Tensor | tuple[Tensor, ...]
Axes = dict[str, dict[int, str]]  # input or output name -> {axis: its name}, the axes that may change size


@dataclass
class Graph:
    """One graph of a model to export: `module` run on the example `inputs`, with names for its inputs and
    outputs; `dynamic_axes` the axes that may change size (None: axis 0, the batch, of every input and output)."""

    name: str
    module: nn.Module
    inputs: tuple[Tensor, ...]
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: Axes | None = None


class Exported(NamedTuple):
    """A file written by `export_graphs`: its graph's name, its path, and its max abs difference from PyTorch."""

    graph: str
    path: Path
    max_abs_diff: float | None


def _require_onnx() -> None:
    for module in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(module)
        except ImportError as e:
            raise MMKitError(f'{module}: not installed; ONNX export needs pip install "mmkit[export]"') from e


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextlib.contextmanager
def _atomic_target(path: Path) -> Iterator[Path]:
    """A temporary path beside `path`; renamed over `path` when the block succeeds, removed otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _examples(model: nn.Module, example: Inputs) -> tuple[Tensor, ...]:
    """The example inputs as a tuple, detached, on the model's device."""
    device = _device_of(model)
    return tuple(t.detach().to(device) for t in (example if isinstance(example, tuple) else (example,)))


def _flat_outputs(out) -> list[Tensor]:
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    return [t for o in out for t in _flat_outputs(o)]


def _max_abs_diff(expected: list[Tensor], got: list) -> float:
    if len(expected) != len(got):
        raise MMKitError(f"export check: {len(got)} outputs, PyTorch gives {len(expected)}")
    return max(
        float(np.max(np.abs(e.detach().cpu().double().numpy() - np.asarray(g, np.float64)), initial=0.0))
        for e, g in zip(expected, got, strict=True)
    )


def _batch_axes(names: list[str]) -> Axes:
    return {name: {0: "batch"} for name in names}


def _torch_onnx_export(
    model: nn.Module,
    examples: tuple[Tensor, ...],
    path: Path,
    names: tuple[list[str], list[str]],
    axes: Axes | None,
    opset: int | None,
):
    """The TorchScript-based exporter first (seconds, mature for CNNs); the dynamo exporter where it fails or is
    gone (it takes ~20x longer on an EfficientNet, so it is the fallback, not the default)."""
    kw = dict(input_names=names[0], output_names=names[1], opset_version=opset)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter warns that it is legacy
            torch.onnx.export(model, examples, str(path), dynamo=False, dynamic_axes=axes, **kw)
        return
    except Exception as e:
        log.debug("TorchScript ONNX export failed (%s: %s); trying the dynamo exporter", type(e).__name__, e)
    logging.getLogger("onnxscript").setLevel(logging.WARNING)
    dims: dict[str, torch.export.Dim] = {}
    shapes = None
    if axes is not None:  # one Dim per axis name, shared by every input that has it
        shapes = tuple(
            {a: dims.setdefault(d, torch.export.Dim(d)) for a, d in axes.get(n, {}).items()} or None
            for n in names[0]
        )
    torch.onnx.export(
        model,
        examples,
        str(path),
        dynamo=True,
        external_data=False,  # one self-contained file (models under 2 GB)
        dynamic_shapes=shapes,
        verbose=False,
        **kw,
    )


def export_onnx(
    model: nn.Module,
    example: Inputs,
    path: str | os.PathLike,
    *,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
    dynamic_axes: Axes | None = None,
    dynamic_batch: bool = True,
    opset: int | None = None,
    check: bool = True,
) -> float | None:
    """Write `model` as ONNX to `path`, traced on `example` (one tensor, or a tuple of the model's inputs).

    Inputs are named `input_names` (default "input", "input_1", ...) and outputs `output_names` (default the first
    "output"); `dynamic_axes` names the axes that may change size, by default (`dynamic_batch`) axis 0 of every
    named input and output. Returns the max abs difference between ONNX Runtime and PyTorch on `example` when
    `check`, else None."""
    _require_onnx()
    path = Path(path)
    examples = _examples(model, example)
    inputs = input_names or ["input"] + [f"input_{i}" for i in range(1, len(examples))]
    outputs = output_names or ["output"]
    if dynamic_axes is None and dynamic_batch:
        dynamic_axes = _batch_axes(inputs + outputs)
    with _eval_mode(model), torch.no_grad(), _atomic_target(path) as tmp:
        _torch_onnx_export(model, examples, tmp, (inputs, outputs), dynamic_axes, opset)
        if not check:
            return None
        import onnx
        import onnxruntime as ort

        onnx.checker.check_model(str(tmp))
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        given = dict(zip(inputs, examples, strict=True))
        got = session.run(None, {i.name: given[i.name].cpu().numpy() for i in session.get_inputs()})
        diff = _max_abs_diff(_flat_outputs(model(*examples)), got)
    log.info("exported %s (ONNX Runtime max abs diff %.2e)", path, diff)
    return diff


def export_torchscript(
    model: nn.Module, example: Inputs, path: str | os.PathLike, *, check: bool = True
) -> float | None:
    """Trace `model` on `example` (one tensor, or a tuple of its inputs) and save it as TorchScript to `path`.

    Returns the max abs difference between the reloaded module and PyTorch on `example` when `check`."""
    path = Path(path)
    examples = _examples(model, example)
    with _eval_mode(model), torch.no_grad(), _atomic_target(path) as tmp, warnings.catch_warnings():
        # torch.jit is deprecated, but TorchScript is still the format asked for.
        warnings.filterwarnings("ignore", r".*torch\.jit.* is deprecated", FutureWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # input checks become constants
        traced = torch.jit.trace(model, examples, check_trace=False)
        torch.jit.save(traced, str(tmp))
        if not check:
            return None
        loaded = torch.jit.load(str(tmp), map_location=examples[0].device)
        diff = _max_abs_diff(
            _flat_outputs(model(*examples)), [t.cpu().numpy() for t in _flat_outputs(loaded(*examples))]
        )
    log.info("exported %s (TorchScript max abs diff %.2e)", path, diff)
    return diff


def graph_path(base: Path, graph: str, suffix: str) -> Path:
    """Where graph `graph` of a pipeline goes: `base` with the graph's name before its suffix (best.encoder.onnx)."""
    return base.with_name(f"{base.stem}.{graph}{base.suffix or suffix}")


def suffix_of(fmt: str) -> str:
    """The file suffix of export format `fmt` (onnx or torchscript)."""
    if fmt not in FORMATS:
        raise MMKitError(f"--format {fmt}: choose {' or '.join(FORMATS)}")
    return FORMATS[fmt]


def export_graphs(graphs: list[Graph], fmt: str, base: Path, *, check: bool = True) -> list[Exported]:
    """Each graph as ONNX or TorchScript (`fmt`): one graph at `base`, several beside it named by `graph_path`."""
    suffix = suffix_of(fmt)
    out = []
    for g in graphs:
        path = base if len(graphs) == 1 else graph_path(base, g.name, suffix)
        if fmt == "onnx":
            diff = export_onnx(
                g.module,
                g.inputs,
                path,
                input_names=g.input_names,
                output_names=g.output_names,
                dynamic_axes=g.dynamic_axes or _batch_axes(g.input_names + g.output_names),
                check=check,
            )
        else:
            diff = export_torchscript(g.module, g.inputs, path, check=check)
        out.append(Exported(g.name, path, diff))
    return out
