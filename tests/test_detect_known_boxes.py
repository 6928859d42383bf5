"""Detection checked against boxes known in advance (tests/_detector.py): decoding raw outputs with non-zero sizes,
the score threshold on boxes exactly at it, NMS on overlapping pairs either side of its IoU, the defaults of the
predictor and of `mmkit detect predict`, and `evaluate` against pycocotools on files this test writes."""

import json

import pytest
import torch
from _cli import mmkit, synth_fixture
from _detector import Box, known_outputs, logit, planned_evaluation, scene_truth, yolo_outputs

from mmkit.models import get_model
from mmkit.models.yolov3 import YOLOv3, decode_boxes, postprocess
from mmkit.tasks.detect import DetectorMeta, DetectorPredictor

scenes = synth_fixture("detection", "--format", "yolo", "--n", "24", "--seed", "3", "--img-size", "128")


@pytest.fixture(scope="module")
def weights(scenes, tmp_path_factory):
    """An untrained YOLOv3-tiny checkpoint for the scenes' 13 classes at 128 px: `known_outputs` gives its answers."""
    classes, _ = scene_truth(scenes)
    kw = {"anchor_size": 128, "width": 0.25}
    net = get_model("yolov3-tiny", len(classes), **kw)
    meta = DetectorMeta("yolov3-tiny", len(classes), 128, classes, kw)
    return DetectorPredictor(net, meta, torch.device("cpu"), "known").save(
        tmp_path_factory.mktemp("w") / "det.pt"
    )


