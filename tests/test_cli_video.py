"""Video classification end to end through the `mmkit` command: YouTube-8M-format records (the starter code's models,
mAP, the Kaggle submission), synthetic motion videos on disk (end-to-end CNN + RNN), features extracted from video
files, predictions per video and per segment."""

import json

import numpy as np
import pytest
import torch
from _cli import mmkit, synth_fixture

from mmkit.data.formats.youtube8m import write_records
from mmkit.engine import load_checkpoint

yt8m = synth_fixture(
    "yt8m", "--videos", "200", "--classes", "6", "--frames", "12", "--rgb-dim", "32", "--audio-dim", "8"
)
yt8m_video_level = synth_fixture(
    "yt8m",
    "--level",
    "video",
    "--videos",
    "200",
    "--classes",
    "6",
    "--frames",
    "12",
    "--rgb-dim",
    "32",
    "--audio-dim",
    "8",
)  # fmt: skip  (the same videos as `yt8m`, as their frame means)
motion_videos = synth_fixture("videos", "--n", "45", "--frames", "8", "--size", "32")
YT8M_FAST = ["--max-frames", "12", "--epochs", "4", "--batch-size", "16", "--lr", "1e-2", "--json"]


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


@pytest.mark.parametrize(
    ("model", "args"),
    [
        ("rnn", ["--hidden", "32"]),
        ("dbof", ["--model-arg", "cluster=64", "--model-arg", "hidden=32", "--model-arg", "iterations=8"]),
    ],
)
def test_rnn_and_dbof_learn_yt8m_records(yt8m, capsys, tmp_path, model, args):
    code, out, _ = mmkit(capsys, "video", "train", "--data", yt8m, "--model", model, *args, *YT8M_FAST,
                         "--project", tmp_path, "--name", "m")  # fmt: skip
    assert code == 0
    fit = json.loads(out)
    assert fit["best_value"] > 0.4 and fit["metrics"]["val/map"] > 0.4  # six classes: chance GAP is about 0.3


def test_logistic_on_video_level_features_is_frame_logistic_on_frames(
    yt8m, yt8m_video_level, capsys, tmp_path
):
    runs = {}
    for name, data, level in (("frame-logistic", yt8m, "frame"), ("logistic", yt8m_video_level, "video")):
        code, out, _ = mmkit(capsys, "video", "train", "--data", data, "--level", level, "--model", name,
                             *YT8M_FAST, "--project", tmp_path, "--name", name)  # fmt: skip
        assert code == 0
        runs[name] = json.loads(out)
    # the video-level features are the frame means: the same linear model, the same seed, the same result
    assert runs["frame-logistic"]["best_value"] > 0.4
    assert runs["logistic"]["best_value"] == pytest.approx(runs["frame-logistic"]["best_value"], abs=1e-3)
    code, _, err = mmkit(
        capsys, "video", "train", "--data", yt8m, "--model", "logistic", "--project", tmp_path
    )
    assert code == 2 and "--level video" in err and "frame-logistic" in err


def _format_lines(video_ids, predictions, top_k):
    """The starter code's inference.format_lines, literally (decoded to text)."""
    for video_index in range(len(video_ids)):
        video_prediction = predictions[video_index]
        top_indices = np.argpartition(video_prediction, -top_k)[-top_k:]
        line = [(class_index, predictions[video_index][class_index]) for class_index in top_indices]
        line = sorted(line, key=lambda p: -p[1])
        yield video_ids[video_index] + "," + " ".join("%i %g" % (label, score) for (label, score) in line)  # noqa: UP031


def test_eval_map_and_the_kaggle_submission(yt8m, capsys, tmp_path):
    from mmkit.data.formats.youtube8m import read_records
    from mmkit.tasks.video import VideoPredictor

    args = ["--model-arg", "cluster=32", "--model-arg", "hidden=16", "--model-arg", "iterations=0"]
    code, _, _ = mmkit(capsys, "video", "train", "--data", yt8m, "--model", "dbof", *args, *YT8M_FAST[:2],
                       "--epochs", "2", "--project", tmp_path, "--name", "d")  # fmt: skip
    assert code == 0
    weights = tmp_path / "video" / "d" / "best.pt"
    code, out, _ = mmkit(
        capsys, "video", "eval", "--weights", weights, "--data", yt8m, "--out", tmp_path / "e"
    )
    assert code == 0 and "mAP" in out
    r = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert len(r["per_class_ap"]) == 6 and set(r["per_class_ap"]) == {f"class_{c:02d}" for c in range(6)}
    assert r["map"] == pytest.approx(np.mean(list(r["per_class_ap"].values())))

    test = tmp_path / "test"  # Kaggle's test partition: records without labels
    test.mkdir()
    records = list(read_records(yt8m / "validate", level="frame"))
    write_records(test / "test0000.tfrecord", [{**rec, "labels": []} for rec in records], level="frame")
    sub = tmp_path / "sub.csv"
    code, out, _ = mmkit(capsys, "video", "predict", "--weights", weights, test, "--submission", sub, "--topk", "4",
                         "--batch-size", "7", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["videos"] == len(records) == 40
    header, *lines = sub.read_text().splitlines()
    assert header == "VideoId,LabelConfidencePairs"
    # the probabilities of each video alone, written as the starter code's inference.py writes them
    p = VideoPredictor.load(weights, device="cpu")
    probs = []
    for rec in records:
        x = torch.from_numpy(np.concatenate([rec["rgb"], rec["audio"]], 1))[None]
        with torch.no_grad():
            probs.append(p.net(x, torch.tensor([len(rec["rgb"])])).sigmoid()[0].numpy())
    want = list(_format_lines([rec["id"] for rec in records], np.stack(probs), 4))
    assert len(lines) == len(want)
    for got, expected in zip(lines, want, strict=True):
        vid, pairs = got.split(",")
        want_vid, want_pairs = expected.split(",")
        labels, scores = [int(t) for t in pairs.split()[::2]], [float(t) for t in pairs.split()[1::2]]
        assert vid == want_vid and labels == [int(t) for t in want_pairs.split()[::2]]
        np.testing.assert_allclose(scores, [float(t) for t in want_pairs.split()[1::2]], rtol=1e-5)
        assert pairs == " ".join("%i %g" % pair for pair in zip(labels, scores, strict=True))  # noqa: UP031
    code, _, err = mmkit(capsys, "video", "predict", "--weights", weights, test, "--submission", sub,
                         "--segment-seconds", "2")  # fmt: skip
    assert code == 2 and "--segment-seconds" in err
