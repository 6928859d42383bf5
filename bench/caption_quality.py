"""Captioning held-out synthetic scenes: Show-Attend-and-Tell (and Show-and-Tell) against a nearest-neighbour
caption baseline; and captions/s with greedy and beam-3 decoding.

Target (issue 6): on held-out synthetic scenes, BLEU-4 >= 0.5 and CIDEr-D >= 1.5 with attention, and clearly above a
nearest-neighbour caption baseline. Data: ``caption-scenes`` (3,000 training scenes, 300 held-out test scenes, 64 px,
colored digits and shapes in a row or a column; 5 references each; test digits are MNIST images training never
sees) or ``caption-scenes-large`` (20,000 training scenes, the same test scenes). Each model is
trained with the task's recipe for ``caption-scenes`` (``mmkit.tasks.caption.options.RECIPES``: what
``mmkit caption train --data caption-scenes`` runs; Show-and-Tell with the same settings), then
``mmkit.tasks.caption.evaluate`` on best.pt with beam 3. BLEU on the 0-1 scale; CIDEr-D as coco-caption computes it.

The nearest-neighbour baseline captions each test image with the first reference of the training image closest to
it, in raw pixels (32 px, L2), or in the trained encoder's pooled features: a captioner that only retrieves.

    .venv/bin/python bench/caption_quality.py [--quick] [--models show-attend-tell,show-tell] [--set FIELD=VALUE]
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from common import base_parser, environment, parse_args, print_table, save_result
from training import recipe_config, recipe_record, runs_dir, settings, train

from mmkit.data.captions import load_caption_data
from mmkit.metrics.captioning import score
from mmkit.tasks.caption import evaluate, load_captioner
from mmkit.tasks.caption.predictor import references

DATA = "caption-scenes"  # the task's recipe for it trains every model (--set data=caption-scenes-large: more scenes)


@dataclass
class Bench:
    """The script's own settings (the training settings are the task's recipe)."""

    beam: int = 3
    target_bleu4: float = 0.5
    target_cider: float = 1.5


QUICK = {"epochs": 1, "max_steps": 3}


def train_and_eval(
    model: str, beam: int, overrides: dict[str, Any], seed: int, workdir: Path, run: str = ""
) -> dict[str, Any]:
    """Train `model` with the recipe (+ `overrides`) as run `<model>[-run]-s<seed>`, then evaluate best.pt on the
    test split with `beam` and greedy; `greedy_captions` are the greedy captions of the test images."""
    name = "-".join(filter(None, (model, run, f"s{seed}")))
    t = train(recipe_config("caption", DATA, model=model, run=name, workdir=workdir, seed=seed, **overrides))
    data = t.task.data
    m = evaluate(str(t.best), data, beam=beam, device="cpu", out=t.fit.run_dir / "eval")
    greedy = evaluate(str(t.best), data, beam=1, device="cpu", out=t.fit.run_dir / "eval-greedy")
    captions = json.loads((Path(greedy["out_dir"]) / "captions.json").read_text())
    return {
        "model": model,
        "params": sum(p.numel() for p in t.task.net.parameters()),
        "vocabulary": len(t.task.vocab),
        "test_images": m["images"],
        **{k: round(m[k], 4) for k in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "CIDEr-D")},
        "greedy": {k: round(greedy[k], 4) for k in ("BLEU-4", "CIDEr-D")},
        "val_cider": t.curve("val/CIDEr-D", 3),
        **t.record(),
        "recipe": recipe_record(t.cfg),
        "weights": t.best,
        "greedy_captions": [c["caption"] for c in captions],
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


def nearest_neighbour(
    data: str, weights: Path | None, quick: bool, paragraph: bool = False
) -> list[dict[str, Any]]:
    """Caption each test image with the first reference (with `paragraph`, the paragraph) of its nearest training
    image."""
    d = load_caption_data(data)
    n_train = min(len(d.train), 200 if quick else 3000)
    train_idx, test_idx = range(n_train), range(len(d.test))
    refs = {i: references(d.test[i], paragraph) for i in test_idx}
    spaces = {"pixels (32 px, L2)": (_pixels(d.train, train_idx), _pixels(d.test, test_idx))}
    if weights is not None:
        spaces["trained encoder features (cosine)"] = (
            _encoder_features(weights, d.train, train_idx),
            _encoder_features(weights, d.test, test_idx),
        )
    rows = []
    for name, (tr, te) in spaces.items():
        nearest = torch.cdist(te, tr).argmin(1).tolist()
        hyps = {i: references(d.train[j], paragraph)[0] for i, j in zip(test_idx, nearest, strict=True)}
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
    p = base_parser(__doc__.split("\n\n")[0], training=True)
    p.add_argument("--models", default="show-attend-tell,show-tell")
    args = parse_args(p)
    bench, overrides = settings(Bench(), args.set, QUICK if args.quick else None)
    env = environment("cpu", args.threads)
    results: list[dict[str, Any]] = []
    with runs_dir(args.keep_runs) as workdir:
        for model in args.models.split(","):
            results.append(train_and_eval(model, bench.beam, overrides, args.seed, workdir))
            r = results[-1]
            print(
                f"{model}: BLEU-4 {r['BLEU-4']} CIDEr-D {r['CIDEr-D']} in {r['train_wall_s']} s", flush=True
            )
        attn = next((r for r in results if r["model"] == "show-attend-tell"), None)
        weights = (attn or results[0])["weights"]
        data = results[0]["recipe"]["data"]
        baseline = nearest_neighbour(data, weights, args.quick)
        rates = speed(weights, args.quick)
    for r in results:
        r.pop("weights")
        r.pop("greedy_captions")
    best_nn = max(b["CIDEr-D"] for b in baseline)
    met = (
        attn is not None
        and attn["BLEU-4"] >= bench.target_bleu4
        and attn["CIDEr-D"] >= bench.target_cider
        and attn["CIDEr-D"] > best_nn
    )
    headers = ["captioner", "BLEU-1", "BLEU-4", "CIDEr-D", "train s"]
    rows = [
        [r["model"] + f" (beam {bench.beam})", r["BLEU-1"], r["BLEU-4"], r["CIDEr-D"], r["train_wall_s"]]
        for r in results
    ]
    rows += [
        [f"nearest neighbour: {b['space']}", b["BLEU-1"], b["BLEU-4"], b["CIDEr-D"], "-"] for b in baseline
    ]
    print_table(headers, rows, title=f"Held-out {data} test scenes, {env['device']}", quick=args.quick)
    print_table(
        ["decoding", "captions/s"], [[r["decoding"], r["captions_per_s"]] for r in rates], title="CPU speed"
    )
    print(
        f"target: BLEU-4 >= {bench.target_bleu4} and CIDEr-D >= {bench.target_cider} with attention, above NN: {'met' if met else 'not met'}"
    )
    save_result(
        "caption_quality",
        env,
        quick=args.quick,
        bench=asdict(bench),
        results=results,
        nearest_neighbour=baseline,
        speed=rates,
        meets_target=met,
    )


if __name__ == "__main__":
    main()
