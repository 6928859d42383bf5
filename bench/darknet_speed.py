"""YOLOv3-tiny @416 on the CPU with Darknet's COCO weights: images/s of mmkit and of OpenCV's DNN, same files, same
threads, one run.

The same 416×416 float input (random, already in memory, NCHW) goes to both sides. OpenCV's time is `setInput` +
`forward` of its two [yolo] outputs: the network and its box decoding (sigmoid, exp × anchors, class scores). mmkit's
is `inference` on YOLOv3-tiny read from the same files: the network and the box decoding (sigmoid, anchors, boxes
clipped to the image). Neither side's time holds image reading, resizing or NMS. mmkit is measured as `mmkit detect
predict`, eval, analyze and serve run it (`DetectorPredictor.runner`: BatchNorm folded, channels-last, packed oneDNN
convolutions with the LeakyReLU inside, eager), then without each of those steps: fused but not packed, the loaded
network with channels-last weights (the default before), plain NCHW; and compiled with `torch.compile` (inductor,
weights frozen; the compile time is reported, not counted). All under `torch.inference_mode`. The variants take turns,
one call each per round, so a busy machine slows them alike; each row is the median over the rounds. Goal: mmkit ≥
1.0× OpenCV.

    OMP_WAIT_POLICY=passive .venv/bin/python bench/darknet_speed.py [--quick] [--threads 2] [--rounds 30]

Needs `make weights` (the COCO files) and opencv-python-headless<5 (a dev dependency).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch
from common import base_parser, environment, median, parse_args, print_table, save_result

from mmkit.models.darknet import coco_weights
from mmkit.tasks.detect import DetectorPredictor

IMG = 416


def opencv_forward(threads: int, x: torch.Tensor) -> tuple[Callable[[], object], str]:
    import cv2

    cv2.setNumThreads(threads)
    weights = coco_weights()
    net = cv2.dnn.readNetFromDarknet(str(weights.with_suffix(".cfg")), str(weights))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    names, blob = net.getUnconnectedOutLayersNames(), x.contiguous().numpy()

    def run():
        net.setInput(blob)
        return net.forward(names)

    return run, cv2.__version__


def compiled(net: torch.nn.Module, x: torch.Tensor) -> tuple[Callable[[], object], float]:
    """`net.inference` compiled by inductor with frozen weights; the seconds the first call (the compile) took."""
    import torch._inductor.config as inductor

    inductor.freezing = True
    fn = torch.compile(net.inference)
    t0 = time.perf_counter()
    fn(x)
    return (lambda: fn(x)), time.perf_counter() - t0


def main() -> None:
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=30, help="timed calls of each variant (taking turns)")
    p.add_argument("--no-compile", action="store_true", help="leave out the torch.compile row")
    args = parse_args(p)
    rounds, warmup = (3, 1) if args.quick else (args.rounds, 3)
    env = environment(
        "cpu", args.threads
    )  # the load average before the timing (save_result adds the one after)
    x = torch.rand(1, 3, IMG, IMG, generator=torch.Generator().manual_seed(0))
    predictor = DetectorPredictor.load("yolov3-tiny:coco", device="cpu")
    runner, plain = predictor.runner, predictor.net  # as `detect predict` runs it; as loaded (NCHW)
    fused = plain.fused(pack=False)
    channels_last = copy.deepcopy(plain).to(memory_format=torch.channels_last)
    cv_run, cv_version = opencv_forward(args.threads, x)
    variants: dict[str, Callable[[], object]] = {
        "OpenCV DNN (readNetFromDarknet)": cv_run,
        "mmkit, as `detect predict` runs it (fused, packed oneDNN)": lambda: runner.inference(x),
        "mmkit, fused, not packed": lambda: fused.inference(x),
        "mmkit, unfused, channels-last": lambda: channels_last.inference(x),
        "mmkit, unfused, NCHW": lambda: plain.inference(x),
    }
    compile_s = None
    with torch.inference_mode():
        if not (args.quick or args.no_compile):
            name = "mmkit, torch.compile (inductor, frozen weights)"
            variants[name], compile_s = compiled(channels_last, x)
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(warmup):
            for fn in variants.values():
                fn()
        for _ in range(rounds):
            for k, fn in variants.items():
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
    reference = median(times["OpenCV DNN (readNetFromDarknet)"])
    rows = [
        {
            "variant": k,
            "ms_per_img": round(1000 * median(v), 1),
            "img_per_s": round(1 / median(v), 2),
            "vs_opencv": round(reference / median(v), 2),
        }
        for k, v in times.items()
    ]
    print_table(
        ["variant", "ms / image", "img/s", "× OpenCV"],
        [[r["variant"], r["ms_per_img"], r["img_per_s"], r["vs_opencv"]] for r in rows],
        f"YOLOv3-tiny @{IMG}, COCO weights, batch 1, {args.threads} threads, median of {rounds} rounds",
        quick=args.quick,
    )
    save_result(
        "darknet_speed",
        env,
        quick=args.quick,
        opencv=cv_version,
        img_size=IMG,
        batch=1,
        rounds=rounds,
        compile_s=round(compile_s, 1) if compile_s is not None else None,
        rows=rows,
    )


if __name__ == "__main__":
    main()
