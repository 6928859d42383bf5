"""Image-to-image models against doing nothing: pix2pix, RED-Net and CycleGAN on held-out data, on the CPU.

Issue 19 asks for a number beside each image-to-image task that has code: here pix2pix on ``photo-edges`` and
``photo-colorize``, RED-Net on ``photo-denoise`` and ``photo-deblur`` (PSNR and SSIM on the 74 held-out photo tiles,
RGB in [0, 1], ``generate eval``'s convention), and CycleGAN on ``digits-fashion`` (MNIST digits -> Fashion-MNIST,
no true pairs: FID of the translated test digits against the 10,000 real Fashion-MNIST test images, with the
feature network of generate_quality). Every row stands beside doing nothing: the input itself (the gray or edge map
repeated to RGB where the input has one channel; the untranslated digits for FID). Each model trains with its
builtin's recipe (``mmkit.tasks.generate.options.RECIPES``) on a short CPU budget (``BUDGET``: what this script
changes), then is scored on last.pt; no choice is made on the test data.

    OMP_WAIT_POLICY=passive .venv/bin/python bench/image_to_image.py --threads 1 --jobs 2 [--quick] [--data ...]
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from common import base_parser, environment, parse_args, print_table, save_result, set_threads
from training import recipe_config, recipe_record, runs_dir, settings, train

from mmkit.data.generation import to_signed
from mmkit.metrics.generation import Fidelity, fid_from_features, kid
from mmkit.tasks.generate import GeneratorPredictor, evaluate, feature_network, translate_batch

# Per builtin, what this bench changes of its recipe to fit about 8 minutes of one CPU thread per model (the
# recipes: pix2pix 10 epochs of 4,000 crops at batch 64 on both photo sets; RED-Net 10 epochs at batch 64, lr 1e-3
# on photo-denoise and lr 2e-4 on photo-deblur; CycleGAN on digits-fashion with no tuned settings, an epoch being
# 60,000 pairs). RED-Net trains 1 epoch at batch 16: the same images as at 64, four times the updates.
BUDGET: dict[str, dict[str, Any]] = {
    "photo-edges": {"epochs": 5},
    "photo-colorize": {"epochs": 5},
    "photo-denoise": {"epochs": 1, "batch_size": 16},
    "photo-deblur": {"epochs": 1, "batch_size": 16},
    "digits-fashion": {"epochs": 1, "max_steps": 250, "batch_size": 16},
}
UNPAIRED_REFERENCE = "fashion-mnist"  # the FID feature network and real images of digits-fashion's B side
QUICK = {"epochs": 1, "max_steps": 3, "crops": 64}
FIDELITY = Fidelity()  # RGB in [0, 1], data range 1: psnr_rgb, ssim_rgb


@dataclass
class Bench:
    """The script's own settings (the training settings are the recipes and ``BUDGET``)."""

    n_real: int = 10000  # real Fashion-MNIST test images the FID of digits-fashion compares with


