"""Video classifiers: temporal models over per-frame features, and small end-to-end CNN + RNN models for raw clips.

    model = get_model("lstm", num_classes=3862)            # frame features, D = 1152 (1024 rgb + 128 audio)
    logits = model(x, lengths)                             # x [B, T, D] float, lengths [B] int64 -> [B, C]
    model = get_model("moe", num_classes=3862)
    logits = model(video_features)                         # a video-level input [B, D] is one frame (T = 1)
    clip_model = get_model("cnn-lstm", num_classes=10)     # in_chans = 3 image channels
    logits = clip_model(frames, lengths)                   # frames [B, T, 3, H, W], H, W ~ 32..112

Conventions shared by every model here:
- The feature models' builders take `feature_dim`, the FEATURE WIDTH D of the frame features (default 1152, the
  YouTube-8M rgb + audio features); the end-to-end models' (cnn-*) take `in_chans`, the image channels (3).
  The registry's `default_input_size` is the default maximum number of frames (300, as in YouTube-8M) for the
  feature models, and the frame side in pixels (64) for the end-to-end models.
- `lengths` [B] (int64, any device) counts the valid frames of each video; frames at or past the length are
  padding: they are zeroed on entry and masked everywhere (pooling, cluster assignment and its BatchNorm
  statistics, packed RNN sequences, the frame CNN only sees valid frames), so they never change the output,
  in eval or in train mode. `lengths=None` means every frame is valid; a length of 0 counts as 1, a length
  past T as T.
- Every model returns LOGITS [B, C], so one `BCEWithLogitsLoss` (multi-label, YouTube-8M) or `CrossEntropyLoss`
  (single-label) serves them all. The mixture of experts of the YouTube-8M starter code
  (`video_level_models.MoeModel`) outputs probabilities p; `MoE` here returns their log-odds log(p / (1 - p)),
  computed stably in log space and clamped to ±30, so `sigmoid(logits)` is the starter code's p.
- Each model has `num_classes`, a final module named `classifier` (a Linear, or `MoE` whose one Linear is the
  model's last), and `reset_classifier(num_classes)` for transfer learning through `get_model`.

Models (Miech et al. 2017, "Learnable pooling with context gating", for NetVLAD and context gating; the starter
code, github.com/google/youtube-8m, for logistic, frame-logistic, MoE, DBoF and the LSTM baseline):
  video-mean      masked mean / max / mean+max pooling, then an MLP (hidden 1024, ReLU, dropout)
  logistic        the starter code's LogisticModel: one linear layer (sigmoid per class) on video-level features
  frame-logistic  its FrameLevelLogisticModel: the mean of the valid frames, then that linear layer
  moe             masked mean pooling, then the starter code's MoE classifier (MoeModel)
  dbof            its DbofModel (Deep Bag of Frames): each frame projected to a wide "cluster" layer, max-pooled
                  over frames, a hidden layer, then an MoE (default) or linear classifier
  lstm, gru, rnn  1-2 layer (bi)directional LSTM, GRU or plain (Elman, tanh) RNN over packed sequences; the last
                  valid hidden state of the last layer (both directions) or the mean of its outputs over the valid
                  frames, then dropout and a linear layer
  netvlad         NetVLAD pooling (soft assignment to K clusters, residuals, intra- and L2-normalisation), a hidden
                  FC with BatchNorm, context gating, then an MoE (default) or linear classifier
  cnn-lstm, cnn-gru, cnn-rnn
                  a small 2D CNN applied to every valid frame (frames batched as one B·T batch), then lstm / gru / rnn
  cnn-mean        the same CNN, frames averaged: the baseline that cannot see order
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mmkit.errors import MMKitError
from mmkit.models.layers import activation
from mmkit.models.registry import model_family

YT8M_FEATURES = 1152  # 1024 rgb (Inception, PCA-whitened) + 128 audio (VGGish) per frame / per video
MAX_FRAMES = 300  # YouTube-8M keeps at most 300 one-second frames per video
LOGIT_CLAMP = 30.0  # |log-odds| bound of the MoE output (sigmoid(30) is 1 - 1e-13)

__all__ = [
    "MAX_FRAMES",
    "YT8M_FEATURES",
    "CNNRecurrent",
    "ContextGating",
    "BagOfFrames",
    "DBoFClassifier",
    "FrameCNN",
    "MoE",
    "MoEClassifier",
    "NetVLAD",
    "NetVLADClassifier",
    "PoolingClassifier",
    "RecurrentClassifier",
    "frame_mask",
]


# ---------------------------------------------------------------------------------------------------------------
# Inputs


def frame_mask(lengths: Tensor, max_frames: int) -> Tensor:
    """Boolean [B, T] mask of the valid frames (t < length)."""
    return torch.arange(max_frames, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def _frames(x: Tensor, lengths: Tensor | None, width: int, name: str) -> tuple[Tensor, Tensor, Tensor]:
    """Frame features as [B, T, D] with the padding zeroed, lengths clamped to [1, T] (int64, on x's device),
    and the [B, T] mask of valid frames. A video-level input [B, D] is one frame."""
    if x.ndim == 2:
        x = x.unsqueeze(1)
    if x.ndim != 3 or x.shape[-1] != width:
        raise MMKitError(
            f"{name}: input of shape {tuple(x.shape)} does not fit; it needs [B, T, {width}] frame features or "
            f"[B, {width}] video features (the feature width is the model's in_chans)"
        )
    lengths, mask = _lengths_mask(lengths, x.shape[0], x.shape[1], x.device, name)
    return x.masked_fill(~mask.unsqueeze(2), 0), lengths, mask


def _lengths_mask(
    lengths: Tensor | None, b: int, t: int, device: torch.device, name: str
) -> tuple[Tensor, Tensor]:
    """Lengths clamped to [1, T] (int64 on `device`; all T when None) and the [B, T] mask of valid frames."""
    if lengths is None:
        lengths = torch.full((b,), t, dtype=torch.int64, device=device)
    else:
        lengths = torch.as_tensor(lengths).to(device, torch.int64).reshape(-1)
        if lengths.shape[0] != b:
            raise MMKitError(f"{name}: lengths has {lengths.shape[0]} entries for a batch of {b} videos")
        lengths = lengths.clamp(1, t)
    return lengths, frame_mask(lengths, t)


def _check_pool(name: str, pool: str, choices: tuple[str, ...] = ("mean", "max", "meanmax")) -> None:
    """Refuse a `pool` that `_masked_pool` (or the model) does not do."""
    if pool not in choices:
        raise MMKitError(f"{name}: pool must be one of {', '.join(choices)}, got {pool!r}")


def _masked_pool(x: Tensor, lengths: Tensor, mask: Tensor, pool: str) -> Tensor:
    """Mean, max or [mean, max] of the valid frames of x [B, T, D] (padding already zeroed)."""
    parts = []
    if pool in ("mean", "meanmax"):
        parts.append(x.sum(1) / lengths.unsqueeze(1).to(x.dtype))
    if pool in ("max", "meanmax"):
        parts.append(x.masked_fill(~mask.unsqueeze(2), float("-inf")).amax(1))
    return torch.cat(parts, 1)


# ---------------------------------------------------------------------------------------------------------------
# Heads


class MoE(nn.Module):
    """The YouTube-8M starter code's mixture of logistic experts, returning log-odds.

    For every class c: a softmax gate over E experts and a dummy expert that always says "absent", and E sigmoid
    experts; p_c = Σ_e gate_ce · σ(expert_ce). One Linear computes all C·(E+1) gate and C·E expert activations
    (laid out [C, 2E+1] per video), so the registry's head handling (transfer to a new class count,
    `freeze_backbone`) sees the whole head as one layer; unlike the starter code the gate part therefore has a
    bias too (zero-initialised).
    Returns log(p / (1 - p)) = logsumexp_e(log gate_e + log σ(a_e)) − logsumexp(log gate_dummy,
    log gate_e + log σ(−a_e)), clamped to ±LOGIT_CLAMP: `sigmoid` of the output is p."""

    def __init__(self, in_features: int, num_classes: int, experts: int = 2) -> None:
        super().__init__()
        if experts < 1:
            raise MMKitError(f"moe: experts must be >= 1, got {experts}")
        self.num_classes, self.experts = num_classes, experts
        self.proj = nn.Linear(in_features, num_classes * (2 * experts + 1))
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        e = self.experts
        z = self.proj(x).float().view(x.shape[0], self.num_classes, 2 * e + 1)
        gates = z[..., : e + 1].log_softmax(-1)  # [B, C, E + 1], the dummy last
        act = z[..., e + 1 :]  # [B, C, E]
        log_p = torch.logsumexp(gates[..., :e] + F.logsigmoid(act), -1)
        log_not_p = torch.logsumexp(torch.cat([gates[..., e:], gates[..., :e] + F.logsigmoid(-act)], -1), -1)
        return (log_p - log_not_p).clamp(-LOGIT_CLAMP, LOGIT_CLAMP)


class ContextGating(nn.Module):
    """Context gating (Miech et al. 2017): y = x ⊙ σ(BN(W x))."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, dim, bias=False)
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.bn(self.fc(x)))


