"""Video classification end to end through the `mmkit` command: YouTube-8M-format records, synthetic motion videos
on disk (end-to-end CNN + RNN), features extracted from video files, predictions per video and per segment."""

import json

import pytest
from _cli import mmkit, synth_fixture

from mmkit.engine import load_checkpoint

yt8m = synth_fixture(
    "yt8m", "--videos", "200", "--classes", "6", "--frames", "12", "--rgb-dim", "32", "--audio-dim", "8"
)
motion_videos = synth_fixture("videos", "--n", "45", "--frames", "8", "--size", "32")


def test_lstm_on_yt8m_records_learns_and_evaluates(yt8m, capsys, tmp_path):
    code, out, _ = mmkit(
        capsys, "video", "train", "--data", yt8m, "--model", "lstm", "--hidden", "32", "--max-frames", "12",
        "--epochs", "4", "--batch-size", "16", "--lr", "1e-2", "--project", tmp_path, "--name", "l", "--json",
    )  # fmt: skip
    assert code == 0
    fit = json.loads(out)
    assert fit["best_metric"] == "val/gap"
    run = tmp_path / "video" / "l"
    ck = load_checkpoint(run / "best.pt")
    assert ck["meta"]["multi_label"] is True and ck["meta"]["feature_dim"] == 40
    code, out, _ = mmkit(
        capsys, "video", "eval", "--weights", run / "best.pt", "--data", yt8m, "--out", run / "eval", "--json"
    )
    r = json.loads(out)
    assert code == 0 and r["videos"] == 40
    assert r["gap"] == pytest.approx(fit["best_value"], abs=1e-4)
    assert r["gap"] > 0.5  # six learnable classes: far above chance after a few epochs