def as_rgb(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 images with `channels` channels (a one-channel input repeated, as a gray image is shown)."""
    return images.expand(-1, channels, -1, -1) if images.shape[1] != channels else images


def input_itself(test) -> dict[str, float]:
    """PSNR and SSIM of the test inputs as they are against their targets: doing nothing."""
    a = torch.stack([test[i][0] for i in range(len(test))])
    b = torch.stack([test[i][1] for i in range(len(test))])
    return {k: float(v.mean()) for k, v in FIDELITY(as_rgb(a, b.shape[1]), b).items()}


def paired_scores(t, run_dir: Path) -> dict[str, Any]:
    ev = evaluate(str(run_dir / "last.pt"), device="cpu", fidelity=FIDELITY, out=run_dir / "eval")
    ev.pop("out_dir")
    nothing = input_itself(t.task.dataset.test)
    if "baseline" in ev:  # generate eval's own baseline (same shapes) is the same measurement
        assert abs(ev[f"baseline_psnr_{FIDELITY.name}"] - nothing[f"psnr_{FIDELITY.name}"]) < 1e-6, ev
    gain = {k: ev[k] - v for k, v in nothing.items()}
    return {"eval": ev, "input_itself": nothing, "gain": gain}


@torch.no_grad()
def unpaired_scores(t, run_dir: Path, n_real: int) -> dict[str, Any]:
    """FID and KID against the real B test images of: the translated A test images, A untranslated (doing
    nothing), and as many real B training images (the floor at this sample size)."""
    p = GeneratorPredictor.load(str(run_dir / "last.pt"), device="cpu")
    test = t.task.dataset.test
    digits = to_signed(test.a.images)
    translated = torch.cat([translate_batch(p.net, p.meta, x) for x in digits.split(256)])
    fx = feature_network(UNPAIRED_REFERENCE)
    f_real, _ = fx(to_signed(test.b.images[:n_real]))
    real_train = t.task.dataset.train.b.images[: len(digits)]
    rows = {}
    for name, images in (
        ("translated", translated),
        ("input_itself", digits),
        ("floor", to_signed(real_train)),
    ):
        f, _ = fx(images)
        k, k_std = kid(f_real, f)
        rows[name] = {"fid": fid_from_features(f_real, f), "kid": k, "kid_std": k_std}
    rows["gain"] = {"fid": rows["translated"]["fid"] - rows["input_itself"]["fid"]}
    return {"feature_network": fx.name, "images": len(digits), "real_images": len(f_real), **rows}


def train_one(
    data: str, overrides: dict[str, Any], bench: Bench, seed: int, workdir: Path, threads: int
) -> dict[str, Any]:
    """Train `data`'s recipe model with this bench's budget (in a worker process), score last.pt."""
    set_threads(threads)
    values = {**BUDGET[data], **overrides}
    cpu0 = time.process_time()
    t = train(recipe_config("generate", data, run=data, workdir=workdir, seed=seed, **values))
    cpu_s = time.process_time() - cpu0  # on a shared machine the wall time is mostly waiting
    cfg, run_dir = t.cfg, t.fit.run_dir
    steps = t.fit.epochs * (cfg.max_steps or len(t.task.dataset.train) // cfg.batch_size)
    if t.task.dataset.kind == "paired":
        scores = paired_scores(t, run_dir)
    else:
        scores = unpaired_scores(t, run_dir, bench.n_real)
    record = {
        "data": data,
        "model": t.task.model,
        "split": t.task.dataset.split,
        "settings": recipe_record(cfg),
        "epochs": t.fit.epochs,
        "steps": steps,
        "samples": steps * cfg.batch_size,
        "params": sum(p.numel() for p in t.task.net.parameters()),
        **scores,
        **t.record(),
        "train_cpu_s": round(cpu_s, 1),
        "val_psnr": t.curve("val/psnr"),  # on the test tiles, by epoch: shown, never used to choose
    }
    print(
        f"{data}: {scores['gain']} in {record['train_wall_s']} s ({record['train_cpu_s']} s CPU)", flush=True
    )
    return record


def main() -> None:
    p = base_parser(__doc__.split("\n\n")[0], training=True)
    p.add_argument("--data", default=",".join(BUDGET), help="builtins to run (default: all)")
    p.add_argument("--jobs", type=int, default=1, help="models trained at once (each with --threads)")
    args = parse_args(p)
    bench, overrides = settings(
        Bench(n_real=500) if args.quick else Bench(), args.set, QUICK if args.quick else None
    )
    env = environment("cpu", args.threads)
    env["jobs"] = args.jobs
    names = args.data.split(",")
    with runs_dir(args.keep_runs) as workdir:
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=spawn) as pool:
            futures = [
                pool.submit(train_one, data, overrides, bench, args.seed, workdir, args.threads)
                for data in names
            ]
            results = [f.result() for f in futures]
    report(results, bench, env, args.quick)


def report(results: list[dict[str, Any]], bench: Bench, env: dict[str, Any], quick: bool) -> None:
    c = FIDELITY.name
    rows = []
    for r in results:
        task = (
            f"{r['data']} {r['model']} ({r['epochs']} ep, {r['steps']} steps, {r['train_cpu_s']:.0f} s CPU)"
        )
        if "eval" in r:
            e, n, g = r["eval"], r["input_itself"], r["gain"]
            rows.append([task, round(e[f"psnr_{c}"], 2), round(e[f"ssim_{c}"], 3), "-",
                         round(g[f"psnr_{c}"], 2), round(g[f"ssim_{c}"], 3)])  # fmt: skip
            rows.append(
                [
                    f"{r['data']} input itself",
                    round(n[f"psnr_{c}"], 2),
                    round(n[f"ssim_{c}"], 3),
                    "-",
                    "-",
                    "-",
                ]
            )
        else:
            rows.append([task, "-", "-", round(r["translated"]["fid"], 2), "-", round(r["gain"]["fid"], 2)])
            for k in ("input_itself", "floor"):
                rows.append([f"{r['data']} {k}", "-", "-", round(r[k]["fid"], 2), "-", "-"])
    print_table(
        ["model / baseline", f"PSNR dB ({c})", "SSIM", "FID", "PSNR gain", "SSIM or FID gain"],
        rows,
        title="held-out test data, last.pt; gain = model - the input itself",
        quick=quick,
    )
    save_result(
        "image_to_image", env, quick=quick, bench=asdict(bench), convention=c, budget=BUDGET, results=results
    )


if __name__ == "__main__":
    main()
