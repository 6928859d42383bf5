"""YOLOv3 and YOLOv3-tiny speed: training steps and inference, in images per second.

A training step is forward + YOLOv3 loss (against 4 synthetic boxes per image) + backward + AdamW step.
Inference is forward + box decoding (what ``mmkit detect export`` puts in the graph), then NMS
(``postprocess``) timed separately per batch. Inputs are random images already on the device; the first
``--warmup`` iterations are not timed (cuDNN autotuning, allocator warm-up).

CPU (the default): YOLOv3 at 416 (train batch 8, inference batch 1 and 8) and YOLOv3-tiny at 256 (train batch
16, inference batch 1 and 16), fp32. GPU (``--device cuda``): YOLOv3 at 416, batch 64, bf16 autocast +
channels_last, the issue's setting; plus fp32 for comparison. The published reference for YOLOv3-416 inference
is about 35 ms per image (29 img/s) on a Titan X.

    .venv/bin/python bench/detect_speed.py [--device cpu|cuda] [--quick]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from common import base_parser, environment, parse_args, print_table, save_result, timed

from mmkit.losses.detection import YOLOv3Loss
from mmkit.models import get_model
from mmkit.models.yolov3 import postprocess


@dataclass
class Case:
    model: str
    img: int
    train_batch: int
    infer_batches: tuple[int, ...]
    precision: str = "fp32"
    channels_last: bool = False


CPU_CASES = [
    Case("yolov3", 416, 8, (1, 8)),
    Case("yolov3-tiny", 256, 16, (1, 16)),
]
GPU_CASES = [
    Case("yolov3", 416, 64, (1, 64), "bf16", True),
    Case("yolov3", 416, 64, (64,), "fp32", False),
    Case("yolov3-tiny", 256, 64, (64,), "bf16", True),
]


def _targets(batch: int, img: int, num_classes: int) -> torch.Tensor:
    """[batch * 4, 6] rows (image, class, x1, y1, x2, y2) in pixels: four boxes of assorted sizes per image."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(batch):
        for k in range(4):
            w, h = (torch.rand(2, generator=g) * 0.4 + 0.05) * img
            x1, y1 = torch.rand(2, generator=g) * (img - torch.stack([w, h]))
            rows.append([i, k % num_classes, x1, y1, x1 + w, y1 + h])
    return torch.tensor(rows, dtype=torch.float32)


def measure(case: Case, device: torch.device, warmup: int, iters: int) -> dict:
    torch.manual_seed(0)
    num_classes = 80
    model = get_model(case.model, num_classes).to(device)
    if case.channels_last:
        model = model.to(memory_format=torch.channels_last)
    dtype = torch.bfloat16 if case.precision == "bf16" else None
    crit = YOLOv3Loss(model)
    opt = torch.optim.AdamW(model.parameters(), 1e-4, **({"fused": True} if device.type == "cuda" else {}))
    fmt = torch.channels_last if case.channels_last else torch.contiguous_format
    x = torch.rand(case.train_batch, 3, case.img, case.img, device=device).contiguous(memory_format=fmt)
    tgt = _targets(case.train_batch, case.img, num_classes).to(device)

    def train_step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = model(x)
        loss, _ = crit([o.float() for o in out], tgt, (case.img, case.img))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    train_s = timed(train_step, device, warmup, iters)
    row = {
        "model": case.model,
        "img": case.img,
        "precision": case.precision,
        "channels_last": case.channels_last,
        "train_batch": case.train_batch,
        "train_step_s": round(train_s, 4),
        "train_img_per_s": round(case.train_batch / train_s, 1),
        "inference": [],
    }
    model.eval()
    for b in case.infer_batches:
        xb = torch.rand(b, 3, case.img, case.img, device=device).contiguous(memory_format=fmt)
        dec = {}

        @torch.no_grad()
        def infer(xb=xb, dec=dec):
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                dec["out"] = model.inference(xb)

        s = timed(infer, device, warmup, iters)
        nms_s = timed(lambda dec=dec: postprocess(dec["out"].float(), conf=0.25, iou=0.45), device, 1, 3)
        row["inference"].append(
            {
                "batch": b,
                "forward_decode_s": round(s, 4),
                "img_per_s": round(b / s, 1),
                "ms_per_img": round(1000 * s / b, 2),
                "nms_ms_per_batch": round(1000 * nms_s, 2),
            }
        )
    return row


def main() -> None:
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    args = parse_args(p)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        cases, warmup, iters = GPU_CASES, max(args.warmup, 5), max(args.iters, 20)
    else:
        cases, warmup, iters = CPU_CASES, args.warmup, args.iters
    if args.quick:
        cases = [Case(c.model, 64, 2, (1,), c.precision, c.channels_last) for c in cases[:2]]
        warmup, iters = 1, 2
    env = environment(device, args.threads if device.type == "cpu" else None)
    rows, results = [], []
    for case in cases:
        r = measure(case, device, warmup, iters)
        results.append(r)
        for inf in r["inference"]:
            rows.append(
                [
                    r["model"],
                    r["img"],
                    r["precision"] + (" + cl" if r["channels_last"] else ""),
                    r["train_batch"],
                    r["train_img_per_s"],
                    inf["batch"],
                    inf["img_per_s"],
                    inf["ms_per_img"],
                    inf["nms_ms_per_batch"],
                ]
            )
    print_table(
        [
            "model",
            "img",
            "precision",
            "train bs",
            "train img/s",
            "infer bs",
            "infer img/s",
            "ms/img",
            "NMS ms",
        ],
        rows,
        title=f"detection speed, {env['device']}, torch {env['torch']}",
        quick=args.quick,
    )
    save_result(f"detect_speed_{device.type}", env, quick=args.quick, results=results)


if __name__ == "__main__":
    main()
