"""Detection data: YOLO and COCO readers and writers, conversion, bad labels, COCO ground truth, transforms."""

import json
import logging

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from mmkit.data.detection import (
    DetectionFileDataset,
    coco_ground_truth,
    convert_detection,
    detection_collate,
    load_detection_data,
    write_detection_dataset,
)
from mmkit.data.detection_transforms import (
    PAD_VALUE,
    build_detection_transforms,
    letterbox_params,
    unletterbox_boxes,
)
from mmkit.data.formats.yolo import ImageRecord
from mmkit.data.synthetic import DETECTION_CLASSES, make_detection_scenes
from mmkit.errors import MMKitError


@pytest.fixture(scope="module")
def splits():
    return {
        "train": make_detection_scenes(5, seed=11, img_size=96),
        "val": make_detection_scenes(2, seed=11, img_size=96, digit_split="val"),
    }


def _all_targets(dataset):
    return [dataset.target(i) for i in range(len(dataset))]


def _assert_same_boxes(got, want, atol):
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a["labels"], b["labels"])
        assert torch.allclose(a["boxes"], b["boxes"], atol=atol)


@pytest.mark.parametrize("fmt", ["yolo", "coco"])
def test_written_dataset_loads_back_identically(tmp_path, splits, fmt):
    out = write_detection_dataset(splits, tmp_path / fmt, format=fmt, classes=DETECTION_CLASSES)
    assert out == (tmp_path / fmt / "data.yaml" if fmt == "yolo" else tmp_path / fmt)
    data = load_detection_data(out)
    assert data.classes == DETECTION_CLASSES and not data.problems
    for split in ("train", "val"):
        loaded = getattr(data, split)
        _assert_same_boxes(_all_targets(loaded), _all_targets(splits[split]), atol=1e-3)
        assert loaded.size(0) == (96, 96)
    image, target = data.val[1]
    assert torch.equal(image, splits["val"][1][0]) and target["path"].endswith(".png")
    with pytest.raises(MMKitError, match="already exists"):
        write_detection_dataset(splits, tmp_path / fmt, format=fmt, classes=DETECTION_CLASSES)


def test_convert_yolo_to_coco_to_yolo_keeps_boxes(tmp_path, splits):
    yolo = write_detection_dataset(splits, tmp_path / "a", format="yolo", classes=DETECTION_CLASSES)
    coco = convert_detection(yolo, tmp_path / "b", to="coco", from_format="yolo")
    assert (coco / "annotations" / "instances_train.json").is_file()
    back = convert_detection(coco, tmp_path / "c", to="yolo")
    data = load_detection_data(back)
    for split in ("train", "val"):
        _assert_same_boxes(_all_targets(getattr(data, split)), _all_targets(splits[split]), atol=1e-3 * 96)
    with pytest.raises(MMKitError, match="is a yolo dataset, not coco"):
        convert_detection(yolo, tmp_path / "d", to="coco", from_format="coco")


def _png(path, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 20, 30)).save(path)


