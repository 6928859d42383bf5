"""Paragraph captioning of held-out synthetic scenes: the hierarchical paragraph model (Krause et al. 2017) against a
nearest-neighbour paragraph baseline, and the same model after a few steps of training.

Issue 20: a quality number for paragraphs (CIDEr-D and BLEU-4 on held-out paragraphs of ``caption-scenes``, against
retrieving the paragraph of the nearest training scene), and whether the degenerate paragraphs of a short run ("is
the the ." six times) need more training or a fix. Data: ``caption-scenes`` (3,000 training scenes, 300 held-out
test scenes, 64 px; one reference paragraph each: a count sentence, a sentence per object, a sentence per
neighbouring pair, so 2, 4 or 6 sentences). The model trains with the task's recipe for ``caption-scenes`` (its
optimizer, learning rate, schedule, batch) for ``EPOCHS`` epochs instead of the recipe's 20, then
``mmkit.tasks.caption.evaluate`` on best.pt with beam 3 and greedy. The short run is the same recipe for 2 epochs
of 8 batches. BLEU on the 0-1 scale; CIDEr-D as coco-caption computes it.

The baseline gives each test image the paragraph of the training image closest to it, in raw pixels (32 px, L2) or
in the trained paragraph model's pooled encoder features (``caption_quality.nearest_neighbour``).

What the paragraphs look like, greedy: sentences per paragraph, the share of sentences that repeat an earlier one of
the same paragraph, and how many different paragraphs the 300 test images get.

    .venv/bin/python bench/caption_paragraph.py [--quick] [--set epochs=N] [--keep-runs DIR]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from caption_quality import nearest_neighbour, train_and_eval
from common import base_parser, environment, parse_args, print_table, save_result
from training import runs_dir, settings

from mmkit.data.formats.captions import split_sentences

MODEL = "paragraph"
EPOCHS = 8  # instead of the recipe's 20 (--set epochs=N)
SHORT = {"epochs": 2, "max_steps": 8}  # the degenerate run: 16 optimizer steps
QUICK = {"epochs": 1, "max_steps": 3}


@dataclass
class Bench:
    """The script's own settings (the training settings are the task's recipe)."""

    beam: int = 3


METRICS = ("BLEU-1", "BLEU-4", "CIDEr-D")


def shape(paragraphs: list[str]) -> dict[str, Any]:
    """Sentences per paragraph, the share of sentences repeating an earlier one of their paragraph, distinct
    paragraphs, and the first paragraph as an example."""
    sentences = [split_sentences(p) for p in paragraphs]
    n = sum(len(s) for s in sentences)
    repeats = sum(len(s) - len(set(s)) for s in sentences)
    return {
        "sentences_per_paragraph": round(n / max(1, len(sentences)), 2),
        "repeated_sentences": round(repeats / max(1, n), 3),
        "distinct_paragraphs": len(set(paragraphs)),
        "example": paragraphs[0] if paragraphs else "",
    }


def run(bench: Bench, overrides: dict[str, Any], seed: int, workdir, name: str = "") -> dict[str, Any]:
    r = train_and_eval(MODEL, bench.beam, overrides, seed, workdir, run=name)
    r["greedy_shape"] = shape(r.pop("greedy_captions"))
    return r


def main() -> None:
    p = base_parser(__doc__.split("\n\n")[0], training=True)
    args = parse_args(p)
    bench, overrides = settings(Bench(), args.set, QUICK if args.quick else {"epochs": EPOCHS})
    env = environment("cpu", args.threads)
    with runs_dir(args.keep_runs) as workdir:
        trained = run(bench, overrides, args.seed, workdir)
        short = run(bench, {**overrides, **(QUICK if args.quick else SHORT)}, args.seed, workdir, "short")
        data = trained["recipe"]["data"]
        baseline = nearest_neighbour(data, trained.pop("weights"), args.quick, paragraph=True)
        short.pop("weights")
    steps = short["epochs_run"] * short["recipe"]["max_steps"]
    epochs = f"{trained['epochs_run']} epoch" + "s" * (trained["epochs_run"] != 1)
    rows = [
        [f"{MODEL}, {epochs} (beam {bench.beam})", *(trained[k] for k in METRICS)],
        [f"{MODEL}, {epochs} (greedy)", "-", *trained["greedy"].values()],
        [f"{MODEL}, {steps} steps (greedy)", "-", *short["greedy"].values()],
    ]
    rows += [[f"nearest neighbour: {b['space']}", *(b[k] for k in METRICS)] for b in baseline]
    print_table(["paragraphs", *METRICS], rows, title=f"Held-out {data} test paragraphs, {env['device']}")
    for label, r in (("trained", trained), ("short run", short)):
        print(f"{label}: {r['greedy_shape']}")
    print(f"val CIDEr-D by epoch: {trained['val_cider']}")
    record = {"result": trained, "short_run": short, "nearest_neighbour": baseline}
    save_result("caption_paragraph", env, quick=args.quick, bench=asdict(bench), **record)


if __name__ == "__main__":
    main()
