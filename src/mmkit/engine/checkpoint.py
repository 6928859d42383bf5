"""Checkpoints: written atomically, read with `weights_only=True`, refused with one clear line when they are not ours."""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from mmkit.errors import MMKitError

FORMAT = "mmkit-checkpoint"
VERSION = 1


def save_checkpoint(obj: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write to a temporary file in the same directory, flush it to disk, then rename over the target.

    A crash at any point leaves either the old file or the new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", *, allow_plain: bool = False
) -> dict[str, Any] | None:
    """Load an mmkit checkpoint safely; anything else (or an unsafe pickle) is an `MMKitError` naming the file.

    With `allow_plain`, a safe file that is not an mmkit checkpoint (a plain state_dict) gives None."""
    path = Path(path)
    if not path.is_file():
        raise MMKitError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unsafe or corrupt pickle"
        raise MMKitError(f"{path}: refused to load, not a safe checkpoint ({first[:160]})") from e
    except Exception as e:  # zip errors, EOF, bad magic, unpickler stack errors on random bytes, ...
        text = str(e).strip()
        reason = f"{type(e).__name__}: {text.splitlines()[0][:160]}" if text else type(e).__name__
        raise MMKitError(f"{path}: not a PyTorch checkpoint ({reason})") from e
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        if allow_plain:
            return None
        raise MMKitError(
            f"{path}: not an mmkit checkpoint (a plain state_dict can be given to --weights instead)"
        )
    if obj.get("version", 0) > VERSION:
        raise MMKitError(f"{path}: written by a newer mmkit (checkpoint version {obj['version']})")
    return obj


def load_task_checkpoint(
    path: str | os.PathLike, task: str, what: str, *, allow_plain: bool = False
) -> dict[str, Any] | None:
    """An mmkit checkpoint of `task` (e.g. "classify"); `what` names its model in the message otherwise
    ("a classifier"). With `allow_plain`, a plain state_dict file gives None."""
    ck = load_checkpoint(path, allow_plain=allow_plain)
    if ck is None:
        return None
    if ck.get("task") != task:
        raise MMKitError(f"{path}: a {ck.get('task')} checkpoint, not {what}")
    return ck


def load_model_state(
    net: torch.nn.Module, state: dict[str, Any], path: str | os.PathLike, model: str
) -> None:
    """`net.load_state_dict(state)`, a mismatch reported as one line naming the file and the model."""
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise MMKitError(f"{path}: weights do not fit {model} as this mmkit builds it ({first})") from e
