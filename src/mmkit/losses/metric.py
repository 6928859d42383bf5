"""Metric-learning losses for face embeddings: the FaceNet triplet loss with online mining, and ArcFace / cosine
softmax classification heads.

    loss_fn = TripletLoss(margin=0.2, mining="semihard")
    loss, stats = loss_fn(model(images), labels)     # stats: active, d_ap, d_an, triplets (detached)

    head = ArcFaceHead(embedding_dim=128, num_classes=500)   # trained together with the model
    loss = F.cross_entropy(head(model(images), labels), labels)

Triplet loss (Schroff et al., 2015, FaceNet). Distances are squared Euclidean, as in FaceNet: for unit-norm
embeddings d = ||a − b||² = 2 − 2·cos, in 0..4, and the default margin 0.2 is FaceNet's. Every triplet is mined
inside the batch (a P×K batch from `mmkit.data.samplers.PKSampler` has K − 1 positives per anchor) from masks over
the B×B distance matrix, with no Python loop. The mining modes:

- "semihard" (FaceNet): every anchor–positive pair (a, p) is a triplet; its negative is the closest negative that
  is still farther from the anchor than the positive (d_an > d_ap: the semi-hard ones, and among them the
  hardest). When no negative is farther than the positive, the pair takes the *farthest* negative of the anchor
  instead (the easiest one; the pair still has a loss ≥ margin since that negative is closer than p). This is
  the rule of TensorFlow's `triplet_semihard_loss`: falling back to the closest negative would pick the hardest
  negatives exactly where FaceNet warns that they collapse the model early in training. The loss is the mean
  of max(d_ap − d_an + margin, 0) over all anchor–positive pairs (whose anchor has a negative).
- "hard" (batch hard, Hermans et al., 2017): one triplet per anchor, its farthest positive and its closest
  negative; the loss is the mean over the anchors that have both.
- "all" (batch all, Hermans et al.): every valid (a, p, n); the loss is the mean over the *active* triplets
  (those with a positive loss; Hermans' "BA≠0"), so the many easy triplets do not dilute it.

"semihard" and "all" build a B×B×B tensor (B = 256: 16.8 M entries), fine for the usual P×K batches.
A batch without a valid triplet (one identity, or no identity with two images) gives a loss of exactly zero
that is still connected to the graph, so `backward()` works and gives zero gradients, never NaN.

ArcFace (Deng et al., 2019): logits s·cos θ_j for every class j, except the target class, whose logit is
s·cos(θ_y + m). When θ_y + m passes π, cos(θ_y + m) would grow again with θ_y; as in InsightFace, the target
logit is then s·(cos θ_y − m·sin m) instead (linear continuation, threshold cos θ_y ≤ cos(π − m)). With
`easy_margin=True` (InsightFace's other option) the margin only applies where cos θ_y > 0 and the logit is
s·cos θ_y otherwise. `SoftmaxHead` is the plain normalised linear head (NormFace: s·cos θ_j, no margin).
Both heads compute in float32 with autocast disabled: the margin arithmetic needs the precision.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MINING_MODES = ("semihard", "hard", "all")


def pairwise_sq_distances(emb: Tensor) -> Tensor:
    """Squared Euclidean distances [B, B] between the rows of `emb` [B, D], in float32, clamped at 0."""
    with torch.autocast(emb.device.type, enabled=False):
        emb = emb.float()
        sq = (emb * emb).sum(1)
        return (sq[:, None] + sq[None, :] - 2.0 * emb @ emb.T).clamp_min(0.0)


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of `values` where `mask`; exactly 0 (and still connected to the graph) where nothing is selected."""
    zero = torch.zeros((), dtype=values.dtype, device=values.device)
    return torch.where(mask, values, zero).sum() / mask.sum().clamp_min(1)