def test_clip_model_on_video_files_and_segment_predictions(motion_videos, capsys, tmp_path):
    code, out, _ = mmkit(
        capsys, "video", "train", "--data", motion_videos, "--model", "cnn-gru", "--frames", "8",
        "--img-size", "32", "--model-arg", "width=8", "--epochs", "1", "--batch-size", "9",
        "--project", tmp_path, "--name", "c", "--workers", "0", "--json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out)["best_metric"] == "val/top1"
    weights = tmp_path / "video" / "c" / "best.pt"
    clip = sorted((motion_videos / "test" / "left").glob("*.mp4"))[0]
    code, out, _ = mmkit(
        capsys, "video", "predict", "--weights", weights, clip, "--segment-seconds", "0.5", "--topk", "9",
        "--json",
    )  # fmt: skip
    assert code == 0
    pred = json.loads(out)["predictions"][0]
    assert len(pred["top"]) == 9 and abs(sum(t["score"] for t in pred["top"]) - 1) < 1e-3  # softmax over 9
    assert [s["start"] for s in pred["segments"]] == [0.0, 0.5]  # 8 frames at 8 fps: two half-second segments


def test_features_from_video_files_then_lstm_and_predict(motion_videos, capsys, tmp_path):
    import shutil

    small = tmp_path / "small"  # 3 classes x 3 clips: features at 224 px cost ~0.1 s a frame here
    for cls in ("left", "up", "grow"):
        (small / cls).mkdir(parents=True)
        for clip in sorted((motion_videos / "train" / cls).glob("*.mp4"))[:3]:
            shutil.copy(clip, small / cls / clip.name)
    feats = tmp_path / "feats"
    code, out, _ = mmkit(capsys, "video", "features", small, "--out", feats, "--fps", "4", "--json")
    r = json.loads(out)
    assert code == 0 and r["videos"] == 9 and r["classes"] == 3 and r["dim"] == 1280
    assert r["frames"] == 9 * 4  # 1 s clips at 4 fps
    assert (feats / "vocabulary.csv").is_file() and json.loads((feats / "features.json").read_text())[
        "fps"
    ] == 4
    code, out, _ = mmkit(
        capsys, "video", "train", "--data", feats, "--model", "gru", "--hidden", "16", "--epochs", "1",
        "--batch-size", "8", "--project", tmp_path, "--name", "f", "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["best_metric"] == "val/top1"
    clip = sorted((motion_videos / "test" / "up").glob("*.mp4"))[0]
    code, out, _ = mmkit(
        capsys, "video", "predict", "--weights", tmp_path / "video" / "f" / "best.pt", clip, "--json"
    )
    assert code == 0 and json.loads(out)["predictions"][0]["top"][0]["label"] in {"left", "up", "grow"}


def test_bad_video_inputs_are_one_line_errors(motion_videos, yt8m, capsys, tmp_path):
    clip = sorted((motion_videos / "test" / "left").glob("*.mp4"))[0]
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[:200])
    code, _, _ = mmkit(
        capsys, "video", "train", "--data", motion_videos, "--model", "cnn-mean", "--frames", "8",
        "--img-size", "32", "--model-arg", "width=8", "--epochs", "1", "--max-steps", "1", "--batch-size", "9",
        "--project", tmp_path, "--name", "m", "--workers", "0",
    )  # fmt: skip
    assert code == 0
    code, _, err = mmkit(capsys, "video", "predict", "--weights", tmp_path / "video" / "m" / "best.pt", cut)
    assert code == 2 and "cut.mp4" in err
    bad = tmp_path / "bad"
    bad.mkdir()
    good = sorted((yt8m / "train").glob("*.tfrecord"))[0].read_bytes()
    (bad / "train0000.tfrecord").write_bytes(good[:-10])  # a truncated last record
    (bad / "validate0000.tfrecord").write_bytes(good)
    code, _, err = mmkit(capsys, "video", "train", "--data", bad, "--model", "lstm", "--project", tmp_path)
    assert code == 2 and "train0000.tfrecord" in err and "byte" in err
    code, _, err = mmkit(
        capsys, "video", "train", "--data", motion_videos, "--model", "lstm", "--project", tmp_path
    )
    assert code == 2 and "video features" in err


def test_youtube8m_vocabulary_header_and_unlabelled_test_shards(tmp_path):
    import numpy as np

    from mmkit.data.formats.youtube8m import write_records
    from mmkit.data.videos import load_video_data

    def recs(n, labelled=True):
        rng = np.random.default_rng(0)
        for i in range(n):
            yield {
                "id": f"v{i}",
                "labels": [i % 3] if labelled else [],
                "rgb": rng.uniform(-1, 1, (4, 8)).astype(np.float32),
                "audio": rng.uniform(-1, 1, (4, 2)).astype(np.float32),
            }

    write_records(tmp_path / "train0000.tfrecord", recs(9), level="frame")
    write_records(tmp_path / "validate0000.tfrecord", recs(3), level="frame")
    write_records(tmp_path / "test0000.tfrecord", recs(5, labelled=False), level="frame")
    (tmp_path / "vocabulary.csv").write_text(
        "Index,TrainVideoCount,KnowledgeGraphId,Name,WikiUrl\n0,900,/m/1,Game,u\n1,800,/m/2,Car,u\n2,700,/m/3,Dance,u\n"
    )
    d = load_video_data(str(tmp_path), kind="features", max_frames=4)
    assert d.classes == ["Game", "Car", "Dance"]  # the Name column, not the counts
    assert (len(d.train), len(d.val), d.feature_dim) == (9, 3, 10)  # test*.tfrecord (unlabelled) left out


def test_recipes_are_the_readme_and_bench_ones_and_flags_fill_model_args(capsys):
    from mmkit.tasks.registry import get_task
    from mmkit.tasks.video import VideoTask

    spec = get_task("video")
    assert spec.recipe("motion/") == {"grad_clip": 5.0}  # folders: the task's defaults only
    # bench/video_quality.py's 25-epoch cnn-lstm row on motion-clips (91.9 %)
    readme = spec.recipe("motion-clips")
    assert {k: readme[k] for k in ("model", "img_size", "frames", "epochs", "lr", "batch_size")} == {
        "model": "cnn-lstm", "img_size": 32, "frames": 16, "epochs": 25, "lr": 3e-3, "batch_size": 32,
    }  # fmt: skip
    assert readme["model_kwargs"] == {"width": 16, "feat": 64, "diff": True} and readme["hidden"] == 128
    bench = spec.recipe("motion-clips-large")  # bench/video_quality.py's measured recipe (96.67 %)
    assert (bench["epochs"], bench["hidden"], bench["warmup"]) == (12, 128, 1.0)
    task = VideoTask("motion-clips", "cnn-gru", hidden=64, bidirectional=True, model_kwargs={"hidden": 8})
    assert task.model_kwargs == {"hidden": 64, "bidirectional": True}  # the flags win over --model-arg
    code, _, err = mmkit(capsys, "video", "train", "--model", "lstm")
    assert code == 2 and "--data is required" in err
