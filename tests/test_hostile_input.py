"""Hostile and careless input (issue 16): link loops and special files in data folders, 16-bit grayscale images,
file names that are not UTF-8.

Every tree below holds at most one loop, so that a walker that follows it anyway stops at the kernel's limit on
links in one path (about 40) instead of eating memory; a read that blocks on a FIFO is released and fails."""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from _cli import mmkit
from PIL import Image

from mmkit.apps.analyze import collect_files
from mmkit.data.formats.imagefolder import index_image_folder
from mmkit.data.formats.images import read_image
from mmkit.data.formats.video import VideoFolderDataset, check_video, write_video
from mmkit.data.formats.yolo import list_split_images
from mmkit.data.generation import list_image_files
from mmkit.data.walk import walk_files
from mmkit.errors import MMKitError


def _png(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (value, value, value)).save(path)
    return path


def _link(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def _names(paths, root: Path) -> list[str]:
    return [Path(p).relative_to(root).as_posix() for p in paths]


# ---------------------------------------------------------------------------------------------------------------
# Link loops


def test_a_loop_up_to_the_root_adds_nothing_to_an_image_folder(tmp_path, caplog):
    _png(tmp_path / "train" / "a" / "x.png")
    _png(tmp_path / "train" / "b" / "y.png")
    _png(tmp_path / "val" / "a" / "z.png")
    _link(tmp_path / "train" / "a" / "up", "../..")  # the data root: train again, and val
    with caplog.at_level(logging.WARNING):
        ds, skipped = index_image_folder(tmp_path / "train")
    assert [(Path(p).relative_to(tmp_path).as_posix(), y) for p, y in ds.samples] == [
        ("train/a/x.png", 0),
        ("train/b/y.png", 1),
    ]
    assert skipped == [] and "train/a/up: link not followed" in caplog.text


def test_links_out_of_the_tree_are_followed_once_and_each_file_listed_once(tmp_path):
    top, outside = tmp_path / "top", tmp_path / "outside"
    _png(outside / "f.png")
    _link(outside / "again", ".")  # a loop outside the tree
    _png(top / "real.png")
    _link(top / "link1", "../outside")
    _link(top / "link2", "../outside")  # the same folder again
    _link(top / "z.png", "real.png")  # the same file again
    assert _names(walk_files(top), top) == ["link1/f.png", "real.png"]


@pytest.mark.parametrize("walk", ["yolo", "generation", "analyze"])
def test_a_self_loop_lists_each_image_once(tmp_path, walk):
    images = tmp_path / "images" / "train"
    _png(images / "x.png")
    _link(images / "sub" / "loop", "..")
    if walk == "yolo":
        found = list_split_images("images/train", tmp_path, tmp_path / "data.yaml")
    elif walk == "generation":
        found = list_image_files(images)
    else:
        found = [p for p, _ in collect_files([images])[0]]
    assert _names(found, images) == ["x.png"]


def test_a_loop_in_a_video_folder_adds_nothing(tmp_path):
    write_video(tmp_path / "up" / "clip.mp4", np.zeros((2, 3, 16, 16), np.uint8))
    _link(tmp_path / "up" / "root", "..")
    ds = VideoFolderDataset(tmp_path, num_frames=2, size=16)
    assert ds.classes == ["up"] and _names([p for p, _ in ds.samples], tmp_path) == ["up/clip.mp4"]


# ---------------------------------------------------------------------------------------------------------------
# FIFOs


def _within(fn, fifo: Path, seconds: float = 20):
    """fn() in a thread; one still blocked after `seconds` (opening `fifo` waits for a writer) is released by
    opening the FIFO's writing end, and fails the test."""
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - raised again below, in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for _ in range(100):  # every blocked reader of the FIFO
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                break
        thread.join(seconds)
        pytest.fail(f"blocked on the FIFO {fifo}")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def test_a_fifo_in_a_data_folder_is_skipped_with_a_warning(tmp_path, caplog):
    good = _png(tmp_path / "a" / "x.png")
    os.mkfifo(tmp_path / "a" / "pipe.png")
    with caplog.at_level(logging.WARNING):
        ds, skipped = _within(lambda: index_image_folder(tmp_path), tmp_path / "a" / "pipe.png")
    assert ds.samples == [(str(good), 0)] and skipped == []
    assert "pipe.png: skipped, not a regular file" in caplog.text


def test_reading_a_fifo_fails_at_once(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(MMKitError, match="not a regular file"):
        _within(lambda: read_image(tmp_path / "pipe.png"), tmp_path / "pipe.png")
    os.mkfifo(tmp_path / "pipe.mp4")
    assert "not a regular file" in _within(lambda: check_video(tmp_path / "pipe.mp4"), tmp_path / "pipe.mp4")


# ---------------------------------------------------------------------------------------------------------------
# 16-bit images


def _png16(path: Path, array: np.ndarray) -> Path:
    """A 16-bit PNG of uint16 [H, W] (grayscale) or [H, W, 3] (RGB), written by hand: PIL writes no 16-bit RGB."""
    height, width = array.shape[:2]
    rows = array.astype(">u2").reshape(height, -1)
    raw = b"".join(b"\0" + row.tobytes() for row in rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    color = 0 if array.ndim == 2 else 2
    header = struct.pack(">IIBBBBB", width, height, 16, color, 0, 0, 0)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)
    return path


def test_16_bit_grayscale_is_scaled_as_16_bit_rgb(tmp_path):
    values = np.array([[0, 1000, 30000, 65535]], np.uint16)
    gray = read_image(_png16(tmp_path / "gray.png", values))
    rgb = read_image(_png16(tmp_path / "rgb.png", np.stack([values] * 3, axis=-1)))
    assert rgb[0].tolist() == [[0, 3, 117, 255]]  # the high byte
    assert torch.equal(gray, rgb)


# ---------------------------------------------------------------------------------------------------------------
# Names that are not UTF-8


@pytest.fixture
def latin1(tmp_path) -> Path:
    """tmp_path, where a Latin-1 name can be made (not on every file system)."""
    try:
        os.mkdir(tmp_path / os.fsdecode(b"caf\xe9"))
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    return tmp_path


def test_train_report_shows_a_latin1_class_name(latin1, capsys):
    for name in (os.fsdecode(b"cl\xe9ss"), "dog"):
        for i in range(4):
            _png(latin1 / "data" / name / f"{i}.png", 60 * i)
    code, _, err = mmkit(
        capsys, "classify", "train", "--data", latin1 / "data", "--epochs", 1, "--img-size", 16,
        "--project", latin1 / "runs", "--name", "t", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    run = latin1 / "runs" / "classify" / "t"
    assert (run / "confusion_matrix.png").is_file() and "cl\ufffdss" in (run / "report.html").read_text()


def test_analyze_report_shows_a_latin1_file_name(latin1, capsys):
    _png(latin1 / "photos" / os.fsdecode(b"caf\xe9.png"), 128)
    out = latin1 / "out"
    code, _, err = mmkit(capsys, "analyze", latin1 / "photos", "--out", out, "--no-faces", "--device", "cpu")
    assert code == 0, err
    assert "caf\ufffd.png" in (out / "report.html").read_text()
