"""Detection end to end through the `mmkit` command, on small synthetic scenes written to disk."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from _cli import mmkit, run_fixture, synth_fixture
from _detector import known_outputs, planned_evaluation, scene_truth

from mmkit.engine import load_checkpoint
from mmkit.models.localizer import Localizer
from mmkit.models.yolov3 import YOLOv3

scenes = synth_fixture("detection", "--format", "yolo", "--n", "24", "--seed", "3", "--img-size", "128")
detect_run = run_fixture(
    "detect", "--model", "yolov3-tiny", "--img-size", "128", "--epochs", "2", "--batch-size", "8",
    "--device", "cpu", "--workers", "0", data="scenes",
)  # fmt: skip


def evaluate(capsys, weights: Path, scenes: Path, out: Path) -> dict:
    """`mmkit detect eval --json`, which must succeed: what it prints."""
    code, printed, _ = mmkit(
        capsys, "detect", "eval", "--weights", weights, "--data", scenes, "--out", out, "--json"
    )
    assert code == 0
    return json.loads(printed)


def test_synth_writes_a_yolo_dataset(scenes):
    assert (scenes / "data.yaml").is_file()
    assert len(list((scenes / "images" / "train").iterdir())) == 24
    assert len(list((scenes / "labels" / "train").glob("*.txt"))) >= 20


def test_train_writes_a_detect_run(detect_run, scenes):
    from mmkit.tasks.detect.anchor_fitting import anchors

    for f in ("config.yaml", "metrics.csv", "last.pt", "best.pt", "curves.png", "report.html"):
        assert (detect_run / f).is_file(), f
    ck = load_checkpoint(detect_run / "best.pt")
    assert ck["task"] == "detect" and len(ck["meta"]["classes"]) == 13
    # --anchors auto: k-means on the training boxes at the training size, what `detect anchors` reports
    kw = ck["meta"]["model_kwargs"]
    expected = torch.tensor(anchors(str(scenes), tiny=True, img_size=128)["anchors"])
    assert kw["anchor_size"] == 128
    torch.testing.assert_close(torch.tensor(kw["anchors"]), expected)
    torch.testing.assert_close(ck["model"]["anchors"], expected)
    header = (detect_run / "metrics.csv").read_text().splitlines()[0]
    assert "val/map" in header and "val/map50" in header and "train/box" in header


def test_eval_equals_pycocotools_on_its_own_files(detect_run, scenes, tmp_path, capsys, monkeypatch):
    """The trained detector's raw outputs set to known, imperfect detections (tests/_detector.py): eval writes them
    and reports pycocotools' mAP on ground truth and detections written by the test."""
    reference = planned_evaluation(monkeypatch, YOLOv3, scenes, tmp_path)
    r = evaluate(capsys, detect_run / "best.pt", scenes, tmp_path)
    assert r["images"] == 2
    reference.check(r, tmp_path)


def test_predict_draws_boxes_and_reports_bad_files(detect_run, scenes, tmp_path, capsys, monkeypatch):
    scene = scene_truth(scenes)[1][0]
    img = scene.path
    planned = [b.moved(0.0, 0.9 - 0.1 * i) for i, b in enumerate(scene.boxes)]
    known_outputs(monkeypatch, YOLOv3, [(scene.pixels, [*planned, scene.boxes[0].moved(20.0, 0.005)])])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    code, out, err = mmkit(
        capsys, "detect", "predict", img, bad, "--weights", detect_run / "best.pt", "--conf", "0.01",
        "--save-dir", tmp_path / "drawn", "--json",
    )  # fmt: skip
    assert code == 2 and "bad.png" in err
    r = json.loads(out)["predictions"][0]
    assert r["width"] == 128 and r["height"] == 128
    assert len(r["detections"]) == len(planned)  # the 0.005 box is under --conf
    for d, b in zip(sorted(r["detections"], key=lambda d: -d["score"]), planned, strict=True):
        assert d["box"] == pytest.approx([b.x1, b.y1, b.x2, b.y2], abs=0.051)
        assert d["score"] == pytest.approx(b.score, abs=1e-4) and d["class_id"] == b.label
    assert (tmp_path / "drawn" / (img.stem + ".png")).is_file()


def test_export_onnx_decodes_in_graph(detect_run, tmp_path, capsys):
    code, out, _ = mmkit(
        capsys, "detect", "export", "--weights", detect_run / "best.pt", "--out", tmp_path / "yolo.onnx",
        "--json",
    )  # fmt: skip
    assert code == 0
    r = json.loads(out)
    assert r["max_abs_diff"] < 1e-3
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp_path / "yolo.onnx"))
    y = sess.run(None, {sess.get_inputs()[0].name: torch.rand(1, 3, 128, 128).numpy()})[0]
    assert y.shape[0] == 1 and y.shape[2] == 5 + 13  # x1 y1 x2 y2 obj + 13 class probabilities


