"""Text to image on caption-scenes (issue 19): GAN-INT-CLS and StackGAN, scored by the attribute check.

The attribute check (``mmkit.tasks.generate.attributes``): a reader (smallcnn, trained once on caption-scenes-large's
20,000 real training scenes, cached like generate's FID network) reads the sets of colours, sizes and kinds (which
digit or shape) an image holds. An image matches its caption on an attribute when the set read equals the set the
caption names; form is the kind up to which digit (circle, square, triangle or digit). Rows: each model's samples for
the 300 test captions (``samples`` noises each), the reader on the real test images (the ceiling) and on the real
images against another scene's caption (the floor).
Target: StackGAN's share of images matching on colour, size and form together ("all") >= 70 % of the ceiling's.

Short training on the shared 2-core CPU: each model trains with the caption-scenes recipe of
``mmkit.tasks.generate.options.RECIPES`` (a few minutes per model, one thread), then ``attribute_check`` on last.pt.

    .venv/bin/python bench/text2image.py [--quick] [--threads 1] [--models gan-int-cls,stackgan] [--set FIELD=VALUE]
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common import base_parser, environment, parse_args, print_table, save_result
from training import recipe_config, recipe_record, runs_dir, settings, train

from mmkit.tasks.generate.attributes import CHECKS
from mmkit.tasks.generate.predictor import attribute_check

DATA = "caption-scenes"
TARGET = 0.7  # of the ceiling, on all three attributes (StackGAN)
QUICK = {"epochs": 1, "max_steps": 3}
COLUMNS = [*CHECKS, "all"]


@dataclass
class Bench:
    """The script's own settings (the training settings are the recipe's)."""

    samples: int = 2  # generated images per test caption


def train_one(
    model: str, overrides: dict[str, Any], bench: Bench, seed: int, workdir: Path
) -> dict[str, Any]:
    t = train(
        recipe_config("generate", DATA, run=model, workdir=workdir, seed=seed, model=model, **overrides)
    )
    t0 = time.perf_counter()
    check = attribute_check(t.fit.run_dir / "last.pt", samples=bench.samples, seed=seed)
    cfg = t.cfg
    steps = t.fit.epochs * (cfg.max_steps or len(t.task.dataset.train) // cfg.batch_size)
    return {
        "model": model,
        "epochs": t.fit.epochs,
        "steps": steps,
        "settings": recipe_record(cfg),
        "params": sum(p.numel() for p in t.task.net.parameters()),
        "check": {k: v for k, v in check.items() if k != "weights"},
        "check_s": round(time.perf_counter() - t0, 1),
        **t.record(),
    }


def percent(shares: dict[str, float]) -> list[float]:
    return [round(100 * shares[k], 1) for k in COLUMNS]


def report(results: list[dict[str, Any]], bench: Bench, env: dict[str, Any], quick: bool) -> None:
    first = results[0]["check"]
    rows = [
        ["real test images (ceiling)", *percent(first["real"]), 100.0],
        ["real images, another scene's caption (floor)", *percent(first["other_captions"]), "-"],
    ]
    checks = {}
    for r in results:
        c = r["check"]
        name = f"{r['model']} ({r['epochs']} epochs, {r['steps']} steps, {r['train_wall_s']:.0f} s)"
        rows.append([name, *percent(c["generated"]), round(100 * c["of_ceiling"]["all"], 1)])
        if r["model"] == "stackgan":
            checks[f"stackgan all >= {TARGET:.0%} of the ceiling"] = c["of_ceiling"]["all"] >= TARGET
    print_table(
        ["images", *(f"{k} %" for k in COLUMNS), "all, % of ceiling"],
        rows,
        title=f"{DATA}: {first['captions']} test captions, {bench.samples} samples each; match = the set read "
        "equals the set named",
        quick=quick,
    )
    for k, v in checks.items():
        print(f"{k}: {'met' if v else 'not met'}")
    save_result("text2image", env, quick=quick, bench=asdict(bench), results=results, checks=checks)


def main() -> None:
    p = base_parser(__doc__.split("\n\n")[0], training=True)
    p.add_argument("--models", default="gan-int-cls,stackgan")
    args = parse_args(p)
    bench, overrides = settings(
        Bench(samples=1) if args.quick else Bench(), args.set, QUICK if args.quick else None
    )
    env = environment("cpu", args.threads)
    results = []
    with runs_dir(args.keep_runs) as workdir:
        for model in args.models.split(","):
            results.append(train_one(model, overrides, bench, args.seed, workdir))
            print(
                f"{model}: {results[-1]['check']['generated']} in {results[-1]['train_wall_s']} s", flush=True
            )
    report(results, bench, env, args.quick)


if __name__ == "__main__":
    main()
