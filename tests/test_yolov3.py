"""YOLOv3 / YOLOv3-tiny: shapes, decoding, NMS post-processing, the loss (it must overfit one image so that decode
and loss agree), k-means anchors and ONNX export checked against ONNX Runtime."""

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.ops import box_iou

from mmkit.errors import MMKitError
from mmkit.losses.detection import YOLOv3Loss
from mmkit.models import get_model, get_model_info, list_models
from mmkit.models.anchors import anchors_for, best_possible_recall, kmeans_anchors
from mmkit.models.yolov3 import YOLOV3_TINY_ANCHORS, ConvAct, YOLOv3, can_pack, postprocess


def test_registered_as_detectors():
    assert {"yolov3", "yolov3-tiny"} <= set(list_models(task="detect"))
    for name in ("yolov3", "yolov3-tiny"):
        info = get_model_info(name)
        assert (info.task, info.family, info.default_input_size) == ("detect", "yolov3", 416)
    assert isinstance(get_model("yolov3-tiny", num_classes=2), YOLOv3)


def test_parameter_counts_match_darknet():
    """The published sizes of the Darknet cfgs for 80 classes (built on the meta device: free)."""
    with torch.device("meta"):
        counts = {
            n: sum(p.numel() for p in get_model(n, num_classes=80).parameters())
            for n in ("yolov3", "yolov3-tiny")
        }
    assert counts == {"yolov3": 61_949_149, "yolov3-tiny": 8_852_366}


