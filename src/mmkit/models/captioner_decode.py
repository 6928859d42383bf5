"""Decoding for the captioners: batched beam search (beam=1 is greedy decoding), scoring, and paragraphs.

    model.eval()
    caps = generate(model, images, beam=3, max_len=20, length_penalty=0.0)   # one Caption per image
    caps[0].tokens, caps[0].score, caps[0].attention                         # word ids; [len, L] for attention

Rules (the same for every model and beam size):
- Decoding starts after `<bos>`; `<pad>` and `<bos>` are never generated (`<unk>` may be).
- `max_len` caps the number of generated tokens, `<eos>` included; a hypothesis still open at `max_len` ends
  there without `<eos>`. The returned tokens are the words only (no `<bos>`, no `<eos>`).
- The score of a hypothesis is log p(y) / lp(|y|), where log p(y) sums the log-probabilities of its generated
  tokens (`<eos>` included), |y| counts them, and lp is GNMT's length penalty (Wu et al. 2016):
  lp(n) = ((5 + n) / 6) ** alpha, alpha = `length_penalty`. alpha = 0 (default) is the plain log-probability.
- Beam search (all images × beams as one batch): each step expands every open hypothesis by every token and
  keeps the `beam` best by raw log p; a hypothesis that emits `<eos>` is finished and keeps its slot with a frozen
  score (it then only "emits" `<pad>` at no cost), so with beam = 1 this is exactly greedy decoding. It stops
  when every slot is finished or at `max_len`; the answer is the slot with the best length-normalized score.
  With a beam at least as large as the number of possible sequences it is exhaustive (tested).
- Paragraphs: the sentence RNN runs `s_max` steps; the paragraph ends at the first sentence whose STOP
  probability exceeds `stop_threshold` (0.5), that sentence included; each sentence is decoded from its topic
  as above.
Call `model.eval()` first: decoding runs under `torch.no_grad()` and leaves the train/eval mode alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mmkit.errors import MMKitError
from mmkit.models.captioner import (
    BOS,
    EOS,
    PAD,
    ParagraphCaptioner,
    ShowAttendTell,
    ShowTell,
    State,
)

__all__ = ["Caption", "Paragraph", "beam_search", "generate", "length_normalizer", "score_captions"]

StepFn = Callable[[Tensor, State], tuple[Tensor, State, Tensor | None]]


@dataclass
class Caption:
    tokens: list[int]  # word ids, without <bos> / <eos>
    score: float  # log p / lp(length), see the module docstring
    attention: Tensor | None = (
        None  # show-attend-tell: [len(tokens), L] (a map per word, each sums to 1), on CPU
    )
    grid: tuple[int, int] | None = None  # (H', W'): attention[i].view(grid) is the map over the image


@dataclass
class Paragraph:
    sentences: list[list[int]]  # word ids of each sentence
    scores: list[float]  # per sentence, as Caption.score
    stop_probs: list[
        float
    ]  # the STOP probability of each generated sentence (the last one > threshold unless s_max)


def length_normalizer(lengths: Tensor, alpha: float) -> Tensor:
    """GNMT's length penalty lp(n) = ((5 + n) / 6) ** alpha (1 for alpha = 0)."""
    return ((5.0 + lengths.float()) / 6.0) ** alpha