def test_a_box_size_is_twice_sigma_squared_times_its_anchor():
    model = YOLOv3(2, tiny=True, anchor_size=128)
    outs = [torch.zeros(1, 3, 128 // s, 128 // s, 7) for s in model.strides]
    outs[0][0, 1, 4, 3, :4] = torch.tensor([logit(0.6), logit(0.25), logit(0.3), logit(0.8)])
    dec = model.decode(outs, (128, 128))
    aw, ah = model.anchors[0, 1].tolist()  # 23 x 27 px, stride 16
    cx, cy, w, h = (3 + 2 * 0.6 - 0.5) * 16, (4 + 2 * 0.25 - 0.5) * 16, 0.6**2 * aw, 1.6**2 * ah
    box = dec[0, (1 * 8 + 4) * 8 + 3, :4]  # anchor 1, row 4, column 3
    torch.testing.assert_close(box, torch.tensor([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]))
    t = torch.tensor([0.0, 0.0, logit(0.9), logit(0.1)])
    torch.testing.assert_close(
        decode_boxes(t, torch.zeros(2), torch.tensor([2.0, 3.0]))[2:], torch.tensor([6.48, 0.12])
    )


def test_known_boxes_come_back_from_their_raw_outputs():
    model = YOLOv3(3, tiny=True, anchor_size=416)
    boxes = [Box(10, 20, 50, 44, 0.9, 0), Box(60, 8, 126, 120, 0.6, 2), Box(12, 22, 47, 40, 0.3, 1)]
    dec = model.decode(yolo_outputs(model, (128, 160), boxes), (128, 160))
    (r,) = postprocess(dec, conf=0.01, iou=0.99)
    torch.testing.assert_close(
        r["boxes"],
        torch.tensor([[b.x1, b.y1, b.x2, b.y2] for b in boxes], dtype=torch.float32),
        atol=1e-3,
        rtol=0,
    )
    torch.testing.assert_close(r["scores"], torch.tensor([0.9, 0.6, 0.3]))
    assert r["labels"].tolist() == [0, 2, 1]


def test_a_score_exactly_at_the_threshold_is_dropped():
    """Scores are objectness × class probability: 1.0 × 0.5 is exactly 0.5, which `conf=0.5` does not keep."""
    decoded = torch.tensor([[[0, 0, 10, 10, 1.0, 0.5, 0.25], [20, 20, 30, 30, 1.0, 0.75, 0.5]]])
    single = postprocess(decoded, conf=0.5)[0]
    assert single["scores"].tolist() == [0.75] and single["labels"].tolist() == [0]
    multi = postprocess(decoded, conf=0.5, multi_label=True)[0]
    assert multi["scores"].tolist() == [0.75] and multi["labels"].tolist() == [0]
    multi = postprocess(decoded, conf=0.25, multi_label=True)[0]
    columns = multi["boxes"][:, 0].tolist(), multi["labels"].tolist(), multi["scores"].tolist()
    found = sorted(zip(*columns, strict=True))
    assert found == [(0, 0, 0.5), (20, 0, 0.75), (20, 1, 0.5)]


def _pair(x: float, iou: float, label: int = 0) -> list[Box]:
    """A 40 px square at (x, 0) scoring 0.9 and, scoring 0.8, the same square moved right until their IoU is `iou`."""
    first = Box(x, 0, x + 40, 40, 0.9, label)
    return [first, first.moved(40 * (1 - iou) / (1 + iou), 0.8)]


def test_nms_suppresses_a_box_overlapping_a_better_one_of_its_class_above_iou_045():
    boxes = _pair(0, 0.40) + _pair(100, 0.50) + _pair(200, 0.60) + _pair(300, 0.70)
    decoded = torch.tensor([[[b.x1, b.y1, b.x2, b.y2, b.score, 1.0] for b in boxes]], dtype=torch.float32)
    kept = postprocess(decoded)[0]["boxes"][:, 0].tolist()  # default IoU 0.45
    assert sorted(kept) == pytest.approx(sorted([0, 100, 200, 300, boxes[1].x1]))
    assert len(postprocess(decoded, iou=0.65)[0]["boxes"]) == 7  # only the IoU 0.7 pair is over 0.65


# What `predict` finds with its defaults (conf 0.25, NMS IoU 0.45) when the network's raw outputs hold these boxes:
# the second box of the class-0 pair (IoU 0.5) is suppressed, both of the class-1 pair (IoU 0.4) are kept, and of
# two class-2 boxes only the one over 0.25.
PLANNED = [
    *_pair(4, 0.5, label=0),
    *_pair(60, 0.4, label=1),
    Box(10, 70, 40, 120, 0.2, 2),
    Box(70, 70, 110, 100, 0.3, 2),
]
PREDICTED = [PLANNED[i] for i in (0, 2, 3, 5)]


def _assert_predicted(detections: list[dict], classes: list[str]) -> None:
    assert len(detections) == len(PREDICTED)
    expected = sorted(PREDICTED, key=lambda b: (b.x1, b.y1))
    for d, b in zip(sorted(detections, key=lambda d: d["box"]), expected, strict=True):
        assert d["box"] == pytest.approx([b.x1, b.y1, b.x2, b.y2], abs=0.051)
        assert d["score"] == pytest.approx(b.score, abs=1e-4)
        assert (d["class_id"], d["class"]) == (b.label, classes[b.label])


def test_predict_keeps_boxes_over_025_and_suppresses_overlaps_over_045(weights, scenes, monkeypatch):
    classes, truth = scene_truth(scenes)
    known_outputs(monkeypatch, YOLOv3, [(None, PLANNED)])
    found, failures = DetectorPredictor.load(weights).predict([truth[0].path])
    assert not failures
    _assert_predicted(found[0]["detections"], classes)


def test_detect_predict_has_the_same_defaults(weights, scenes, monkeypatch, capsys):
    classes, truth = scene_truth(scenes)
    known_outputs(monkeypatch, YOLOv3, [(None, PLANNED)])
    code, out, err = mmkit(capsys, "detect", "predict", truth[0].path, "--weights", weights, "--json")
    assert code == 0, err
    _assert_predicted(json.loads(out)["predictions"][0]["detections"], classes)


def test_evaluate_equals_pycocotools_on_files_written_here(weights, scenes, tmp_path, monkeypatch):
    """`evaluate` keeps boxes down to 0.001 (the plan's 0.05 ones included) and reports pycocotools' numbers."""
    reference = planned_evaluation(monkeypatch, YOLOv3, scenes, tmp_path)
    result = DetectorPredictor.load(weights).evaluate(str(scenes), out=tmp_path / "eval")
    reference.check(result, tmp_path / "eval")
