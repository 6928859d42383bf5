"""ResNet-50 training throughput on one GPU: mmkit's engine against a plain PyTorch loop.

ResNet-50 (torchvision, 1000 classes) at 224×224, batch 256, synthetic input already on the device, SGD with
Nesterov momentum (fused on CUDA, as mmkit's optimizer builder makes it). Three settings, each run by both loops:
fp32 eager; bf16 autocast + channels_last; bf16 + channels_last + torch.compile. Images/s are timed between
device synchronizations after ``--warmup`` steps (which absorb cuDNN autotuning and compilation). Compare with the
H100 row of /work/shared/ANCHORS.md (1,863 / 3,988 / 5,648 img/s with torch 2.11).

    .venv/bin/python bench/gpu/resnet50_synthetic.py                     # on a CUDA machine
    .venv/bin/python bench/gpu/resnet50_synthetic.py --device cpu --quick  # exercise the code on a CPU

Works with torch 2.9 to 2.14 (only long-standing APIs: torch.autocast, torch.compile, fused SGD).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for common.py

from common import StepClock, base_parser, environment, print_table, save_result, set_threads  # noqa: E402
from torch import nn  # noqa: E402
from torchvision.models import resnet50  # noqa: E402
from training import runs_dir, step_config  # noqa: E402

from mmkit.engine import Task, Trainer  # noqa: E402

MODES = {
    "fp32": {"precision": "fp32", "channels_last": False, "compile": False},
    "bf16_cl": {"precision": "bf16", "channels_last": True, "compile": False},
    "bf16_cl_compile": {"precision": "bf16", "channels_last": True, "compile": True},
}
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 1e-4


class DeviceBatch:
    """(x, y) already on the device, unpacked by ``x, y = batch``.

    The engine's DataLoader pins memory on CUDA, and pinning a CUDA tensor raises ("cannot pin
    'torch.cuda.FloatTensor'"); the DataLoader leaves alone an object with its own ``pin_memory``, and the engine's
    ``Runtime.move`` passes it through unchanged."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def pin_memory(self, *args) -> DeviceBatch:
        return self

    def __iter__(self):
        return iter((self.x, self.y))


