"""Export a model to ONNX or TorchScript, checked against PyTorch.

Files are written atomically (temporary file, then `os.replace`), from the model in eval mode; with `check=True`
the exported file is run (ONNX Runtime on the CPU, or the reloaded TorchScript module) on the example input and
the largest absolute difference from PyTorch's output is returned.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from mmkit.errors import MMKitError

log = logging.getLogger(__name__)


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
        float(np.max(np.abs(e.detach().cpu().numpy() - np.asarray(g)), initial=0.0))
        for e, g in zip(expected, got, strict=True)
    )


def _torch_onnx_export(
    model: nn.Module, example: Tensor, path: Path, *, dynamic_batch: bool, opset: int | None
):
    """The TorchScript-based exporter first (seconds, mature for CNNs); the dynamo exporter where it fails or is
    gone (it takes ~20x longer on an EfficientNet, so it is the fallback, not the default)."""
    names = dict(input_names=["input"], output_names=["output"], opset_version=opset)
    axes = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic_batch else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter warns that it is legacy
            torch.onnx.export(model, (example,), str(path), dynamo=False, dynamic_axes=axes, **names)
        return
    except Exception as e:
        log.debug("TorchScript ONNX export failed (%s: %s); trying the dynamo exporter", type(e).__name__, e)
    logging.getLogger("onnxscript").setLevel(logging.WARNING)
    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=True,
        external_data=False,  # one self-contained file (models under 2 GB)
        dynamic_shapes=({0: torch.export.Dim("batch")},) if dynamic_batch else None,
        verbose=False,
        **names,
    )


def export_onnx(
    model: nn.Module,
    example: Tensor,
    path: str | os.PathLike,
    *,
    dynamic_batch: bool = True,
    opset: int | None = None,
    check: bool = True,
) -> float | None:
    """Write `model` as ONNX to `path` (input "input", output "output"; batch dimension dynamic unless told not).

    Returns the max abs difference between ONNX Runtime and PyTorch on `example` when `check`, else None."""
    _require_onnx()
    path = Path(path)
    example = example.detach().to(_device_of(model))
    with _eval_mode(model), torch.no_grad(), _atomic_target(path) as tmp:
        _torch_onnx_export(model, example, tmp, dynamic_batch=dynamic_batch, opset=opset)
        if not check:
            return None
        import onnx
        import onnxruntime as ort

        onnx.checker.check_model(str(tmp))
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: example.cpu().numpy()})
        diff = _max_abs_diff(_flat_outputs(model(example)), got)
    log.info("exported %s (ONNX Runtime max abs diff %.2e)", path, diff)
    return diff


def export_torchscript(
    model: nn.Module, example: Tensor, path: str | os.PathLike, *, check: bool = True
) -> float | None:
    """Trace `model` on `example` and save it as TorchScript to `path`.

    Returns the max abs difference between the reloaded module and PyTorch on `example` when `check`."""
    path = Path(path)
    example = example.detach().to(_device_of(model))
    with _eval_mode(model), torch.no_grad(), _atomic_target(path) as tmp, warnings.catch_warnings():
        # torch.jit is deprecated, but TorchScript is still the format asked for.
        warnings.filterwarnings("ignore", r".*torch\.jit.* is deprecated", FutureWarning)
        traced = torch.jit.trace(model, (example,), check_trace=False)
        torch.jit.save(traced, str(tmp))
        if not check:
            return None
        loaded = torch.jit.load(str(tmp), map_location=example.device)
        diff = _max_abs_diff(
            _flat_outputs(model(example)), [t.cpu().numpy() for t in _flat_outputs(loaded(example))]
        )
    log.info("exported %s (TorchScript max abs diff %.2e)", path, diff)
    return diff
