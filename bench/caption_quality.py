"""Captioning held-out synthetic scenes: Show-Attend-and-Tell (and Show-and-Tell) against a nearest-neighbour
caption baseline; and captions/s with greedy and beam-3 decoding.

Target (issue 6): on held-out synthetic scenes, BLEU-4 >= 0.5 and CIDEr-D >= 1.5 with attention, and clearly above a
nearest-neighbour caption baseline. Data: ``caption-scenes`` (3,000 training scenes, 300 held-out test scenes, 64 px,
colored digits and shapes in a row or a column; 5 references each; test digits are MNIST images training never
sees) or ``caption-scenes-large`` (20,000 training scenes, the same test scenes). Each model is
``Trainer(CaptionTask(...), TrainConfig(...)).fit()`` (what ``mmkit caption train`` does), then
``mmkit.tasks.caption.evaluate`` on best.pt with beam 3. BLEU on the 0-1 scale; CIDEr-D as coco-caption computes it.

The nearest-neighbour baseline captions each test image with the first reference of the training image closest to
it, in raw pixels (32 px, L2), or in the trained encoder's pooled features: a captioner that only retrieves.

    .venv/bin/python bench/caption_quality.py [--quick] [--models show-attend-tell,show-tell] [--set FIELD=VALUE]
"""

from __future__ import annotations

import csv
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from common import (
    base_parser,
    environment,
    load_average,
    print_table,
    recipe_overrides,
    set_threads,
    write_result,
)

from mmkit.data.captions import load_caption_data
from mmkit.engine import TrainConfig, Trainer
from mmkit.metrics.captioning import score
from mmkit.tasks.caption import CaptionTask, evaluate, load_captioner


@dataclass
class Recipe:
    data: str = "caption-scenes"
    encoder: str = "smallcnn"
    img_size: int = 64
    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-3
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    grad_clip: float = 5.0
    attention_weight: float = 1.0
    beam: int = 3
    max_steps_per_epoch: int | None = None
    target_bleu4: float = 0.5
    target_cider: float = 1.5


QUICK = {"epochs": 1, "max_steps_per_epoch": 3}


def train_and_eval(model: str, recipe: Recipe, seed: int, workdir: Path) -> dict[str, Any]:
    task = CaptionTask(
        data=recipe.data,
        model=model,
        encoder=recipe.encoder,
        img_size=recipe.img_size,
        attention_weight=recipe.attention_weight,
    )
    cfg = TrainConfig(
        task="caption",
        name=f"{model}-s{seed}",
        project=str(workdir),
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        optimizer=recipe.optimizer,
        weight_decay=recipe.weight_decay,
        schedule=recipe.schedule,
        warmup=recipe.warmup_epochs,
        grad_clip=recipe.grad_clip,
        device="cpu",
        seed=seed,
        max_steps=recipe.max_steps_per_epoch,
    )
    load_before = load_average()
    t0 = time.perf_counter()
    fit = Trainer(task, cfg, progress=False).fit()
    train_s = time.perf_counter() - t0
    best = fit.run_dir / "best.pt"
    m = evaluate(str(best), recipe.data, beam=recipe.beam, device="cpu", out=fit.run_dir / "eval")
    greedy = evaluate(str(best), recipe.data, beam=1, device="cpu", out=fit.run_dir / "eval-greedy")
    with (fit.run_dir / "metrics.csv").open() as f:
        epochs = list(csv.DictReader(f))
    return {
        "model": model,
        "params": sum(p.numel() for p in task.net.parameters()),
        "vocabulary": len(task.vocab),
        "train_wall_s": round(train_s, 1),
        "test_images": m["images"],
        **{k: round(m[k], 4) for k in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "CIDEr-D")},
        "greedy": {k: round(greedy[k], 4) for k in ("BLEU-4", "CIDEr-D")},
        "best_epoch": fit.best_epoch,
        "epoch_s": [round(float(r["time"]), 1) for r in epochs],
        "val_cider": [round(float(r["val/CIDEr-D"]), 3) for r in epochs],
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "weights": best,
    }


def _pixels(split, idx: range, size: int = 32) -> torch.Tensor:
    x = torch.stack([torch.from_numpy(np.ascontiguousarray(split.image(i))).permute(2, 0, 1) for i in idx])
    return F.interpolate(x.float() / 255, size=(size, size), mode="area").flatten(1)


@torch.no_grad()
def _encoder_features(weights: Path, split, idx: range) -> torch.Tensor:
    net, meta, _ = load_captioner(weights)
    from mmkit.data.transforms import BatchTransform

    norm = BatchTransform(False, meta.mean, meta.std, out_channels=3, size=meta.img_size)
    out = []
    for start in range(0, len(idx), 256):
        chunk = idx[start : start + 256]
        x = torch.stack(
            [torch.from_numpy(np.ascontiguousarray(split.image(i))).permute(2, 0, 1) for i in chunk]
        )
        out.append(net.encoder(norm(x))[1])
    return F.normalize(torch.cat(out), dim=1)


