"""The YOLOv3 loss's rules on hand-built raw outputs (see mmkit.losses.detection's docstring): which predictions a
ground truth is assigned to, the per-scale objectness weights, and the background predictions it leaves out."""

import math

import pytest
import torch

from mmkit.losses.detection import YOLOv3Loss
from mmkit.models.yolov3 import YOLOv3

SIZE = 160  # input pixels; anchors are given at this size
# stride 16: 120, 40 and 10 px squares; stride 32: 200, 250 and 300 px
ANCHORS = [[(120, 120), (40, 40), (10, 10)], [(200, 200), (250, 250), (300, 300)]]
# one 120 px square of class 0 centred at (72, 72): the centre of stride-16 cell (4, 4), a quarter into
# stride-32 cell (2, 2)
TARGET = torch.tensor([[0.0, 0.0, 12.0, 12.0, 132.0, 132.0]])


def _model() -> YOLOv3:
    return YOLOv3(2, tiny=True, anchors=ANCHORS, anchor_size=SIZE, width=0.25)


def _outputs(model: YOLOv3, fill=torch.zeros) -> list[torch.Tensor]:
    return [fill(1, 3, SIZE // s, SIZE // s, 7) for s in model.strides]


def test_a_ground_truth_goes_to_every_anchor_within_ratio_4_at_its_cell_and_nearest_neighbours():
    model = _model()
    torch.manual_seed(0)
    outs = [(0.1 * o).requires_grad_() for o in _outputs(model, torch.randn)]  # no prediction exactly right
    loss, _ = YOLOv3Loss(model)(outs, TARGET, (SIZE, SIZE))
    loss.backward()
    positives = {
        (s, a, y, x)
        for s, o in enumerate(outs)
        for a, y, x in (o.grad[0, ..., :4].abs().sum(-1) > 0).nonzero().tolist()
    }
    # stride 16: anchors 120 (ratio 1) and 40 (ratio 3), not 10 (12); the centre is mid-cell, so no neighbour.
    # stride 32: all three anchors (ratios 1.7-2.5) at the cell and its left and upper neighbours (the centre is in
    # the cell's upper-left quarter)
    stride32 = {(1, a, y, x) for a in range(3) for y, x in ((2, 2), (2, 1), (1, 2))}
    assert positives == {(0, 0, 4, 4), (0, 1, 4, 4)} | stride32


def test_objectness_weighs_stride_16_by_1_and_stride_32_by_04():
    """With no ground truth every objectness target is 0; raw zeros give a BCE of log 2 everywhere."""
    model = _model()
    _, parts = YOLOv3Loss(model)(_outputs(model), torch.zeros(0, 6), (SIZE, SIZE))
    assert parts["obj"] == pytest.approx(math.log(2) * (1.0 + 0.4))


def test_a_background_prediction_overlapping_a_ground_truth_is_not_penalized():
    """Stride 16, anchor 120, cell (5, 4): not assigned (no neighbour cells at stride 16), its raw-zero box is the
    anchor one cell right of the target, IoU 0.76: over ignore_iou 0.5, so its objectness does not count."""
    model = _model()

    def objectness(logit: float, ignore_iou: float | None) -> float:
        outs = _outputs(model)
        outs[0][0, 0, 4, 5, 4] = logit
        return float(YOLOv3Loss(model, ignore_iou=ignore_iou)(outs, TARGET, (SIZE, SIZE))[1]["obj"])

    assert objectness(8.0, 0.5) == pytest.approx(objectness(0.0, 0.5), abs=1e-7)
    assert objectness(8.0, None) > objectness(0.0, None) + 1e-3
