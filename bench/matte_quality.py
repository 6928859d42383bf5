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
import time
from pathlib import Path

from common import base_parser, environment, parse_args, print_table, save_result
from training import parse_sets, recipe_config, recipe_record, runs_dir, train

from mmkit.tasks.matte.options import BUILTIN
from mmkit.tasks.matte.predictor import MattePredictor

QUICK = {"train_size": 64, "epochs": 1, "batch_size": 16, "max_steps": 4}
KEYS = ("sad", "mse", "grad", "conn")


def main() -> None:
    p = base_parser(__doc__.splitlines()[0], training=True)
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--train-size", type=int, default=None, help="override the recipe's training composites")
    p.add_argument("--max-steps", type=int, default=None, help="cap batches per epoch")
    args = parse_args(p)
    flags = {"epochs": args.epochs, "train_size": args.train_size, "max_steps": args.max_steps}
    # the bench's own: the engine on --threads and batches drawn in the training process
    overrides = {
        "threads": args.threads,
        "workers": 0,
        **(QUICK if args.quick else {}),
        **parse_sets(args.set),
    }
    overrides.update({k: v for k, v in flags.items() if v})
    env = environment("cpu", args.threads)
    t0 = time.perf_counter()
    with runs_dir(args.keep_runs) as workdir:
        t = train(recipe_config("matte", BUILTIN, run="bench", workdir=workdir, seed=args.seed, **overrides))
        r = MattePredictor.load(t.best).evaluate(
            BUILTIN, out=t.fit.run_dir / "test", limit=20 if args.quick else None
        )
    seconds = time.perf_counter() - t0
    scores = {
        "model": r,
        "trimap baseline": r["baselines"]["trimap"],
        "guided-filter baseline": r["baselines"]["guided_filter"],
    }
    model, tri, gf = ({k: m[k] for k in KEYS} for m in scores.values())
    met = model["sad"] <= tri["sad"] / 2 and model["mse"] <= tri["mse"] / 2
    print_table(
        ["", "SAD", "MSE", "Grad", "Conn"],
        [[name, *(m[k] for k in KEYS)] for name, m in scores.items()],
        title=f"dim-small on {r['images']} held-out composites, {env['device']}",
        quick=args.quick,
    )
    print(f"{seconds:.0f}s, target met: {met}")
    save_result(
        "matte_quality",
        env,
        quick=args.quick,
        command=" ".join([Path(sys.executable).name, *sys.argv]),
        data=BUILTIN,
        images=r["images"],
        recipe=recipe_record(t.cfg),
        model=model,
        trimap_baseline=tri,
        guided_filter_baseline=gf,
        meets_target=met,
        best_epoch=t.fit.best_epoch,
        train_seconds=round(t.seconds, 1),
        seconds=round(seconds, 1),
    )


if __name__ == "__main__":
    main()
