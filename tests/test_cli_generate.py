"""Generation end to end through the `mmkit` command: GANs on digits with sample grids and FID/KID/IS from a
feature classifier, conditional sampling, pix2pix / LapSRN / RED-Net / CycleGAN on the photo sets, PSNR/SSIM of two
folders of images, bad inputs."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from _cli import mmkit
from PIL import Image

from mmkit.engine import load_checkpoint

FAST = ["--epochs", "1", "--max-steps", "4", "--batch-size", "16", "--threads", "1"]


def train(capsys, tmp_path, data, model, *extra) -> object:
    code, _, err = mmkit(
        capsys, "generate", "train", "--data", data, "--model", model, *FAST, *extra,
        "--project", tmp_path, "--name", model,
    )  # fmt: skip
    assert code == 0, err
    return tmp_path / "generate" / model


def test_dcgan_trains_samples_and_is_scored_with_a_named_feature_network(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MMKIT_HOME", str(tmp_path / "home"))
    run = train(capsys, tmp_path, "digits", "dcgan", "--epochs", "2")
    assert (run / "samples" / "epoch_001.png").is_file() and (run / "samples" / "epoch_002.png").is_file()
    ck = load_checkpoint(run / "best.pt")
    assert ck["meta"]["img_size"] == 8 and ck["meta"]["channels"] == 1
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "train/d_loss" in header and "train/g_loss" in header and "val/fid_pix" in header

    code, out, err = mmkit(capsys, "generate", "sample", "--weights", run / "best.pt", "--n", "16",
                           "--out", tmp_path / "grid.png", "--json")  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "grid.png").is_file()

    # the default feature network: a smallcnn trained once on the same data, then cached
    code, out, err = mmkit(capsys, "generate", "eval", "--weights", run / "best.pt", "--n", "200",
                           "--out", tmp_path / "ev", "--json")  # fmt: skip
    assert code == 0, err
    r = json.loads(out)
    assert "smallcnn classifier trained on digits" in r["feature_network"] and r["samples"] == 200
    assert r["fid"] > 0 and 1 <= r["inception_score"] <= 10 and "kid" in r
    assert (tmp_path / "home" / "feature-nets" / "digits" / "best.pt").is_file()
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["fid"] == pytest.approx(r["fid"])


def test_conditional_sampling_by_label(capsys, tmp_path):
    run = train(capsys, tmp_path, "digits", "cgan")
    code, out, err = mmkit(capsys, "generate", "sample", "--weights", run / "last.pt", "--n", "8",
                           "--label", "3", "--out", tmp_path / "three.png", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["label"] == 3
    assert "train/ms_loss" in (run / "metrics.csv").read_text().splitlines()[0]  # the mode-seeking loss is on
    code, _, err = mmkit(capsys, "generate", "sample", "--weights", run / "last.pt", "--label", "12",
                         "--out", tmp_path / "x.png")  # fmt: skip
    assert code != 0 and "--label 12" in err


def test_super_resolution_and_restoration_against_their_baselines(capsys, tmp_path):
    sr = train(capsys, tmp_path, "photo-sr", "lapsrn", "--batch-size", "8")
    code, out, err = mmkit(
        capsys, "generate", "eval", "--weights", sr / "best.pt", "--out", tmp_path / "e", "--json"
    )
    assert code == 0, err
    r = json.loads(out)
    assert r["baseline"] == "bicubic upscaling" and r["images"] > 10 and 10 < r["psnr_rgb"] < 50
    assert r["convention"] == "rgb" and 0 < r["ssim_rgb"] < 1 and 0 < r["baseline_ssim_rgb"] < 1
    # the SR papers' convention: named in every key and in the summary line
    code, out, err = mmkit(capsys, "generate", "eval", "--weights", sr / "best.pt", "--y-channel",
                           "--crop-border", "4", "--out", tmp_path / "e_y")  # fmt: skip
    assert code == 0, err
    assert "psnr_y_crop4" in out and "ssim_y_crop4" in out and "baseline_psnr_y_crop4" in out
    y = json.loads((tmp_path / "e_y" / "metrics.json").read_text())
    assert y["convention"] == "y_crop4" and y["psnr_y_crop4"] != pytest.approx(r["psnr_rgb"], abs=0.01)
    from PIL import Image

    small = tmp_path / "small.png"
    Image.fromarray((torch.rand(20, 24, 3) * 255).byte().numpy()).save(small)
    code, out, err = mmkit(capsys, "generate", "upscale", small, "--weights", sr / "best.pt", "--scale", "4",
                           "--out", tmp_path / "up", "--json")  # fmt: skip
    assert code == 0, err
    assert Image.open(tmp_path / "up" / "small.upscale.png").size == (96, 80)
    code, _, err = mmkit(capsys, "generate", "upscale", small, "--weights", sr / "best.pt", "--scale", "2")
    assert code != 0 and "x4" in err

    dn = train(capsys, tmp_path, "photo-denoise", "rednet", "--batch-size", "8")
    code, out, err = mmkit(
        capsys, "generate", "restore", small, "--weights", dn / "best.pt", "--out", tmp_path / "r"
    )
    assert code == 0, err
    assert (tmp_path / "r" / "small.restore.png").is_file()
    code, _, err = mmkit(capsys, "generate", "restore", small, "--weights", sr / "best.pt")
    assert code != 0 and "rednet" in err


def test_a_builtin_alone_trains_with_its_recipe(capsys, tmp_path):
    """`--data photo-sr` and nothing else: the README's LapSRN x4 recipe; what the command line gives still wins."""
    code, _, err = mmkit(capsys, "generate", "train", "--data", "photo-sr", "--epochs", "1", "--max-steps", "1",
                         "--threads", "1", "--project", tmp_path)  # fmt: skip
    assert code == 0, err
    cfg = yaml.safe_load((tmp_path / "generate" / "exp" / "config.yaml").read_text())
    assert cfg["task_args"]["model"] == "lapsrn" and cfg["task_args"]["crops"] == 20000
    assert (cfg["lr"], cfg["optimizer"], cfg["schedule"], cfg["batch_size"]) == (1e-3, "adam", "cosine", 16)
    assert cfg["epochs"] == 1 and cfg["weight_decay"] == 0.0  # given; the task's defaults


