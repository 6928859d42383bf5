"""The captioner as two exported graphs, and greedy decoding over them in plain Python with ONNX Runtime.

    mmkit caption export --weights best.pt                 # best.encoder.onnx, best.step.onnx
    words = greedy_decode("best.encoder.onnx", "best.step.onnx", images, max_len=21)   # uint8 [B, 3, S, S]

The encoder graph maps uint8 images [batch, 3, S, S] (normalized inside) to the decoder's start state; the step
graph maps the previous tokens `prev` [n] and the state to the next word's logits [n, V] and the new `h`, `c`
(`h_next`, `c_next`; Show-Attend-Tell also gives its attention map `alpha` [n, L]). The state, by model:
  show-tell          h, c                        the LSTM state after the image embedding, [n, layers, H]
  show-attend-tell   feats, feats_proj, h, c     encoder locations [n, L, C] and their attention projection
                                                 (the same at every step), then the LSTMCell state [n, H]
  paragraph          stop_logits, h, c           STOP logits [B, S] of the sentence RNN's s_max steps, and the
                                                 word LSTM's start state of every sentence [B, S, layers, H]
The loop (`greedy_decode`) is what `generate(model, images, beam=1)` computes: `<pad>` and `<bos>` never chosen,
a sentence ends at `<eos>` or after `max_len` tokens; paragraphs keep the sentences up to the first whose STOP
probability exceeds the threshold. Beam search stays outside the graphs (in Python, as here).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor, nn

from mmkit.export import Graph
from mmkit.models.captioner import BOS, EOS, PAD, ParagraphCaptioner, ShowAttendTell


class CaptionEncoder(nn.Module):
    """uint8 images -> the start state (see the module docstring); `norm` is the predictor's normalization."""

    def __init__(self, net: nn.Module, norm: nn.Module) -> None:
        super().__init__()
        self.net, self.norm = net, norm

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        x = self.norm(images)
        if isinstance(self.net, ParagraphCaptioner):
            topics, stop_logits = self.net.plan(x, self.net.s_max)
            h, c = self.net.decoder.start(topics.flatten(0, 1))
            b, s = stop_logits.shape
            return stop_logits, h.unflatten(0, (b, s)), c.unflatten(0, (b, s))
        state, _ = self.net.decode_start(x)
        return state


class CaptionStep(nn.Module):
    """One word: (prev, *state) -> (logits, h_next, c_next[, alpha])."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, prev: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        if isinstance(self.net, ParagraphCaptioner):
            logits, (h, c) = self.net.decoder.step(prev, state)
            return logits, h, c
        logits, new, alpha = self.net.decode_step(prev, state)
        return (logits, *new[-2:]) if alpha is None else (logits, *new[-2:], alpha)


def caption_graphs(net: nn.Module, norm: nn.Module, images: Tensor) -> list[Graph]:
    """The encoder and step graphs of captioner `net`, traced on uint8 `images` and the state they give."""
    encoder, step = CaptionEncoder(net, norm).eval(), CaptionStep(net).eval()
    paragraph = isinstance(net, ParagraphCaptioner)
    names = ["stop_logits", "h", "c"] if paragraph else ["h", "c"]
    if isinstance(net, ShowAttendTell):
        names = ["feats", "feats_proj", *names]
    with torch.no_grad():
        start = encoder(images)
    # the step's state: paragraphs decode a row per sentence
    state = tuple(t.flatten(0, 1) for t in start[1:]) if paragraph else start
    prev = torch.full((len(state[0]),), BOS)  # the first step
    outputs = ["logits", "h_next", "c_next"] + (["alpha"] if isinstance(net, ShowAttendTell) else [])
    return [
        Graph("encoder", encoder, (images,), ["images"], names),
        Graph("step", step, (prev, *state), ["prev", *(names[1:] if paragraph else names)], outputs),
    ]


def _session(path: str | os.PathLike):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def greedy_decode(
    encoder: str | os.PathLike,
    step: str | os.PathLike,
    images: np.ndarray,
    *,
    max_len: int = 21,
    stop_threshold: float = 0.5,
) -> list[list[int]] | list[list[list[int]]]:
    """Greedy decoding over the exported `encoder` and `step` ONNX files, for uint8 images [B, 3, S, S]: a word id
    list per image (no `<bos>`, `<eos>`), or for the paragraph model a list of sentences (word id lists) per image."""
    enc, stp = _session(encoder), _session(step)
    start = dict(zip([o.name for o in enc.get_outputs()], enc.run(None, {"images": images}), strict=True))
    if "stop_logits" not in start:
        return _greedy(stp, start, max_len)
    p_stop = 1 / (1 + np.exp(-start.pop("stop_logits").astype(np.float64)))  # [B, S]
    over = p_stop > stop_threshold
    counts = np.where(over.any(1), over.argmax(1), p_stop.shape[1] - 1) + 1
    keep = np.arange(p_stop.shape[1])[None] < counts[:, None]
    sentences = _greedy(stp, {k: v[keep] for k, v in start.items()}, max_len)
    ends = np.cumsum(counts)
    return [sentences[e - n : e] for n, e in zip(counts.tolist(), ends.tolist(), strict=True)]


def _greedy(step, state: dict[str, np.ndarray], max_len: int) -> list[list[int]]:
    n = len(state["h"])
    prev = np.full(n, BOS, np.int64)
    done = np.zeros(n, bool)
    words: list[list[int]] = [[] for _ in range(n)]
    for _ in range(max_len):
        logits, state["h"], state["c"], *_ = step.run(None, {"prev": prev, **state})
        logits[:, [PAD, BOS]] = -np.inf
        prev = np.where(done, PAD, logits.argmax(1)).astype(np.int64)  # a finished sentence only pads
        for i in np.flatnonzero(~done & (prev != EOS)):
            words[i].append(int(prev[i]))
        done |= prev == EOS
        if done.all():
            break
    return words
