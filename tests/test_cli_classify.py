"""End to end through the `mmkit` command, on the builtin digits and real photos."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _cli import mmkit, run_fixture, train
from PIL import Image

from mmkit.engine import load_checkpoint

# one short digits training shared by the tests below
digits_run = run_fixture("classify", "--data", "digits", "--epochs", "4", "--lr", "3e-3", "--device", "cpu")


def test_train_writes_a_complete_run(digits_run):
    for f in (
        "config.yaml",
        "metrics.csv",
        "last.pt",
        "best.pt",
        "curves.png",
        "confusion_matrix.png",
        "report.html",
    ):
        assert (digits_run / f).is_file(), f
    ck = load_checkpoint(digits_run / "best.pt")
    assert ck["meta"]["classes"] == [str(i) for i in range(10)] and "optimizers" not in ck
    html = (digits_run / "report.html").read_text()
    assert "Confusion matrix" in html and "data:image/png;base64" in html


def test_eval_reports_accuracy_and_confusion(digits_run, tmp_path, capsys):
    code, out, _ = mmkit(
        capsys, "classify", "eval", "--weights", digits_run / "best.pt", "--data", "digits",
        "--out", tmp_path, "--json",
    )  # fmt: skip
    assert code == 0
    r = json.loads(out.strip().splitlines()[-1])
    assert r["split"] == "test" and r["images"] == 359
    assert r["top1"] > 80 and r["top5"] >= r["top1"]
    cm_png = Path(r["confusion_matrix"])
    assert cm_png.is_file() and (tmp_path / "metrics.json").is_file()
    assert len(r["per_class"]) == 10


def test_predict_with_a_trained_checkpoint(digits_run, tmp_path, capsys):
    from sklearn.datasets import load_digits

    d = load_digits()
    paths = []
    for i in range(4):
        img = (d.images[i] * 255 / 16).astype(np.uint8)
        p = tmp_path / f"digit{d.target[i]}_{i}.png"
        Image.fromarray(img).resize((32, 32), Image.NEAREST).save(p)
        paths.append(p)
    code, out, _ = mmkit(
        capsys, "classify", "predict", *paths, "--weights", digits_run / "best.pt", "--topk", "3", "--json",
        "--save-dir", tmp_path,
    )  # fmt: skip
    assert code == 0
    preds = json.loads(out)["predictions"]
    assert len(preds) == 4 and all(len(p["top"]) == 3 for p in preds)
    assert all(0 <= t["prob"] <= 1 for p in preds for t in p["top"])
    assert (tmp_path / "predictions.png").is_file()


def test_predict_resizes_any_size_as_training_did(tmp_path, capsys):
    """A model trained on 8-px digits at their own size reads the same digits at 28 and 64 px, and at 5 px
    (smaller than the net's input), all in one call with images of mixed sizes."""
    from sklearn.datasets import load_digits

    run = train(
        tmp_path, "classify", "--data", "digits", "--img-size", "8", "--epochs", "6", "--device", "cpu"
    )
    capsys.readouterr()  # the training's summary

    d = load_digits()
    picks = [i for i in range(1700, 1797)][:12]
    paths, truth = [], []
    for side in (8, 28, 64, 5):
        for i in picks:
            img = Image.fromarray((d.images[i] * 255 / 16).astype(np.uint8))
            p = tmp_path / f"{side}_{i}.png"
            (img if side == 8 else img.resize((side, side), Image.BILINEAR)).save(p)
            paths.append(p)
            truth.append(str(d.target[i]))
    code, out, err = mmkit(capsys, "classify", "predict", *paths, "--weights", run / "best.pt", "--json")
    assert code == 0, err
    labels = [p["top"][0]["label"] for p in json.loads(out)["predictions"]]
    n = len(picks)
    right = [
        sum(a == b for a, b in zip(labels[k * n : (k + 1) * n], truth[:n], strict=True)) for k in range(4)
    ]
    assert right[0] >= 0.75 * n, right  # at the training data's own size
    assert min(right[1:3]) >= 0.6 * n, (
        right
    )  # 28 and 64 px (smoothly enlarged): read too, far above chance (10 %)
    assert len(labels) == 4 * n  # 5 px: answered too (not a crash)


def test_predict_imagenet_names_real_photos(tmp_path, capsys):
    from skimage import data

    p = tmp_path / "chelsea.png"
    Image.fromarray(data.chelsea()).save(p)
    q = tmp_path / "coffee.jpg"
    Image.fromarray(data.coffee()).save(q)
    code, out, _ = mmkit(
        capsys, "classify", "predict", p, q, "--model", "efficientnet_lite0", "--weights", "imagenet",
        "--json",
    )  # fmt: skip
    assert code == 0
    preds = {Path(r["path"]).stem: [t["label"] for t in r["top"]] for r in json.loads(out)["predictions"]}
    assert {"tabby", "tiger cat", "Egyptian cat"} & set(preds["chelsea"][:3])
    assert preds["coffee"][0] == "espresso"


def test_bad_image_is_reported_and_good_ones_still_predicted(digits_run, tmp_path, capsys):
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(good)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    code, out, err = mmkit(capsys, "classify", "predict", good, bad, "--weights", digits_run / "best.pt")
    assert code == 2
    assert "good.png:" in out
    assert err.strip().startswith("error:") and "broken.jpg" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_is_checked(digits_run, tmp_path, capsys, fmt):
    out_file = tmp_path / f"model.{fmt}"
    code, out, _ = mmkit(
        capsys, "classify", "export", "--weights", digits_run / "best.pt", "--format", fmt, "--out", out_file,
        "--json",
    )  # fmt: skip
    assert code == 0
    r = json.loads(out)
    assert out_file.is_file() and r["max_abs_diff"] < 1e-4


def test_bad_inputs_get_one_clear_line(tmp_path, capsys):
    code, _, err = mmkit(capsys, "classify", "train", "--data", tmp_path / "nowhere", "--project", tmp_path)
    assert code == 2 and "nowhere" in err and len(err.strip().splitlines()) == 1
    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(256))
    code, _, err = mmkit(capsys, "classify", "eval", "--weights", junk, "--data", "digits")
    assert code == 2 and "junk.pt" in err and len(err.strip().splitlines()) == 1
    code, _, err = mmkit(
        capsys, "classify", "train", "--data", "digits", "--model", "resnet9000", "--project", tmp_path
    )
    assert code == 2 and "resnet9000" in err
    code, _, err = mmkit(
        capsys, "classify", "train", "--data", "digits", "--model", "resnet18", "--width", "2",
        "--project", tmp_path,
    )  # fmt: skip
    assert code == 2 and "resnet18" in err and "width" in err and len(err.strip().splitlines()) == 1
    code, _, err = mmkit(capsys, "classify", "train", "--data", "digits", "--augment", "mixup")
    assert code == 2 and "--augment mixup" in err


