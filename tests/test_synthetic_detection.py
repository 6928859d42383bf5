"""Synthetic detection scenes: item types, determinism, exact boxes, disjoint digit sources, writing to disk."""

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from mmkit.data.detection import load_detection_data
from mmkit.data.synthetic import (
    ALPHA_THRESHOLD,
    DETECTION_CLASSES,
    background,
    digit_pool,
    make_detection_scenes,
    write_synthetic_detection,
)


@pytest.fixture(scope="module")
def scenes():
    return make_detection_scenes(40, seed=3)


def test_items_have_the_documented_types(scenes):
    for i in range(5):
        image, target = scenes[i]
        assert image.dtype == torch.uint8 and image.shape == (3, 256, 256)
        boxes, labels = target["boxes"], target["labels"]
        assert boxes.dtype == torch.float32 and labels.dtype == torch.int64
        assert boxes.shape == (len(labels), 4) and 1 <= len(labels) <= 6
        assert ((labels >= 0) & (labels < len(DETECTION_CLASSES))).all()
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 256).all()
        assert (boxes[:, 2:] > boxes[:, :2]).all()
        assert target["image_id"] == i and isinstance(target["path"], str)
        assert scenes.size(i) == (256, 256)
        assert torch.equal(scenes.target(i)["boxes"], boxes)
    assert len(DETECTION_CLASSES) == 13 and DETECTION_CLASSES[10:] == ["circle", "square", "triangle"]


def test_a_scene_depends_only_on_seed_split_and_index(scenes):
    again = make_detection_scenes(40, seed=3)
    image, target = again[7]  # built first in a fresh dataset, out of order
    ref_image, ref_target = scenes[7]
    assert torch.equal(image, ref_image) and torch.equal(target["boxes"], ref_target["boxes"])
    other_seed = make_detection_scenes(40, seed=4)[7][0]
    other_split = make_detection_scenes(40, seed=3, digit_split="val")[7][0]
    assert not torch.equal(other_seed, ref_image) and not torch.equal(other_split, ref_image)


def test_boxes_are_the_tight_box_of_the_pasted_pixels(scenes):
    plain = make_detection_scenes(40, seed=3, plain=True)  # same layouts, white objects on black
    for i in range(12):
        image, target = plain[i]
        assert torch.equal(target["boxes"], scenes.target(i)["boxes"])
        drawn = image.amax(0) > 0
        inside = torch.zeros_like(drawn)
        for x1, y1, x2, y2 in target["boxes"].int().tolist():
            inside[y1:y2, x1:x2] = True
            box = drawn[y1:y2, x1:x2]
            assert box[0].any() and box[-1].any() and box[:, 0].any() and box[:, -1].any()
        assert not (drawn & ~inside).any(), "pixels drawn outside every box"
        for obj in plain.layout(i):  # each object alone fills its own box edge to edge
            x1, y1, x2, y2 = obj.box
            assert obj.mask.shape == (y2 - y1, x2 - x1)
            assert obj.mask[0].any() and obj.mask[-1].any() and obj.mask[:, 0].any() and obj.mask[:, -1].any()
            assert obj.mask[obj.mask > 0].min() >= ALPHA_THRESHOLD


def test_textured_scene_differs_from_its_background_only_inside_boxes(scenes):
    for i in range(6):
        image, target = scenes[i]
        bg = background(scenes.rng(i, 1), 256)  # the render stream draws the background first
        bg = torch.from_numpy(np.clip(bg + 0.5, 0, 255).astype(np.uint8))
        outside = torch.ones(256, 256, dtype=torch.bool)
        for x1, y1, x2, y2 in target["boxes"].int().tolist():
            outside[y1:y2, x1:x2] = False
        assert torch.equal(image[:, outside], bg[:, outside])
        assert image.float().std() > 10  # textured, not flat


def test_layout_statistics(scenes):
    heights, digits = [], 0
    for i in range(len(scenes)):
        target = scenes.target(i)
        boxes = target["boxes"]
        iou = box_iou(boxes, boxes) - torch.eye(len(boxes))
        assert iou.max() < 0.3
        is_digit = target["labels"] < 10
        digits += int(is_digit.sum())
        heights += (boxes[is_digit, 3] - boxes[is_digit, 1]).tolist()
    assert digits > 40
    assert min(heights) >= 22 and max(heights) <= 112 and max(heights) - min(heights) > 40


def test_train_and_val_use_disjoint_digit_images():
    train, val = digit_pool("train"), digit_pool("val")
    train_rows, val_rows = set(np.concatenate(train).tolist()), set(np.concatenate(val).tolist())
    assert not train_rows & val_rows and len(train_rows) == 4000 and len(val_rows) == 1000
    for split, rows in (("train", train_rows), ("val", val_rows)):
        ds = make_detection_scenes(30, seed=0, digit_split=split)
        sources = {o.source for i in range(len(ds)) for o in ds.layout(i) if o.source >= 0}
        assert sources and sources <= rows


def test_builtin_digit_scenes():
    data = load_detection_data("digit-scenes")
    assert len(data.train) == 2000 and len(data.val) == 300 and data.classes == DETECTION_CLASSES
    assert data.train.digit_split == "train" and data.val.digit_split == "val"
    assert not data.problems
    image, target = data.val[299]
    assert image.shape == (3, 256, 256) and len(target["labels"]) >= 1
    # the large variant: more training scenes from the same stream, the very same held-out scenes
    large = load_detection_data("digit-scenes-large")
    assert len(large.train) == 24000 and len(large.val) == 300
    assert torch.equal(large.val[299][0], image) and torch.equal(large.train[5][0], data.train[5][0])
    assert len(large.train.target(23999)["labels"]) >= 1


def test_write_synthetic_detection_yolo(tmp_path):
    out = write_synthetic_detection(tmp_path / "ds", format="yolo", n=6, seed=1, img_size=96)
    assert out.name == "data.yaml"
    data = load_detection_data(out)
    assert len(data.train) == 6 and len(data.val) == 1 and not data.problems
    ref = make_detection_scenes(6, seed=1, img_size=96)
    image, target = data.train[2]
    assert torch.equal(image, ref[2][0])  # PNG is lossless
    assert torch.allclose(target["boxes"], ref.target(2)["boxes"], atol=1e-3)


def test_write_synthetic_detection_coco_jpeg(tmp_path):
    out = write_synthetic_detection(
        tmp_path / "ds", format="coco", n=3, seed=2, img_size=64, image_format="jpg"
    )
    assert sorted(p.name for p in (out / "annotations").iterdir()) == [
        "instances_train.json",
        "instances_val.json",
    ]
    data = load_detection_data(out)
    assert len(data.train) == 3 and len(data.val) == 1 and data.classes == DETECTION_CLASSES
    ref = make_detection_scenes(1, seed=2, img_size=64, digit_split="val")
    image, target = data.val[0]
    assert target["path"].endswith(".jpg") and torch.equal(target["boxes"], ref.target(0)["boxes"])
    assert (image.float() - ref[0][0].float()).abs().mean() < 8  # JPEG is close, not exact


def test_large_objects_on_small_canvases_fit():
    """Heights up to 0.9 x the canvas: wide digits are scaled down to fit, never past the edge."""
    ds = make_detection_scenes(150, seed=0, img_size=64, objects=(1, 1), size_range=(96, 220))
    for i in range(len(ds)):
        image, target = ds[i]
        assert image.shape == (3, 64, 64) and len(target["boxes"]) == 1
        assert (target["boxes"] >= 0).all() and (target["boxes"] <= 64).all()
