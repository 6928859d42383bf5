"""Generation quality on Fashion-MNIST and real photos, and GAN training speed, on the CPU.

Targets (issue 7), with FID and KID from our feature network (a smallcnn classifier trained on Fashion-MNIST by
``mmkit.tasks.generate.feature_network``; Inception weights are not offline), all against the 10,000 real test
images:
- the floor: FID of 10,000 real training images (disjoint from the test images);
- a naive generator: Gaussian samples with the training images' per-pixel mean and covariance;
- DCGAN and WGAN-GP: each at most half the naive generator's FID;
- the conditional GANs (cGAN, AC-GAN; 10 epochs): samples classified as their label >= 90 % by the same classifier;
- LapSRN x4 on held-out crops of scikit-image photos (``photo-sr``): PSNR above bicubic by >= 1 dB.
Speed: generator + discriminator steps per second (batch 64) of DCGAN and WGAN-GP (5 critic steps per generator
step). Each model is ``Trainer(GenerateTask(...), TrainConfig(...)).fit()`` (what ``mmkit generate train`` does),
then ``mmkit.tasks.generate.evaluate`` on last.pt.

    .venv/bin/python bench/generate_quality.py [--quick] [--models dcgan,wgan-gp,acgan,lapsrn] [--set FIELD=VALUE]
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from common import (
    base_parser,
    environment,
    load_average,
    print_table,
    recipe_overrides,
    set_threads,
    write_result,
)

from mmkit.data.generation import load_generation_data, to_signed
from mmkit.engine import TrainConfig, Trainer
from mmkit.metrics.generation import fid_from_features, kid, naive_gaussian_samples
from mmkit.tasks.generate import GenerateTask, evaluate, feature_network


@dataclass
class Recipe:
    data: str = "fashion-mnist"
    gan_epochs: int = 5
    wgan_epochs: int = 5
    acgan_epochs: int = 10  # cgan and acgan
    mode_seeking: float | None = None  # the conditional GANs' mode-seeking weight (None: the model's default)
    seed: int = 0
    batch_size: int = 64
    lr: float = 2e-4
    wgan_lr: float = 1e-4
    sr_data: str = "photo-sr"
    sr_epochs: int = 4
    sr_crops: int = 20000  # random training crops per epoch, drawn on access (flipped and rotated)
    sr_lr: float = 1e-3
    sr_batch_size: int = 16
    sr_features: int = 32  # LapSRN's width (the paper: 64 features, depth 10)
    sr_depth: int = 5
    n_eval: int = 10000
    max_steps_per_epoch: int | None = None


QUICK = {
    "gan_epochs": 1,
    "wgan_epochs": 1,
    "acgan_epochs": 1,
    "sr_epochs": 1,
    "sr_crops": 64,
    "max_steps_per_epoch": 3,
    "n_eval": 500,
}


def train(
    model: str, data: str, epochs: int, lr: float, batch: int, recipe: Recipe, workdir: Path
) -> dict[str, Any]:
    kwargs = {"features": recipe.sr_features, "depth": recipe.sr_depth} if model == "lapsrn" else {}
    task = GenerateTask(
        data=data, model=model, crops=recipe.sr_crops, mode_seeking=recipe.mode_seeking, model_kwargs=kwargs
    )
    cfg = TrainConfig(
        task="generate",
        name=model,
        project=str(workdir),
        epochs=epochs,
        batch_size=batch,
        lr=lr,
        optimizer="adam" if model == "lapsrn" else "adamw",
        weight_decay=0.0,
        schedule="cosine" if model == "lapsrn" else "constant",
        device="cpu",
        seed=recipe.seed,
        max_steps=recipe.max_steps_per_epoch,
    )
    load_before = load_average()
    t0 = time.perf_counter()
    fit = Trainer(task, cfg, progress=False).fit()
    train_s = time.perf_counter() - t0
    ev = evaluate(str(fit.run_dir / "last.pt"), n=recipe.n_eval, device="cpu", out=fit.run_dir / "eval")
    ev.pop("out_dir")
    steps = fit.epochs * (recipe.max_steps_per_epoch or len(task.dataset.train) // batch)
    return {
        "model": model,
        "data": data,
        "epochs": fit.epochs,
        "settings": {"lr": lr, "batch_size": batch, **_model_settings(model, recipe)},
        "train_wall_s": round(train_s, 1),
        "steps_per_s": round(steps / train_s, 2),
        "params": sum(p.numel() for p in task.net.parameters()),
        "eval": ev,
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }


def _model_settings(model: str, recipe: Recipe) -> dict[str, Any]:
    if model == "lapsrn":
        return {"crops": recipe.sr_crops, "features": recipe.sr_features, "depth": recipe.sr_depth}
    if model in ("cgan", "acgan"):
        from mmkit.tasks.generate import MODE_SEEKING

        weight = MODE_SEEKING[model] if recipe.mode_seeking is None else recipe.mode_seeking
        return {"mode_seeking": weight, "seed": recipe.seed}
    return {}


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
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--models", default="dcgan,wgan-gp,acgan,cgan,lapsrn")
    p.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="override a recipe field"
    )
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the other models' results of the last run (e.g. to rerun one)",
    )
    p.add_argument("--keep-runs", type=Path, help="keep the run directories here (default: a temporary one)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    set_threads(args.threads)
    recipe = replace(Recipe(), **{**(QUICK if args.quick else {}), **recipe_overrides(Recipe, args.set)})
    if args.quick:
        os.environ.setdefault("MMKIT_HOME", tempfile.mkdtemp(prefix="mmkit-home-"))
    env = environment("cpu", args.threads)
    t0 = time.perf_counter()
    refs = references(recipe.data, recipe.n_eval)
    print(f"references ({time.perf_counter() - t0:.0f} s, features: {refs['feature_network']}):", flush=True)
    results = []
    settings = {
        "dcgan": (recipe.data, recipe.gan_epochs, recipe.lr, recipe.batch_size),
        "wgan-gp": (recipe.data, recipe.wgan_epochs, recipe.wgan_lr, recipe.batch_size),
        "acgan": (recipe.data, recipe.acgan_epochs, recipe.lr, recipe.batch_size),
        "cgan": (recipe.data, recipe.acgan_epochs, recipe.lr, recipe.batch_size),
        "lapsrn": (recipe.sr_data, recipe.sr_epochs, recipe.sr_lr, recipe.sr_batch_size),
    }
    with tempfile.TemporaryDirectory(prefix="mmkit-bench-") as tmp:
        for model in args.models.split(","):
            results.append(train(model, *settings[model], recipe, args.keep_runs or Path(tmp)))
            print(f"{model}: {results[-1]['eval']} in {results[-1]['train_wall_s']} s", flush=True)
            report(refs, merged(results, args.quick) if args.merge else results, recipe, env, args.quick)


def merged(results: list[dict[str, Any]], quick: bool) -> list[dict[str, Any]]:
    """This run's results, after the last run's results for the other models (read now: it may still be running)."""
    from common import read_result

    last = read_result("generate_quality", quick=quick) or {}
    mine = {r["model"] for r in results}
    return [r for r in last.get("results", []) if r["model"] not in mine] + results


def report(refs, results, recipe, env, quick) -> None:
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
        else:
            checks["lapsrn PSNR >= bicubic + 1 dB"] = e["psnr"] >= e["baseline_psnr"] + 1.0
    print_table(
        ["generator", "FID", "KID", "IS", "label acc %"],
        rows,
        title=f"{recipe.data}, {refs['images']} test images; features: {refs['feature_network']}"
        + (" (quick)" if quick else ""),
    )
    sr = [r for r in results if r["model"] == "lapsrn"]
    if sr:
        e = sr[0]["eval"]
        print_table(
            ["x4 super-resolution", "PSNR dB", "SSIM"],
            [
                ["LapSRN", round(e["psnr"], 2), round(e["ssim"], 4)],
                ["bicubic", round(e["baseline_psnr"], 2), round(e["baseline_ssim"], 4)],
            ],
            title=f"{recipe.sr_data}: {e['images']} held-out crops",
        )
    print_table(
        ["model", "steps/s", "params"],
        [[r["model"], r["steps_per_s"], r["params"]] for r in results],
        title="CPU training speed (G + D steps, validation included)",
    )
    for k, v in checks.items():
        print(f"{k}: {'met' if v else 'not met'}")
    write_result(
        "generate_quality",
        {
            "benchmark": "generate_quality",
            "quick": quick,
            "environment": env,
            "recipe": asdict(recipe),
            "references": refs,
            "results": results,
            "checks": checks,
        },
        quick=quick,
    )


if __name__ == "__main__":
    main()
