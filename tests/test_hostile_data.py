"""Hostile and careless input (issue 16), continued: errors raised in DataLoader workers, corrupt or foreign face
galleries, detection data with nothing to learn or with file names that leave the dataset, and a classify run's
checkpoint as a captioner's encoder weights."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from _cli import mmkit
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from mmkit.data.detection import load_detection_data
from mmkit.data.formats.youtube8m import write_records
from mmkit.data.formats.youtube8m_dataset import YouTube8MDataset, collate
from mmkit.data.gallery import Gallery
from mmkit.engine.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from mmkit.errors import MMKitError, TrainingDiverged
from mmkit.models import get_model
from mmkit.tasks.classify.predictor import ClassifierMeta


def _png(path: Path, size: int = 32) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), (90, 120, 30)).save(path)
    return path


# ---------------------------------------------------------------------------------------------------------------
# Errors raised in DataLoader workers


class _Refusing(Dataset):
    """Item 1 raises `error` (in whichever process reads it)."""

    def __init__(self, error: MMKitError) -> None:
        self.error = error

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> int:
        if i == 1:
            raise self.error
        return i


@pytest.mark.parametrize("error", [MMKitError("a.png: broken"), TrainingDiverged("loss is nan")])
def test_an_error_from_a_worker_keeps_its_class_and_its_one_line(error):
    with pytest.raises(type(error)) as caught:
        list(DataLoader(_Refusing(error), batch_size=1, num_workers=1))
    assert str(caught.value) == str(error)


def test_a_corrupt_tfrecord_read_by_a_worker_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "train0000.tfrecord"
    zeros = {"labels": [0], "rgb": np.zeros((3, 4), np.float32), "audio": np.zeros((3, 2), np.float32)}
    write_records(path, [{"id": "v0", **zeros}, {"id": "v1", **zeros}], level="frame")
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF  # a byte of the last record's payload: its data CRC no longer matches
    path.write_bytes(bytes(data))
    ds = YouTube8MDataset(path, "frame", num_classes=2, max_frames=3)  # indexing reads headers only
    with pytest.raises(MMKitError) as caught:
        list(DataLoader(ds, batch_size=1, num_workers=1, collate_fn=collate))
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: record at byte ")
    assert message.endswith("bad CRC of the data (corrupt record)")


# ---------------------------------------------------------------------------------------------------------------
# Face galleries


def test_a_gallery_row_with_a_3_byte_embedding_is_one_line_naming_the_row(tmp_path):
    db = tmp_path / "faces.db"
    with Gallery(db, model="m", dim=4) as g:
        g.enroll("ada", torch.randn(2, 4), ["a1.jpg", "a2.jpg"])
    with sqlite3.connect(db) as con:
        con.execute("UPDATE faces SET embedding = x'010203' WHERE id = 2")
    con.close()
    with Gallery(db, model="m", dim=4) as g, pytest.raises(MMKitError) as caught:
        g.identify(torch.randn(1, 4), threshold=1.0)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{db}: face 2 of 'ada': an embedding of 3 bytes")


def _foreign_database(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        con.execute("INSERT INTO notes (text) VALUES ('keep me')")
    con.close()
    return _schema(path)


def _schema(path: Path) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT type, name FROM sqlite_master ORDER BY name").fetchall()
    finally:
        con.close()


def test_a_foreign_sqlite_database_is_refused_and_left_alone(tmp_path, capsys):
    other = tmp_path / "notes.db"
    schema = _foreign_database(other)
    with pytest.raises(MMKitError, match="notes.db: an SQLite database that is not an mmkit face gallery"):
        Gallery(other, model="m", dim=4)  # what identify, enroll and serve --face-db open
    code, _, err = mmkit(capsys, "face", "list", "--db", other)
    assert code == 2 and err.startswith("error: ") and "not an mmkit face gallery (tables notes)" in err
    assert len(err.strip().splitlines()) == 1
    assert _schema(other) == schema


def test_a_new_or_empty_file_still_becomes_a_gallery(tmp_path):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    for db in (tmp_path / "new.db", empty):
        with Gallery(db, model="m", dim=4) as g:
            g.enroll("ada", torch.randn(1, 4), ["a.jpg"])
        assert Gallery.read_people(db) == [("ada", 1)]


# ---------------------------------------------------------------------------------------------------------------
# Detection data


def test_detection_with_no_valid_box_is_refused_with_the_count_of_problems(tmp_path, capsys):
    root = tmp_path / "yolo"
    for split in ("train", "val"):
        for i in range(3):
            _png(root / "images" / split / f"{i}.png")
            label = root / "labels" / split / f"{i}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("5 0.5 0.5 0.2 0.2\n")  # class 5 of 2
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: [a, b]\n")
    code, _, err = mmkit(
        capsys, "detect", "train", "--data", root, "--model", "yolov3-tiny", "--img-size", "32",
        "--epochs", "1", "--project", tmp_path / "runs", "--workers", "0",
    )  # fmt: skip
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]  # after the warnings logged
    assert code == 2 and "no valid boxes in the 3 train images; 6 label problems skipped" in line
    assert "labels/train/0.txt:1: class 5 out of range" in line
    assert not (tmp_path / "runs" / "detect").exists() or not any(
        (tmp_path / "runs" / "detect").rglob("*.pt")
    )


@pytest.mark.parametrize("leaving", ["../outside.png", "ABSOLUTE"])
def test_a_coco_file_name_outside_the_image_folder_is_refused_when_indexed(tmp_path, leaving):
    outside = _png(tmp_path / "data" / "outside.png")
    _png(tmp_path / "data" / "images" / "inside.png")
    name = str(outside) if leaving == "ABSOLUTE" else leaving
    coco = {
        "images": [
            {"id": 1, "file_name": "inside.png", "width": 32, "height": 32},
            {"id": 2, "file_name": name, "width": 32, "height": 32},
        ],
        "annotations": [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [1, 1, 8, 8], "iscrowd": 0}],
        "categories": [{"id": 1, "name": "thing"}],
    }
    path = tmp_path / "data" / "annotations" / "instances_train.json"
    path.parent.mkdir()
    path.write_text(json.dumps(coco))
    with pytest.raises(MMKitError) as caught:
        load_detection_data(path)
    assert str(caught.value) == (
        f"{path}: image 2: file_name {name!r} is outside the image folder {tmp_path / 'data' / 'images'} (refused)"
    )


# ---------------------------------------------------------------------------------------------------------------
# A classify checkpoint as the captioner's encoder


def test_a_classify_checkpoint_is_a_caption_encoders_weights(tmp_path, capsys):
    net = get_model("smallcnn", 2, in_chans=3)
    meta = ClassifierMeta("smallcnn", 2, 3, 32, [0.5] * 3, [0.25] * 3, ["a", "b"])
    base = tmp_path / "runs" / "classify" / "base" / "best.pt"
    save_checkpoint(
        {"format": FORMAT, "task": "classify", "model": net.state_dict(), "meta": asdict(meta)}, base
    )
    scenes = tmp_path / "scenes"
    assert mmkit(capsys, "data", "synth", "captions", "--out", scenes, "--n", "8", "--img-size", "32")[0] == 0
    code, _, err = mmkit(
        capsys, "caption", "train", "--data", scenes, "--encoder", "smallcnn", "--encoder-weights", base,
        "--freeze-encoder", "--epochs", "1", "--max-steps", "1", "--min-count", "1", "--threads", "1",
        "--project", tmp_path / "runs", "--name", "cap",
    )  # fmt: skip
    assert code == 0, err
    trained = load_checkpoint(tmp_path / "runs" / "caption" / "cap" / "best.pt")["model"]
    features = {
        k.removeprefix("features."): v for k, v in net.state_dict().items() if k.startswith("features.")
    }
    assert features and all(torch.equal(trained[f"encoder.body.{k}"], v) for k, v in features.items())
