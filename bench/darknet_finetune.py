"""Fine-tuning from Darknet's COCO weights against training from scratch: YOLOv3-tiny on ``digit-scenes``, the same
steps (so the same wall time: same network, same batches), mAP@.5 on the 300 held-out scenes.

Both runs are ``mmkit detect train --data digit-scenes`` (the task's recipe: 256 px, batch 8, AdamW 2e-3, weight
decay 0.03) at full width (the COCO weights are full width; the recipe's 0.5 would not fit them), one epoch cut at
``--steps`` batches with a 10 % warm-up; one starts from ``--weights coco`` (new prediction convolutions for the 13
classes, Darknet's backbone and neck, its COCO anchors), the other from a random initialization (k-means anchors, the
recipe's default). The mAPs are the run's validation at the end (pycocotools, multi-label, as ``mmkit detect eval``);
the wall time is the whole ``fit()``.

    OMP_WAIT_POLICY=passive .venv/bin/python bench/darknet_finetune.py [--quick] [--steps 200]

Needs `make weights` (the COCO files).
"""

from __future__ import annotations

from common import base_parser, environment, parse_args, print_table, save_result
from training import parse_sets, recipe_config, recipe_record, runs_dir, train

DATA = "digit-scenes"
STARTS = {"COCO (Darknet's YOLOv3-tiny)": "coco", "scratch (random init)": None}


def main() -> None:
    p = base_parser(__doc__.split("\n\n")[0], training=True)
    p.add_argument("--steps", type=int, default=200, help="training batches of each run")
    args = parse_args(p)
    overrides = parse_sets(args.set)
    steps = 3 if args.quick else args.steps
    fixed = {"width": 1.0, "epochs": 1, "max_steps": steps, "warmup": 0.1, **overrides}
    env = environment("cpu", args.threads)
    rows, results = [], []
    with runs_dir(args.keep_runs) as workdir:
        for label, weights in STARTS.items():
            run = f"finetune-{weights or 'scratch'}-s{args.seed}"
            t = train(
                recipe_config(
                    "detect", DATA, run=run, workdir=workdir, seed=args.seed, weights=weights, **fixed
                )
            )
            r = {
                "start": label,
                "weights": weights,
                "map50": t.curve("val/map50", 4)[-1],
                "map": t.curve("val/map", 4)[-1],
                **t.record(),
                "recipe": recipe_record(t.cfg),
            }
            results.append(r)
            rows.append([label, steps, r["map50"], r["map"], r["train_wall_s"]])
    print_table(
        ["start", "steps", "mAP@.5", "mAP@[.5:.95]", "train s"],
        rows,
        f"YOLOv3-tiny (width 1, 256 px) on {DATA}, {steps} steps of 8, {env['device']}, {args.threads} threads",
        quick=args.quick,
    )
    save_result("darknet_finetune", env, quick=args.quick, data=DATA, steps=steps, runs=results)


if __name__ == "__main__":
    main()
