"""Our COCO wrapper must report exactly what pycocotools reports, and behave on known cases."""

import json

import torch
from _coco import pycocotools_stats

from mmkit.metrics.detection import coco_evaluate, to_coco_results


def gt_dict():
    images = [{"id": i, "width": 100, "height": 100, "file_name": f"{i}.png"} for i in (1, 2)]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "area": 900, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [50, 50, 40, 20], "area": 800, "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 1, "bbox": [5, 60, 20, 30], "area": 600, "iscrowd": 0},
    ]
    cats = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]
    return {"images": images, "annotations": anns, "categories": cats}


def test_perfect_detections_score_one():
    gt = gt_dict()
    res = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
        for a in gt["annotations"]
    ]
    m = coco_evaluate(gt, res, ["a", "b", "c"])
    assert m["map"] == 1.0 and m["map50"] == 1.0
    assert set(m["per_class"]) == {"a", "b"}  # "c" has no ground truth


def test_matches_pycocotools_on_noisy_detections(tmp_path):
    gt = gt_dict()
    g = torch.Generator().manual_seed(0)
    res = []
    for a in gt["annotations"]:
        for _ in range(3):
            box = torch.tensor(a["bbox"], dtype=torch.float) + torch.randn(4, generator=g) * 4
            res.append(
                {
                    "image_id": a["image_id"],
                    "category_id": a["category_id"],
                    "bbox": box.tolist(),
                    "score": float(torch.rand(1, generator=g)),
                }
            )
    res.append({"image_id": 2, "category_id": 2, "bbox": [0, 0, 10, 10], "score": 0.99})  # a false positive
    m = coco_evaluate(gt, res, ["a", "b", "c"])
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(res))
    stats = pycocotools_stats(tmp_path / "gt.json", tmp_path / "dt.json")
    assert m["map"] == stats[0] and m["map50"] == stats[1]
    assert 0 < m["map"] < 1


def test_results_conversion_and_empty_cases():
    r = to_coco_results(7, torch.tensor([[10.0, 20.0, 30.0, 60.0]]), torch.tensor([0.5]), torch.tensor([2]))
    assert r == [{"image_id": 7, "category_id": 3, "bbox": [10.0, 20.0, 20.0, 40.0], "score": 0.5}]
    assert coco_evaluate(gt_dict(), [], ["a", "b", "c"])["map"] == 0.0


def test_recall_counts_up_to_100_detections_per_image():
    """12 objects found exactly in one image: recall is 1 with 100 detections allowed (10/12 with 10)."""
    boxes = [[10.0 * i, 5.0, 8.0, 8.0] for i in range(12)]
    anns = [
        {"id": i + 1, "image_id": 1, "category_id": 1, "bbox": b, "area": 64, "iscrowd": 0}
        for i, b in enumerate(boxes)
    ]
    gt = {
        "images": [{"id": 1, "width": 128, "height": 20}],
        "annotations": anns,
        "categories": [{"id": 1, "name": "a"}],
    }
    res = [{"image_id": 1, "category_id": 1, "bbox": b, "score": 0.9 - 0.01 * i} for i, b in enumerate(boxes)]
    assert coco_evaluate(gt, res, ["a"])["mar100"] == 1.0
