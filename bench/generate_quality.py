"""Generation quality on Fashion-MNIST and real photos, and GAN training speed, on the CPU.

Targets (issue 7), with FID and KID from our feature network (a smallcnn classifier trained on Fashion-MNIST by
``mmkit.tasks.generate.feature_network``; Inception weights are not offline), all against the 10,000 real test
images:
- the floor: FID of 10,000 real training images (disjoint from the test images);
- a naive generator: Gaussian samples with the training images' per-pixel mean and covariance;
- DCGAN and WGAN-GP: each at most half the naive generator's FID;
- the conditional GANs (cGAN, AC-GAN; 10 epochs): samples classified as their label >= 90 % by the same classifier;
- LapSRN x4 on held-out crops of scikit-image photos (``photo-sr``): PSNR above bicubic by >= 1 dB.
Without a target (issue 19): WGAN (weight clipping) beside them; CycleGAN, DiscoGAN and DualGAN on ``day-tinted``,
whose held-out tiles have true translations: PSNR/SSIM against them, beside the input itself (doing nothing).
Speed: generator + discriminator steps per second (batch 64) of DCGAN and WGAN-GP (5 critic steps per generator
step). Each model trains with the task's recipe (``mmkit.tasks.generate.options.RECIPES``: ``fashion-mnist``'s for
the GANs, ``photo-sr``'s for LapSRN; see ``MODELS`` for what this script changes), then
``mmkit.tasks.generate.evaluate`` on last.pt.

    .venv/bin/python bench/generate_quality.py [--quick] [--models dcgan,wgan-gp,acgan,lapsrn] [--set FIELD=VALUE]
    .venv/bin/python bench/generate_quality.py --models wgan,cyclegan,discogan,dualgan --merge
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from common import base_parser, environment, parse_args, print_table, read_result, save_result
from training import recipe_config, recipe_record, runs_dir, settings, train

from mmkit.data.generation import load_generation_data, to_signed
from mmkit.metrics.generation import fid_from_features, kid, naive_gaussian_samples
from mmkit.tasks.generate import MODE_SEEKING, evaluate, feature_network
from mmkit.tasks.generate.options import RECIPES

GAN_DATA = "fashion-mnist"  # the GANs' data, and the references' (FID floor, naive generator)
# Each model: the builtin whose recipe it trains with (mmkit.tasks.generate.options.RECIPES), then what this bench
# changes. The fashion-mnist recipe is DCGAN's (5 epochs, batch 64, constant lr 2e-4); the other GANs train with
# it, WGAN-GP at its paper's lr 1e-4, WGAN with its own recipe (RMSprop at 5e-5), and the conditional GANs for 10
# epochs. photo-sr's is LapSRN's. day-tinted's recipe names CycleGAN with no tuned settings:
# the unpaired models train 1 epoch of 4,000 crops at batch 16 (DualGAN with its own recipe).
UNPAIRED = {"epochs": 1, "batch_size": 16}
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "gan": (GAN_DATA, {}),  # Goodfellow et al.'s MLPs, with the same recipe
    "dcgan": (GAN_DATA, {}),
    "wgan": (GAN_DATA, dict(RECIPES.by_model["wgan"])),
    "wgan-gp": (GAN_DATA, {"lr": 1e-4}),
    "acgan": (GAN_DATA, {"epochs": 10}),
    "cgan": (GAN_DATA, {"epochs": 10}),
    "lapsrn": ("photo-sr", {}),
    "cyclegan": ("day-tinted", UNPAIRED),
    "discogan": ("day-tinted", UNPAIRED),
    "dualgan": ("day-tinted", {**RECIPES.by_model["dualgan"], **UNPAIRED}),
}
QUICK = {"epochs": 1, "max_steps": 3, "crops": 64}


@dataclass
class Bench:
    """The script's own settings (the training settings are the task's recipes)."""

    n_eval: int = 10000  # generated samples (and real test images) that FID, KID and IS compare


def train_one(
    model: str, overrides: dict[str, Any], bench: Bench, seed: int, workdir: Path
) -> dict[str, Any]:
    data, changes = MODELS[model]
    values = {"model": model, **changes, **overrides}
    t = train(recipe_config("generate", data, run=model, workdir=workdir, seed=seed, **values))
    ev = evaluate(str(t.fit.run_dir / "last.pt"), n=bench.n_eval, device="cpu", out=t.fit.run_dir / "eval")
    ev.pop("out_dir")
    cfg = t.cfg
    steps = t.fit.epochs * (cfg.max_steps or len(t.task.dataset.train) // cfg.batch_size)
    seeking = {"mode_seeking": t.task.mode_seeking} if model in MODE_SEEKING else {}
    return {
        "model": model,
        "data": t.task.data,
        "epochs": t.fit.epochs,
        "settings": {**recipe_record(cfg), **seeking},
        "steps_per_s": round(steps / t.seconds, 2),
        "params": sum(p.numel() for p in t.task.net.parameters()),
        "eval": ev,
        **t.record(),
    }


@torch.no_grad()
def references(data: str, n: int) -> dict[str, Any]:
    """FID/KID of the floor (real train vs real test) and of the naive Gaussian generator."""
    fx = feature_network(data)
    d = load_generation_data(data, "images")
    n = min(n, len(d.test))
    test = to_signed(torch.stack([d.test[i][0] for i in range(n)]))
    train = to_signed(torch.stack([d.train[i][0] for i in range(n)]))
    f_test, _ = fx(test)
    rows = {}
    for name, images in (("floor: real train images", train), ("naive Gaussian generator", None)):
        if images is None:
            images = naive_gaussian_samples(train, n, seed=0)
        f, probs = fx(images)
        k, k_std = kid(f_test, f)
        rows[name] = {"fid": fid_from_features(f_test, f), "kid": k, "kid_std": k_std}
    return {"feature_network": fx.name, "images": n, **rows}


def main() -> None:
    p = base_parser(__doc__.split("\n\n")[0], training=True)
    p.add_argument("--models", default="dcgan,wgan-gp,acgan,cgan,lapsrn")
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the other models' results of the last run (e.g. to rerun one)",
    )
    args = parse_args(p)
    bench, overrides = settings(
        Bench(n_eval=500) if args.quick else Bench(), args.set, QUICK if args.quick else None
    )
    if args.quick:
        os.environ.setdefault("MMKIT_HOME", tempfile.mkdtemp(prefix="mmkit-home-"))
    env = environment("cpu", args.threads)
    t0 = time.perf_counter()
    refs = references(GAN_DATA, bench.n_eval)
    print(f"references ({time.perf_counter() - t0:.0f} s, features: {refs['feature_network']}):", flush=True)
    results = []
    with runs_dir(args.keep_runs) as workdir:
        for model in args.models.split(","):
            results.append(train_one(model, overrides, bench, args.seed, workdir))
            print(f"{model}: {results[-1]['eval']} in {results[-1]['train_wall_s']} s", flush=True)
            report(refs, merged(results, args.quick) if args.merge else results, bench, env, args.quick)


def merged(results: list[dict[str, Any]], quick: bool) -> list[dict[str, Any]]:
    """This run's results, after the last run's results for the other models (read now: it may still be running)."""
    last = read_result("generate_quality", quick=quick) or {}
    mine = {r["model"] for r in results}
    return [r for r in last.get("results", []) if r["model"] not in mine] + results


def score(e: dict[str, Any], name: str) -> float:
    """A PSNR or SSIM of an evaluation, under its convention (``psnr_rgb``; ``psnr`` in results from before)."""
    return e[f"{name}_{e['convention']}"] if "convention" in e else e[name]


def report(refs, results, bench, env, quick) -> None:
    naive = refs["naive Gaussian generator"]["fid"]
    rows = [
        [name, round(refs[name]["fid"], 3), round(refs[name]["kid"], 4), "-", "-"]
        for name in refs
        if isinstance(refs[name], dict)
    ]
    checks = {}
    for r in results:
        e = r["eval"]
        if "fid" in e:
            acc = f"{100 * e['label_accuracy']:.1f}" if "label_accuracy" in e else "-"
            rows.append(
                [
                    f"{r['model']} ({r['epochs']} epochs, {r['train_wall_s']:.0f} s)",
                    round(e["fid"], 3),
                    round(e["kid"], 4),
                    round(e.get("inception_score", float("nan")), 2),
                    acc,
                ]
            )
            if r["model"] in ("dcgan", "wgan-gp"):
                checks[f"{r['model']} FID <= naive / 2"] = e["fid"] <= naive / 2
            if "label_accuracy" in e:
                checks[f"{r['model']} label accuracy >= 90 %"] = e["label_accuracy"] >= 0.9
        elif r["model"] == "lapsrn":
            checks["lapsrn PSNR >= bicubic + 1 dB"] = score(e, "psnr") >= score(e, "baseline_psnr") + 1.0
    print_table(
        ["generator", "FID", "KID", "IS", "label acc %"],
        rows,
        title=f"{GAN_DATA}, {refs['images']} test images; features: {refs['feature_network']}",
        quick=quick,
    )
    sr = [r for r in results if r["model"] == "lapsrn"]
    if sr:
        e = sr[0]["eval"]
        print_table(
            ["x4 super-resolution", "PSNR dB", "SSIM"],
            [
                ["LapSRN", round(score(e, "psnr"), 2), round(score(e, "ssim"), 4)],
                ["bicubic", round(score(e, "baseline_psnr"), 2), round(score(e, "baseline_ssim"), 4)],
            ],
            title=f"{sr[0]['data']}: {e['images']} held-out crops",
        )
    unpaired = [r for r in results if MODELS[r["model"]][0] == "day-tinted"]
    if unpaired:
        e = unpaired[0]["eval"]
        rows = [[f"{r['model']} ({r['epochs']} epochs, {r['train_wall_s']:.0f} s)", round(score(r["eval"], "psnr"), 2),
                 round(score(r["eval"], "ssim"), 4)] for r in unpaired]  # fmt: skip
        rows.append(
            ["the input itself", round(score(e, "baseline_psnr"), 2), round(score(e, "baseline_ssim"), 4)]
        )
        print_table(
            ["unpaired translation", "PSNR dB", "SSIM"],
            rows,
            title=f"{unpaired[0]['data']}: {e['images']} held-out tiles against their true translations",
        )
    print_table(
        ["model", "steps/s", "params"],
        [[r["model"], r["steps_per_s"], r["params"]] for r in results],
        title="CPU training speed (G + D steps, validation included)",
    )
    for k, v in checks.items():
        print(f"{k}: {'met' if v else 'not met'}")
    save_result(
        "generate_quality",
        env,
        quick=quick,
        bench=asdict(bench),
        references=refs,
        results=results,
        checks=checks,
    )


if __name__ == "__main__":
    main()