def _head(kind: str, in_features: int, num_classes: int, experts: int) -> nn.Module:
    if kind == "linear":
        return nn.Linear(in_features, num_classes)
    if kind == "moe":
        return MoE(in_features, num_classes, experts)
    raise MMKitError(f"head must be 'linear' or 'moe', got {kind!r}")


class _FeatureClassifier(nn.Module):
    """A classifier of frame features [B, T, in_features] (or video features [B, in_features]) and their lengths,
    whose last layer is `classifier`; `reset_classifier` swaps that for a fresh `new_head`."""

    def __init__(self, num_classes: int, in_features: int) -> None:
        super().__init__()
        self.num_classes, self.in_features = num_classes, in_features

    def new_head(self, num_classes: int) -> nn.Module:
        """A fresh last layer like `classifier` (a Linear or an MoE) with `num_classes` outputs."""
        head = self.classifier
        if isinstance(head, MoE):
            return MoE(head.proj.in_features, num_classes, head.experts)
        return nn.Linear(head.in_features, num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.classifier = self.new_head(num_classes)


# ---------------------------------------------------------------------------------------------------------------
# Pooling models: video-mean, moe


class PoolingClassifier(_FeatureClassifier):
    """Masked mean / max / mean+max pooling of the frames, then an MLP (hidden, ReLU, dropout) — the video-level
    baseline. `hidden=0` makes it a linear (logistic) classifier on the pooled features; `video_level` makes it
    refuse frame-level input (more than one frame per video), as the starter code's video-level models do."""

    def __init__(
        self,
        num_classes: int,
        in_features: int = YT8M_FEATURES,
        *,
        pool: str = "mean",
        hidden: int = 1024,
        dropout: float = 0.5,
        video_level: bool = False,
        name: str = "video-mean",
    ) -> None:
        super().__init__(num_classes, in_features)
        _check_pool(name, pool)
        self.pool, self.video_level, self.name = pool, video_level, name
        pooled = in_features * (2 if pool == "meanmax" else 1)
        self.mlp = (
            nn.Sequential(nn.Linear(pooled, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout))
            if hidden > 0
            else nn.Identity()
        )
        self.classifier = nn.Linear(hidden if hidden > 0 else pooled, num_classes)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if self.video_level and x.ndim == 3 and x.shape[1] > 1:
            raise MMKitError(
                f"{self.name}: a video-level model, given {x.shape[1]} frames per video; train it with --level "
                "video, or use the frame-level model (frame-logistic)"
            )
        x, lengths, mask = _frames(x, lengths, self.in_features, self.name)
        return self.classifier(self.mlp(_masked_pool(x, lengths, mask, self.pool)))


class MoEClassifier(_FeatureClassifier):
    """The starter code's video-level MoE model: masked mean pooling (a no-op on video-level input), optional
    dropout of the pooled features (0 in the starter code), then MoE."""

    def __init__(
        self, num_classes: int, in_features: int = YT8M_FEATURES, *, experts: int = 2, dropout: float = 0.0
    ) -> None:
        super().__init__(num_classes, in_features)
        self.dropout = nn.Dropout(dropout)
        self.classifier = MoE(in_features, num_classes, experts)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        x, lengths, mask = _frames(x, lengths, self.in_features, "moe")
        return self.classifier(self.dropout(_masked_pool(x, lengths, mask, "mean")))


# ---------------------------------------------------------------------------------------------------------------
# Recurrent models: lstm, gru, rnn

# nn.RNN is the plain (Elman) RNN, with tanh
_RNN_CELLS: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class RecurrentClassifier(_FeatureClassifier):
    """An LSTM, GRU or plain (Elman: h_t = tanh(W x_t + U h_(t-1) + b)) RNN over the valid frames (packed
    sequences), read out as the last valid hidden state of the last layer (forward state at t = length − 1 and,
    when bidirectional, backward state at t = 0, concatenated) or as the mean of the last layer's outputs over the
    valid frames; then dropout and a linear classifier."""

    def __init__(
        self,
        num_classes: int,
        in_features: int = YT8M_FEATURES,
        *,
        cell: str = "lstm",
        hidden: int = 512,
        layers: int = 1,
        bidirectional: bool = False,
        readout: str = "last",
        dropout: float = 0.2,
    ) -> None:
        super().__init__(num_classes, in_features)
        if cell not in _RNN_CELLS:
            raise MMKitError(f"cell must be one of {', '.join(_RNN_CELLS)}, got {cell!r}")
        if readout not in ("last", "mean"):
            raise MMKitError(f"{cell}: readout must be 'last' or 'mean', got {readout!r}")
        if layers < 1:
            raise MMKitError(f"{cell}: layers must be >= 1, got {layers}")
        self.cell, self.readout = cell, readout
        self.directions = 2 if bidirectional else 1
        self.rnn = _RNN_CELLS[cell](
            in_features,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden * self.directions, num_classes)

    def encode(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The video representation [B, hidden · directions] before the classifier."""
        x, lengths, _ = _frames(x, lengths, self.in_features, self.cell)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        # pack and pad in pairs: the form ONNX export takes; the padded outputs hold the final states too
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])  # zeros past the length
        if (
            self.readout == "last"
        ):  # the last layer's final states: forward at t = length - 1, backward at t = 0
            h = out.shape[2] // self.directions
            last = out[torch.arange(out.shape[0], device=out.device), lengths - 1, :h]
            return torch.cat([last, out[:, 0, h:]], 1) if self.directions == 2 else last
        return out.sum(1) / lengths.unsqueeze(1).to(out.dtype)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.classifier(self.dropout(self.encode(x, lengths)))


# ---------------------------------------------------------------------------------------------------------------
# NetVLAD


class NetVLAD(nn.Module):
    """NetVLAD pooling (Arandjelović et al. 2016) as in Miech et al. 2017: a soft assignment of every valid frame
    to K clusters (linear, BatchNorm over the valid frames only, softmax), the assignment-weighted sum of the
    residuals to learned centres, intra-normalisation (L2 per cluster), then L2 normalisation of the
    flattened [K · D] descriptor."""

    def __init__(self, dim: int, clusters: int = 64) -> None:
        super().__init__()
        self.dim, self.clusters = dim, clusters
        self.assign = nn.Linear(dim, clusters, bias=False)
        self.assign_bn = nn.BatchNorm1d(clusters)
        self.centers = nn.Parameter(torch.randn(clusters, dim) / math.sqrt(dim))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x [B, T, D] (padding zeroed), mask [B, T] -> [B, K · D]."""
        valid = self.assign_bn(self.assign(x[mask]))  # [N_valid, K]: BatchNorm statistics of real frames only
        logits = valid.new_zeros(*mask.shape, self.clusters)
        logits[mask] = valid
        a = logits.softmax(-1) * mask.unsqueeze(2).to(valid.dtype)  # [B, T, K], zero on padding
        vlad = torch.einsum("btk,btd->bkd", a, x.to(a.dtype)) - a.sum(1).unsqueeze(2) * self.centers
        vlad = F.normalize(vlad, dim=2)  # intra-normalisation
        return F.normalize(vlad.flatten(1), dim=1)


def _dense(n_in: int, n_out: int, act: str | None, batch_norm: bool = True) -> nn.Sequential:
    """Linear (no bias before a BatchNorm), BatchNorm (or none), activation (None: none)."""
    return nn.Sequential(
        nn.Linear(n_in, n_out, bias=not batch_norm),
        nn.BatchNorm1d(n_out) if batch_norm else nn.Identity(),
        activation(act, inplace=True) if act else nn.Identity(),
    )


class _PooledClassifier(_FeatureClassifier):
    """The shape of NetVLAD and DBoF: the frames pooled into one vector by `pool` (a module taking the frames
    [B, T, D], padding zeroed, and their [B, T] mask), a hidden layer (`_dense`), context gating (optional),
    dropout, then an MoE or linear classifier. The head options are the same for both: `hidden` width, `head`
    ("moe" or "linear"), MoE `experts`, `dropout`. `name` is the model's, for messages."""

    def __init__(
        self,
        num_classes: int,
        in_features: int,
        name: str,
        pool: nn.Module,
        pooled: int,
        *,
        act: str | None,
        gating: bool = False,
        batch_norm: bool = True,
        hidden: int = 1024,
        head: str = "moe",
        experts: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(num_classes, in_features)
        self.name, self.pool = name, pool
        self.hidden = _dense(pooled, hidden, act, batch_norm)
        self.gating = ContextGating(hidden) if gating else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.classifier = _head(head, hidden, num_classes, experts)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        x, _, mask = _frames(x, lengths, self.in_features, self.name)
        return self.classifier(self.dropout(self.gating(self.hidden(self.pool(x, mask)))))


class NetVLADClassifier(_PooledClassifier):
    """NetVLAD → hidden FC (no bias) + BatchNorm (+ ReLU if `relu`) → context gating → dropout → MoE or linear.

    The YouTube-8M 2017 winning configuration used K = 256 clusters, hidden 1024, no ReLU, gating and an MoE;
    the default here is K = 64. Its extra context gating on the MoE's probabilities is not included."""

    def __init__(
        self,
        num_classes: int,
        in_features: int = YT8M_FEATURES,
        *,
        clusters: int = 64,
        relu: bool = False,
        gating: bool = True,
        **head_options,
    ) -> None:
        pool = NetVLAD(in_features, clusters)
        act = "relu" if relu else None
        super().__init__(
            num_classes,
            in_features,
            "netvlad",
            pool,
            clusters * in_features,
            act=act,
            gating=gating,
            **head_options,
        )


# ---------------------------------------------------------------------------------------------------------------
# Deep Bag of Frames


def _frame_sample(lengths: Tensor, k: int, random: bool) -> Tensor:
    """[B, k] indices of valid frames: drawn uniformly with repetition (the starter code's `SampleRandomFrames`:
    floor(U · length)) or, with `random=False`, evenly spaced over each video."""
    n = lengths.unsqueeze(1)
    u = (
        torch.rand(len(lengths), k, device=lengths.device)
        if random
        else (torch.arange(k, device=n.device) + 0.5) / k
    )
    return (u * n).long().clamp(max=n - 1)


def _starter_init(linear: nn.Linear) -> None:
    """The starter code's DBoF weights: N(0, 1 / fan_in)."""
    nn.init.normal_(linear.weight, 0.0, 1 / math.sqrt(linear.in_features))


class BagOfFrames(nn.Module):
    """DBoF's pooling: BatchNorm of the frames, each projected to `cluster` units (linear, BatchNorm, `act`), then
    max (or mean) pooled over the frames — in training over `iterations` frames drawn at random from the valid ones
    (with repetition), to evaluate over as many evenly spaced (repeatable); `iterations=0`: every valid frame.
    BatchNorm sees the frames used, never padding."""

    def __init__(
        self, dim: int, cluster: int, iterations: int, pool: str, act: str, batch_norm: bool
    ) -> None:
        super().__init__()
        _check_pool("dbof", pool, ("max", "mean"))
        if iterations < 0:
            raise MMKitError(f"dbof: iterations must be >= 0 (0: every frame), got {iterations}")
        self.iterations, self.pool = iterations, pool
        self.input_bn = nn.BatchNorm1d(dim) if batch_norm else nn.Identity()
        self.cluster = _dense(dim, cluster, act, batch_norm)
        _starter_init(self.cluster[0])

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x [B, T, D] (padding zeroed), mask [B, T] -> [B, cluster]."""
        lengths = mask.sum(1)
        if self.iterations:
            idx = _frame_sample(lengths, self.iterations, self.training)
            x = x.gather(1, idx.unsqueeze(2).expand(-1, -1, x.shape[2]))
            lengths = torch.full_like(lengths, self.iterations)
            mask = frame_mask(lengths, self.iterations)
        valid = self.cluster(self.input_bn(x[mask]))  # [N_valid, cluster]
        frames = valid.new_zeros(*mask.shape, valid.shape[1])
        frames[mask] = valid
        return _masked_pool(frames, lengths, mask, self.pool)


class DBoFClassifier(_PooledClassifier):
    """The starter code's Deep Bag of Frames (`frame_level_models.DbofModel`): `BagOfFrames` pooling, a hidden layer
    (linear, BatchNorm, `act`), then an MoE (the starter code's default classifier) or linear classifier.

    The defaults are the starter code's (cluster 8192, hidden 1024, sigmoid, max pooling, 30 frames, N(0, 1/fan_in)
    weights, no dropout); `batch_norm=False` gives the linear layers biases instead of BatchNorm, as there. Its
    random frames at evaluation are evenly spaced ones here."""

    def __init__(
        self,
        num_classes: int,
        in_features: int = YT8M_FEATURES,
        *,
        cluster: int = 8192,
        iterations: int = 30,
        pool: str = "max",
        act: str = "sigmoid",
        batch_norm: bool = True,
        **head_options,
    ) -> None:
        bag = BagOfFrames(in_features, cluster, iterations, pool, act, batch_norm)
        super().__init__(
            num_classes, in_features, "dbof", bag, cluster, act=act, batch_norm=batch_norm, **head_options
        )
        _starter_init(self.hidden[0])


# ---------------------------------------------------------------------------------------------------------------
# End-to-end CNN + RNN for small clips


class FrameCNN(nn.Module):
    """A small 2D CNN for one frame: four 3×3 conv-BN-ReLU stages (widths w, 2w, 4w, feat; the first three followed
    by 2×2 max-pooling), then average pooling to a `grid`×`grid` map, flattened and projected to `feat` (ReLU) ->
    [N, feat]. For frames of about 32..112 px. Global average pooling (`grid=1`) would make the feature blind to
    where things are, and motion is a change of where; a coarse grid keeps it."""

    def __init__(self, in_chans: int = 3, width: int = 32, feat: int = 128, grid: int = 4) -> None:
        super().__init__()
        chans = [in_chans, width, 2 * width, 4 * width, feat]
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [
                nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, bias=False),
                nn.BatchNorm2d(chans[i + 1]),
                nn.ReLU(inplace=True),
            ]
            if i < 3:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.grid = grid
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.project = (
            nn.Sequential(nn.Linear(feat * grid * grid, feat), nn.ReLU(inplace=True))
            if grid > 1
            else nn.Identity()
        )
        self.out_features = feat

    def forward(self, x: Tensor) -> Tensor:
        return self.project(self.pool(self.features(x)).flatten(1))


class CNNRecurrent(nn.Module):
    """End-to-end clip classifier: `FrameCNN` on every valid frame (shared weights; the valid frames of the whole
    batch go through the CNN as one batch, padding frames are skipped), then `RecurrentClassifier` (cell "lstm",
    "gru" or "rnn"), or for cell "mean" a `PoolingClassifier` over the frames: the baseline that cannot see order.

    Input: frames [B, T, C, H, W], float (already normalised from uint8; a uint8 tensor is scaled to 0..1)."""

    def __init__(
        self,
        num_classes: int,
        in_chans: int = 3,
        *,
        cell: str = "lstm",
        width: int = 32,
        feat: int = 128,
        grid: int = 4,
        diff: bool = False,
        hidden: int = 256,
        layers: int = 1,
        bidirectional: bool = False,
        readout: str = "last",
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.num_classes, self.in_chans, self.name = num_classes, in_chans, f"cnn-{cell}"
        self.diff = diff  # each frame also sees its difference from the previous one (TSN's "RGB diff")
        self.cnn = FrameCNN(in_chans * (2 if diff else 1), width, feat, grid)
        self.rnn: nn.Module
        if cell == "mean":  # the order-blind baseline: the same CNN, frames averaged
            self.rnn = PoolingClassifier(num_classes, feat, pool="mean", hidden=hidden, dropout=dropout)
        else:
            self.rnn = RecurrentClassifier(
                num_classes,
                feat,
                cell=cell,
                hidden=hidden,
                layers=layers,
                bidirectional=bidirectional,
                readout=readout,
                dropout=dropout,
            )

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.rnn.reset_classifier(num_classes)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if x.ndim != 5 or x.shape[2] != self.in_chans:
            raise MMKitError(
                f"{self.name}: input of shape {tuple(x.shape)} does not fit; it needs frames [B, T, "
                f"{self.in_chans}, H, W]"
            )
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        b, t = x.shape[:2]
        lengths, mask = _lengths_mask(lengths, b, t, x.device, self.name)
        if self.diff:  # [x_t, x_t - x_(t-1)], the first frame's difference zero
            x = torch.cat([x, x - torch.cat([x[:, :1], x[:, :-1]], 1)], 2)
        valid = self.cnn(x[mask])  # [N_valid, feat]
        feats = valid.new_zeros(b, t, valid.shape[1])
        feats[mask] = valid
        return self.rnn(feats, lengths)


# ---------------------------------------------------------------------------------------------------------------
# Registry: the feature models' builders take feature_dim (the frame feature width), the clip models' in_chans


_register_features = model_family("video", "video", MAX_FRAMES, in_chans=YT8M_FEATURES)
_register_clips = model_family("video", "video", 64)


def _refuse(name: str, kwargs: dict, options: tuple[str, ...], why: str) -> None:
    for option in options:
        if option in kwargs:
            raise MMKitError(f"{name}: option {option} is {why}")


@_register_features("video-mean", "masked mean/max pooling of frame features + MLP (video-level baseline)")
def video_mean(num_classes: int, feature_dim: int = YT8M_FEATURES, **kwargs) -> nn.Module:
    return PoolingClassifier(num_classes, feature_dim, **kwargs)


@_register_features(
    "logistic", "one linear layer on video-level features, --level video (YouTube-8M starter's LogisticModel)"
)
def logistic(num_classes: int, feature_dim: int = YT8M_FEATURES, **kwargs) -> nn.Module:
    _refuse("logistic", kwargs, ("hidden", "pool"), "not for a logistic model (one linear layer)")
    return PoolingClassifier(num_classes, feature_dim, hidden=0, video_level=True, name="logistic", **kwargs)


@_register_features(
    "frame-logistic",
    "mean of the valid frames + one linear layer (YouTube-8M starter's FrameLevelLogisticModel)",
)
def frame_logistic(num_classes: int, feature_dim: int = YT8M_FEATURES, **kwargs) -> nn.Module:
    _refuse("frame-logistic", kwargs, ("hidden",), "not for a logistic model (one linear layer)")
    return PoolingClassifier(num_classes, feature_dim, hidden=0, name="frame-logistic", **kwargs)


@_register_features("moe", "mean-pooled features + mixture of logistic experts (YouTube-8M starter)")
def moe(num_classes: int, feature_dim: int = YT8M_FEATURES, **kwargs) -> nn.Module:
    return MoEClassifier(num_classes, feature_dim, **kwargs)


@_register_features(
    "dbof", "Deep Bag of Frames: frames -> wide layer, max-pooled, hidden layer, MoE (YouTube-8M starter)"
)
def dbof(num_classes: int, feature_dim: int = YT8M_FEATURES, **kwargs) -> nn.Module:
    return DBoFClassifier(num_classes, feature_dim, **kwargs)


@_register_features("netvlad", "NetVLAD pooling + context gating + MoE (YouTube-8M 2017 winner)")
def netvlad(num_classes: int, feature_dim: int = YT8M_FEATURES, **kwargs) -> nn.Module:
    return NetVLADClassifier(num_classes, feature_dim, **kwargs)


def _recurrent(cell: str, num_classes: int, feature_dim: int = YT8M_FEATURES, **kwargs) -> nn.Module:
    return RecurrentClassifier(num_classes, feature_dim, cell=cell, **kwargs)


def _cnn_recurrent(cell: str, num_classes: int, in_chans: int, **kwargs) -> nn.Module:
    return CNNRecurrent(num_classes, in_chans, cell=cell, **kwargs)


# lstm, gru, rnn on frame features and cnn-lstm, cnn-gru, cnn-rnn on raw clips: one builder per row
for _cell, _what in (("lstm", "LSTM"), ("gru", "GRU"), ("rnn", "plain (Elman, tanh) RNN")):
    _register_features(_cell, f"{_what} over frame features (packed), last hidden state or mean readout")(
        functools.partial(_recurrent, _cell)
    )
    _register_clips(f"cnn-{_cell}", f"small frame CNN + {_what}, end to end on raw clips of 32..112 px")(
        functools.partial(_cnn_recurrent, _cell)
    )


@_register_clips(
    "cnn-mean", "small frame CNN + frame-mean pooling + MLP: the order-blind baseline on raw clips"
)
def cnn_mean(num_classes: int, in_chans: int, **kwargs) -> nn.Module:
    _refuse(
        "cnn-mean", kwargs, ("layers", "bidirectional", "readout"), "for cnn-lstm / cnn-gru / cnn-rnn only"
    )
    return CNNRecurrent(num_classes, in_chans, cell="mean", **kwargs)