def test_convert_both_ways_and_anchors(scenes, tmp_path, capsys):
    code, _, _ = mmkit(capsys, "data", "convert", "--from", "yolo", "--to", "coco", scenes, tmp_path / "coco")
    assert code == 0
    code, _, _ = mmkit(
        capsys, "data", "convert", "--from", "coco", "--to", "yolo", tmp_path / "coco", tmp_path / "back"
    )
    assert code == 0 and (tmp_path / "back" / "data.yaml").is_file()
    code, out, _ = mmkit(
        capsys, "detect", "anchors", "--data", scenes, "--img-size", "128", "--tiny", "--json"
    )
    r = json.loads(out)
    assert code == 0 and len(r["anchors"]) == 2 and len(r["anchors"][0]) == 3
    assert 0.5 < r["recall"] <= 1.0


def test_bad_labels_are_reported_with_file_and_line(scenes, tmp_path, capsys):
    import shutil

    d = tmp_path / "broken"
    shutil.copytree(scenes, d)
    text = (d / "data.yaml").read_text().replace(str(scenes), str(d))
    (d / "data.yaml").write_text(text)
    label = sorted((d / "labels" / "train").glob("*.txt"))[0]
    label.write_text(label.read_text() + "99 0.5 0.5 0.1 0.1\nnot a line\n")
    code, out, err = mmkit(capsys, "data", "show", d / "data.yaml", "--out", tmp_path / "g.png", "--json")
    assert code == 0
    problems = json.loads(out)["problems"]
    assert any(label.name in p and "99" in p for p in problems)
    assert any(label.name in p and "malformed" in p.lower() for p in problems)


def test_localizer_trains_and_evaluates(scenes, tmp_path, capsys, monkeypatch):
    code, out, err = mmkit(
        capsys, "detect", "train", "--data", scenes, "--model", "localizer", "--img-size", "128",
        "--epochs", "1", "--batch-size", "8", "--project", tmp_path, "--name", "loc", "--device", "cpu",
        "--workers", "0", "--no-augment", "--width", "0.5", "--json",
    )  # fmt: skip
    assert code == 0, err
    run = Path(json.loads(out)["run_dir"])
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["task_args"]["augment"] is False and config["task_args"]["width"] == 0.5
    assert load_checkpoint(run / "best.pt")["meta"]["model_kwargs"] == {"width": 0.5}
    # its one box per image set to the first ground-truth box: eval reports pycocotools' mAP of those boxes
    reference = planned_evaluation(monkeypatch, Localizer, scenes, tmp_path, plan=lambda boxes, *_: boxes[:1])
    reference.check(evaluate(capsys, run / "best.pt", scenes, tmp_path / "ev"), tmp_path / "ev")
    code, _, err = mmkit(capsys, "detect", "export", "--weights", run / "best.pt")
    assert code == 2 and "YOLO" in err


def test_builtin_recipes_fill_what_the_command_line_did_not_give(monkeypatch, capsys, tmp_path):
    """`detect train --data digit-scenes` runs the README's recipe; a folder gets the task's defaults."""
    from mmkit.cli import common

    calls = []
    monkeypatch.setattr(common, "run_train", lambda task, t, e, **kw: calls.append((t, e)))
    assert mmkit(capsys, "detect", "train", "--data", "digit-scenes", "--epochs", "2")[0] == 0
    assert mmkit(capsys, "detect", "train", "--data", tmp_path)[0] == 0
    assert mmkit(capsys, "detect", "train", "--data", "digit-scenes-large", "--ignore-iou", "0.3")[0] == 0
    (readme, engine), (folder, folder_engine), (large, large_engine) = calls
    assert engine["epochs"] == 2  # given: kept
    assert (engine["batch_size"], engine["lr"], engine["weight_decay"]) == (8, 2e-3, 0.03)
    assert (readme["model"], readme["img_size"], readme["width"]) == ("yolov3-tiny", 256, 0.5)
    assert (folder_engine["epochs"], folder_engine["batch_size"], folder_engine["warmup"]) == (30, 16, 1.0)
    assert folder["img_size"] is None and folder["width"] == 1.0
    assert large["augment"] is False and large["ignore_iou"] == 0.3 and large_engine["warmup"] == 0.02


def test_the_package_keeps_its_functions_beside_its_submodules():
    """`predict` is the function the package exports (beside its `predictor` submodule), also once the submodules
    are loaded; the package's names are the task's main API, `anchors` stays in its submodule."""
    import importlib

    import mmkit.tasks.detect as det
    from mmkit.tasks.detect.predictor import PREDICTOR  # loads the submodules first
    from mmkit.tasks.detect.task import DetectTask

    assert callable(det.predict) and det.predict.__name__ == "predict"
    assert not hasattr(det, "anchors") and callable(
        importlib.import_module("mmkit.tasks.detect.anchor_fitting").anchors
    )
    assert importlib.import_module("mmkit.tasks.detect.predictor").PREDICTOR is PREDICTOR
    assert det.DetectTask is DetectTask and det.SPEC.predictor() is PREDICTOR
    task = DetectTask("digit-scenes", "yolov3-tiny", ignore_iou=None, model_kwargs={"width": 0.5})
    assert task.ignore_iou is None and task.model_kwargs == {"width": 0.5}
    assert DetectTask("d", width=0.5, ignore_iou=0.0).ignore_iou is None
