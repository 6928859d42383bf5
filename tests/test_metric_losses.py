"""Metric learning: the triplet loss's three mining rules on hand-made embeddings, its gradients and degenerate
batches, training a small embedding net with it; the ArcFace / cosine heads; the P x K batch sampler."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mmkit.data.samplers import PKSampler
from mmkit.errors import MMKitError
from mmkit.losses.metric import ArcFaceHead, SoftmaxHead, TripletLoss, pairwise_sq_distances

# Four unit vectors on a circle: identity 0 at 0° and 60°, identity 1 at 100° and 220°.
ANGLES = [0.0, 60.0, 100.0, 220.0]
LABELS = torch.tensor([0, 0, 1, 1])
MARGIN = 0.7


def _circle(angles_deg: list[float]) -> torch.Tensor:
    a = torch.tensor(angles_deg, dtype=torch.float64).deg2rad()
    return torch.stack([a.cos(), a.sin()], 1)


def d(i: int, j: int) -> float:
    """Squared distance of two unit vectors: 2 - 2 cos(angle between them)."""
    return 2 - 2 * math.cos(math.radians(ANGLES[i] - ANGLES[j]))


def hinge(d_ap: float, d_an: float) -> float:
    return max(d_ap - d_an + MARGIN, 0.0)


def _loss(mining: str) -> tuple[float, dict[str, float]]:
    loss, stats = TripletLoss(margin=MARGIN, mining=mining)(_circle(ANGLES), LABELS)
    return loss.item(), {k: v.item() for k, v in stats.items()}


def test_distances_are_squared_euclidean():
    e = _circle(ANGLES)
    assert torch.allclose(pairwise_sq_distances(e), torch.cdist(e, e).pow(2).float(), atol=1e-6)
    assert pairwise_sq_distances(e)[0, 1].item() == pytest.approx(d(0, 1), abs=1e-6)


def test_semihard_mining_by_hand():
    # d01 = 1.00, d02 = 2.35, d03 = 3.53, d12 = 0.47, d13 = 3.88, d23 = 3.00
    expected = [
        hinge(d(0, 1), d(0, 2)),  # (0, 1): negatives 2.35 and 3.53 are both farther than 1: the closer one
        hinge(d(1, 0), d(1, 3)),  # (1, 0): only negative 3 (3.88) is farther than 1
        hinge(d(2, 3), d(2, 0)),  # (2, 3): no negative farther than 3.00: fallback to the farthest, 0 (2.35)
        hinge(d(3, 2), d(3, 0)),  # (3, 2): both farther than 3.00 (3.53, 3.88): the closer one
    ]
    assert [v > 0 for v in expected] == [False, False, True, True]
    loss, stats = _loss("semihard")
    assert loss == pytest.approx(sum(expected) / 4, abs=1e-5)
    assert (stats["active"], stats["triplets"]) == (0.5, 4.0)
    assert stats["d_ap"] == pytest.approx((d(0, 1) + d(1, 0) + d(2, 3) + d(3, 2)) / 4, abs=1e-5)
    assert stats["d_an"] == pytest.approx((d(0, 2) + d(1, 3) + d(2, 0) + d(3, 0)) / 4, abs=1e-5)
    # the fallback matters: the closest negative (1, at 0.47) would give a much larger loss for (2, 3)
    assert hinge(d(2, 3), d(2, 1)) > hinge(d(2, 3), d(2, 0)) + 1


def test_batch_hard_mining_by_hand():
    expected = [  # each anchor: its farthest positive, its closest negative
        hinge(d(0, 1), min(d(0, 2), d(0, 3))),
        hinge(d(1, 0), min(d(1, 2), d(1, 3))),
        hinge(d(2, 3), min(d(2, 0), d(2, 1))),
        hinge(d(3, 2), min(d(3, 0), d(3, 1))),
    ]
    loss, stats = _loss("hard")
    assert loss == pytest.approx(sum(expected) / 4, abs=1e-5)
    assert stats["active"] == pytest.approx(sum(v > 0 for v in expected) / 4)


def test_batch_all_mining_by_hand():
    triplets = [(0, 1, 2), (0, 1, 3), (1, 0, 2), (1, 0, 3), (2, 3, 0), (2, 3, 1), (3, 2, 0), (3, 2, 1)]
    values = [hinge(d(a, p), d(a, n)) for a, p, n in triplets]
    active = [v for v in values if v > 0]
    assert len(active) == 4
    loss, stats = _loss("all")
    assert loss == pytest.approx(sum(active) / len(active), abs=1e-5)  # the mean over the active triplets
    assert (stats["triplets"], stats["active"]) == (8.0, 0.5)


@pytest.mark.parametrize("mining", ["semihard", "hard", "all"])
def test_gradients_flow_and_degenerate_batches_give_zero(mining):
    torch.manual_seed(0)
    loss_fn = TripletLoss(margin=0.2, mining=mining)
    x = torch.randn(12, 8, requires_grad=True)
    loss, stats = loss_fn(F.normalize(x, dim=1), torch.arange(12) % 3)
    loss.backward()
    assert loss > 0 and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert 0 < stats["active"] <= 1 and stats["d_an"] > 0

    # one identity (no negative), all distinct identities (no positive), identical embeddings (zero distances)
    for labels, emb in (
        (torch.zeros(6, dtype=torch.long), torch.randn(6, 8)),
        (torch.arange(6), torch.randn(6, 8)),
        (torch.zeros(6, dtype=torch.long), torch.ones(6, 8)),
    ):
        x = emb.clone().requires_grad_(True)
        loss, stats = loss_fn(F.normalize(x, dim=1), labels)
        loss.backward()
        assert loss.item() == 0 and loss.requires_grad
        assert torch.equal(x.grad, torch.zeros_like(x)) and stats["triplets"] == 0
        assert all(torch.isfinite(v) for v in stats.values())
    # identical embeddings of two identities: every triplet is active, the gradient is finite
    x = torch.ones(6, 8, requires_grad=True)
    loss, _ = loss_fn(F.normalize(x, dim=1), torch.arange(6) % 2)
    loss.backward()
    assert loss.item() == pytest.approx(0.2) and torch.isfinite(x.grad).all()


def test_semihard_training_separates_identities():
    """A small MLP on a toy problem: 8 identities, 8 informative dims, 24 loud distracting dims. Trained with
    semi-hard triplets on P x K batches, its held-out nearest-neighbour accuracy goes from chance to near 1."""
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(8, 8, generator=g)

    def make(per_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(8).repeat_interleave(per_id)
        signal = centres[y] + 0.3 * torch.randn(len(y), 8, generator=g)
        return torch.cat([signal, 3 * torch.randn(len(y), 24, generator=g)], 1), y

    x_train, y_train = make(40)
    x_test, y_test = make(20)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 16))
    loss_fn = TripletLoss(margin=0.2, mining="semihard")

    def embed(x: torch.Tensor) -> torch.Tensor:
        return F.normalize(net(x), dim=1)

    def evaluate() -> tuple[float, float]:
        with torch.no_grad():
            e = embed(x_test)
            dist = torch.cdist(e, e).fill_diagonal_(math.inf)
            return loss_fn(e, y_test)[0].item(), (y_test[dist.argmin(1)] == y_test).float().mean().item()

    loss0, acc0 = evaluate()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    sampler = PKSampler(y_train, p=4, k=8, seed=0)
    for epoch in range(150):  # 2 batches per epoch: 300 steps
        sampler.set_epoch(epoch)
        for batch in sampler:
            loss, _ = loss_fn(embed(x_train[batch]), y_train[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    loss1, acc1 = evaluate()
    assert acc0 < 0.5 and acc1 > 0.9
    assert loss1 < 0.6 * loss0


# --------------------------------------------------------------------------------------------------------------
# Classification heads


def _head_at_axes(head: nn.Module) -> nn.Module:
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 3.0]]))  # class 0 along x, class 1 along y
    return head


def test_arcface_target_logit_is_cos_theta_plus_m():
    s, m = 30.0, 0.5
    head = _head_at_axes(ArcFaceHead(2, 2, s=s, m=m))
    for deg in (0.0, 30.0, 100.0, 140.0):
        theta = math.radians(deg)
        emb = 5 * _circle([deg]).float()  # not unit norm: the head normalises
        logits = head(emb, torch.tensor([0]))
        assert logits[0, 0].item() == pytest.approx(s * math.cos(theta + m), abs=1e-4)
        assert logits[0, 1].item() == pytest.approx(s * math.cos(theta - math.pi / 2), abs=1e-4)  # no margin
        assert torch.allclose(head(emb), s * torch.tensor([[math.cos(theta), math.sin(theta)]]), atol=1e-4)
    # past pi - m the margin turns into a linear penalty (InsightFace): s (cos theta - m sin m)
    theta = math.radians(170.0)
    logit = head(_circle([170.0]).float(), torch.tensor([0]))[0, 0].item()
    assert logit == pytest.approx(s * (math.cos(theta) - m * math.sin(m)), abs=1e-4)
    # easy margin: only where cos theta > 0
    easy = _head_at_axes(ArcFaceHead(2, 2, s=s, m=m, easy_margin=True))
    assert easy(_circle([100.0]).float(), torch.tensor([0]))[0, 0].item() == pytest.approx(
        s * math.cos(math.radians(100.0)), abs=1e-4
    )
    assert easy(_circle([30.0]).float(), torch.tensor([0]))[0, 0].item() == pytest.approx(
        s * math.cos(math.radians(30.0) + m), abs=1e-4
    )


def test_heads_gradients_and_softmax_head():
    head = _head_at_axes(ArcFaceHead(2, 2))
    x = _circle([0.0, 90.0]).float().requires_grad_(True)  # exactly on the class centres: cos = 1
    F.cross_entropy(head(x, torch.tensor([0, 1])), torch.tensor([0, 1])).backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(head.weight.grad).all()
    plain = _head_at_axes(SoftmaxHead(2, 2, s=10.0))
    assert torch.allclose(
        plain(_circle([60.0]).float()), 10 * torch.tensor([[0.5, math.sqrt(3) / 2]]), atol=1e-5
    )


# --------------------------------------------------------------------------------------------------------------
# PKSampler

# 10 identities with 1, 2, ..., 10 images (identity 0 has a single image and is never sampled).
PK_LABELS = torch.cat([torch.full((n,), n - 1) for n in range(1, 11)])


def _epoch(sampler: PKSampler, epoch: int) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_pk_batches_hold_p_identities_of_k_images():
    sampler = PKSampler(PK_LABELS, p=3, k=4, seed=0)
    assert len(sampler) == 3  # 9 identities with two or more images, 3 per batch
    batches = _epoch(sampler, 0)
    assert len(batches) == 3
    seen = []
    for batch in batches:
        labels = PK_LABELS[batch]
        assert len(batch) == 12
        groups = labels.view(3, 4)  # identity by identity
        assert (groups == groups[:, :1]).all() and len(set(groups[:, 0].tolist())) == 3
        for ident, idx in zip(groups[:, 0].tolist(), torch.tensor(batch).view(3, 4), strict=True):
            n_images = ident + 1
            if n_images >= 4:
                assert len(set(idx.tolist())) == 4  # distinct images
            else:
                assert len(set(idx.tolist())) == n_images  # all its images, plus repeats
        seen += groups[:, 0].tolist()
    assert sorted(seen) == list(range(1, 10))  # every identity once per epoch, identity 0 never


def test_pk_sampler_is_deterministic_per_epoch():
    a, b = PKSampler(PK_LABELS, p=3, k=4, seed=5), PKSampler(PK_LABELS, p=3, k=4, seed=5)
    assert _epoch(a, 0) == _epoch(b, 0) and _epoch(a, 7) == _epoch(b, 7)
    assert _epoch(a, 0) != _epoch(a, 1)
    assert _epoch(a, 0) != _epoch(PKSampler(PK_LABELS, p=3, k=4, seed=6), 0)


def test_pk_sampler_ranks_split_every_batch():
    one = _epoch(PKSampler(PK_LABELS, p=4, k=3, seed=1), 2)
    ranks = [_epoch(PKSampler(PK_LABELS, p=4, k=3, seed=1, rank=r, world=2), 2) for r in range(2)]
    assert [r0 + r1 for r0, r1 in zip(*ranks, strict=True)] == one
    for share in ranks[0] + ranks[1]:  # P divisible by world: each rank holds 2 whole identities of 3 images
        assert len(share) == 6 and len(set(PK_LABELS[share].tolist())) == 2


def test_pk_sampler_more_batches_per_epoch_and_data_loader():
    sampler = PKSampler(PK_LABELS, p=3, k=2, seed=0, batches_per_epoch=7)
    batches = _epoch(sampler, 0)
    assert len(sampler) == len(batches) == 7
    assert all(len(set(PK_LABELS[b].tolist())) == 3 for b in batches)  # no identity twice in a batch
    data = TensorDataset(torch.arange(len(PK_LABELS)), PK_LABELS)
    got = [y for _, y in DataLoader(data, batch_sampler=sampler)]
    assert [y.tolist() for y in got] == [PK_LABELS[b].tolist() for b in batches]


def test_pk_sampler_errors():
    with pytest.raises(MMKitError, match="at least p=10 identities"):
        PKSampler(PK_LABELS, p=10, k=2)
    with pytest.raises(MMKitError, match="does not split evenly over 4"):
        PKSampler(PK_LABELS, p=3, k=3, world=4)
    with pytest.raises(MMKitError, match="k >= 2"):
        PKSampler(PK_LABELS, p=3, k=1)


def test_semihard_negatives_are_strictly_farther_than_the_positive():
    """A negative exactly as far from the anchor as the positive is not semi-hard (FaceNet: d_an > d_ap)."""
    x = torch.tensor([[0.0], [1.0], [-1.0], [2.0]])  # identities 0, 0, 1, 1
    loss, stats = TripletLoss(margin=0.2, mining="semihard")(x, torch.tensor([0, 0, 1, 1]))
    # (0, 1): d_ap 1, negatives at 1 (equal: not semi-hard) and 4 -> 0; (1, 0) likewise -> 0;
    # (-1, 2) and (2, -1): d_ap 9, no negative farther -> the farthest (4): 9 - 4 + 0.2 = 5.2 each
    assert loss.item() == pytest.approx((0 + 0 + 5.2 + 5.2) / 4)
    assert stats["d_an"].item() == pytest.approx(4.0)
