"""Weight averaging on Fashion-MNIST: the classify recipe trained as is, with `--ema`, and with `--swa-from`.

Each run trains smallcnn with the task's recipe (``mmkit classify train --data fashion-mnist``, seed 0) plus its
averaging option, then evaluates on the test split: best.pt (what a user evaluates: the average's weights once there
is one), last.pt, and, for the averaged runs, the trained weights that last.pt keeps for --resume (the same
trajectory as the plain run: averaging draws no random numbers and leaves the training as it was).

    OMP_WAIT_POLICY=passive .venv/bin/python bench/averaging.py [--quick] [--set ema=0.998] [--set swa_from=15] [--runs plain,ema,swa]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common import base_parser, environment, parse_args, print_table, save_result
from training import parse_sets, recipe_config, recipe_record, runs_dir, settings, train

from mmkit.data.builtin import fashion_mnist_dir
from mmkit.engine import load_checkpoint, save_checkpoint
from mmkit.tasks.classify import evaluate

DATA = "fashion-mnist"
QUICK = {"epochs": 1, "max_steps": 20}


@dataclass
class Averaging:
    """The script's own settings: the averaging options of the runs "ema" and "swa"."""

    ema: float = 0.999
    swa_from: int = 15  # of the recipe's 18 epochs: the mean of the last four, in one-cycle's annealing


def test_top1(weights: Path, out: Path) -> float:
    m = evaluate(str(weights), DATA, device="cpu", out=out, workers=0)
    return round(m["top1"], 3)


def trained_weights(last: Path) -> Path:
    """last.pt with its trained weights (kept for --resume) as the model: what training reached, unaveraged."""
    ck = load_checkpoint(last)
    return save_checkpoint({**ck, "model": ck["trained_model"]}, last.with_name("trained.pt"))


def run_once(name: str, option: dict[str, Any], overrides: dict[str, Any], workdir: Path, seed: int) -> dict:
    t = train(recipe_config("classify", DATA, run=name, workdir=workdir, seed=seed, **overrides, **option))
    run = t.fit.run_dir
    best = test_top1(run / "best.pt", run / "test-best")
    # best.pt of the last epoch holds last.pt's weights
    last = best if t.fit.best_epoch == t.fit.epochs else test_top1(run / "last.pt", run / "test-last")
    return {
        "option": option,
        "test_top1_best_pt": best,
        "test_top1_last_pt": last,
        "test_top1_trained": (
            test_top1(trained_weights(run / "last.pt"), run / "test-trained") if option else None
        ),
        "best_val_top1": t.fit.best_value,
        "val_top1": t.curve("val/top1"),
        "recipe": recipe_record(t.cfg),
        **t.record(),
    }


def main() -> None:
    p = base_parser(__doc__.split("\n\n")[0], training=True)
    p.add_argument("--runs", default="plain,ema,swa", help="which runs, comma-separated: plain, ema, swa")
    args = parse_args(p)
    if fashion_mnist_dir() is None:
        raise SystemExit("fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
    own, overrides = settings(
        Averaging(swa_from=1) if args.quick else Averaging(), args.set, QUICK if args.quick else None
    )
    options = {"plain": {}, "ema": {"ema": own.ema}, "swa": {"swa_from": own.swa_from}}
    names = [n.strip() for n in args.runs.split(",")]
    env = environment("cpu", args.threads)
    saved = {
        "data": DATA,
        "seed": args.seed,
        **asdict(own),
        "overrides": parse_sets(args.set),
        "threads": args.threads,
    }
    runs = {}
    with runs_dir(args.keep_runs) as workdir:
        for name in names:
            r = runs[name] = run_once(name, options[name], overrides, workdir, args.seed)
            print(
                f"{name} {r['option']}: test top-1 best.pt {r['test_top1_best_pt']:.2f}%  last.pt "
                f"{r['test_top1_last_pt']:.2f}%  trained {r['test_top1_trained']}  train {r['train_wall_s']:.0f}s",
                flush=True,
            )
            save_result("averaging", env, quick=args.quick, settings=saved, runs=runs)  # kept after each run
    print_table(
        ["run", "test top-1 best.pt %", "last.pt %", "trained weights %", "best epoch", "train s"],
        [
            [
                f"{n} {r['option'] or ''}".strip(),
                r["test_top1_best_pt"],
                r["test_top1_last_pt"],
                r["test_top1_trained"] if r["test_top1_trained"] is not None else "-",
                r["best_epoch"],
                r["train_wall_s"],
            ]
            for n, r in runs.items()
        ],
        title=f"smallcnn on {DATA}, seed {args.seed}, {env['device']}, {args.threads} threads",
        quick=args.quick,
    )


if __name__ == "__main__":
    main()
