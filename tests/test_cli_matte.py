"""Image matting end to end through the `mmkit` command: train a few steps on the builtin, eval, predict."""

import json

from _cli import mmkit, run_fixture
from PIL import Image

from mmkit.data.formats.matting import write_matting_folder
from mmkit.data.synthetic_matting import matting_splits
from mmkit.engine import load_checkpoint
from mmkit.tasks.registry import get_task

trained = run_fixture(
    "matte", "--data", "matting-composites", "--train-size", "16", "--img-size", "32", "--epochs", "1",
    "--batch-size", "8", "--max-steps", "2", "--model-arg", "width=8", "--device", "cpu", "--workers", "0",
    "--threads", "1",
)  # fmt: skip


def test_registered_with_recipe():
    spec = get_task("matte")
    assert spec.what == "a matting model"
    assert spec.recipe("matting-composites")["model"] == "dim-small"
    assert spec.predictor().__name__ == "MattePredictor"


def test_train_writes_checkpoint(trained):
    ck = load_checkpoint(trained / "best.pt")
    assert ck["task"] == "matte"
    assert ck["meta"]["model"] == "dim-small" and ck["meta"]["img_size"] == 32
    assert ck["meta"]["model_kwargs"] == {"width": 8}


def test_eval_prints_metrics_and_baselines(trained, tmp_path, capsys):
    best = trained / "best.pt"
    code, out, err = mmkit(
        capsys, "matte", "eval", "-w", best, "--limit", "4", "--out", tmp_path, "--device", "cpu"
    )
    assert code == 0, err
    assert "SAD" in out and "MSE" in out and "trimap baseline" in out and "guided-filter baseline" in out
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["images"] == 4
    assert set(m["baselines"]) == {"trimap", "guided_filter"}
    for k in ("sad", "mse", "grad", "conn"):
        assert m[k] >= 0 and m["baselines"]["trimap"][k] >= 0


def test_eval_on_a_folder(trained, tmp_path, capsys):
    train, test = matting_splits(4, 3, 0, train_size=32)
    write_matting_folder(train, tmp_path / "f" / "train")
    write_matting_folder(test, tmp_path / "f" / "test")
    best = trained / "best.pt"
    code, out, err = mmkit(
        capsys, "matte", "eval", "-w", best, "-d", tmp_path / "f", "--out", tmp_path / "e", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["images"] == 3


def test_predict_writes_alpha_and_composite(trained, tmp_path, capsys):
    _, test = matting_splits(1, 1, 0)
    image, alpha, trimap = test[0][:3]
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp_path / "im.png")
    Image.fromarray(trimap[0].numpy()).save(tmp_path / "tri.png")
    best = trained / "best.pt"
    out = tmp_path / "out"
    code, stdout, err = mmkit(
        capsys, "matte", "predict", tmp_path / "im.png", "--trimap", tmp_path / "tri.png", "-w", best,
        "--out", out,
    )  # fmt: skip
    assert code == 0, err
    a = Image.open(out / "alpha.png")
    assert a.mode == "L" and a.size == (image.shape[2], image.shape[1])
    assert Image.open(out / "composite.png").mode == "RGB"
    t = trimap[0].numpy()
    import numpy as np

    arr = np.asarray(a)
    assert (arr[t == 255] == 255).all() and (arr[t == 0] == 0).all()


def test_bad_trimap_is_one_error_line(trained, tmp_path, capsys):
    _, test = matting_splits(1, 1, 0)
    Image.fromarray(test[0][0].permute(1, 2, 0).numpy()).save(tmp_path / "im.png")
    best = trained / "best.pt"
    code, out, err = mmkit(
        capsys, "matte", "predict", tmp_path / "im.png", "--trimap", tmp_path / "missing.png", "-w", best,
        "--out", tmp_path / "o",
    )  # fmt: skip
    assert code != 0
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "missing.png" in lines[0] and "Traceback" not in err


def test_unknown_data_is_one_error_line(tmp_path, capsys):
    code, out, err = mmkit(
        capsys, "matte", "train", "--data", tmp_path / "nope", "--epochs", "1", "--project", tmp_path
    )
    assert code != 0
    assert "nope" in err and "Traceback" not in err