@pytest.mark.parametrize("name,strides", [("yolov3", (8, 16, 32)), ("yolov3-tiny", (16, 32))])
def test_shapes_at_several_sizes(name, strides):
    torch.manual_seed(0)
    model = get_model(
        name, num_classes=4, width=0.5 if name == "yolov3" else 1.0
    ).eval()  # half width: 4x faster
    assert model.strides == strides
    for h, w in ((64, 64), (96, 96), (128, 128), (64, 96)):
        x = torch.rand(2, 3, h, w)
        with torch.no_grad():
            outs = model(x)
            dec = model.decode(outs, (h, w))
        assert [o.shape for o in outs] == [(2, 3, h // s, w // s, 9) for s in strides]
        n = sum(3 * (h // s) * (w // s) for s in strides)
        assert dec.shape == (2, n, 9) and torch.isfinite(dec).all()
        boxes = dec[..., :4]
        assert (boxes[..., 0] >= 0).all() and (boxes[..., 2] <= w).all() and (boxes[..., 3] <= h).all()
        assert (boxes[..., 2:] >= boxes[..., :2]).all()
        assert ((dec[..., 4:] > 0) & (dec[..., 4:] < 1)).all()
        # biases start objectness at ~0.01 and class probabilities at ~1/C
        assert 0.002 < dec[..., 4].mean() < 0.05 and 0.1 < dec[..., 5:].mean() < 0.5
    with pytest.raises(MMKitError, match="multiple of 32"):
        model(torch.rand(1, 3, 64, 80))


def test_width_in_chans_and_bad_anchors():
    small = get_model("yolov3-tiny", num_classes=3, width=0.5, in_chans=1)
    full = get_model("yolov3-tiny", num_classes=3)
    n_small, n_full = (sum(p.numel() for p in m.parameters()) for m in (small, full))
    assert n_small < n_full / 3
    assert small(torch.rand(1, 1, 64, 64))[0].shape == (1, 3, 4, 4, 8)
    with pytest.raises(MMKitError, match="anchors"):
        get_model("yolov3-tiny", num_classes=3, anchors=[[(10, 10)] * 3] * 3)  # tiny has 2 scales


def test_decode_of_known_raw_values():
    """Zero raw outputs put every box at its cell's centre with exactly the anchor's size (scaled to the input)."""
    model = YOLOv3(2, tiny=True, anchor_size=416)
    h, w = 128, 192  # anchors scale by max(h, w) / 416
    outs = [torch.zeros(1, 3, h // s, w // s, 7) for s in model.strides]
    outs[1][0, 2, 1, 2, 4] = 3.0  # stride 32, anchor 2, cell (x=2, y=1): objectness logit 3
    outs[1][0, 2, 1, 2, 0] = 10.0  # and its x offset saturates: sigmoid*2 - 0.5 -> 1.5 cells
    dec = model.decode(outs, (h, w))
    assert dec.shape == (1, 3 * (8 * 12 + 4 * 6), 7)
    scale = 192 / 416
    first = dec[0, 0]  # stride 16, anchor 0 (10x14 px at 416), cell (0, 0): centre (8, 8)
    aw, ah = 10 * scale, 14 * scale
    assert torch.allclose(
        first[:4], torch.tensor([8 - aw / 2, 8 - ah / 2, 8 + aw / 2, 8 + ah / 2]), atol=1e-4
    )
    i = 3 * 8 * 12 + (2 * 4 + 1) * 6 + 2  # flattened index: after scale 0, anchor 2, row 1, col 2
    others = torch.cat([dec[0, :i, 4:], dec[0, i + 1 :, 4:]])
    assert torch.allclose(others, torch.full_like(others, 0.5))
    box = dec[0, i]
    aw, ah = 344 * scale, 319 * scale
    cx, cy = (2 + 2 * torch.sigmoid(torch.tensor(10.0)).item() - 0.5) * 32, (1 + 0.5) * 32
    expected = torch.tensor([cx - aw / 2, cy - ah / 2, cx + aw / 2, cy + ah / 2]).clamp(min=0)
    expected[2], expected[3] = min(expected[2], w), min(expected[3], h)
    assert torch.allclose(box[:4], expected, atol=1e-3)
    assert box[4] == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item())


def _decoded(rows: list[list[float]], n_classes: int = 2) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).view(-1, 5 + n_classes)


def test_postprocess_keeps_the_right_boxes():
    img0 = _decoded(
        [
            [10, 10, 50, 50, 0.9, 0.9, 0.1],  # kept (score 0.81)
            [12, 12, 52, 52, 0.8, 0.9, 0.1],  # same class, IoU 0.82 with the first: suppressed
            [12, 12, 52, 52, 0.8, 0.1, 0.9],  # other class: kept (class-aware NMS)
            [100, 100, 120, 130, 0.5, 0.8, 0.2],  # far away: kept (0.4)
            [200, 200, 220, 220, 0.3, 0.5, 0.5],  # score 0.15 < conf: dropped
        ]
    )
    img1 = _decoded([[0, 0, 10, 10, 0.1, 0.9, 0.9], [5, 5, 30, 30, 0.2, 0.5, 0.5]])
    img1 = torch.cat([img1, torch.zeros(3, 7)])
    out = postprocess(torch.stack([img0, img1]), conf=0.25, iou=0.45)
    assert len(out) == 2
    r = out[0]
    assert r["labels"].dtype == torch.int64
    assert torch.allclose(r["scores"], torch.tensor([0.81, 0.72, 0.4]))
    assert r["labels"].tolist() == [0, 1, 0]
    assert torch.equal(r["boxes"], img0[[0, 2, 3], :4])
    assert out[1]["boxes"].shape == (0, 4) and out[1]["scores"].shape == (0,)
    # multi-label: one box above conf for both classes gives two detections; max_det caps the count
    both = _decoded([[0, 0, 10, 10, 1.0, 0.9, 0.8]])[None]
    assert postprocess(both, multi_label=True)[0]["labels"].tolist() == [0, 1]
    assert postprocess(both)[0]["labels"].tolist() == [0]
    assert len(postprocess(img0[None], max_det=2)[0]["scores"]) == 2


def _two_box_scene(size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """A noisy grey image with a red square (class 0) and a tall blue rectangle (class 1)."""
    g = torch.Generator().manual_seed(0)
    x = 0.4 + 0.05 * torch.randn(1, 3, size, size, generator=g)
    boxes = torch.tensor([[16.0, 20.0, 56.0, 60.0], [76.0, 40.0, 100.0, 112.0]])
    for (x1, y1, x2, y2), color in zip(boxes.int().tolist(), ([1.0, 0.1, 0.1], [0.1, 0.2, 1.0]), strict=True):
        x[0, :, y1:y2, x1:x2] = torch.tensor(color)[:, None, None]
    targets = torch.cat([torch.zeros(2, 1), torch.tensor([[0.0], [1.0]]), boxes], 1)
    return x, targets


def test_loss_parts_and_empty_targets():
    torch.manual_seed(0)
    model = get_model("yolov3-tiny", num_classes=2)
    x, targets = _two_box_scene()
    x = x.repeat(2, 1, 1, 1)
    targets = torch.cat([targets, targets[:1] + torch.tensor([1.0, 0, 0, 0, 0, 0])])  # image 1: one box
    loss, parts = YOLOv3Loss(model)(model(x), targets, (128, 128))
    assert torch.isfinite(loss) and loss > 0 and loss.requires_grad
    assert set(parts) == {"box", "obj", "cls"} and all(v > 0 and not v.requires_grad for v in parts.values())
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    for crit in (YOLOv3Loss(model), YOLOv3Loss(model, ignore_iou=None, neighbours=False, box_loss="giou")):
        empty, parts = crit(model(x), torch.zeros(0, 6), (128, 128))
        assert torch.isfinite(empty) and empty > 0 and parts["box"] == 0 and parts["cls"] == 0
        empty.backward()


def test_overfit_one_image_then_find_both_boxes():
    """60 Adam steps on one image: the loss falls, and decode + NMS of the trained model find both boxes."""
    torch.manual_seed(0)
    model = get_model("yolov3-tiny", num_classes=2, width=0.5)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.1  # let the running statistics catch up within 60 steps
    x, targets = _two_box_scene()
    crit = YOLOv3Loss(model)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(60):
        loss, _ = crit(model(x), targets, (128, 128))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.3 * np.mean(losses[:5])
    model.eval()
    with torch.no_grad():
        det = postprocess(model.inference(x), conf=0.25)[0]
    for gt_box, label in zip(targets[:, 2:], targets[:, 1].long(), strict=True):
        same = det["labels"] == label
        assert same.any(), f"class {label.item()} not found: {det}"
        assert box_iou(det["boxes"][same][:1], gt_box[None]).item() > 0.5


def test_kmeans_recovers_three_size_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[12.0, 10.0], [40.0, 22.0], [110.0, 150.0]])
    wh = np.concatenate([c * rng.uniform(0.9, 1.1, (200, 2)) for c in centres])
    found = kmeans_anchors(wh, k=3, seed=1)
    assert found.shape == (3, 2)
    assert np.all(np.diff(found.prod(1)) > 0)  # sorted by area
    np.testing.assert_allclose(found, centres, rtol=0.06)
    assert best_possible_recall(wh, found) == 1.0
    assert best_possible_recall(np.array([[2000.0, 2000.0], [12.0, 10.0]]), found) == 0.5
    with pytest.raises(MMKitError, match="at least k=9"):
        kmeans_anchors(wh[:5], k=9)


def test_anchors_for_splits_by_scale():
    k6 = kmeans_anchors(np.random.default_rng(0).uniform(5, 200, (300, 2)), k=6)
    tiny = anchors_for(k6, tiny=True)
    assert [len(s) for s in tiny] == [3, 3]
    areas = [w * h for s in tiny for w, h in s]
    assert areas == sorted(areas)
    assert [len(s) for s in anchors_for(np.arange(1, 19).reshape(9, 2), tiny=False)] == [3, 3, 3]
    with pytest.raises(MMKitError, match="split evenly"):
        anchors_for(k6[:5], tiny=True)
    model = get_model("yolov3-tiny", num_classes=2, anchors=tiny, anchor_size=256)
    np.testing.assert_allclose(model.anchors.numpy(), np.array(tiny), rtol=1e-6)
    assert torch.allclose(model.anchors_at((512, 512)), 2 * model.anchors)
    assert best_possible_recall(k6, YOLOV3_TINY_ANCHORS) == 1.0


class _Inference(nn.Module):
    def __init__(self, model: YOLOv3) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.inference(x)


def test_onnx_export_matches_pytorch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    model = _Inference(get_model("yolov3-tiny", num_classes=3, width=0.25)).eval()
    path = tmp_path / "yolo.onnx"
    torch.onnx.export(
        model,
        (torch.rand(2, 3, 64, 96),),
        str(path),
        dynamo=True,
        external_data=False,
        input_names=["images"],
        output_names=["detections"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = torch.rand(batch, 3, 64, 96)
        with torch.no_grad():
            expected = model(x).numpy()
        (got,) = session.run(None, {"images": x.numpy()})
        assert got.shape == expected.shape == (batch, 3 * (4 * 6 + 2 * 3), 8)
        assert np.abs(got - expected).max() < 1e-3


# ---------------------------------------------------------------------------------------------------------------------
# The fused inference copy (what the detect predictor runs)


def _random_batch_norms(model: nn.Module) -> nn.Module:
    """`model` in eval mode with every BatchNorm's statistics and affine terms drawn from U(0.5, 1.5), so that
    folding them into the convolutions changes the weights."""
    g = torch.Generator().manual_seed(1)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        for t in (bn.running_mean, bn.running_var, bn.weight.data, bn.bias.data):
            t.copy_(0.5 + torch.rand(t.shape, generator=g))
    return model.eval()


@pytest.mark.parametrize("pack", [False, True])
@pytest.mark.parametrize("name", ["yolov3-tiny", "yolov3"])
def test_fused_copy_gives_the_same_outputs(name, pack):
    if pack and not can_pack(torch.device("cpu")):
        pytest.skip("packed oneDNN convolutions need PyTorch's oneDNN on an x86 CPU")
    torch.manual_seed(0)
    model = _random_batch_norms(get_model(name, num_classes=4, box_coding="darknet"))
    keys = list(model.state_dict())
    fused = model.fused(pack=pack)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert sum(isinstance(m, ConvAct) and m.packed for m in fused.modules()) == (
        len([m for m in model.modules() if isinstance(m, nn.Conv2d)]) if pack else 0
    )
    assert (
        list(model.state_dict()) == keys and model.body.head32[0][1].training is False
    )  # model left as it was
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        for ours, theirs in zip(fused(x), model(x), strict=True):
            torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(fused.inference(x), model.inference(x), rtol=1e-4, atol=1e-4)


def test_detect_predictor_runs_the_fused_copy_and_keeps_the_loaded_network():
    from mmkit.tasks.detect import DetectorMeta, DetectorPredictor

    torch.manual_seed(0)
    meta = DetectorMeta("yolov3-tiny", 3, 64, ["a", "b", "c"], {"width": 0.25})
    net = _random_batch_norms(DetectorPredictor.network(meta))
    p = DetectorPredictor(net, meta, torch.device("cpu"), "random")
    assert p.net is net and any(
        isinstance(m, nn.BatchNorm2d) for m in p.net.modules()
    )  # saved and exported as is
    assert p.runner is p.runner and not any(isinstance(m, nn.BatchNorm2d) for m in p.runner.modules())
    packed = [m.packed for m in p.runner.modules() if isinstance(m, ConvAct)]
    assert packed and all(packed) == can_pack(torch.device("cpu"))
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        torch.testing.assert_close(p.runner.inference(x), p.net.inference(x), rtol=1e-4, atol=1e-4)
