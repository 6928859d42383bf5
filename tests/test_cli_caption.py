"""Image captioning end to end through the `mmkit` command: synthetic captioned scenes on disk, the three models,
BLEU/CIDEr-D evaluation consistent with its own captions file, predictions with attention pictures, bad inputs."""

import csv
import json

import pytest
from _cli import mmkit, synth_fixture

from mmkit.engine import load_checkpoint
from mmkit.metrics.captioning import score

scenes = synth_fixture("captions", "--n", "120", "--img-size", "32")

TRAIN = ["--epochs", "3", "--batch-size", "16", "--lr", "3e-3", "--threads", "1", "--min-count", "1"]


def test_show_attend_tell_trains_evaluates_and_predicts(scenes, capsys, tmp_path):
    code, out, err = mmkit(
        capsys, "caption", "train", "--data", scenes, "--model", "show-attend-tell", *TRAIN,
        "--project", tmp_path, "--name", "sat", "--json",
    )  # fmt: skip
    assert code == 0, err
    run = tmp_path / "caption" / "sat"
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert len(rows) == 3 and float(rows[-1]["val/loss"]) < float(rows[0]["val/loss"])
    ck = load_checkpoint(run / "best.pt")
    assert ck["task"] == "caption" and ck["meta"]["vocab"]["itos"][:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert "encoder_weights" not in ck["meta"]["model_kwargs"]
    assert (run / "report.html").is_file() and (run / "curves.png").is_file()

    code, out, err = mmkit(
        capsys, "caption", "eval", "--weights", run / "best.pt", "--data", scenes, "--beam", "2",
        "--out", tmp_path / "ev", "--json",
    )  # fmt: skip
    assert code == 0, err
    r = json.loads(out)
    assert r["split"] == "test" and r["images"] == 12 and 0 <= r["BLEU-4"] <= r["BLEU-1"] <= 1
    # the numbers are those of the captions file it wrote, scored against the test references
    from mmkit.data.captions import load_caption_data

    refs = {it.image_id: list(it.captions) for it in load_caption_data(str(scenes)).test}
    hyps = {c["image_id"]: c["caption"] for c in json.loads((tmp_path / "ev" / "captions.json").read_text())}
    again = score({k: refs[k] for k in hyps}, hyps)
    assert again["BLEU-4"] == pytest.approx(r["BLEU-4"]) and again["CIDEr-D"] == pytest.approx(r["CIDEr-D"])

    image = sorted((scenes / "images").glob("test_*.png"))[0]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code, out, err = mmkit(
        capsys, "caption", "predict", image, bad, "--weights", run / "best.pt", "--save-dir", tmp_path / "p",
        "--json",
    )  # fmt: skip
    assert code != 0 and "bad.png" in err and len(err.strip().splitlines()) == 1
    got = json.loads(out)["captions"]
    assert len(got) == 1 and got[0]["caption"] and (tmp_path / "p" / f"{image.stem}.caption.png").is_file()


@pytest.mark.parametrize("model", ["show-tell", "paragraph"])
def test_other_models_train_and_caption(scenes, capsys, tmp_path, model):
    code, _, err = mmkit(
        capsys, "caption", "train", "--data", scenes, "--model", model, "--epochs", "1", "--max-steps", "3",
        "--batch-size", "8", "--threads", "1", "--project", tmp_path, "--name", "m",
    )  # fmt: skip
    assert code == 0, err
    image = sorted((scenes / "images").glob("val_*.png"))[0]
    code, out, err = mmkit(
        capsys, "caption", "predict", image, "--weights", tmp_path / "caption" / "m" / "last.pt", "--beam", "2",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    assert isinstance(json.loads(out)["captions"][0]["caption"], str)


def test_bad_inputs_get_one_clear_line(scenes, capsys, tmp_path):
    code, _, err = mmkit(capsys, "caption", "train", "--data", tmp_path / "nowhere", "--project", tmp_path)
    assert code != 0 and "nowhere" in err and len(err.strip().splitlines()) == 1
    code, _, err = mmkit(
        capsys, "caption", "train", "--data", scenes, "--model", "lstm", "--project", tmp_path
    )
    assert code != 0 and "lstm" in err and "captioner" in err
    code, _, err = mmkit(capsys, "caption", "eval", "--weights", tmp_path / "none.pt", "--data", scenes)
    assert code != 0 and "none.pt" in err
    broken = tmp_path / "annotations"
    broken.mkdir()
    (broken / "captions_train.json").write_text('{"images": [{"id": 1}], "annotations": [')
    code, _, err = mmkit(capsys, "caption", "train", "--data", tmp_path, "--project", tmp_path / "r")
    assert code != 0 and "captions_train.json" in err and len(err.strip().splitlines()) == 1
