"""SAD/MSE/Grad/Conn of dim-small trained through mmkit's engine on ``matting-composites``, against two baselines.

The model trains with the task's recipe (``mmkit.tasks.matte.options.RECIPES``: what
``mmkit matte train --data matting-composites`` runs with no other flag), then its best.pt is evaluated on the 200
held-out composites (photo regions, digits and a seed that training never sees; trimaps of a fixed width) with
the trimap's known regions filled in, as ``mmkit matte eval`` does. The trimap baseline (unknown = 0.5) and the
guided-filter baseline are scored on the same images. Target: the model's SAD and MSE at most half the trimap
baseline's.

    python bench/matte_quality.py               # the recipe (writes bench/results/matte_quality.json)
    python bench/matte_quality.py --quick       # a few steps, checks the script works (matte_quality.quick.json)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from common import base_parser, environment, set_threads, write_result

from mmkit.engine import TrainConfig, Trainer
from mmkit.tasks.matte.options import BUILTIN, RECIPES
from mmkit.tasks.matte.predictor import MattePredictor
from mmkit.tasks.matte.task import MatteTask

TASK_FIELDS = ("model", "img_size", "train_size", "alpha_weight")


def main() -> None:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--train-size", type=int, default=None, help="override the recipe's training composites")
    p.add_argument("--max-steps", type=int, default=None, help="cap batches per epoch")
    p.add_argument(
        "--workdir", type=Path, default=None, help="where the run goes (default: a temporary folder)"
    )
    args = p.parse_args()
    set_threads(args.threads)
    recipe = RECIPES.for_data(BUILTIN)
    if args.quick:
        recipe.update(train_size=64, epochs=1, batch_size=16)
    if args.epochs is not None:
        recipe["epochs"] = args.epochs
    if args.train_size is not None:
        recipe["train_size"] = args.train_size
    task_args = {k: recipe.pop(k) for k in TASK_FIELDS if k in recipe}
    env = environment("cpu", args.threads)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="matte-bench-"))
    cfg = TrainConfig(
        task="matte", project=str(workdir), name="bench", exist_ok=True, device="cpu", threads=args.threads,
        workers=0, max_steps=args.max_steps if args.max_steps else (4 if args.quick else None),
        task_args={"data": BUILTIN, **task_args}, **recipe,
    )  # fmt: skip
    t0 = time.perf_counter()
    fit = Trainer(MatteTask(data=BUILTIN, **task_args), cfg).fit()
    train_s = time.perf_counter() - t0
    r = MattePredictor.load(fit.run_dir / "best.pt").evaluate(
        BUILTIN, out=fit.run_dir / "test", limit=20 if args.quick else None
    )
    seconds = time.perf_counter() - t0
    keys = ("sad", "mse", "grad", "conn")
    model = {k: r[k] for k in keys}
    tri, gf = r["baselines"]["trimap"], r["baselines"]["guided_filter"]
    payload = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "data": BUILTIN,
        "images": r["images"],
        "recipe": {**task_args, **recipe, "max_steps": cfg.max_steps},
        "model": model,
        "trimap_baseline": {k: tri[k] for k in keys},
        "guided_filter_baseline": {k: gf[k] for k in keys},
        "meets_target": model["sad"] <= tri["sad"] / 2 and model["mse"] <= tri["mse"] / 2,
        "best_epoch": fit.best_epoch,
        "train_seconds": round(train_s, 1),
        "seconds": round(seconds, 1),
        "machine": env,
    }
    path = write_result("matte_quality", payload, quick=args.quick)
    for name, m in (("model", model), ("trimap baseline", tri), ("guided-filter baseline", gf)):
        print(
            f"{name:<23} SAD {m['sad']:.3f}  MSE {m['mse']:.4f}  Grad {m['grad']:.3f}  Conn {m['conn']:.3f}"
        )
    print(
        f"{r['images']} held-out composites, {seconds:.0f}s, target met: {payload['meets_target']} -> {path}"
    )


if __name__ == "__main__":
    main()