def nearest_neighbour(data: str, weights: Path | None, quick: bool) -> list[dict[str, Any]]:
    """Caption each test image with the first reference of its nearest training image."""
    d = load_caption_data(data)
    n_train = min(len(d.train), 200 if quick else 3000)
    train_idx, test_idx = range(n_train), range(len(d.test))
    refs = {i: list(d.test[i].captions) for i in test_idx}
    spaces = {"pixels (32 px, L2)": (_pixels(d.train, train_idx), _pixels(d.test, test_idx))}
    if weights is not None:
        spaces["trained encoder features (cosine)"] = (
            _encoder_features(weights, d.train, train_idx),
            _encoder_features(weights, d.test, test_idx),
        )
    rows = []
    for name, (tr, te) in spaces.items():
        nearest = torch.cdist(te, tr).argmin(1).tolist()
        hyps = {i: d.train[j].captions[0] for i, j in zip(test_idx, nearest, strict=True)}
        m = score(refs, hyps)
        rows.append({"space": name, "train_images": n_train, **{k: round(v, 4) for k, v in m.items()}})
    return rows


@torch.no_grad()
def speed(weights: Path, quick: bool) -> list[dict[str, Any]]:
    """Captions/s on the CPU for greedy and beam-3 decoding (batch 64 of test images, after a warm-up)."""
    from mmkit.data.transforms import BatchTransform
    from mmkit.models.captioner_decode import generate

    net, meta, _ = load_captioner(weights)
    d = load_caption_data("caption-scenes")
    n = 8 if quick else 64
    x = torch.stack(
        [torch.from_numpy(np.ascontiguousarray(d.test.image(i))).permute(2, 0, 1) for i in range(n)]
    )
    x = BatchTransform(False, meta.mean, meta.std, out_channels=3, size=meta.img_size)(x)
    rows = []
    for beam in (1, 3):
        generate(net, x[:4], beam=beam, max_len=meta.max_len + 1)
        times = []
        for _ in range(1 if quick else 3):
            t0 = time.perf_counter()
            generate(net, x, beam=beam, max_len=meta.max_len + 1)
            times.append(time.perf_counter() - t0)
        rows.append(
            {
                "decoding": "greedy" if beam == 1 else f"beam {beam}",
                "captions_per_s": round(n / min(times), 1),
            }
        )
    return rows


def main() -> None:
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", default="show-attend-tell,show-tell")
    p.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="override a recipe field"
    )
    p.add_argument("--keep-runs", type=Path, help="keep the run directories here (default: a temporary one)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    set_threads(args.threads)
    recipe = replace(Recipe(), **{**(QUICK if args.quick else {}), **recipe_overrides(Recipe, args.set)})
    env = environment("cpu", args.threads)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mmkit-bench-") as tmp:
        for model in args.models.split(","):
            results.append(train_and_eval(model, recipe, args.seed, args.keep_runs or Path(tmp)))
            r = results[-1]
            print(
                f"{model}: BLEU-4 {r['BLEU-4']} CIDEr-D {r['CIDEr-D']} in {r['train_wall_s']} s", flush=True
            )
        attn = next((r for r in results if r["model"] == "show-attend-tell"), None)
        weights = (attn or results[0])["weights"]
        baseline = nearest_neighbour(recipe.data, weights, args.quick)
        rates = speed(weights, args.quick)
    for r in results:
        r.pop("weights")
    best_nn = max(b["CIDEr-D"] for b in baseline)
    met = (
        attn is not None
        and attn["BLEU-4"] >= recipe.target_bleu4
        and attn["CIDEr-D"] >= recipe.target_cider
        and attn["CIDEr-D"] > best_nn
    )
    headers = ["captioner", "BLEU-1", "BLEU-4", "CIDEr-D", "train s"]
    rows = [
        [r["model"] + f" (beam {recipe.beam})", r["BLEU-1"], r["BLEU-4"], r["CIDEr-D"], r["train_wall_s"]]
        for r in results
    ]
    rows += [
        [f"nearest neighbour: {b['space']}", b["BLEU-1"], b["BLEU-4"], b["CIDEr-D"], "-"] for b in baseline
    ]
    print_table(
        headers,
        rows,
        title=f"Held-out {recipe.data} test scenes, {env['device']}"
        + (" (quick: not a real result)" if args.quick else ""),
    )
    print_table(
        ["decoding", "captions/s"], [[r["decoding"], r["captions_per_s"]] for r in rates], title="CPU speed"
    )
    print(
        f"target: BLEU-4 >= {recipe.target_bleu4} and CIDEr-D >= {recipe.target_cider} with attention, above NN: {'met' if met else 'not met'}"
    )
    path = write_result(
        "caption_quality",
        {
            "benchmark": "caption_quality",
            "quick": args.quick,
            "environment": env,
            "recipe": asdict(recipe),
            "results": results,
            "nearest_neighbour": baseline,
            "speed": rates,
            "meets_target": met,
        },
        quick=args.quick,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
