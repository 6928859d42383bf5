"""Knowledge distillation (Hinton et al. 2015): a narrow smallcnn taught by a wide one, against the same student alone.

The teacher (smallcnn, width 2: 32/64/128 channels) trains first with the task's recipe for the dataset; then each
seed trains the student (width 0.25: 4/8/16 channels) with the same recipe and epochs, alone and with
``--teacher best.pt --kd-weight W --kd-temperature T`` for each W. Every run's best.pt is evaluated on the test split
(``mmkit.tasks.classify.evaluate``). Paired by seed: a student and its distilled twin start from the same weights and
see the same batches.

    .venv/bin/python bench/distill.py [--dataset digits|fashion-mnist] [--seeds 5] [--quick] [--set kd_weights=[0.9]]
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common import base_parser, environment, parse_args, print_table, save_result
from training import Trained, recipe_config, recipe_record, runs_dir, settings, train

from mmkit.tasks.classify import evaluate


@dataclass
class Distill:
    """The script's own settings (--set FIELD=VALUE); the recipe is the task's."""

    teacher_width: float = 2.0
    student_width: float = 0.25
    kd_weights: list[float] = field(default_factory=lambda: [0.5, 0.9])
    kd_temperature: float = 4.0


QUICK = {"epochs": 2}


def fit_and_test(
    data: str, run: str, seed: int, workdir: Path, **overrides: Any
) -> tuple[Trained, dict[str, Any]]:
    """Train one run through the engine and evaluate its best.pt on the test split."""
    t = train(recipe_config("classify", data, run=run, workdir=workdir, seed=seed, **overrides))
    m = evaluate(str(t.best), data, device="cpu", out=t.fit.run_dir / "test", workers=0)
    return t, {
        "seed": seed,
        "test_top1": round(m["top1"], 3),
        "best_val_top1": round(t.fit.best_value, 3),
        **t.record(),
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    top1 = [r["test_top1"] for r in runs]
    return {
        "test_top1_mean": round(statistics.mean(top1), 2),
        "test_top1_min": min(top1),
        "test_top1_max": max(top1),
        "train_wall_s_mean": round(statistics.mean(r["train_wall_s"] for r in runs), 1),
    }


def params(t: Trained) -> int:
    return sum(p.numel() for p in t.task.net.parameters())


def main() -> None:
    p = base_parser(__doc__.split("\n\n")[0], training=True)
    p.add_argument("--dataset", choices=["digits", "fashion-mnist"], default="digits")
    p.add_argument("--seeds", type=int, default=None, help="student seeds from --seed (default 5, quick 1)")
    args = parse_args(p)
    own, overrides = settings(Distill(), args.set, QUICK if args.quick else None)
    data, seeds = args.dataset, range(args.seed, args.seed + (args.seeds or (1 if args.quick else 5)))
    env = environment("cpu", args.threads)
    with runs_dir(args.keep_runs) as workdir:
        teacher, teacher_run = fit_and_test(
            data, "teacher", args.seed, workdir, width=own.teacher_width, **overrides
        )
        print(
            f"teacher: test top-1 {teacher_run['test_top1']:.2f}%  train {teacher_run['train_wall_s']:.1f}s"
        )
        variants: dict[str, dict[str, Any]] = {"alone": {}}
        for w in own.kd_weights:
            kd = dict(teacher=str(teacher.best), kd_weight=w, kd_temperature=own.kd_temperature)
            variants[f"distilled, W {w:g}"] = kd
        students: dict[str, Any] = {}
        last: dict[str, Trained] = {}  # a run of each variant: its config and network
        for name, kd in variants.items():
            runs = []
            for seed in seeds:
                t, r = fit_and_test(
                    data, f"student-{len(students)}-s{seed}", seed, workdir,
                    width=own.student_width, **kd, **overrides,
                )  # fmt: skip
                runs.append(r)
                print(
                    f"student {name}, seed {seed}: test top-1 {r['test_top1']:.2f}%  train {r['train_wall_s']:.1f}s"
                )
            students[name] = {"kd_weight": kd.get("kd_weight"), "runs": runs, **summary(runs)}
            last[name] = t

    rows = [["teacher", params(teacher), 1, teacher_run["test_top1"], "", "", teacher_run["train_wall_s"]]]
    rows += [
        [
            f"student {name}",
            params(last[name]),
            len(s["runs"]),
            s["test_top1_mean"],
            s["test_top1_min"],
            s["test_top1_max"],
        ]
        + [s["train_wall_s_mean"]]
        for name, s in students.items()
    ]
    print_table(
        ["model", "params", "seeds", "test top-1 mean %", "min %", "max %", "train s (mean)"],
        rows,
        title=f"smallcnn width {own.teacher_width:g} -> {own.student_width:g} on {data}, T {own.kd_temperature:g}",
        quick=args.quick,
    )
    save_result(
        f"distill_{data}",
        env,
        quick=args.quick,
        settings={"dataset": data, **asdict(own), "seeds": list(seeds), "threads": args.threads},
        recipe=recipe_record(last["alone"].cfg),
        teacher={"width": own.teacher_width, "params": params(teacher), **teacher_run},
        student_params=params(last["alone"]),
        students=students,
    )


if __name__ == "__main__":
    main()
