"""Where and how a run executes: device, precision, distributed processes, seeding and RNG state.

`torchrun --nproc-per-node N -m mmkit ...` sets RANK/WORLD_SIZE/LOCAL_RANK; `setup_runtime` reads them and joins the
process group (gloo on CPU, NCCL on CUDA). Only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from mmkit.errors import MMKitError

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")


@functools.cache
def select_device(name: str = "auto") -> torch.device:
    """`auto` picks cuda, then mps, then cpu; `cuda:1`, `cpu`, `mps` are taken as given if present."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise MMKitError(f"--device {name}: not a device name (use auto, cpu, cuda, cuda:N or mps)") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MMKitError(f"--device {name}: CUDA is not available on this machine")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise MMKitError(f"--device {name}: MPS is not available on this machine")
    return dev


@dataclass
class Runtime:
    device: torch.device
    precision: str = "fp32"
    channels_last: bool = False
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def autocast(self):
        """Mixed-precision context for forward passes (a no-op in fp32)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def move(self, batch: Any) -> Any:
        """Move a batch (tensors in tuples/lists/dicts) to the device; 4-D float images go channels_last if asked."""
        if isinstance(batch, torch.Tensor):
            t = batch.to(self.device, non_blocking=True)
            if self.channels_last and t.dim() == 4 and t.is_floating_point():
                t = t.contiguous(memory_format=torch.channels_last)
            return t
        if isinstance(batch, (list, tuple)):
            return type(batch)(self.move(b) for b in batch)
        if isinstance(batch, dict):
            return {k: self.move(v) for k, v in batch.items()}
        return batch

    def all_reduce_(self, tensors: list[torch.Tensor]) -> None:
        """Sum tensors across ranks in place (no-op in one process)."""
        if self.distributed:
            for t in tensors:
                dist.all_reduce(t, op=dist.ReduceOp.SUM)

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's object, in rank order (for metrics that need all predictions, such as mAP)."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def broadcast_object(self, obj: Any) -> Any:
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def setup_runtime(device: str = "auto", precision: str = "fp32", channels_last: bool = False) -> Runtime:
    if precision not in PRECISIONS:
        raise MMKitError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = select_device(device)
    if world > 1:
        if dev.type == "cuda":
            dev = torch.device("cuda", local)
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    if precision == "fp16" and dev.type == "cpu":
        log.warning("fp16 autocast on the CPU is slow and rarely useful; bf16 is the CPU's mixed precision")
    return Runtime(
        device=dev,
        precision=precision,
        channels_last=channels_last,
        rank=rank,
        local_rank=local,
        world_size=world,
    )


def teardown_runtime(rt: Runtime, *, clean: bool = True) -> None:
    """Destroy the process group. After a clean run every rank first waits for the others: a rank that destroys the
    group while another still talks to it can abort that one in gloo's teardown ("terminate called without an
    active exception"). After an error no rank waits (the others may never arrive; torchrun stops them)."""
    if rt.distributed and dist.is_initialized():
        try:
            if clean:
                dist.barrier()
        finally:
            dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_rng_state() -> dict[str, Any]:
    """All RNG states, as plain containers and tensors so the checkpoint loads with weights_only=True."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