@pytest.fixture
def bad_yolo(tmp_path):
    root = tmp_path / "bad"
    for name in ("a", "b", "c"):
        _png(root / "images" / "train" / f"{name}.png")  # 40 wide, 30 high
    (root / "images" / "train" / "broken.png").write_bytes(b"not a png at all")
    labels = root / "labels" / "train"
    labels.mkdir(parents=True)
    (labels / "a.txt").write_text(
        "0 0.5 0.5 0.5 0.5\n"  # good
        "1 0.5 0.5\n"  # malformed
        "99 0.5 0.5 0.2 0.2\n"  # class out of range
        "1 0.9 0.5 0.5 0.2\n"  # outside: x2 = 1.15
        "\n"
        "1 0.25 0.5 0.5 1.0005\n"  # overshoot within tolerance: clipped, kept
    )
    (labels / "b.txt").write_text("one 0.5 0.5 0.1 0.1\n")
    (labels / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (labels / "classes.txt").write_text("cat\ndog\n")
    (root / "data.yaml").write_text(yaml.safe_dump({"train": "images/train", "names": ["cat", "dog"]}))
    return root


def test_bad_yolo_labels_are_reported_with_file_and_line(bad_yolo, caplog):
    with caplog.at_level(logging.WARNING):
        data = load_detection_data(bad_yolo, val_split=0.0)  # a folder holding data.yaml; no val given
    labels = bad_yolo / "labels" / "train"
    expected = [
        f"{labels / 'a.txt'}:2: malformed line",
        f"{labels / 'a.txt'}:3: class 99 out of range",
        f"{labels / 'a.txt'}:4: box outside the image",
        f"{labels / 'b.txt'}:1: malformed line",
        f"{labels / 'ghost.txt'}: label file has no image",
        f"{bad_yolo / 'images' / 'train' / 'broken.png'}: cannot read image",
    ]
    assert len(data.problems) == len(expected)
    for prefix in expected:
        assert sum(p.startswith(prefix) for p in data.problems) == 1, prefix
        assert prefix in caplog.text
    assert data.classes == ["cat", "dog"] and len(data.train) == 3 and len(data.val) == 0
    target = data.train.target(0)
    assert target["labels"].tolist() == [0, 1]
    assert torch.allclose(target["boxes"], torch.tensor([[10.0, 7.5, 30.0, 22.5], [0.0, 0.0, 20.0, 30.0]]))
    summary = data.summary()
    assert summary["train"] == {
        "images": 3,
        "boxes": 2,
        "empty_images": 2,
        "boxes_per_class": {"cat": 1, "dog": 1},
    }
    assert summary["problems"] == 6 and summary["val"]["images"] == 0


def test_yolo_val_split_is_held_out_when_missing(bad_yolo):
    data = load_detection_data(bad_yolo / "data.yaml", val_split=0.34, seed=0)
    assert len(data.train) == 2 and len(data.val) == 1
    ids = {data.train.target(i)["image_id"] for i in range(2)} | {data.val.target(0)["image_id"]}
    assert ids == {0, 1, 2}


def test_unusable_sources_raise_one_line_errors(tmp_path):
    (tmp_path / "data.yaml").write_text("train: images/train\n")
    with pytest.raises(MMKitError, match=r"data.yaml: missing key\(s\) names"):
        load_detection_data(tmp_path / "data.yaml")
    (tmp_path / "data.yaml").write_text("train: nowhere\nnames: [a]\n")
    with pytest.raises(MMKitError, match="image folder .*nowhere does not exist"):
        load_detection_data(tmp_path)
    (tmp_path / "notcoco.json").write_text(json.dumps({"images": [], "labels": []}))
    with pytest.raises(MMKitError, match=r"notcoco.json: not a COCO instances file"):
        load_detection_data(tmp_path / "notcoco.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(MMKitError, match=r"broken.json: cannot read JSON"):
        load_detection_data(tmp_path / "broken.json")
    with pytest.raises(MMKitError, match="no such builtin detection dataset"):
        load_detection_data("digit-scene")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MMKitError, match="empty: not a detection dataset"):
        load_detection_data(tmp_path / "empty")


def test_coco_reader_maps_categories_and_reports_bad_annotations(tmp_path):
    _png(tmp_path / "images" / "val2017" / "x.png", size=(50, 40))
    _png(tmp_path / "images" / "val2017" / "y.png", size=(50, 40))
    coco = {
        "images": [
            {"id": 5, "file_name": "x.png", "width": 50, "height": 40},
            {"id": 6, "file_name": "y.png", "width": 50, "height": 40},
            {"id": 7, "file_name": "missing.png", "width": 50, "height": 40},
        ],
        "categories": [{"id": 9, "name": "dog"}, {"id": 3, "name": "cat"}],
        "annotations": [
            {"id": 1, "image_id": 5, "category_id": 9, "bbox": [10, 5, 20, 10], "iscrowd": 0},
            {"id": 2, "image_id": 5, "category_id": 3, "bbox": [0, 0, 50.02, 40], "iscrowd": 0},
            {"id": 3, "image_id": 5, "category_id": 3, "bbox": [30, 5, 30, 10], "iscrowd": 0},
            {"id": 4, "image_id": 5, "category_id": 4, "bbox": [1, 1, 2, 2], "iscrowd": 0},
            {"id": 5, "image_id": 5, "category_id": 9, "bbox": [1, 1, 2], "iscrowd": 0},
            {"id": 6, "image_id": 5, "category_id": 9, "bbox": [1, 1, 5, 5], "iscrowd": 1},
            {"id": 7, "image_id": 7, "category_id": 9, "bbox": [1, 1, 5, 5], "iscrowd": 0},
        ],
    }
    path = tmp_path / "annotations" / "instances_val2017.json"
    path.parent.mkdir()
    path.write_text(json.dumps(coco))
    data = load_detection_data(path, val_split=0.0)
    assert data.classes == ["cat", "dog"]  # category ids 3, 9 -> classes 0, 1
    assert len(data.train) == 2
    target = data.train.target(0)
    assert target["image_id"] == 5 and target["labels"].tolist() == [1, 0]
    assert torch.allclose(target["boxes"], torch.tensor([[10.0, 5.0, 30.0, 15.0], [0.0, 0.0, 50.0, 40.0]]))
    assert data.train.target(1)["boxes"].shape == (0, 4)
    problems = "\n".join(data.problems)
    assert f"{path}: annotation 3: bbox" in problems and "outside" in problems
    assert f"{path}: annotation 4: unknown category_id 4" in problems
    assert f"{path}: annotation 5: malformed bbox" in problems
    assert f"{path}: image 7: image file not found" in problems
    assert f"{path}: skipped 1 iscrowd=1 annotation(s)" in problems
    assert len(data.problems) == 5  # annotation 7 belongs to the missing image: not reported twice
    assert data.summary()["train"]["empty_images"] == 1


def test_coco_ground_truth_is_cheap_and_loads_in_pycocotools(splits):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    records = [
        ImageRecord("/nonexistent/a.png", 64, 48, np.array([[1, 2, 11, 22]], np.float32), np.array([2]), 0),
        ImageRecord("/nonexistent/b.png", 32, 32, image_id=1),
    ]
    gt = coco_ground_truth(DetectionFileDataset(records, ["a", "b", "c"]), ["a", "b", "c"])  # never decodes
    assert gt["images"][0] == {"id": 0, "width": 64, "height": 48, "file_name": "a.png"}
    ann = gt["annotations"][0]
    assert ann["bbox"] == [1, 2, 10, 20] and ann["area"] == 200 and ann["category_id"] == 3
    assert ann["iscrowd"] == 0 and [c["id"] for c in gt["categories"]] == [1, 2, 3]

    dataset = splits["train"]
    coco = COCO()
    coco.dataset = coco_ground_truth(dataset, DETECTION_CLASSES)
    coco.createIndex()
    assert len(coco.getImgIds()) == 5 and len(coco.getAnnIds()) == sum(
        len(dataset.target(i)["labels"]) for i in range(5)
    )
    detections = [dict(a, score=1.0) for a in coco.dataset["annotations"]]
    evaluator = COCOeval(coco, coco.loadRes(detections), "bbox")
    evaluator.params.areaRng = [[0, 1e10]] * 4
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    assert evaluator.stats[0] == pytest.approx(1.0)


def test_detection_collate_drops_none_and_keeps_targets():
    image = torch.zeros(3, 8, 8)
    targets = [{"boxes": torch.zeros(0, 4)}, {"boxes": torch.ones(1, 4)}]
    images, kept = detection_collate([(image, targets[0]), None, (image + 1, targets[1])])
    assert images.shape == (2, 3, 8, 8) and images[1].max() == 1 and kept == targets
    assert detection_collate([None, None]) is None
    with pytest.raises(ValueError, match="different shapes"):
        detection_collate([(image, {}), (torch.zeros(3, 8, 9), {})])


def _square_image(height=120, width=200, box=(150, 20, 190, 60)):
    image = torch.zeros(3, height, width, dtype=torch.uint8)
    x1, y1, x2, y2 = box
    image[:, y1:y2, x1:x2] = 255
    target = {
        "boxes": torch.tensor([box], dtype=torch.float32),
        "labels": torch.tensor([4]),
        "image_id": 3,
        "path": "p",
    }
    return image, target


def _white_extent(image):
    white = image.mean(0) > 0.6 * image.max()
    rows, cols = torch.nonzero(white.any(1)).flatten(), torch.nonzero(white.any(0)).flatten()
    return torch.tensor([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=torch.float32)


def test_eval_transform_letterboxes_and_maps_back():
    image, target = _square_image()
    out, t = build_detection_transforms(False, 100)(image, target)
    assert out.shape == (3, 100, 100) and out.dtype == torch.float32 and out.min() >= 0 and out.max() <= 1
    assert t["orig_size"] == (120, 200) and t["scale"] == 0.5 and t["pad"] == (0, 20)
    assert t["image_id"] == 3 and t["labels"].tolist() == [4]
    assert torch.allclose(t["boxes"], torch.tensor([[75.0, 30.0, 95.0, 50.0]]))
    assert torch.allclose(_white_extent(out), t["boxes"][0], atol=1)
    assert out[:, :20].sub(PAD_VALUE / 255).abs().max() < 1e-6  # gray padding above and below
    back = unletterbox_boxes(t["boxes"], t["scale"], t["pad"], t["orig_size"])
    assert torch.allclose(back, target["boxes"], atol=1e-4)


def test_letterbox_round_trip_on_odd_sizes():
    for height, width, size in [(37, 91, 64), (300, 17, 128), (50, 50, 50)]:
        scale, pad, (new_h, new_w) = letterbox_params(height, width, size)
        assert max(new_h, new_w) == size and new_h <= size and new_w <= size
        boxes = torch.tensor([[0.0, 0.0, width, height], [3.0, 2.0, 9.5, 7.25]])
        mapped = boxes * scale + torch.tensor([pad[0], pad[1], pad[0], pad[1]])
        assert (mapped >= 0).all() and (mapped <= size).all()
        assert torch.allclose(unletterbox_boxes(mapped, scale, pad), boxes, atol=1e-4)


def test_train_transform_keeps_boxes_on_the_content_and_is_seeded():
    image, target = _square_image()
    transform = build_detection_transforms(True, 128, hflip=True)
    kept = 0
    for seed in range(8):
        torch.manual_seed(seed)
        out, t = transform(image, target)
        assert out.shape == (3, 128, 128) and out.dtype == torch.float32
        if len(t["boxes"]):
            kept += 1
            assert torch.allclose(_white_extent(out), t["boxes"][0], atol=1.5), seed
            assert t["labels"].tolist() == [4]
        torch.manual_seed(seed)
        again, t2 = transform(image, target)
        assert torch.equal(out, again) and torch.equal(t["boxes"], t2["boxes"])
    assert kept >= 4


def test_transformed_items_batch_through_a_dataloader(splits):
    from torch.utils.data import DataLoader

    from mmkit.data.detection_transforms import TransformedDetectionDataset

    dataset = TransformedDetectionDataset(splits["train"], build_detection_transforms(True, 64))
    assert dataset.target(1)["boxes"].equal(splits["train"].target(1)["boxes"]) and dataset.size(1) == (
        96,
        96,
    )
    torch.manual_seed(0)
    images, targets = next(iter(DataLoader(dataset, batch_size=4, collate_fn=detection_collate)))
    assert images.shape == (4, 3, 64, 64) and images.dtype == torch.float32 and len(targets) == 4
    for target in targets:
        assert target["boxes"].shape == (len(target["labels"]), 4)
        assert (target["boxes"] >= 0).all() and (target["boxes"] <= 64).all()
        assert target["orig_size"] == (96, 96) and target["scale"] == pytest.approx(64 / 96)
