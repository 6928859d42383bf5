"""ClassificationMeter and topk_accuracy against brute-force numpy and sklearn."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix

from mmkit.metrics import ClassificationMeter, topk_accuracy


def _brute_topk(logits: np.ndarray, targets: np.ndarray, k: int) -> float:
    """Percent of rows whose target is among the k largest logits (no ties in random floats)."""
    k = min(k, logits.shape[1])
    hits = 0
    for row, t in zip(logits, targets, strict=True):
        order = sorted(range(len(row)), key=lambda j: -row[j])
        hits += t in order[:k]
    return 100.0 * hits / len(targets)


def _batches(seed: int, num_classes: int, sizes=(7, 16, 1, 23)):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in sizes:
        logits = torch.randn(n, num_classes, generator=g)
        targets = torch.randint(0, num_classes, (n,), generator=g)
        loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
        out.append((logits, targets, loss))
    return out


@pytest.mark.parametrize("num_classes", [3, 10])
def test_meter_matches_numpy_and_sklearn(num_classes):
    batches = _batches(0, num_classes)
    meter = ClassificationMeter(num_classes, topk=(1, 5))
    for logits, targets, loss in batches:
        meter.update(logits, targets, loss)
    logits = torch.cat([b[0] for b in batches]).numpy()
    targets = torch.cat([b[1] for b in batches]).numpy()
    total_loss = sum(float(b[2]) for b in batches)

    res = meter.compute()
    assert res["top1"] == pytest.approx(_brute_topk(logits, targets, 1))
    assert res["top5"] == pytest.approx(_brute_topk(logits, targets, 5))
    if num_classes == 3:
        assert res["top5"] == pytest.approx(100.0)  # k clamps to C
    else:
        assert res["top1"] < res["top5"] < 100.0  # random logits: the check is not vacuous
    assert res["loss"] == pytest.approx(total_loss / len(targets))

    expected_cm = confusion_matrix(targets, logits.argmax(1), labels=list(range(num_classes)))
    assert meter.confusion.dtype == np.int64
    np.testing.assert_array_equal(meter.confusion, expected_cm)
    assert meter.confusion.sum() == len(targets) == meter.count

    per_class = meter.per_class_accuracy()
    for c in range(num_classes):
        mask = targets == c
        assert per_class[c] == pytest.approx(100.0 * (logits[mask].argmax(1) == c).mean())
    assert res["mean_class_acc"] == pytest.approx(float(np.mean(per_class)))


def test_absent_classes_are_nan_and_excluded_from_mean():
    meter = ClassificationMeter(4, topk=(1,))
    logits = torch.tensor([[5.0, 0, 0, 0], [0, 5.0, 0, 0], [5.0, 0, 0, 0]])
    meter.update(logits, torch.tensor([0, 1, 1]))
    per_class = meter.per_class_accuracy()
    assert per_class[0] == 100.0 and per_class[1] == 50.0
    assert np.isnan(per_class[2]) and np.isnan(per_class[3])
    res = meter.compute()
    assert res["mean_class_acc"] == pytest.approx(75.0)
    assert res["top1"] == pytest.approx(200.0 / 3)
    assert "loss" not in res  # no loss was given


def test_loss_averages_over_samples_that_had_a_loss():
    meter = ClassificationMeter(3, topk=(1,))
    meter.update(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), torch.tensor(8.0))
    meter.update(torch.randn(2, 3), torch.tensor([1, 1]), torch.tensor(1.0))
    meter.update(torch.randn(5, 3), torch.zeros(5, dtype=torch.long))  # no loss for this batch
    assert meter.compute()["loss"] == pytest.approx(9.0 / 6)


def test_summed_state_of_two_meters_equals_one_meter_over_all_batches():
    """What DDP does: all_reduce(SUM) every state tensor, then compute()."""
    batches = _batches(1, 7, sizes=(5, 9, 12, 3))
    whole = ClassificationMeter(7, topk=(1, 3))
    rank0, rank1 = ClassificationMeter(7, topk=(1, 3)), ClassificationMeter(7, topk=(1, 3))
    for i, (logits, targets, loss) in enumerate(batches):
        whole.update(logits, targets, loss)
        (rank0 if i % 2 == 0 else rank1).update(logits, targets, loss)
    for a, b in zip(rank0.state_tensors(), rank1.state_tensors(), strict=True):
        a += b  # in place, like dist.all_reduce
    np.testing.assert_array_equal(rank0.confusion, whole.confusion)
    got, want = rank0.compute(), whole.compute()
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key])


def test_topk_accuracy_functional_and_ties():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.15, 0.05], [0.2, 0.3, 0.5]])
    targets = torch.tensor([1, 2, 0])
    acc = topk_accuracy(logits, targets, ks=(1, 2, 5))
    assert acc[1] == pytest.approx(100 / 3)
    assert acc[2] == pytest.approx(100 / 3)  # rows 1 and 2: the target is last
    assert acc[5] == pytest.approx(100.0)
    # Ties follow torch.topk: the functional form and the meter agree with it exactly.
    tied = torch.zeros(6, 4)
    t = torch.arange(6) % 4
    expected = 100.0 * (tied.topk(2, dim=1).indices == t[:, None]).any(1).float().mean().item()
    assert topk_accuracy(tied, t, ks=(2,))[2] == pytest.approx(expected)
    meter = ClassificationMeter(4, topk=(2,))
    meter.update(tied, t)
    assert meter.compute()["top2"] == pytest.approx(expected)


def test_empty_meter_and_bad_inputs():
    meter = ClassificationMeter(5)
    res = meter.compute()
    assert math.isnan(res["top1"]) and math.isnan(res["mean_class_acc"])
    with pytest.raises(ValueError, match="classes"):
        meter.update(torch.randn(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        meter.update(torch.randn(2, 5), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="targets"):
        meter.update(torch.randn(2, 5), torch.tensor([0.0, 1.0]))
    meter.update(torch.randn(3, 5), torch.tensor([0, 1, 2]))
    meter.reset()
    assert meter.count == 0 and meter.confusion.sum() == 0


def test_state_follows_device_of_logits_and_update_does_not_sync():
    meter = ClassificationMeter(3)
    meter.update(torch.randn(2, 3, dtype=torch.float16), torch.tensor([0, 2]))
    assert all(t.device == meter.device for t in meter.state_tensors())
    if torch.cuda.is_available():
        cuda = ClassificationMeter(3)
        logits, targets = torch.randn(8, 3, device="cuda"), torch.randint(0, 3, (8,), device="cuda")
        torch.cuda.set_sync_debug_mode("error")
        try:
            cuda.update(logits, targets, logits.sum())
        finally:
            torch.cuda.set_sync_debug_mode("default")
        assert all(t.device.type == "cuda" for t in cuda.state_tensors())
        assert cuda.count == 8