class TripletLoss(nn.Module):
    """FaceNet triplet loss over a batch of embeddings and integer identity labels, mined online (see the module
    docstring for the exact rule of each `mining` mode). Returns (loss, stats) where the detached stats are
    `active` (fraction of the mined triplets with a positive loss), `d_ap` and `d_an` (their mean squared
    anchor–positive and anchor–negative distances) and `triplets` (how many were mined)."""

    def __init__(self, margin: float = 0.2, mining: str = "semihard") -> None:
        super().__init__()
        if mining not in MINING_MODES:
            raise ValueError(f"mining must be one of {MINING_MODES}, not {mining!r}")
        self.margin = margin
        self.mining = mining

    def forward(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        if embeddings.ndim != 2 or labels.shape != embeddings.shape[:1]:
            raise ValueError(
                f"expected embeddings [B, D] and labels [B], got {tuple(embeddings.shape)}, {tuple(labels.shape)}"
            )
        d = pairwise_sq_distances(embeddings)
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        pos, neg = same & ~eye, ~same
        mine = {"semihard": self._semihard, "hard": self._hard, "all": self._all}[self.mining]
        d_ap, d_an, valid = mine(d, pos, neg)
        losses = F.relu(d_ap - d_an + self.margin)
        active = valid & (losses > 0)
        if self.mining == "all":
            loss = _masked_mean(losses, active)
        else:
            loss = _masked_mean(losses, valid)
        n = valid.sum()
        with torch.no_grad():
            stats = {
                "active": active.sum() / n.clamp_min(1),
                "d_ap": _masked_mean(d_ap, valid),
                "d_an": _masked_mean(d_an, valid),
                "triplets": n.float(),
            }
        return loss, stats

    # Each miner returns same-shaped (d_ap, d_an, valid): one entry per mined triplet where `valid`. Masked-out
    # entries hold finite placeholders, so no inf or NaN reaches the loss or its gradient.

    @staticmethod
    def _semihard(d: Tensor, pos: Tensor, neg: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        # [a, p, n]: n is a negative of a, farther from a than p is
        farther = neg[:, None, :] & (d[:, None, :] > d[:, :, None])
        semihard = torch.where(farther, d[:, None, :], math.inf).amin(-1)  # [a, p]
        farthest = torch.where(neg, d, -math.inf).amax(1, keepdim=True)  # [a, 1], the fallback
        d_an = torch.where(farther.any(-1), semihard, farthest)
        valid = pos & neg.any(1, keepdim=True)
        return d, torch.where(valid, d_an, d.detach()), valid

    @staticmethod
    def _hard(d: Tensor, pos: Tensor, neg: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        valid = pos.any(1) & neg.any(1)
        hardest_pos = torch.where(pos, d, -math.inf).amax(1)
        hardest_neg = torch.where(neg, d, math.inf).amin(1)
        zero = torch.zeros_like(hardest_pos)
        return torch.where(valid, hardest_pos, zero), torch.where(valid, hardest_neg, zero), valid

    @staticmethod
    def _all(d: Tensor, pos: Tensor, neg: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        valid = pos[:, :, None] & neg[:, None, :]
        return d[:, :, None].expand_as(valid), d[:, None, :].expand_as(valid), valid


class _CosineHead(nn.Module):
    """A bias-free linear layer on L2-normalised embeddings with L2-normalised class weights: cos θ_j."""

    def __init__(self, embedding_dim: int, num_classes: int, s: float = 30.0) -> None:
        super().__init__()
        self.s = s
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.normal_(self.weight, std=0.01)

    def cosine(self, embeddings: Tensor) -> Tensor:
        """cos θ [B, num_classes] between each embedding and each class centre, in float32."""
        with torch.autocast(embeddings.device.type, enabled=False):
            cos = F.linear(F.normalize(embeddings.float()), F.normalize(self.weight.float()))
        return cos.clamp(-1.0, 1.0)


class SoftmaxHead(_CosineHead):
    """Plain normalised linear classifier (NormFace): logits s·cos θ_j, for cross-entropy. `labels` is accepted
    (and ignored) so that it is interchangeable with `ArcFaceHead`."""

    def forward(self, embeddings: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.s * self.cosine(embeddings)


class ArcFaceHead(_CosineHead):
    """Additive angular margin (ArcFace): with `labels`, the target logit is s·cos(θ_y + m) (see the module
    docstring for θ_y + m > π and `easy_margin`); without, plain s·cos θ_j (inference)."""

    def __init__(
        self, embedding_dim: int, num_classes: int, s: float = 30.0, m: float = 0.5, easy_margin: bool = False
    ) -> None:
        super().__init__(embedding_dim, num_classes, s)
        self.m = m
        self.easy_margin = easy_margin

    def forward(self, embeddings: Tensor, labels: Tensor | None = None) -> Tensor:
        cos = self.cosine(embeddings)
        if labels is None:
            return self.s * cos
        cos_y = cos.gather(1, labels[:, None])
        sin_y = (
            (1.0 - cos_y * cos_y).clamp_min(1e-12).sqrt()
        )  # the clamp keeps the gradient finite at cos = ±1
        with_margin = cos_y * math.cos(self.m) - sin_y * math.sin(self.m)  # cos(θ_y + m)
        if self.easy_margin:
            target = torch.where(cos_y > 0, with_margin, cos_y)
        else:
            target = torch.where(
                cos_y > math.cos(math.pi - self.m), with_margin, cos_y - self.m * math.sin(self.m)
            )
        return self.s * cos.scatter(1, labels[:, None], target)
