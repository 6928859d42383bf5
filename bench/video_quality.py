"""Video classification of held-out synthetic motion clips: a CNN + LSTM against the same CNN with frame-mean pooling.

Target (issue 5): >= 95 % top-1 on held-out synthetic motion clips, and a frame-mean model clearly worse. The data
is the builtin ``motion-clips`` (``mmkit.data.synthetic_videos``): digits and shapes whose label is their motion
(left, right, up, down, rotate cw/ccw, grow, shrink, bounce), 1,800 training and 360 test clips whose digits come
from disjoint MNIST images. Each model trains with the task's recipe for ``motion-clips-large``
(``mmkit.tasks.video.options.RECIPES``: what ``mmkit video train --data motion-clips-large`` runs with no other
flag; 5,400 training clips, the same test clips), then ``mmkit.tasks.video.evaluate`` on best.pt.

The CNN + LSTM gets each frame with its difference from the previous frame (TSN's "RGB diff", `diff=True`); the
frame-mean baseline is the same CNN on single frames, averaged over time: it sees every frame but not their order.

    .venv/bin/python bench/video_quality.py [--quick] [--models cnn-lstm,cnn-gru,cnn-mean] [--set FIELD=VALUE ...]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common import base_parser, environment, parse_args, print_table, read_result, save_result
from training import recipe_config, recipe_record, runs_dir, settings, train

from mmkit.tasks.registry import get_task
from mmkit.tasks.video import evaluate

# The task's recipe for motion-clips-large (mmkit.tasks.video.options): 5,400 training clips gave 96.7 % where the
# 1,800 of motion-clips gave 91.9 % (overfitting); no augmentation (mirrored / upside down / reversed clips with their
# labels mapped: 86.7 % against 91.9 %). Every model trains with it, the frame-mean baseline as said in `Bench`.
DATA = "motion-clips-large"
QUICK = {"epochs": 1, "max_steps": 3}


@dataclass
class Bench:
    """The script's own settings (the training settings are the task's recipe)."""

    mean_lr: float = (
        1e-3  # the frame-mean baseline: at the recipe's 3e-3 its CNN died (all ReLUs off by epoch 4)
    )
    target_top1: float = 95.0


def model_overrides(model: str, bench: Bench) -> dict[str, Any]:
    """`model` with the recipe; the frame-mean baseline sees single frames (no differences) and has its own lr."""
    if model != "cnn-mean":
        return {"model": model}
    kwargs = {k: v for k, v in get_task("video").recipe(DATA)["model_kwargs"].items() if k != "diff"}
    return {"model": model, "lr": bench.mean_lr, "model_kwargs": kwargs}


def run(model: str, bench: Bench, overrides: dict[str, Any], seed: int, workdir: Path) -> dict[str, Any]:
    values = {**model_overrides(model, bench), **overrides}
    t = train(recipe_config("video", DATA, run=f"{model}-s{seed}", workdir=workdir, seed=seed, **values))
    m = evaluate(str(t.best), t.task.data, device="cpu", out=t.fit.run_dir / "eval")
    return {
        "model": model,
        "params": sum(p.numel() for p in t.task.net.parameters()),
        "seed": seed,
        "test_clips": m["videos"],
        "top1": round(100 * m["top1"], 2),
        "val_top1": t.curve("val/top1"),
        **t.record(),
        "recipe": recipe_record(t.cfg),
    }


def main() -> None:
    p = base_parser(__doc__.split("\n\n")[0], training=True)
    p.add_argument("--models", default="cnn-lstm,cnn-mean")
    p.add_argument(
        "--merge", action="store_true", help="keep the other models' results of the last run (same settings)"
    )
    args = parse_args(p)
    bench, overrides = settings(Bench(), args.set, QUICK if args.quick else None)
    env = environment("cpu", args.threads)
    results = []
    if args.merge:
        last = read_result("video_quality", quick=args.quick) or {}
        if last.get("bench") != asdict(bench) or last.get("overrides") != overrides:
            raise SystemExit("--merge: the last run used other settings")
        results = [r for r in last["results"] if r["model"] not in args.models.split(",")]
    with runs_dir(args.keep_runs) as workdir:
        for model in args.models.split(","):
            results.append(run(model, bench, overrides, args.seed, workdir))
            print(
                f"{model}: {results[-1]['top1']} % test top-1 in {results[-1]['train_wall_s']} s", flush=True
            )
            report(results, bench, overrides, env, args.quick)


def report(
    results: list[dict[str, Any]], bench: Bench, overrides: dict[str, Any], env: dict[str, Any], quick: bool
) -> None:
    """Print the table and write the JSON (after every model, so a long run keeps what it finished)."""
    rnn = [r for r in results if r["model"] != "cnn-mean"]
    mean = [r for r in results if r["model"] == "cnn-mean"]
    met = bool(rnn) and max(r["top1"] for r in rnn) >= bench.target_top1
    if mean and rnn:
        met = met and mean[0]["top1"] < max(r["top1"] for r in rnn) - 10
    recipe = results[-1]["recipe"]
    print_table(
        ["model", "params", "test top-1 %", "train s", "best epoch"],
        [[r["model"], r["params"], r["top1"], r["train_wall_s"], r["best_epoch"]] for r in results],
        title=f"Held-out motion clips ({recipe['frames']} frames @{recipe['img_size']}px), {env['device']}",
        quick=quick,
    )
    print(
        f"target: an RNN >= {bench.target_top1} % and frame-mean clearly (10+ points) worse: {'met' if met else 'not met'}"
    )
    save_result(
        "video_quality",
        env,
        quick=quick,
        bench=asdict(bench),
        overrides=overrides,
        results=results,
        meets_target=met,
    )


if __name__ == "__main__":
    main()
