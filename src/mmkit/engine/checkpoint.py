"""Checkpoints: written atomically with a checksum of their content, read with `weights_only=True`, refused with one
clear line when they are not ours or changed since they were written."""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from mmkit.errors import MMKitError

FORMAT = "mmkit-checkpoint"
VERSION = 1


def save_checkpoint(obj: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write to a temporary file in the same directory, flush it to disk, then rename over the target.

    A crash at any point leaves either the old file or the new one, never a torn one. An mmkit checkpoint (a dict
    with our `format`) gets a `checksum` of its content, checked on loading."""
    path = Path(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        obj = {**{k: v for k, v in obj.items() if k != "checksum"}, "checksum": content_checksum(obj)}
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
        raise MMKitError(f"{path}: refused to load, not a safe checkpoint ({_unsafe_reason(e)})") from e
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
    if "checksum" in obj and obj["checksum"] != content_checksum(obj):  # checkpoints of older mmkit have none
        raise MMKitError(f"{path}: corrupt checkpoint (changed since it was written: checksum mismatch)")
    return obj


def content_checksum(obj: Any) -> str:
    """SHA-256 of a checkpoint's content: every tensor's dtype, shape and bytes, and every other value's repr, in
    order, under its key; a top-level `checksum` entry is left out."""
    h = hashlib.sha256()
    _digest(h, {k: v for k, v in obj.items() if k != "checksum"})
    return h.hexdigest()


def _digest(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"tensor {t.dtype} {tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            h.update(f"{k!r}=".encode())
            _digest(h, v)
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _digest(h, v)
        h.update(b"]")
    else:
        h.update(f"{obj!r};".encode())


def _unsafe_reason(e: pickle.UnpicklingError) -> str:
    """What torch's refusal says: the global it would not import (its wording varies across versions), else its
    first line."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    refused = re.search(r"GLOBAL\s+([\w.]+)", text)
    if refused:
        return f"it would import {refused.group(1)}, which is not allowed"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "unsafe or corrupt pickle")
    return first[:160]


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