@pytest.mark.parametrize(("data", "model"), [("photo-edges", "pix2pix"), ("day-tinted", "cyclegan")])
def test_translation_models(capsys, tmp_path, data, model):
    run = train(capsys, tmp_path, data, model, "--batch-size", "4", "--max-steps", "2")
    assert (run / "samples" / "epoch_001.png").is_file()
    from PIL import Image
    from skimage import data as sk

    photo = tmp_path / "coffee.png"
    Image.fromarray(sk.coffee()).save(photo)
    code, out, err = mmkit(capsys, "generate", "translate", photo, "--weights", run / "best.pt",
                           "--out", tmp_path / "t", "--json")  # fmt: skip
    assert code == 0, err
    assert Image.open(tmp_path / "t" / "coffee.translate.png").size == (600, 400)  # the photo's own size


def _save(array, path):
    from PIL import Image

    Image.fromarray(array).save(path)
    return path


def _as_y(img):
    """MATLAB's rgb2ycbcr luma on the 0..255 scale, 4 pixels cut from each side (the SR papers' x4 convention)."""
    rgb = img.astype(np.float64) / 255
    return (16 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2])[4:-4, 4:-4]


def test_two_folders_of_images_are_scored_by_name(capsys, tmp_path, photos):
    """`generate eval --pred --target`: pairs by name (mmkit's `.upscale` suffix dropped), per-image values in
    per_image.csv equal to skimage's on the saved files, their mean in the summary; a file without a partner or of
    another size is one error line."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    pred, target = tmp_path / "outputs", tmp_path / "ground_truth"
    pred.mkdir(), target.mkdir()
    rng = np.random.default_rng(0)
    pairs = {}
    for name, stem in (("astronaut", "astronaut.upscale"), ("coffee", "coffee"), ("rocket", "rocket")):
        clean = photos[name]
        noisy = np.clip(clean + rng.normal(0, 12, clean.shape), 0, 255).astype(np.uint8)
        pairs[name] = (_save(noisy, pred / f"{stem}.png"), _save(clean, target / f"{name}.png"))
    (pred / "notes.txt").write_text("not an image")

    code, out, err = mmkit(capsys, "generate", "eval", "--pred", pred, "--target", target, "--y-channel",
                           "--crop-border", "4", "--out", tmp_path / "y", "--json")  # fmt: skip
    assert code == 0, err
    r = json.loads(out)
    assert r["images"] == 3 and r["convention"] == "y_crop4"
    rows = list(csv.DictReader(Path(r["per_image_csv"]).read_text().splitlines()))
    assert [row["name"] for row in rows] == ["astronaut", "coffee", "rocket"]
    for row in rows:
        y_pred, y_true = (_as_y(np.asarray(Image.open(f).convert("RGB"))) for f in pairs[row["name"]])
        mse = np.mean((y_pred - y_true) ** 2)
        assert float(row["psnr_y_crop4"]) == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-6)
        ssim_y = structural_similarity(y_pred, y_true, data_range=255, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False)  # fmt: skip
        assert float(row["ssim_y_crop4"]) == pytest.approx(ssim_y, abs=1e-6)
    assert r["psnr_y_crop4"] == pytest.approx(np.mean([float(row["psnr_y_crop4"]) for row in rows]))

    code, out, err = mmkit(capsys, "generate", "eval", "--pred", pred, "--target", target,
                           "--out", tmp_path / "rgb")  # fmt: skip
    assert code == 0, err
    assert "3 image pairs" in out and "psnr_rgb" in out and "ssim_rgb" in out
    rgb = list(csv.DictReader((tmp_path / "rgb" / "per_image.csv").read_text().splitlines()))
    p, t = (np.asarray(Image.open(f).convert("RGB")) / 255 for f in pairs["coffee"])
    assert float(rgb[1]["psnr_rgb"]) == pytest.approx(peak_signal_noise_ratio(t, p, data_range=1), abs=1e-6)
    ssim_rgb = structural_similarity(p, t, channel_axis=2, data_range=1, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)  # fmt: skip
    assert float(rgb[1]["ssim_rgb"]) == pytest.approx(ssim_rgb, abs=1e-6)

    extra = _save(photos["chelsea"], pred / "chelsea.png")
    code, _, err = mmkit(capsys, "generate", "eval", "--pred", pred, "--target", target)
    assert code != 0 and len(err.strip().splitlines()) == 1 and "chelsea.png: no image named chelsea" in err
    extra.unlink()
    _save(photos["coffee"][:40], target / "coffee.png")
    code, _, err = mmkit(capsys, "generate", "eval", "--pred", pred, "--target", target)
    assert code != 0 and len(err.strip().splitlines()) == 1 and "64x48" in err and "64x40" in err
    for args in (["--pred", pred], ["--pred", pred, "--target", target, "--weights", "x.pt"], []):
        code, _, err = mmkit(capsys, "generate", "eval", *args)
        assert code != 0 and len(err.strip().splitlines()) == 1 and "--pred" in err


def test_bad_inputs_get_one_clear_line(capsys, tmp_path):
    code, _, err = mmkit(
        capsys, "generate", "train", "--data", "photo-sr", "--model", "dcgan", "--project", tmp_path
    )
    assert code != 0 and "photo-sr" in err and len(err.strip().splitlines()) == 1
    code, _, err = mmkit(
        capsys, "generate", "train", "--data", "digits", "--model", "yolov3", "--project", tmp_path
    )
    assert code != 0 and "yolov3" in err
    code, _, err = mmkit(capsys, "generate", "sample", "--weights", tmp_path / "none.pt")
    assert code != 0 and "none.pt" in err
