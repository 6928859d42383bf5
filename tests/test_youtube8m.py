"""YouTube-8M TFRecords without TensorFlow: framing and CRCs, both levels, errors, the Dataset, synthetic data."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mmkit.cli import app
from mmkit.cli.common import run_cli
from mmkit.data.formats.youtube8m import (
    QUANT_BIAS,
    QUANT_SCALE,
    count_records,
    dequantize_features,
    encode_frame,
    encode_video,
    frame_record,
    masked_crc,
    quantize_features,
    read_records,
    write_records,
)
from mmkit.data.formats.youtube8m_dataset import YouTube8MDataset, collate
from mmkit.data.synthetic_yt8m import write_synthetic_yt8m
from mmkit.errors import MMKitError

HALF_STEP = 2.0 / 255 + 1e-6  # half of the 4/255 quantization step

# Two records written by TensorFlow 2.21 (tf.io.TFRecordWriter, in a separate venv), made with:
#   B = bytes feature, I = int64 list, F = float list
#   SequenceExample(context={"id": B(b"ab12"), "labels": I([3, 70000])},
#                   feature_lists={"rgb": [B(bytes([0, 1, 254, 255])), B(bytes([10, 20, 30, 40]))],
#                                  "audio": [B(bytes([0, 255])), B(bytes([128, 127]))]})
#   Example(features={"id": B(b"vid1"), "labels": I([1, 2]), "mean_rgb": F([0.5, -1.25, 2.0]),
#                     "mean_audio": F([0.25])})
# The first record is 112 bytes (16 of framing + a 96-byte payload), the second 106.
TF_RECORDS = bytes.fromhex(
    "60000000000000002821c6da0a240a0e0a02696412080a060a04616231320a120a066c6162656c7312081a060a0403f0a204"
    "12380a1b0a0372676212140a080a060a040001feff0a080a060a040a141e280a190a05617564696f12100a060a040a0200ff"
    "0a060a040a02807fe03839fb5a00000000000000136fb4bf0a580a160a0a6d65616e5f617564696f120812060a040000803e"
    "0a0e0a02696412080a060a04766964310a100a066c6162656c7312061a040a0201020a1c0a086d65616e5f7267621210120e"
    "0a0c0000003f0000a0bf00000040bf0de05c"
)


def _frame_recs(n: int, rgb: int = 1024, audio: int = 128, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {
            "id": f"vid{i}",
            "labels": sorted(rng.choice(50, int(rng.integers(1, 4)), replace=False).tolist()),
            "rgb": rng.uniform(-2, 2, (int(rng.integers(1, 9)), rgb)).astype(np.float32),
            "audio": None,
        }
        for i in range(n)
    ]


def _with_audio(recs: list[dict], width: int, seed: int = 1) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [r | {"audio": rng.uniform(-2, 2, (len(r["rgb"]), width)).astype(np.float32)} for r in recs]


def test_quantization_matches_the_starter_code_and_inverts_exactly():
    q = np.arange(256, dtype=np.uint8)
    expected = q.astype(np.float32) * np.float32(4 / 255) + np.float32(
        4 / 512 - 2
    )  # utils.Dequantize(q, 2, -2)
    assert np.array_equal(dequantize_features(q), expected)
    assert float(QUANT_SCALE) == pytest.approx(4 / 255) and float(QUANT_BIAS) == pytest.approx(4 / 512 - 2)
    assert np.array_equal(quantize_features(dequantize_features(q)), q)
    assert quantize_features(np.array([-9.0, -2.0, 2.0, 9.0])).tolist() == [0, 0, 255, 255]


def test_frame_level_round_trip(tmp_path):
    recs = _with_audio(_frame_recs(6), 128)
    assert write_records(tmp_path / "f.tfrecord", recs, level="frame") == 6
    back = list(read_records(tmp_path / "f.tfrecord", level="frame"))
    assert [r["id"] for r in back] == [r["id"] for r in recs]
    for a, b in zip(recs, back, strict=True):
        assert b["labels"] == a["labels"]
        assert b["rgb"].dtype == np.float32 and b["rgb"].shape == a["rgb"].shape
        assert b["audio"].shape == (len(a["rgb"]), 128)
        assert np.abs(b["rgb"] - a["rgb"]).max() <= HALF_STEP
        assert np.abs(b["audio"] - a["audio"]).max() <= HALF_STEP
        assert not any(k.startswith("segment") for k in b)
    # values already on the quantization grid come back bit for bit
    again = tmp_path / "g.tfrecord"
    write_records(again, back, level="frame")
    for a, b in zip(back, read_records(again, level="frame"), strict=True):
        assert np.array_equal(a["rgb"], b["rgb"]) and np.array_equal(a["audio"], b["audio"])


def test_video_level_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(3)
    recs = [
        {"id": "ä-1", "labels": [0, 4715], "rgb": rng.normal(size=1024).astype(np.float32),
         "audio": rng.normal(size=128).astype(np.float32)},
        {"id": "x", "labels": [], "rgb": rng.normal(size=1024).astype(np.float32),
         "audio": rng.normal(size=128).astype(np.float32)},
    ]  # fmt: skip
    write_records(tmp_path / "v.tfrecord", recs)
    back = list(read_records(tmp_path / "v.tfrecord", level="video"))
    for a, b in zip(recs, back, strict=True):
        assert b["id"] == a["id"] and b["labels"] == a["labels"]
        assert b["rgb"].shape == (1024,) and np.array_equal(a["rgb"], b["rgb"])
        assert np.array_equal(a["audio"], b["audio"])


def test_segment_fields_round_trip(tmp_path):
    rec = _with_audio(_frame_recs(1), 128)[0]
    rec |= {
        "segment_labels": [7, 7, 12],
        "segment_start_times": [0, 5, 40],
        "segment_scores": [1.0, 0.0, 0.5],
    }
    write_records(tmp_path / "s.tfrecord", [rec], level="frame")
    back = next(read_records(tmp_path / "s.tfrecord", level="frame"))
    assert back["segment_labels"] == [7, 7, 12] and back["segment_start_times"] == [0, 5, 40]
    assert back["segment_scores"] == [1.0, 0.0, 0.5]
    vrec = {"id": "v", "labels": [1], "rgb": np.zeros(4), "audio": np.ones(2), "segment_scores": [0.25]}
    write_records(tmp_path / "sv.tfrecord", [vrec])
    vback = next(read_records(tmp_path / "sv.tfrecord"))
    assert vback["segment_scores"] == [0.25] and "segment_labels" not in vback


def test_other_feature_widths_and_a_missing_audio(tmp_path):
    recs = _with_audio(_frame_recs(3, rgb=7), 3)
    write_records(tmp_path / "w.tfrecord", recs, level="frame")
    for a, b in zip(recs, read_records(tmp_path / "w.tfrecord", "frame"), strict=True):
        assert b["rgb"].shape == (len(a["rgb"]), 7) and b["audio"].shape == (len(a["rgb"]), 3)
    no_audio = _frame_recs(2, rgb=5)
    write_records(tmp_path / "n.tfrecord", no_audio, level="frame")
    back = list(read_records(tmp_path / "n.tfrecord", "frame"))
    assert back[0]["rgb"].shape == (len(no_audio[0]["rgb"]), 5) and back[0]["audio"].shape == (
        len(back[0]["rgb"]),
        0,
    )
    ds = YouTube8MDataset(tmp_path / "n.tfrecord", "frame", num_classes=50, max_frames=10)
    assert (ds.rgb_dim, ds.audio_dim) == (5, 0) and ds[0][0].shape == (10, 5)


def test_framing_and_parsing_match_tensorflow_bytes(tmp_path):
    (tmp_path / "f.tfrecord").write_bytes(TF_RECORDS[:112])
    (tmp_path / "v.tfrecord").write_bytes(TF_RECORDS[112:])
    # our framing of TF's payloads reproduces TF's bytes exactly (length, masked CRCs)
    assert frame_record(TF_RECORDS[12:108]) == TF_RECORDS[:112]
    assert frame_record(TF_RECORDS[124:-4]) == TF_RECORDS[112:]
    assert masked_crc(TF_RECORDS[:8]) == int.from_bytes(TF_RECORDS[8:12], "little")
    (f,) = read_records(tmp_path / "f.tfrecord", level="frame")
    assert f["id"] == "ab12" and f["labels"] == [3, 70000]
    expected_rgb = np.array([[0, 1, 254, 255], [10, 20, 30, 40]], np.float32) * (4 / 255) + (4 / 512 - 2)
    assert np.allclose(f["rgb"], expected_rgb, atol=1e-6)
    assert np.allclose(f["audio"], dequantize_features(np.array([[0, 255], [128, 127]], np.uint8)))
    (v,) = read_records(tmp_path / "v.tfrecord", level="video")
    assert v["id"] == "vid1" and v["labels"] == [1, 2]
    assert v["rgb"].tolist() == [0.5, -1.25, 2.0] and v["audio"].tolist() == [0.25]


def _two_record_file(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "two.tfrecord"
    write_records(path, _with_audio(_frame_recs(2, rgb=16), 4), level="frame")
    first_len = int.from_bytes(path.read_bytes()[:8], "little")
    return path, 16 + first_len  # the second record's byte offset


def test_bad_crc_names_file_and_offset_and_verify_crc_false_skips_it(tmp_path):
    path, second = _two_record_file(tmp_path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # the last audio byte of the second record: still parsable
    path.write_bytes(bytes(data))
    with pytest.raises(MMKitError, match=rf"{path.name}: record at byte {second}: bad CRC of the data"):
        list(read_records(path, "frame"))
    assert len(list(read_records(path, "frame", verify_crc=False))) == 2
    data[second + 2] ^= 0x01  # the second record's length
    path.write_bytes(bytes(data))
    with pytest.raises(MMKitError, match=rf"record at byte {second}: bad CRC of the length"):
        list(read_records(path, "frame", verify_crc=False))


def test_truncated_file(tmp_path):
    path, second = _two_record_file(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-20])
    with pytest.raises(MMKitError, match=rf"{path.name}: record at byte {second}: truncated"):
        list(read_records(path, "frame"))
    path.write_bytes(data[: second + 5])
    with pytest.raises(MMKitError, match=rf"record at byte {second}: truncated header"):
        count_records(path)


def test_garbage_and_unparsable_payloads(tmp_path):
    junk = tmp_path / "junk.tfrecord"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(MMKitError, match=r"junk.tfrecord: record at byte 0: bad CRC of the length"):
        list(read_records(junk, "video"))
    bad = tmp_path / "bad.tfrecord"
    unparsable = frame_record(b"\x0a\xff\xff\xff\x0f\x00")  # a length past the end of the message
    good = frame_record(encode_video({"id": "a", "labels": [1], "rgb": np.zeros(2), "audio": None}))
    bad.write_bytes(good + unparsable)
    with pytest.raises(MMKitError, match=rf"record at byte {len(good)}: unparsable video-level protobuf"):
        list(read_records(bad, "video"))
    good = frame_record(encode_frame({"id": "a", "labels": [1], "rgb": np.zeros((1, 2)), "audio": None}))
    bad.write_bytes(good + unparsable)
    with pytest.raises(MMKitError, match=rf"record at byte {len(good)}: unparsable frame-level protobuf"):
        list(read_records(bad, "frame"))
    bad.write_bytes(frame_record(b"\x0a\x00\x12\x02\x0a\x00"))  # feature lists without rgb or audio
    with pytest.raises(MMKitError, match=r"record at byte 0: unparsable frame-level protobuf \(no 'rgb'"):
        list(read_records(bad, "frame"))
    with pytest.raises(MMKitError, match="no such file"):
        list(read_records(tmp_path / "missing.tfrecord"))


def test_wrong_level_is_reported(tmp_path):
    path, _ = _two_record_file(tmp_path)
    with pytest.raises(MMKitError, match="frame-level record"):
        list(read_records(path, "video"))
    write_records(
        tmp_path / "v.tfrecord", [{"id": "a", "labels": [1], "rgb": np.zeros(3), "audio": np.zeros(2)}]
    )
    with pytest.raises(MMKitError, match="video-level record"):
        list(read_records(tmp_path / "v.tfrecord", "frame"))


def test_paths_folders_globs_and_counts(tmp_path):
    for k in range(3):
        write_records(
            tmp_path / "d" / f"train{k:04d}.tfrecord", _with_audio(_frame_recs(k + 1, rgb=4), 2), "frame"
        )
    assert count_records(tmp_path / "d") == 6
    assert count_records(str(tmp_path / "d" / "train000[12].tfrecord")) == 5
    assert count_records([tmp_path / "d" / "train0000.tfrecord", tmp_path / "d" / "train0002.tfrecord"]) == 4
    ids = [r["id"] for r in read_records(tmp_path / "d", "frame")]
    assert ids == ["vid0", "vid0", "vid1", "vid0", "vid1", "vid2"]
    with pytest.raises(MMKitError, match="no files match"):
        count_records(str(tmp_path / "d" / "nothing*.tfrecord"))


def test_dataset_padding_sampling_and_labels(tmp_path):
    lengths = [3, 12, 8]
    recs = []
    for i, t in enumerate(lengths):  # frame f of every video holds the value level f (same in all columns)
        levels = np.repeat(np.arange(t, dtype=np.uint8)[:, None] * 10, 6, axis=1)
        recs.append({"id": str(i), "labels": [i, 4], "rgb": dequantize_features(levels[:, :4]),
                     "audio": dequantize_features(levels[:, 4:])})  # fmt: skip
    path = tmp_path / "f.tfrecord"
    write_records(path, recs, "frame")
    frame_of = lambda x: np.rint((x[:, 0].numpy() - float(QUANT_BIAS)) / float(QUANT_SCALE) / 10)  # noqa: E731

    pad = YouTube8MDataset(path, "frame", num_classes=5, max_frames=8)
    assert len(pad) == 3 and pad.feature_dim == 6
    x, n, y = pad[0]
    assert x.shape == (8, 6) and x.dtype == torch.float32 and n == 3
    assert torch.equal(y, torch.tensor([1.0, 0, 0, 0, 1]))
    assert frame_of(x[:3]).tolist() == [0, 1, 2] and torch.all(x[3:] == 0)
    x, n, _ = pad[1]
    assert n == 8 and frame_of(x).tolist() == list(range(8))  # the first max_frames frames

    uni = YouTube8MDataset(path, "frame", num_classes=5, max_frames=6, sample="uniform")
    x, n, _ = uni[1]
    assert n == 6 and frame_of(x).tolist() == [1, 3, 5, 7, 9, 11]  # evenly spaced over 12 frames
    x, n, _ = uni[0]
    assert n == 6 and frame_of(x).tolist() == [0, 0, 1, 1, 2, 2]  # a short video repeats frames

    rnd = YouTube8MDataset(path, "frame", num_classes=5, max_frames=6, sample="random")
    torch.manual_seed(0)
    a = frame_of(rnd[1][0])
    b = frame_of(rnd[1][0])
    assert len(set(a)) == 6 and list(a) == sorted(a) and set(a) <= set(range(12)) and not np.array_equal(a, b)
    x, n, _ = rnd[0]
    assert n == 6 and set(frame_of(x)) == {0, 1, 2}  # all frames of a short video, some twice

    batch = next(iter(torch.utils.data.DataLoader(pad, batch_size=3)))
    assert batch[0].shape == (3, 8, 6) and batch[1].tolist() == [3, 8, 8] and batch[2].shape == (3, 5)
    with pytest.raises(MMKitError, match="label 4 outside"):
        YouTube8MDataset(path, "frame", num_classes=4)[0]


def _stacked(ds, indices):
    items = [ds[i] for i in indices]
    return (
        torch.stack([x for x, _, _ in items]),
        [n for _, n, _ in items],
        torch.stack([y for _, _, y in items]),
    )


def test_whole_batches_equal_items_stacked(tmp_path):
    write_synthetic_yt8m(tmp_path / "s", level="frame", classes=6, videos=40, seed=3, rgb_dim=16, audio_dim=4)
    files = sorted((tmp_path / "s").rglob("train*.tfrecord"))
    for dequantize in (True, False):
        ds = YouTube8MDataset(files, "frame", num_classes=6, max_frames=80, dequantize=dequantize)
        sub = torch.utils.data.Subset(ds, [5, 0, 7, 3, 9])
        for data, idx in ((ds, [0, 1, 2, 3]), (sub, [0, 1, 2, 3, 4])):
            loader = torch.utils.data.DataLoader(data, batch_size=len(idx), collate_fn=collate)
            x, n, y = next(iter(loader))
            want_x, want_n, want_y = _stacked(data, idx)
            assert x.dtype == want_x.dtype and torch.equal(x, want_x)
            assert n.tolist() == want_n and torch.equal(y, want_y)
            # from a worker process (the batch built in shared memory)
            loader = torch.utils.data.DataLoader(data, batch_size=len(idx), collate_fn=collate, num_workers=1)
            xw, nw, yw = next(iter(loader))
            assert torch.equal(xw, want_x) and nw.tolist() == want_n and torch.equal(yw, want_y)
            # another collate_fn still sees ordinary items
            x2, _, _ = next(iter(torch.utils.data.DataLoader(data, batch_size=len(idx))))
            assert torch.equal(x2, want_x)
    assert bool((n < 80).any()) and bool((x[n < 80][:, -1] == 0).all())  # padding rows are zero


def test_video_level_dataset(tmp_path):
    rng = np.random.default_rng(1)
    recs = [
        {"id": str(i), "labels": [i], "rgb": rng.normal(size=6), "audio": rng.normal(size=2)}
        for i in range(4)
    ]
    write_records(tmp_path / "v.tfrecord", recs)
    ds = YouTube8MDataset(tmp_path / "v.tfrecord", "video", num_classes=4)
    x, n, y = ds[2]
    assert x.shape == (8,) and n == 1 and y.tolist() == [0, 0, 1, 0]
    assert np.allclose(x[:6].numpy(), recs[2]["rgb"]) and np.allclose(x[6:].numpy(), recs[2]["audio"])


def mmkit(capsys, *args) -> tuple[int, str, str]:
    code = run_cli(app, [str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_cli_synth_yt8m_end_to_end(tmp_path, capsys):
    args = ["--videos", 10, "--classes", 4, "--frames", 6, "--rgb-dim", 16, "--audio-dim", 4, "--seed", 3]
    code, out, err = mmkit(capsys, "data", "synth", "yt8m", "--out", tmp_path / "a", *args, "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["train"] == 10 and s["validate"] == 2 and s["shards"]["train"] == ["train0000.tfrecord"]
    assert count_records(tmp_path / "a" / "train") == 10 and count_records(tmp_path / "a" / "validate") == 2
    with open(tmp_path / "a" / "vocabulary.csv") as f:
        assert [row[0] for row in csv.reader(f)] == ["Index", "0", "1", "2", "3"]
    recs = list(read_records(tmp_path / "a" / "train", "frame"))
    assert all(1 <= len(r["labels"]) <= 3 and 3 <= len(r["rgb"]) <= 6 for r in recs)
    assert all(r["rgb"].shape[1] == 16 and r["audio"].shape[1] == 4 for r in recs)
    ds = YouTube8MDataset(tmp_path / "a" / "train", "frame", num_classes=4, max_frames=6)
    assert ds[0][0].shape == (6, 20) and ds[0][2].sum() == len(recs[0]["labels"])
    # same seed: same bytes (also when rewriting a previous output); another seed: other data
    code, out, err = mmkit(capsys, "data", "synth", "yt8m", "--out", tmp_path / "b", *args)
    assert code == 0 and out.startswith("synth yt8m: 10 train + 2 validate frame-level videos, 4 classes"), (
        err
    )
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert mmkit(capsys, "data", "synth", "yt8m", "--out", tmp_path / "b", *args)[0] == 0
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert mmkit(capsys, "data", "synth", "yt8m", "--out", tmp_path / "c", *args[:-1], 4)[0] == 0
    assert (
        _files(tmp_path / "a")["train/train0000.tfrecord"]
        != _files(tmp_path / "c")["train/train0000.tfrecord"]
    )
    # video level describes the same videos: the means of the dequantized frames
    code, _, err = mmkit(capsys, "data", "synth", "yt8m", "--out", tmp_path / "v", "--level", "video", *args)
    assert code == 0, err
    for f, v in zip(recs, read_records(tmp_path / "v" / "train", "video"), strict=True):
        assert v["id"] == f["id"] and v["labels"] == f["labels"]
        assert np.allclose(v["rgb"], f["rgb"].mean(0), atol=1e-6)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("x")
    code, _, err = mmkit(capsys, "data", "synth", "yt8m", "--out", tmp_path / "d", *args)
    assert code == 2 and "not empty" in err
    code, _, err = mmkit(capsys, "data", "synth", "yt8m", "--out", tmp_path / "e", "--level", "clip")
    assert code == 2 and "--level" in err


def test_synthetic_labels_are_learnable(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score

    write_synthetic_yt8m(
        tmp_path, level="video", videos=400, classes=6, frames=20, rgb_dim=48, audio_dim=8, seed=1
    )

    def arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
        recs = list(read_records(tmp_path / split, "video"))
        x = np.stack([np.concatenate([r["rgb"], r["audio"]]) for r in recs])
        y = np.zeros((len(recs), 6))
        for i, r in enumerate(recs):
            y[i, r["labels"]] = 1
        return x, y

    (x, y), (xv, yv) = arrays("train"), arrays("validate")
    assert y.sum(1).min() >= 1 and y.sum(1).max() <= 3 and (y[:, 0] * y[:, 1]).sum() > 0.2 * y[:, 0].sum()
    scores = np.stack(
        [LogisticRegression(max_iter=300).fit(x, y[:, c]).decision_function(xv) for c in range(6)], 1
    )
    ap = average_precision_score(yv, scores, average="macro")
    assert ap > 0.8 and ap > 2 * yv.mean()  # far above chance (the label frequency)
