"""Caption metrics as the COCO caption evaluation computes them: BLEU-1..4 and CIDEr-D, without Java.

    score({7: ["A dog runs.", "A brown dog running."]}, {7: "a dog runs"})
    # {"BLEU-1": .., "BLEU-2": .., "BLEU-3": .., "BLEU-4": .., "CIDEr-D": ..}

Every caption goes through coco-caption's tokenization (``mmkit.data.formats.ptb_tokenizer``: a pure-Python
port of its Stanford PTBTokenizer step, lowercase, punctuation dropped), then through pycocoevalcap's own
scorers, ``pycocoevalcap.bleu.bleu.Bleu`` and ``pycocoevalcap.cider.cider.Cider`` (pure Python; the Java parts of
pycocoevalcap, its tokenizer, METEOR and SPICE, are never imported).

Scales, exactly what coco-caption returns:
- BLEU-n is the corpus-level BLEU (clipped n-gram counts summed over all images, brevity penalty with the
  closest reference length), in 0-1. Papers print it x100 (BLEU-4 0.312 -> "31.2").
- CIDEr-D is coco-caption's "CIDEr" (which is CIDEr-D: clipped counts and a length penalty, sigma 6): the mean
  over images of the tf-idf n-gram cosine similarity (n = 1..4, averaged, then over references) x 10. It is
  0 for no match and about 10 at most in practice; papers print it x100 too (1.179 -> "117.9"). The idf
  comes from the references of the scored images, so CIDEr-D of a single image is always 0, and a
  score depends on which images are scored together.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

from mmkit.data.formats.ptb_tokenizer import tokenize_lines
from mmkit.errors import MMKitError

METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "CIDEr-D")


def _check(refs: Mapping[Hashable, Sequence[str]], hyps: Mapping[Hashable, str]) -> None:
    if set(refs) != set(hyps):
        missing = [k for k in refs if k not in hyps][:5]
        extra = [k for k in hyps if k not in refs][:5]
        raise MMKitError(
            f"captions: references and hypotheses have different image ids "
            f"(no hypothesis for {missing or 'none'}; no references for {extra or 'none'})"
        )
    if not refs:
        raise MMKitError("captions: nothing to score (no images)")
    for k, captions in refs.items():
        if isinstance(captions, str) or not captions or not all(isinstance(c, str) for c in captions):
            raise MMKitError(f"captions: image {k!r}: references must be a non-empty list of strings")
        if not isinstance(hyps[k], str):
            raise MMKitError(
                f"captions: image {k!r}: the hypothesis must be a string, got {type(hyps[k]).__name__}"
            )


def tokenized(refs: Mapping[Hashable, Sequence[str]], hyps: Mapping[Hashable, str]) -> tuple[dict, dict]:
    """The ``(gts, res)`` dicts pycocoevalcap's scorers take: ``{id: [tokenized caption, ...]}``, one
    hypothesis per image. Tokens are joined by single spaces. Like coco-caption, all references are tokenized as
    one file and all hypotheses as another, in image order (a caption's last token can depend on the next one)."""
    _check(refs, hyps)
    ref_tokens = iter(tokenize_lines([c for k in refs for c in refs[k]]))
    gts = {k: [" ".join(next(ref_tokens)) for _ in refs[k]] for k in refs}
    hyp_tokens = tokenize_lines([hyps[k] for k in refs])
    res = {k: [" ".join(tokens)] for k, tokens in zip(refs, hyp_tokens, strict=True)}
    return gts, res


def score(refs: Mapping[Hashable, Sequence[str]], hyps: Mapping[Hashable, str]) -> dict[str, float]:
    """BLEU-1..4 (0-1) and CIDEr-D (coco-caption's x10 scale) of one hypothesis per image against its references.

    ``refs`` and ``hyps`` must have the same image ids (MMKitError otherwise); captions are raw text.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    gts, res = tokenized(refs, hyps)
    if not any(ref for captions in gts.values() for ref in captions):
        raise MMKitError("captions: every reference is empty after tokenization")
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    out = {f"BLEU-{n + 1}": float(b) for n, b in enumerate(bleu)}
    out["CIDEr-D"] = float(cider)
    return out