class SyntheticBatches(torch.utils.data.Dataset):
    """``length`` indices whose every batch is the same (x, y) already on the device.

    ``__getitems__`` makes the DataLoader hand the whole batch over in one call: no per-sample indexing, no
    collation, no copies (torch's map-style fetcher uses it when present)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, length: int) -> None:
        self.batch, self.length = DeviceBatch(x, y), length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        raise NotImplementedError("SyntheticBatches is read a whole batch at a time (__getitems__)")

    def __getitems__(self, indices: list[int]) -> DeviceBatch:
        return self.batch


def _pass_through(batch):
    return batch


class SyntheticTask(Task):
    name = "bench"
    monitor = ("train/loss", "min")

    def __init__(self, dataset: SyntheticBatches, num_classes: int, clock: StepClock) -> None:
        self.dataset, self.num_classes, self.clock = dataset, num_classes, clock

    def setup(self, cfg, rt) -> None:
        self.model = resnet50(weights=None, num_classes=self.num_classes)

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def train_dataset(self):
        return self.dataset

    def collate_fn(self):
        return _pass_through

    def loss(self, model, batch):
        self.clock.tick()
        x, y = batch
        return F.cross_entropy(model(x), y), {}


def make_batch(device: torch.device, batch: int, size: int, num_classes: int, channels_last: bool):
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=g).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch,), generator=g).to(device)
    return x, y


def _sync(device: torch.device):
    return torch.cuda.synchronize if device.type == "cuda" else None


def run_plain(device, mode: dict, x, y, num_classes: int, warmup: int, steps: int) -> float:
    torch.manual_seed(0)
    model = resnet50(weights=None, num_classes=num_classes).to(device)
    if mode["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    fused = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.SGD(
        model.parameters(), lr=LR, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY, **fused
    )
    step_model = torch.compile(model) if mode["compile"] else model
    dtype = torch.bfloat16 if mode["precision"] == "bf16" else None
    clock = StepClock(warmup, steps, _sync(device))
    model.train()
    for _ in range(clock.total_steps):
        clock.tick()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(step_model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return clock.images_per_s(x.shape[0])


def run_engine(device, mode: dict, x, y, num_classes: int, warmup: int, steps: int, workdir: Path) -> float:
    clock = StepClock(warmup, steps, _sync(device))
    batch = x.shape[0]
    optim = {"optimizer": "sgd", "lr": LR, "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY}
    cfg = step_config(workdir, clock.total_steps, batch_size=batch, device=str(device), **optim, **mode)
    ds = SyntheticBatches(x, y, length=batch * clock.total_steps)
    Trainer(SyntheticTask(ds, num_classes, clock), cfg, progress=False).fit()
    return clock.images_per_s(batch)


def main() -> None:
    torch.multiprocessing.set_sharing_strategy("file_system")
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu to exercise the code")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first (default 10)")
    p.add_argument("--steps", type=int, default=30, help="timed steps (default 30)")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, from {', '.join(MODES)}")
    p.add_argument("--loops", default="plain,engine", help="plain, engine or both (default)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(
            "resnet50_synthetic: no CUDA GPU here (torch.cuda.is_available() is False). This benchmark is for a "
            "GPU machine; use --device cpu --quick only to check that the script runs."
        )
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        sys.exit(f"resnet50_synthetic: unknown mode(s) {unknown}; choose from {', '.join(MODES)}")
    loops = [loop.strip() for loop in args.loops.split(",") if loop.strip()]
    if args.quick:
        args.batch_size, args.warmup, args.steps = min(args.batch_size, 2), 1, 2
        if device.type == "cpu":
            args.image_size = min(args.image_size, 32)
            if "--modes" not in sys.argv:  # compiling ResNet-50's backward on 2 CPU cores takes minutes
                modes = [m for m in modes if not MODES[m]["compile"]]
                print("note: --quick on the CPU leaves out torch.compile (pass --modes to include it)")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    else:
        set_threads(args.threads)
    env = environment(device, args.threads if device.type == "cpu" else None)
    env["float32_matmul_precision"] = torch.get_float32_matmul_precision()
    num_classes = 1000

    results: dict[str, dict[str, float]] = {}
    rows = []
    with runs_dir(None) as tmp:
        for name in modes:
            mode = MODES[name]
            x, y = make_batch(device, args.batch_size, args.image_size, num_classes, mode["channels_last"])
            results[name] = {}
            for loop in loops:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(device)
                t0 = time.perf_counter()
                if loop == "plain":
                    ips = run_plain(device, mode, x, y, num_classes, args.warmup, args.steps)
                else:
                    ips = run_engine(device, mode, x, y, num_classes, args.warmup, args.steps, tmp / name)
                results[name][loop] = ips
                results[name][f"{loop}_wall_s"] = time.perf_counter() - t0
                if device.type == "cuda":
                    results[name][f"{loop}_peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
                torch._dynamo.reset()  # each compiled run starts from scratch
                print(f"{name} {loop}: {ips:,.1f} img/s")
            if "plain" in results[name] and "engine" in results[name]:
                results[name]["ratio"] = results[name]["engine"] / results[name]["plain"]
            rows.append(
                [
                    name,
                    *(results[name].get(loop, float("nan")) for loop in ("plain", "engine")),
                    results[name].get("ratio", float("nan")),
                ]
            )
    print_table(
        ["mode", "plain img/s", "engine img/s", "engine / plain"],
        rows,
        title=f"ResNet-50 @{args.image_size}, batch {args.batch_size}, train step, {env['device']}, "
        f"torch {env['torch']}",
        quick=args.quick,
    )
    save_result(
        f"resnet50_synthetic_{device.type}",
        env,
        quick=args.quick,
        settings={
            "batch_size": args.batch_size,
            "image_size": args.image_size,
            "warmup_steps": args.warmup,
            "timed_steps": args.steps,
            "optimizer": f"sgd nesterov momentum {MOMENTUM}, lr {LR}, wd {WEIGHT_DECAY}",
            "modes": {m: MODES[m] for m in modes},
            "loops": loops,
        },
        results=results,
    )


if __name__ == "__main__":
    main()
