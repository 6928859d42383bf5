"""YouTube-8M metrics: hand-computed examples, the starter code's formulas re-implemented literally, scikit-learn's
AP, VideoMeter."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from mmkit.metrics.video import VideoMeter, gap, hit_at_one, mean_ap, per_class_ap, perr, top1

# Two videos, three classes, three positives in all.
SCORES = np.array([[0.9, 0.8, 0.1], [0.7, 0.3, 0.2]])
LABELS = np.array([[1, 0, 1], [0, 1, 0]])


def test_gap_by_hand_with_k_limits():
    # k=1 keeps (0.9, +) (0.7, -): AP = 1/1 over 3 positives.
    assert gap(SCORES, LABELS, k=1) == pytest.approx(1 / 3)
    # k=2 ranks .9+ .8- .7- .3+: precisions 1 and 2/4 at the hits.
    assert gap(SCORES, LABELS, k=2) == pytest.approx((1 + 2 / 4) / 3)
    # k=3 adds .2- .1+: the last hit has precision 3/6; k=20 is clamped to the 3 classes.
    assert gap(SCORES, LABELS, k=3) == pytest.approx((1 + 2 / 4 + 3 / 6) / 3)
    assert gap(SCORES, LABELS) == gap(SCORES, LABELS, k=3)
    with pytest.raises(ValueError, match="k must be"):
        gap(SCORES, LABELS, k=0)


def test_gap_counts_positives_outside_the_top_k():
    scores = np.array([[0.9, 0.8, 0.7, 0.1]])
    labels = np.array([[1, 1, 1, 0]])
    assert gap(scores, labels, k=3) == pytest.approx(1.0)  # perfect ranking, every positive kept
    assert gap(scores, labels, k=2) == pytest.approx(2 / 3)  # the third positive is never retrieved
    assert gap(scores, np.zeros_like(labels), k=2) == 0.0  # no positives at all (as the starter code)


def test_hit_at_one_perr_top1_by_hand():
    assert hit_at_one(SCORES, LABELS) == pytest.approx(0.5)  # video 0 top class 0 is positive, video 1 not
    # video 0: 2 labels, top-2 = {0, 1} has one -> 1/2; video 1: 1 label, top-1 = {0} has none -> 0
    assert perr(SCORES, LABELS) == pytest.approx(0.25)
    # a video with no labels counts 0 (the starter code divides its 0 hits by C)
    scores3 = np.vstack([SCORES, [[0.5, 0.4, 0.3]]])
    labels3 = np.vstack([LABELS, [[0, 0, 0]]])
    assert perr(scores3, labels3) == pytest.approx(0.25 * 2 / 3)
    assert hit_at_one(scores3, labels3) == pytest.approx(1 / 3)
    # top-1: indices or one-hot targets
    assert top1(SCORES, np.array([0, 1])) == pytest.approx(0.5)
    assert top1(torch.tensor(SCORES), torch.tensor([[1, 0, 0], [1, 0, 0]])) == pytest.approx(1.0)
    assert math.isnan(top1(np.zeros((0, 3)), np.zeros(0, dtype=np.int64)))
    # rank-based: logits give the same as probabilities
    logits = np.log(SCORES / (1 - SCORES))
    assert perr(logits, LABELS) == perr(SCORES, LABELS) and gap(logits, LABELS, 2) == gap(SCORES, LABELS, 2)


# ---------------------------------------------------------------------------------------------------------------
# The starter code's formulas, literally (eval_util.py / average_precision_calculator.py), loops and all.


def starter_gap(predictions, actuals, top_k=20):
    k = min(top_k, predictions.shape[1])
    pooled_pred, pooled_lab = [], []
    for v in range(predictions.shape[0]):
        for index in np.argpartition(predictions[v], -k)[-k:]:
            pooled_pred.append(predictions[v][index])
            pooled_lab.append(actuals[v][index])
    numpos = sum(np.sum(actuals[:, i]) for i in range(predictions.shape[1]))
    if numpos == 0:
        return 0
    sortidx = sorted(range(len(pooled_pred)), key=lambda j: pooled_pred[j], reverse=True)
    ap, poscount, delta_recall = 0.0, 0.0, 1.0 / numpos
    for i in range(len(sortidx)):
        if pooled_lab[sortidx[i]] > 0:
            poscount += 1
            ap += poscount / (i + 1) * delta_recall
    return ap


def starter_hit_at_one(predictions, actuals):
    top = np.argmax(predictions, 1)
    return np.average(actuals[np.arange(actuals.shape[0]), top])


def starter_perr(predictions, actuals):
    total = 0.0
    for row in range(actuals.shape[0]):
        num_labels = int(np.sum(actuals[row]))
        top_indices = np.argpartition(predictions[row], -num_labels)[-num_labels:]
        item = 0.0
        for label_index in top_indices:
            if predictions[row][label_index] > 0:
                item += actuals[row][label_index]
        total += item / top_indices.size
    return total / actuals.shape[0]


@pytest.mark.parametrize(("n", "c", "k", "density"), [(50, 7, 3, 0.3), (40, 30, 20, 0.1), (25, 12, 20, 0.05)])
def test_metrics_match_the_starter_code_on_random_data(n, c, k, density):
    rng = np.random.default_rng(n * c + k)
    probs = rng.random((n, c))  # sigmoid outputs in (0, 1), no ties
    labels = (rng.random((n, c)) < density).astype(np.int64)
    labels[0] = 0  # one video without labels
    labels[1, :] = 1  # one with every label
    assert gap(probs, labels, k=k) == pytest.approx(starter_gap(probs, labels, k), abs=1e-12)
    assert hit_at_one(probs, labels) == pytest.approx(starter_hit_at_one(probs, labels), abs=1e-12)
    assert perr(probs, labels) == pytest.approx(starter_perr(probs, labels), abs=1e-12)
    # with k >= C the pooled list is every (video, class) pair: GAP is plain AP of the flattened arrays
    assert gap(probs, labels, k=c) == pytest.approx(average_precision_score(labels.ravel(), probs.ravel()))


# ---------------------------------------------------------------------------------------------------------------
# VideoMeter


def _random_batch(rng, n, c, density=0.1):
    scores = torch.tensor(rng.normal(size=(n, c)), dtype=torch.float32)
    labels = torch.tensor(rng.random((n, c)) < density)
    return scores, labels


def test_meter_equals_the_functions_over_batches():
    rng = np.random.default_rng(0)
    batches = [_random_batch(rng, n, 25) for n in (7, 1, 13, 9)]
    meter = VideoMeter(25, top_k=5)
    for s, y in batches:
        meter.update(s, y, loss_sum=torch.tensor(2.0 * len(s)))
    s = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    out = meter.compute()
    assert out["gap"] == pytest.approx(gap(s, y, k=5), abs=1e-12)
    assert out["gap"] == pytest.approx(starter_gap(s.numpy(), y.numpy().astype(int), 5), abs=1e-9)
    assert out["hit_at_one"] == pytest.approx(hit_at_one(s, y))
    assert out["perr"] == pytest.approx(perr(s, y))
    assert out["loss"] == pytest.approx(2.0) and out["count"] == 30 and meter.count == 30
    assert "top1" not in out  # multi-label data
    meter.reset()
    assert meter.count == 0 and math.isnan(meter.compute()["hit_at_one"]) and meter.compute()["gap"] == 0.0


def test_meter_state_gathers_across_ranks():
    rng = np.random.default_rng(1)
    batches = [_random_batch(rng, 10, 40, 0.05) for _ in range(4)]
    whole = VideoMeter(40)
    ranks = [VideoMeter(40), VideoMeter(40)]
    for i, (s, y) in enumerate(batches):
        whole.update(s, y, loss_sum=float(i))
        ranks[i % 2].update(s, y, loss_sum=float(i))
    states = [r.state() for r in ranks]  # what all_gather_object would hand every rank
    assert states[0]["scores"].shape == (20, 20) and states[0]["hits"].dtype == torch.bool
    gathered = VideoMeter(40)
    gathered.load_states(states)
    got, want = gathered.compute(), whole.compute()
    assert got.keys() == want.keys()
    for key in want:  # the order of the videos differs; the metrics do not (no tied scores)
        assert got[key] == pytest.approx(want[key], abs=1e-12)
    with pytest.raises(ValueError, match="top-20"):
        VideoMeter(40, top_k=5).load_states(states)


def test_meter_single_label_top1_and_device():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rng = np.random.default_rng(2)
    s = torch.tensor(rng.normal(size=(30, 6)), dtype=torch.float32, device=device)
    targets = torch.tensor(rng.integers(0, 6, 30), device=device)
    meter = VideoMeter(6)
    meter.update(s[:12].half(), targets[:12])
    meter.update(s[12:], targets[12:])
    out = meter.compute()
    assert out["top1"] == pytest.approx(top1(s.cpu(), targets.cpu()))
    assert out["top1"] == out["hit_at_one"]
    assert out["perr"] == pytest.approx(out["top1"])  # one label per video: PERR is top-1 accuracy
    with pytest.raises(ValueError, match="6 classes"):
        VideoMeter(5).update(s, targets)
    with pytest.raises(ValueError, match="labels must be"):
        meter.update(s, torch.zeros(30, 5))


# ---------------------------------------------------------------------------------------------------------------
# Per-class AP and mAP


def starter_map(predictions, actuals, top_k=20):
    """eval_util.top_k_by_class feeding MeanAveragePrecisionCalculator (filter_empty_classes, top_n=None): the
    per-class APs and their mean, as utils.py reports MAP."""
    num_classes = predictions.shape[1]
    k = min(top_k, num_classes)
    out_predictions = [[] for _ in range(num_classes)]
    out_labels = [[] for _ in range(num_classes)]
    for v in range(predictions.shape[0]):
        for index in np.argpartition(predictions[v], -k)[-k:]:
            out_predictions[index].append(predictions[v][index])
            out_labels[index].append(actuals[v][index])
    aps = []
    for c in range(num_classes):
        numpos = np.sum(actuals[:, c])
        if numpos <= 0:
            continue  # filter_empty_classes
        preds, labs = out_predictions[c], out_labels[c]
        sortidx = sorted(range(len(preds)), key=lambda j: preds[j], reverse=True)
        ap, poscount = 0.0, 0.0
        for i in range(len(sortidx)):
            if labs[sortidx[i]] > 0:
                poscount += 1
                ap += poscount / (i + 1) / numpos
        aps.append(ap)
    return aps, np.mean(aps)


def test_per_class_ap_by_hand():
    # every class kept (k = C): class 0 ranks .9+ .7- (AP 1), class 1 .8- .3+ (1/2), class 2 .2- .1+ (1/2)
    np.testing.assert_allclose(per_class_ap(SCORES, LABELS, k=3), [1.0, 0.5, 0.5])
    assert mean_ap(SCORES, LABELS, k=3) == pytest.approx(2 / 3)
    # k = 1 keeps class 0 of both videos: classes 1 and 2 are never retrieved, AP 0 (their positives still count)
    np.testing.assert_allclose(per_class_ap(SCORES, LABELS, k=1), [1.0, 0.0, 0.0])
    # a class without positives has no AP (NaN) and is left out of the mean
    labels = LABELS.copy()
    labels[:, 2] = 0
    ap = per_class_ap(SCORES, labels, k=3)
    assert math.isnan(ap[2]) and mean_ap(SCORES, labels, k=3) == pytest.approx(0.75)
    assert math.isnan(mean_ap(SCORES, np.zeros_like(LABELS)))


@pytest.mark.parametrize(("n", "c", "density"), [(60, 7, 0.3), (40, 25, 0.1)])
def test_per_class_ap_with_every_video_is_sklearns(n, c, density):
    rng = np.random.default_rng(n + c)
    probs = rng.random((n, c))
    labels = (rng.random((n, c)) < density).astype(np.int64)
    labels[:, 0] = 0  # a class without positives
    labels[0, 1] = 1
    ap = per_class_ap(probs, labels, k=c)
    assert math.isnan(ap[0])
    want = [average_precision_score(labels[:, j], probs[:, j]) for j in range(1, c)]
    np.testing.assert_allclose(ap[1:], want, atol=1e-12)
    assert mean_ap(probs, labels, k=c) == pytest.approx(np.mean(want), abs=1e-12)
    # logits rank as probabilities do
    np.testing.assert_allclose(per_class_ap(np.log(probs / (1 - probs)), labels, k=c)[1:], want, atol=1e-12)


@pytest.mark.parametrize(("n", "c", "k", "density"), [(50, 7, 3, 0.3), (40, 30, 20, 0.1), (80, 12, 5, 0.15)])
def test_per_class_ap_matches_the_starter_code_on_random_data(n, c, k, density):
    rng = np.random.default_rng(n * c + k + 1)
    probs = rng.random((n, c))
    labels = (rng.random((n, c)) < density).astype(np.int64)
    labels[:, -1] = 0  # an empty class: filtered out
    aps, want_map = starter_map(probs, labels, k)
    ap = per_class_ap(probs, labels, k=k)
    np.testing.assert_allclose(ap[~np.isnan(ap)], aps, atol=1e-12)
    assert mean_ap(probs, labels, k=k) == pytest.approx(want_map, abs=1e-12)


def test_meter_per_class_ap_over_batches_and_ranks():
    rng = np.random.default_rng(3)
    batches = [_random_batch(rng, n, 15, 0.15) for n in (9, 4, 12, 7)]
    whole, ranks = VideoMeter(15, top_k=5), [VideoMeter(15, top_k=5), VideoMeter(15, top_k=5)]
    for i, (s, y) in enumerate(batches):
        whole.update(s, y)
        ranks[i % 2].update(s, y)
    s = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    want = per_class_ap(s, y, k=5)
    np.testing.assert_allclose(whole.per_class_ap(), want, atol=1e-12)
    assert whole.compute()["map"] == pytest.approx(mean_ap(s, y, k=5), abs=1e-12)
    assert whole.compute()["map"] == pytest.approx(
        starter_map(s.numpy(), y.numpy().astype(int), 5)[1], abs=1e-9
    )
    gathered = VideoMeter(15, top_k=5)
    gathered.load_states([r.state() for r in ranks])
    np.testing.assert_allclose(gathered.per_class_ap(), want, atol=1e-12)
    assert gathered.state()["class_pos"].tolist() == y.sum(0).tolist()