def test_width_and_augment_options_reach_the_model(tmp_path):
    args = ["--data", "digits", "--width", "0.5", "--augment", "flip", "--model-arg", "pool_size=3"]
    run = train(tmp_path, "classify", *args, "--epochs", "1", "--device", "cpu", name="w")
    ck = load_checkpoint(run / "best.pt")
    assert ck["meta"]["model_kwargs"] == {"width": 0.5, "pool_size": 3}
    assert ck["model"]["features.0.weight"].shape[0] == 8  # 16 channels x 0.5
    assert ck["model"]["fc.weight"].shape == (10, 32 * 3 * 3)  # 64 x 0.5 channels, pooled to 3x3


def test_data_list_and_show(tmp_path, capsys):
    code, out, _ = mmkit(capsys, "data", "list", "--json")
    names = {d["name"]: d for d in json.loads(out)["datasets"]}
    assert code == 0 and names["digits"]["available"]
    png = tmp_path / "grid.png"
    code, out, _ = mmkit(capsys, "data", "show", "digits", "--out", png, "--n", "16")
    assert code == 0 and png.is_file() and "digits: 10 classes" in out


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    """SIGKILL a training process mid-run, resume it, and compare with an uninterrupted run."""
    args = [
        "classify",
        "train",
        "--data",
        "digits",
        "--epochs",
        "4",
        "--batch-size",
        "128",
        "--device",
        "cpu",
        "--project",
        str(tmp_path),
    ]
    cmd = [sys.executable, "-m", "mmkit"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*cmd, *args, "--name", "full"], check=True, env=env, capture_output=True, timeout=600)

    proc = subprocess.Popen(
        [*cmd, *args, "--name", "cut"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    last = tmp_path / "classify" / "cut" / "last.pt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if last.exists() and load_checkpoint(last)["epoch"] >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert load_checkpoint(last)["epoch"] < 4
    r = subprocess.run(
        [*cmd, "classify", "train", "--resume", "--name", "cut", "--project", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    a = load_checkpoint(tmp_path / "classify" / "full" / "last.pt")
    b = load_checkpoint(last)
    assert a["epoch"] == b["epoch"] == 4
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
