"""`mmkit data show` on the face, video, generation and caption builtins, and on folders of those kinds."""

import json

import numpy as np
import pytest
from _cli import mmkit
from PIL import Image

from mmkit.cli import app
from mmkit.cli.common import run_cli


def show(capsys, data, png, *args) -> dict:
    code, out, err = mmkit(capsys, "data", "show", data, "--out", png, "--json", *args)
    assert code == 0, err
    payload = json.loads(out)
    assert payload["grid"] == str(png)
    return payload


def grid_size(cols: int, rows: int, side: int) -> tuple[int, int]:
    """The PNG size `save_image_grid` gives cells of side px (after its upscale to 64) with labels and a title."""
    return cols * (max(side, 96) + 4) + 4, rows * (side + 22) + 4 + 30


def test_generation_builtins_show_pairs_and_domains(tmp_path, capsys):
    png = tmp_path / "sr.png"
    p = show(capsys, "photo-sr", png, "--n", "8", "--split", "test")
    assert p["name"] == "photo-sr" and p["kind"] == "paired" and p["sizes"] == {"train": 4000, "test": 74}
    assert (p["size_a"], p["image_size"]) == (16, 64)
    assert Image.open(png).size == grid_size(8, 1, 64)  # 4 pairs, A (16 px, resized up) next to B
    png = tmp_path / "edges.png"
    show(capsys, "photo-edges", png, "--n", "4")  # 1-channel A drawn gray; train pairs drawn on access
    assert Image.open(png).size == grid_size(4, 1, 64)
    png = tmp_path / "unpaired.png"
    p = show(capsys, "digits-fashion", png, "--n", "6", "--split", "test")
    assert p["kind"] == "unpaired" and p["sizes"] == {"train": 60000, "test": 10000}
    assert Image.open(png).size == grid_size(3, 2, 84)  # a row of 3 A, a row of 3 B; 28 px upscaled x3


def test_faces_show_a_few_images_per_person(tmp_path, capsys, monkeypatch):
    from mmkit.data import faces

    monkeypatch.setattr(faces, "_IMAGES_PER_PERSON", 4)  # the builtin draws 12 (3,600 faces, ~8 s)
    png = tmp_path / "faces.png"
    p = show(capsys, "synthetic-faces", png, "--n", "8", "--split", "val")
    assert p["name"] == "synthetic-faces" and p["people"] == {"train": 240, "val": 60}
    assert p["sizes"] == {"train": 960, "val": 240}
    assert Image.open(png).size == grid_size(8, 1, 64)  # 2 people x 4 faces


def test_video_shows_a_row_of_frames_per_clip(tmp_path, capsys, monkeypatch):
    from mmkit.data import videos

    monkeypatch.setitem(videos._CLIPS_TRAIN, "motion-clips", 18)  # the builtin draws 2,160 clips (~12 s)
    monkeypatch.setattr(videos, "_CLIPS_TEST", 9)
    png = tmp_path / "clips.png"
    p = show(capsys, "motion-clips", png, "--n", "16", "--split", "val")
    assert p["name"] == "motion-clips" and p["sizes"] == {"train": 18, "val": 9} and len(p["classes"]) == 9
    assert Image.open(png).size == grid_size(8, 2, 64)  # 2 clips x 8 frames


def test_captions_show_images_with_a_caption(tmp_path, capsys):
    png = tmp_path / "captions.png"
    p = show(capsys, "caption-scenes-large", png, "--n", "4", "--split", "test")
    assert p["name"] == "caption-scenes-large" and p["sizes"] == {"train": 20000, "val": 300, "test": 300}
    assert Image.open(png).size == grid_size(4, 1, 128)
    code, out, _ = mmkit(
        capsys, "data", "show", "caption-scenes-large", "--out", png, "--n", "2", "--split", "val"
    )
    assert code == 0 and out.startswith("caption-scenes-large: train 20000 / val 300 / test 300 images ->")


@pytest.mark.parametrize(
    ("data", "split", "message"),
    [
        ("nope", "train", "nope: no such builtin dataset (digits, mnist5k,"),
        ("motion-clips", "test", "motion-clips: has no test split (it has train, val)"),
        ("photo-sr", "val", "photo-sr: has no val split (it has train, test)"),
        ("synthetic-faces-large", "test", "synthetic-faces-large: has no test split (it has train, val)"),
    ],
)
def test_unknown_names_and_splits_are_one_error_line(tmp_path, capsys, data, split, message):
    code, out, err = mmkit(capsys, "data", "show", data, "--split", split, "--out", tmp_path / "x.png")
    assert code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()


def test_generation_and_face_folders(tmp_path, capsys):
    rng = np.random.default_rng(0)

    def write(path, size=40):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)

    for side in ("A", "B"):
        for i in range(4):
            write(tmp_path / "unpaired" / f"train{side}" / f"{i}.png")
            write(tmp_path / "paired" / side / f"{i}.png")
    p = show(capsys, tmp_path / "unpaired", tmp_path / "u.png", "--n", "4")
    assert p["kind"] == "unpaired" and p["sizes"] == {"train": 3, "test": 1}  # one of each domain held out
    assert Image.open(tmp_path / "u.png").size == grid_size(2, 2, 64)
    p = show(capsys, tmp_path / "paired", tmp_path / "p.png", "--n", "4")
    assert p["kind"] == "paired" and p["sizes"] == {"train": 3, "test": 1}
    assert Image.open(tmp_path / "p.png").size == grid_size(4, 1, 64)
    faces = tmp_path / "faces"
    assert run_cli(app, ["data", "synth", "identities", "--out", str(faces), "--identities", "10", "--images",
                         "3", "--size", "32", "--pairs-per-fold", "2", "--folds", "2"]) == 0  # fmt: skip
    capsys.readouterr()
    p = show(capsys, faces, tmp_path / "f.png", "--n", "8")
    assert p["people"] == {"train": 8, "val": 2} and p["sizes"] == {"train": 24, "val": 6}
    assert Image.open(tmp_path / "f.png").size == grid_size(6, 1, 64)  # 2 people, 3 faces each


def test_caption_and_video_folders(tmp_path, capsys):
    assert run_cli(app, ["data", "synth", "captions", "--out", str(tmp_path / "cap"), "--n", "10"]) == 0
    assert (
        run_cli(app, ["data", "synth", "videos", "--out", str(tmp_path / "vid"), "--n", "9", "--size", "32"])
        == 0
    )
    capsys.readouterr()
    p = show(capsys, tmp_path / "cap", tmp_path / "c.png", "--n", "3")
    assert p["sizes"] == {"train": 10, "val": 1, "test": 1}
    assert Image.open(tmp_path / "c.png").size == grid_size(3, 1, 128)
    p = show(capsys, tmp_path / "vid", tmp_path / "v.png", "--n", "8", "--split", "val")
    assert p["sizes"] == {"train": 9, "val": 1} and len(p["classes"]) == 9
    assert Image.open(tmp_path / "v.png").size == grid_size(8, 1, 64)  # decoded at the task's 64 px


def test_a_builtin_of_a_task_without_grids_is_one_error_line(tmp_path, capsys, monkeypatch):
    from mmkit.data import registry

    spec = registry.DatasetSpec("odd-set", "odd", "a test set", "1 item", load=lambda name, **kw: None)
    monkeypatch.setitem(registry._REGISTRY, spec.name, spec)
    code, _, err = mmkit(capsys, "data", "show", "odd-set", "--out", tmp_path / "x.png")
    assert (
        code == 2
        and err == "error: odd-set: a builtin odd dataset; `mmkit data show` draws no odd samples yet\n"
    )