def _unwrap(model: nn.Module) -> nn.Module:
    """The captioner inside DDP / torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def _repeat(state: State, k: int) -> State:
    return tuple(s.repeat_interleave(k, 0) for s in state)


def beam_search(
    step: StepFn, state: State, *, beam: int = 1, max_len: int = 20, length_penalty: float = 0.0
) -> list[tuple[list[int], float, Tensor | None]]:
    """Decode a batch from its start `state` (tensors with the batch as dim 0) with `step(prev [N], state) ->
    (logits [N, V], state, attention [N, L] or None)`. Returns (words, score, attention [len(words), L] or
    None) per batch item; see the module docstring for the rules."""
    if beam < 1:
        raise MMKitError(f"--beam must be >= 1, got {beam}")
    if max_len < 1:
        raise MMKitError(f"--max-len must be >= 1, got {max_len}")
    b, k = state[0].shape[0], beam
    n = b * k
    device = state[0].device
    state = _repeat(state, k)
    scores = torch.full((b, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # one live hypothesis per image to start with
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    prev = torch.full((n,), BOS, dtype=torch.int64, device=device)
    tokens = torch.zeros(n, 0, dtype=torch.int64, device=device)
    attn: Tensor | None = None
    offsets = (torch.arange(b, device=device) * k).unsqueeze(1)
    for _ in range(max_len):
        logits, state, alpha = step(prev, state)
        logp = logits.float().log_softmax(-1)
        logp[:, PAD] = float("-inf")
        logp[:, BOS] = float("-inf")
        logp[finished] = float("-inf")
        logp[finished, PAD] = 0.0  # a finished hypothesis keeps its slot and score
        v = logp.shape[1]
        cand = (scores.reshape(n, 1) + logp).reshape(b, k * v)
        scores, idx = cand.topk(k, dim=1)
        rows = (offsets + torch.div(idx, v, rounding_mode="floor")).reshape(n)
        tok = (idx % v).reshape(n)
        state = tuple(s.index_select(0, rows) for s in state)
        tokens = torch.cat([tokens.index_select(0, rows), tok.unsqueeze(1)], 1)
        if alpha is not None:
            a = alpha.float().index_select(0, rows).unsqueeze(1)
            attn = a if attn is None else torch.cat([attn.index_select(0, rows), a], 1)
        finished = finished.index_select(0, rows) | (tok == EOS)
        prev = tok
        if bool((finished | torch.isinf(scores.reshape(n))).all()):
            break
    lengths = (tokens != PAD).sum(1)
    normalized = scores.reshape(n) / length_normalizer(lengths, length_penalty)
    best = offsets.squeeze(1) + normalized.reshape(b, k).argmax(1)
    out = []
    for r in best.tolist():
        seq = tokens[r].tolist()
        words = [t for t in seq if t not in (PAD, EOS)]
        a = attn[r, : len(words)].cpu() if attn is not None else None
        out.append((words, float(normalized[r]), a))
    return out


@torch.no_grad()
def generate(
    model: nn.Module,
    images: Tensor,
    *,
    beam: int = 1,
    max_len: int = 20,
    length_penalty: float = 0.0,
    s_max: int | None = None,
    stop_threshold: float = 0.5,
) -> list[Caption] | list[Paragraph]:
    """Captions (show-tell, show-attend-tell) or paragraphs (paragraph; up to `s_max` sentences, default the
    model's) for images [B, 3, H, W], one per image. beam = 1 is greedy decoding."""
    model = _unwrap(model)
    if isinstance(model, ParagraphCaptioner):
        return _paragraphs(model, images, beam, max_len, length_penalty, s_max or model.s_max, stop_threshold)
    if not isinstance(model, ShowTell | ShowAttendTell):
        raise MMKitError(f"{type(model).__name__}: not a captioner (show-tell, show-attend-tell, paragraph)")
    state, grid = model.decode_start(images)
    found = beam_search(model.decode_step, state, beam=beam, max_len=max_len, length_penalty=length_penalty)
    return [Caption(words, score, attn, grid if attn is not None else None) for words, score, attn in found]


def _paragraphs(
    model: ParagraphCaptioner,
    images: Tensor,
    beam: int,
    max_len: int,
    length_penalty: float,
    s_max: int,
    threshold: float,
) -> list[Paragraph]:
    topics, stop_logits = model.plan(images, s_max)
    p_stop = torch.sigmoid(stop_logits.float())  # [B, S]
    over = p_stop > threshold
    last = torch.where(
        over.any(1), over.float().argmax(1), torch.full_like(over[:, 0], s_max - 1, dtype=torch.int64)
    )
    counts = (last + 1).tolist()
    keep = torch.arange(s_max, device=images.device).unsqueeze(0) <= last.unsqueeze(1)

    def step(prev: Tensor, state: State) -> tuple[Tensor, State, None]:
        logits, state = model.decoder.step(prev, state)
        return logits, state, None

    found = beam_search(
        step, model.decoder.start(topics[keep]), beam=beam, max_len=max_len, length_penalty=length_penalty
    )
    out, i = [], 0
    for b, c in enumerate(counts):
        sents = found[i : i + c]
        i += c
        probs = p_stop[b, :c].tolist()
        out.append(Paragraph([w for w, _, _ in sents], [s for _, s, _ in sents], probs))
    return out


@torch.no_grad()
def score_captions(
    model: nn.Module, images: Tensor, tokens: Tensor, *, length_penalty: float = 0.0
) -> Tensor:
    """The score decoding gives captions tokens [B, T] (`<bos> .. <eos>` padded, or cut without `<eos>`) by
    teacher forcing: Σ log p of the non-pad tokens after `<bos>` / lp(their count), [B] (show-tell and
    show-attend-tell)."""
    model = _unwrap(model)
    if not isinstance(model, ShowTell | ShowAttendTell):
        raise MMKitError(
            f"{type(model).__name__}: score_captions needs a show-tell or show-attend-tell model"
        )
    out = model(images, tokens)
    logits = out.logits if isinstance(model, ShowAttendTell) else out
    targets = tokens[:, 1:]
    logp = logits.float().log_softmax(-1).gather(2, targets.unsqueeze(2)).squeeze(2)
    real = targets != PAD
    total = (logp * real).sum(1)
    return total / length_normalizer(real.sum(1), length_penalty)
