"""`mmkit serve`'s REST API through FastAPI's TestClient: every endpoint on real photos (and a small clip), the
answers equal to the task APIs', and bad uploads refused with a 4xx while the server keeps serving."""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from mmkit.apps.serve import ServeConfig, create_app  # noqa: E402
from mmkit.engine.checkpoint import FORMAT, VERSION, save_checkpoint  # noqa: E402
from mmkit.models.darknet import coco_installed  # noqa: E402

LOCAL = "http://localhost"  # the Host a browser on this machine sends; others are refused (see guard.py)

# ---------------------------------------------------------------------------------------------------------------------
# Fixtures: photos, a clip, and small untrained checkpoints of every other task (the server must pass their answers
# through unchanged, which the tests check against each task's own `predict`)


def _checkpoint(path: Path, task: str, meta, net: torch.nn.Module) -> str:
    state = {
        "format": FORMAT,
        "version": VERSION,
        "task": task,
        "model": net.state_dict(),
        "meta": asdict(meta),
    }
    return str(save_checkpoint(state, path))


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    import skimage.data

    from mmkit.data.formats.video import write_video

    d = tmp_path_factory.mktemp("media")
    Image.fromarray(skimage.data.coffee()).save(d / "coffee.jpg", quality=92)
    Image.fromarray(skimage.data.astronaut()).save(d / "astronaut.png")
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 255, (16, 3, 48, 64), dtype=torch.uint8, generator=g)
    write_video(d / "clip.mp4", frames, fps=8)
    return {p.stem: p for p in d.iterdir()}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, str]:
    from mmkit.data.formats.captions import Vocabulary
    from mmkit.models import get_model
    from mmkit.tasks.caption import CaptionMeta
    from mmkit.tasks.detect import DetectorMeta
    from mmkit.tasks.face import FaceMeta
    from mmkit.tasks.video import VideoMeta

    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    det = DetectorMeta("yolov3-tiny", 2, 128, ["circle", "square"])
    vocab = Vocabulary(["a", "red", "circle", "on", "blue", "square", "."])
    cap_kw = {"encoder": "smallcnn", "embed_dim": 32, "hidden_dim": 32}
    cap = CaptionMeta("show-tell", vocab.to_dict(), 32, [0.5] * 3, [0.5] * 3, model_kwargs=cap_kw)
    vid = VideoMeta("cnn-mean", 3, ["left", "right", "still"], "clips", False, img_size=32, frames=4)
    vid.model_kwargs = {"width": 8}
    face = FaceMeta("facenet-light", 128, 64, [0.5] * 3, [0.5] * 3, threshold=0.5)
    return {
        "detector": _checkpoint(d / "det.pt", "detect", det, get_model("yolov3-tiny", 2)),
        "captioner": _checkpoint(
            d / "cap.pt", "caption", cap, get_model("show-tell", vocab_size=len(vocab), **cap_kw)
        ),
        "video": _checkpoint(d / "vid.pt", "video", vid, get_model("cnn-mean", 3, in_chans=3, width=8)),
        "face": _checkpoint(d / "face.pt", "face", face, get_model("facenet-light")),
        "db": str(d / "faces.db"),
    }


@pytest.fixture(scope="module")
def client(weights) -> TestClient:
    torch.set_num_threads(2)
    config = ServeConfig(
        detector=weights["detector"],
        captioner=weights["captioner"],
        video=weights["video"],
        face_weights=weights["face"],
        face_db=weights["db"],
        device="cpu",
    )
    return TestClient(create_app(config), base_url=LOCAL)


def post(client: TestClient, path: str, name: str, data: bytes, **kw):
    return client.post(path, files={"file": (name, data, "application/octet-stream")}, **kw)


def still_serving(client: TestClient, media) -> None:
    r = post(client, "/classify", "coffee.jpg", media["coffee"].read_bytes())
    assert r.status_code == 200 and r.json()["top"][0]["label"] == "espresso"


# ---------------------------------------------------------------------------------------------------------------------
# Endpoints


def test_classify_names_the_coffee_photo(client, media):
    r = post(client, "/classify", "coffee.jpg", media["coffee"].read_bytes(), params={"topk": 3})
    assert r.status_code == 200
    body = r.json()
    assert (body["file"], body["width"], body["height"]) == ("coffee.jpg", 600, 400)
    probs = [t["prob"] for t in body["top"]]
    assert body["top"][0]["label"] == "espresso" and len(probs) == 3
    assert probs == sorted(probs, reverse=True) and probs[0] > 0.5 and sum(probs) <= 1 + 1e-5


def test_faces_detect_finds_the_astronaut_only(client, media):
    r = post(client, "/faces/detect", "astronaut.png", media["astronaut"].read_bytes())
    assert r.status_code == 200
    faces = r.json()["faces"]
    assert len(faces) == 1 and faces[0]["score"] > 0.95 and len(faces[0]["landmarks"]) == 5
    x1, y1, x2, y2 = faces[0]["box"]
    assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 512
    assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in faces[0]["landmarks"])
    assert post(client, "/faces/detect", "coffee.jpg", media["coffee"].read_bytes()).json()["faces"] == []


def test_enroll_then_identify_names_the_face(client, media):
    png = media["astronaut"].read_bytes()
    before = post(client, "/faces/identify", "astronaut.png", png).json()["faces"]
    assert [(f["name"], f["distance"]) for f in before] == [("unknown", None)]  # empty gallery
    r = client.post("/faces/enroll", files={"file": ("a.png", png)}, data={"name": "  Eileen Collins "})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Eileen Collins" and r.json()["faces_of_person"] == 1
    after = post(client, "/faces/identify", "astronaut.png", png).json()["faces"]
    assert len(after) == 1 and after[0]["name"] == "Eileen Collins" and after[0]["distance"] < 1e-3
    assert after[0]["box"] == before[0]["box"]
    assert client.get("/faces/people").json()["people"] == [{"name": "Eileen Collins", "faces": 1}]
    # no face, or no name: nothing enrolled, a clear 422
    r = client.post(
        "/faces/enroll", files={"file": ("c.jpg", media["coffee"].read_bytes())}, data={"name": "x"}
    )
    assert r.status_code == 422 and "no face found" in r.json()["detail"]
    r = client.post("/faces/enroll", files={"file": ("a.png", png)}, data={"name": " "})
    assert r.status_code == 422 and "name" in r.json()["detail"]
    assert client.get("/faces/people").json()["people"] == [{"name": "Eileen Collins", "faces": 1}]


def test_detect_caption_video_answer_as_the_task_apis_do(client, media, weights, monkeypatch):
    from _detector import Box, known_outputs

    from mmkit.models.yolov3 import YOLOv3
    from mmkit.tasks import caption, detect, video

    coffee = media["coffee"]  # 600 x 400: letterboxed into 128 x 128 at scale 128 / 600, 21 px down
    planned = [Box(10, 30, 50, 70, 0.9, 0), Box(70, 40, 120, 90, 0.6, 1), Box(12, 32, 52, 72, 0.005, 1)]
    known_outputs(monkeypatch, YOLOv3, [(None, planned)])  # the detector's raw outputs hold these boxes
    r = post(client, "/detect", "coffee.jpg", coffee.read_bytes(), params={"conf": 0.01})
    assert r.status_code == 200
    want, _ = detect.predict(weights["detector"], [coffee], conf=0.01, device="cpu")
    assert r.json()["detections"] == want[0]["detections"]
    scale = 128 / 600
    for d, b in zip(r.json()["detections"], planned[:2], strict=True):  # the 0.005 box is under conf
        expected = [b.x1 / scale, (b.y1 - 21) / scale, b.x2 / scale, (b.y2 - 21) / scale]
        assert d["box"] == pytest.approx(expected, abs=0.2) and d["score"] == pytest.approx(b.score, abs=1e-4)
        assert d["class"] == ["circle", "square"][b.label]

    r = post(client, "/caption", "coffee.jpg", coffee.read_bytes(), params={"beam": 2})
    want, _ = caption.predict(weights["captioner"], [str(coffee)], beam=2, device="cpu")
    assert r.status_code == 200 and r.json()["caption"] == want[0]["caption"]
    assert r.json()["score"] == want[0]["score"]

    r = post(client, "/video", "clip.mp4", media["clip"].read_bytes(), params={"segment_seconds": 1})
    assert r.status_code == 200, r.text
    want, _ = video.predict(weights["video"], [str(media["clip"])], segment_seconds=1, device="cpu")
    body = r.json()
    assert body["top"] == want[0]["top"] and body["segments"] == want[0]["segments"]
    assert (body["width"], body["height"], body["fps"], body["duration"]) == (64, 48, 8.0, 2.0)
    assert [s["start"] for s in body["segments"]] == [0.0, 1.0]


def test_models_lists_what_is_loaded(client):
    m = client.get("/models").json()
    assert all(v["configured"] and v["loaded"] for v in m["models"].values())
    assert m["models"]["classifier"]["classes"] == 1000 and m["models"]["detector"]["classes"] == [
        "circle",
        "square",
    ]
    assert m["limits"] == {"max_upload_mb": 20.0, "max_pixels": 40_000_000}


def test_a_model_not_configured_is_409_naming_the_option(media):
    c = TestClient(
        create_app(ServeConfig(classifier=None, detector=None, faces=False, device="cpu")), base_url=LOCAL
    )
    jpg = media["coffee"].read_bytes()
    for path, option in [
        ("/classify", "--classifier"),
        ("/detect", "--detector"),
        ("/caption", "--captioner"),
        ("/faces/detect", "MTCNN"),
        ("/faces/identify", "--face-db"),
    ]:
        r = post(c, path, "coffee.jpg", jpg)
        assert r.status_code == 409 and option in r.json()["detail"], (path, r.text)
    r = post(c, "/video", "clip.mp4", media["clip"].read_bytes())
    assert r.status_code == 409 and "--video" in r.json()["detail"]
    assert c.get("/models").json()["models"]["detector"] == {
        "configured": False,
        "loaded": False,
        "option": "--detector",
        "endpoint": "/detect",
        "weights": None,
    }


def test_docs_openapi_health_and_page(client):
    assert client.get("/health").json()["status"] == "ok"
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "http" not in docs.text.replace(
        client.base_url.host, ""
    )  # offline: every asset comes from this server
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for p in (
        "/classify",
        "/detect",
        "/faces/detect",
        "/faces/identify",
        "/faces/enroll",
        "/caption",
        "/video",
    ):
        assert "post" in paths[p], p
    assert "/analyze" in paths and "/models" in paths
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text.replace('el("canvas"', "<canvas")
    assert 'id="file"' in page.text and "default-src 'self'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text  # no CDN


# ---------------------------------------------------------------------------------------------------------------------
# Bad uploads


def _png_with_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width×height (its data is a few bytes): a decompression bomb's shape."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: (  # noqa: E731
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    )
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_bad_uploads_get_a_clear_4xx_and_the_server_keeps_serving(client, media):
    jpg = media["coffee"].read_bytes()
    bomb = io.BytesIO()
    Image.new("1", (8000, 8000)).save(bomb, "PNG")  # 64 MP, decodes to 64 MB, a 10 kB file
    assert len(bomb.getvalue()) < 100_000
    cases = [
        ("notes.jpg", b"just some text, named like a photo\n" * 10, "/classify", 415, "judged by content"),
        ("clip.mp4", media["clip"].read_bytes(), "/classify", 415, "takes an image"),
        ("coffee.mp4", jpg, "/video", 415, "takes a video"),
        ("bomb.png", bomb.getvalue(), "/classify", 413, "8000×8000 = 64.0 MP, over the limit of 40 MP"),
        ("huge.png", _png_with_size(100_000, 100_000), "/faces/detect", 413, "over the limit of 40 MP"),
        ("cut.jpg", jpg[: len(jpg) // 2], "/classify", 400, "truncated"),
        ("cut.mp4", media["clip"].read_bytes()[:600], "/video", 400, "cut.mp4"),
        ("empty.png", b"", "/caption", 400, "empty"),
        ("bad.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "/classify", 400, "bad.png"),
    ]
    for name, data, path, status, words in cases:
        r = post(client, path, name, data)
        assert r.status_code == status, (name, r.status_code, r.text)
        detail = r.json()["detail"]
        assert isinstance(detail, str) and name in detail and words in detail, (name, detail)
        assert "/tmp" not in detail  # server paths are not shown
    still_serving(client, media)


def test_upload_size_limit_before_and_while_reading(media):
    c = TestClient(
        create_app(ServeConfig(classifier="imagenet", faces=False, max_upload_mb=0.05, device="cpu")),
        base_url=LOCAL,
    )
    png, jpg = media["astronaut"].read_bytes(), media["coffee"].read_bytes()
    assert len(png) > 200_000 and 60_000 < len(jpg) < 110_000
    r = post(c, "/classify", "astronaut.png", png)  # Content-Length over the limit: refused unread
    assert r.status_code == 413 and "over the limit" in r.json()["detail"]
    r = post(c, "/classify", "coffee.jpg", jpg)  # the body fits the form's allowance, the file does not
    assert r.status_code == 413 and r.json()["detail"].startswith("coffee.jpg: 0.1 MB, over the upload limit")

    def chunks():  # no Content-Length: counted as it streams in
        yield b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        for i in range(0, len(png), 16384):
            yield png[i : i + 16384]
        yield b"\r\n--xyz--\r\n"

    r = c.post("/classify", content=chunks(), headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert r.status_code == 413 and "over the limit" in r.json()["detail"]
    small = io.BytesIO()
    Image.open(media["coffee"]).resize((120, 80)).save(small, "JPEG")
    r = post(c, "/classify", "small.jpg", small.getvalue())
    assert r.status_code == 200 and r.json()["width"] == 120


def test_file_names_are_shown_never_used_as_paths(client, media, monkeypatch):
    for name, shown in [("../../etc/passwd", "passwd"), ("..\\..\\boot.ini", "boot.ini"), ("/", "upload")]:
        r = post(client, "/classify", name, media["coffee"].read_bytes())
        assert r.status_code == 200 and r.json()["file"] == shown
    hub = client.app.state.hub
    seen = []
    real = hub.video

    def spy(path, *a, **kw):
        seen.append(Path(path))
        return real(path, *a, **kw)

    monkeypatch.setattr(hub, "video", spy)
    r = post(client, "/video", "../../../x/evil name.mp4", media["clip"].read_bytes())
    assert r.status_code == 200 and r.json()["file"] == "evil name.mp4"
    assert seen[0].name == "upload.mp4" and seen[0].parent.name.startswith("mmkit-serve-")
    assert not seen[0].exists()  # the temporary folder is gone with the request


def test_display_names_and_sniffing():
    from mmkit.apps.serve.uploads import display_name, sniff

    assert display_name("a/b\\c\x00d\n.jpg") == "cd.jpg"
    assert display_name("..") == display_name(None) == display_name("   ") == "upload"
    assert len(display_name("x" * 500)) == 100
    assert sniff(b"RIFF\0\0\0\0WEBPVP8 ") == ("image", "webp") and sniff(b"RIFF\0\0\0\0AVI LIST") == (
        "video",
        "avi",
    )
    assert sniff(b"\0\0\0\x18ftypmp42") == ("video", "mp4") and sniff(b"\x1a\x45\xdf\xa3\x01") == (
        "video",
        "webm",
    )
    assert sniff(b"GIF89a\x01\0") == ("image", "gif") and sniff(b"<svg xmlns=") is None


def test_bad_query_and_missing_field_are_422_with_one_line(client, media):
    r = post(client, "/classify", "coffee.jpg", media["coffee"].read_bytes(), params={"topk": 0})
    assert r.status_code == 422 and r.json()["detail"].startswith("topk:")
    r = client.post("/classify", data={"nothing": "here"})
    assert r.status_code == 422 and r.json()["detail"].startswith("file: missing")
    still_serving(client, media)


def test_analyze_runs_every_model_over_the_uploads(weights, media, tmp_path, monkeypatch):
    from mmkit.apps.analyze import models as analyze_models

    loads = []
    real_load = analyze_models.load_models
    monkeypatch.setattr(
        analyze_models, "load_models", lambda *a, **kw: loads.append(a) or real_load(*a, **kw)
    )
    config = ServeConfig(
        face_weights=weights["face"], face_db=str(tmp_path / "g.db"), video=weights["video"], device="cpu"
    )
    client = TestClient(create_app(config), base_url=LOCAL)
    png = media["astronaut"].read_bytes()
    r = client.post("/analyze", files=[("files", ("before.png", png))])
    assert r.status_code == 200, r.text
    assert [f["name"] for f in r.json()["files"][0]["faces"]] == [None]  # nobody enrolled yet
    assert (
        client.post("/faces/enroll", files={"file": ("a.png", png)}, data={"name": "Eileen"}).status_code
        == 200
    )
    files = [
        ("files", ("my coffee.jpg", media["coffee"].read_bytes())),
        ("files", ("../astronaut.png", png)),
        ("files", ("clip.mp4", media["clip"].read_bytes())),
    ]
    r = client.post("/analyze", files=files)
    assert r.status_code == 200, r.text
    doc = r.json()
    recs = {f["path"]: f for f in doc["files"]}
    assert set(recs) == {"my coffee.jpg", "astronaut.png", "clip.mp4"} and doc["errors"] == []
    assert doc["inputs"] == ["my coffee.jpg", "astronaut.png", "clip.mp4"]
    assert recs["my coffee.jpg"]["imagenet"][0]["label"] == "espresso"
    assert [f["name"] for f in recs["astronaut.png"]["faces"]] == ["Eileen"]  # the enrolment made since
    assert len(loads) == 1  # the second analysis reused the first one's models
    assert recs["clip.mp4"]["kind"] == "video" and recs["clip.mp4"]["video_labels"]
    assert "mmkit-analyze-" not in r.text  # the uploads' server-side paths are not shown
    r = client.post("/analyze", files=[("files", ("a.jpg", b"not an image"))])
    assert r.status_code == 415 and "a.jpg" in r.json()["detail"]
    assert client.get("/health").status_code == 200


def test_concurrent_requests_share_the_models(client, media):
    from concurrent.futures import ThreadPoolExecutor

    jpg, png = media["coffee"].read_bytes(), media["astronaut"].read_bytes()

    def one(i: int):
        if i % 2:
            return post(client, "/faces/detect", "a.png", png).json()["faces"][0]["box"]
        return post(client, "/classify", "c.jpg", jpg).json()["top"][0]["label"]

    with ThreadPoolExecutor(6) as pool:
        out = list(pool.map(one, range(12)))
    assert out[0::2] == ["espresso"] * 6 and all(b == out[1] for b in out[1::2])
    assert np.isfinite(np.array(out[1])).all()


def test_cli_refuses_bad_options_before_listening(capsys, tmp_path, monkeypatch):
    import uvicorn

    from mmkit.cli import app
    from mmkit.cli.common import run_cli

    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: pytest.fail("must not start listening"))
    code = run_cli(
        app, ["serve", "--classifier", "", "--detector", str(tmp_path / "missing.pt"), "--device", "cpu"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"error: {tmp_path / 'missing.pt'}: no such checkpoint file"
    code = run_cli(app, ["serve", "--face-db", str(tmp_path / "f.db"), "--device", "cpu"])
    assert code == 2 and "--face-weights and --face-db go together" in capsys.readouterr().err


def test_cli_starts_uvicorn_on_loopback_with_the_models(capsys, monkeypatch):
    import uvicorn

    from mmkit.cli import app
    from mmkit.cli.common import run_cli

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda a, **kw: seen.update(app=a, **kw))
    assert run_cli(app, ["serve", "--port", "8123", "--device", "cpu", "--max-upload-mb", "5"]) == 0
    assert (seen["host"], seen["port"]) == ("127.0.0.1", 8123)
    c = TestClient(seen["app"], base_url=LOCAL)
    m = c.get("/models").json()
    assert m["models"]["classifier"]["loaded"] and m["models"]["faces"]["loaded"]
    assert m["limits"]["max_upload_mb"] == 5.0
    # the default detector: Darknet's COCO YOLOv3-tiny where `make weights` has installed it, else none
    detector = m["models"]["detector"]
    assert detector["configured"] == coco_installed()
    if detector["configured"]:
        assert (
            detector["loaded"]
            and detector["weights"] == "yolov3-tiny:coco"
            and len(detector["classes"]) == 80
        )


# ---------------------------------------------------------------------------------------------------------------------
# Who may drive the server (guard.py): Host names, the Origin of state-changing requests, the access token


def _bare(**kw) -> TestClient:
    """A server with no model (endpoints answer 409 when a request gets through to them)."""
    return TestClient(
        create_app(ServeConfig(**{"classifier": None, "faces": False, "device": "cpu", **kw})), base_url=LOCAL
    )


def test_requests_for_another_host_name_are_refused():
    """DNS rebinding: a page on attacker.example resolving to 127.0.0.1 sends `Host: attacker.example`."""
    c = _bare()
    for path in ("/faces/people", "/models", "/"):
        r = c.get(path, headers={"Host": "attacker.example"})
        assert r.status_code == 421 and "attacker.example" in r.json()["detail"], path
    assert c.get("/models", headers={"Host": "127.0.0.1:8000"}).status_code == 200
    assert c.get("/models", headers={"Host": "[::1]:8000"}).status_code == 200
    proxied = _bare(allow_hosts=("mmkit.example.org",))
    assert proxied.get("/models", headers={"Host": "mmkit.example.org"}).status_code == 200
    assert (
        _bare(host="0.0.0.0", token="t").get("/health", headers={"Host": "10.1.2.3:8000"}).status_code == 200
    )


def test_state_changing_requests_from_another_origin_are_refused(media):
    c = _bare()
    png = media["astronaut"].read_bytes()
    form = {"file": ("a.png", png)}
    for origin in ("http://evil.example", "http://localhost:9999", "null"):
        r = c.post("/faces/enroll", files=form, data={"name": "x"}, headers={"Origin": origin})
        assert r.status_code == 403 and "another origin" in r.json()["detail"], origin
    # the page's own origin, and clients that are not browsers (no Origin), reach the endpoint (409: no model)
    assert c.post("/classify", files=form, headers={"Origin": LOCAL}).status_code == 409
    assert c.post("/classify", files=form).status_code == 409
    assert (
        c.get("/models", headers={"Origin": "http://evil.example"}).status_code == 200
    )  # reads: Host + token


def test_the_access_token_is_required_where_set(media):
    c = _bare(token="s3cret")
    assert c.get("/models").status_code == 401
    assert c.get("/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert c.get("/models", headers={"X-MMKit-Token": "s3cret"}).status_code == 200
    assert c.get("/models?token=s3cret").status_code == 200
    r = c.post("/classify", files={"file": ("a.png", media["astronaut"].read_bytes())})
    assert r.status_code == 401
    for path in ("/", "/health", "/docs", "/openapi.json"):  # the page and the docs hold no data
        assert c.get(path).status_code == 200, path


def test_models_shows_file_names_not_server_paths(weights):
    c = TestClient(
        create_app(ServeConfig(detector=weights["detector"], faces=False, device="cpu")), base_url=LOCAL
    )
    shown = c.get("/models").json()["models"]["detector"]["weights"]
    assert shown == Path(weights["detector"]).name and "/" not in shown


def test_cli_binding_other_machines_always_has_a_token(monkeypatch):
    import uvicorn

    from mmkit.cli import app
    from mmkit.cli.common import run_cli

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda a, **kw: seen.update(app=a, **kw))
    monkeypatch.delenv("MMKIT_TOKEN", raising=False)
    args = ["serve", "--host", "0.0.0.0", "--classifier", "none", "--no-faces", "--device", "cpu"]
    assert run_cli(app, args) == 0
    c = TestClient(seen["app"], base_url=LOCAL)
    assert c.get("/models").status_code == 401
    token = seen["app"].state.hub.config.token  # made up, and printed with the page's address
    assert (
        len(token) >= 24 and c.get("/models", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    )
    monkeypatch.setenv("MMKIT_TOKEN", "from-env")
    assert run_cli(app, args[:-2] + ["--host", "127.0.0.1", "--device", "cpu"]) == 0
    assert TestClient(seen["app"], base_url=LOCAL).get("/models?token=from-env").status_code == 200


# ---------------------------------------------------------------------------------------------------------------------
# Bounded memory: extreme shapes refused before decoding, large images decoded reduced, stalled bodies timed out


def test_extreme_aspect_ratios_are_refused_before_decoding(media):
    c = _bare(faces=True)
    for w, h in [(88, 440_000), (1, 39_000_000), (440_000, 88)]:
        r = post(c, "/faces/detect", "strip.png", _png_with_size(w, h))
        assert r.status_code == 400 and "aspect ratio over 50:1" in r.json()["detail"], (w, h, r.text)
    still = post(c, "/faces/detect", "astronaut.png", media["astronaut"].read_bytes())
    assert still.status_code == 200 and len(still.json()["faces"]) == 1


def test_large_images_are_decoded_reduced_and_answered_in_their_own_pixels(media):
    """A 2048² copy of the astronaut, with a working size of 0.3 MP: the server decodes it reduced (by 4) and
    answers the face's box in the uploaded image's pixels, where it lies on the 512² original times 4."""
    from mmkit.apps.serve.uploads import UploadLimits, read_upload_image

    small = Image.open(media["astronaut"])
    big = io.BytesIO()
    small.resize((2048, 2048), Image.LANCZOS).save(big, format="JPEG", quality=95)
    img = read_upload_image(big.getvalue(), "big.jpg", UploadLimits(work_pixels=300_000))
    assert (img.width, img.height) == (2048, 2048) and img.pixels.shape[-1] * img.pixels.shape[-2] <= 300_000
    assert img.scale == (4.0, 4.0)  # JPEG DCT scaling by 1/4

    png = io.BytesIO()
    small.resize((2048, 2048), Image.LANCZOS).save(png, format="PNG")
    assert read_upload_image(png.getvalue(), "big.png", UploadLimits(work_pixels=300_000)).scale == (4.0, 4.0)

    c = _bare(faces=True, work_pixels=300_000)
    (ref,) = post(c, "/faces/detect", "small.png", media["astronaut"].read_bytes()).json()["faces"]
    r = post(c, "/faces/detect", "big.jpg", big.getvalue()).json()
    assert (r["width"], r["height"]) == (2048, 2048)
    (face,) = r["faces"]
    assert np.allclose(face["box"], 4 * np.array(ref["box"]), atol=4 * 6), (face["box"], ref["box"])
    assert np.allclose(face["landmarks"], 4 * np.array(ref["landmarks"]), atol=4 * 6)


def test_a_stalled_request_body_gets_408():
    import asyncio

    from mmkit.apps.serve.app import BodyLimit

    answered = []

    async def app(scope, receive, send):
        await receive()  # the first chunk
        await receive()  # never comes

    async def run():
        async def receive():
            if not answered:
                answered.append("chunk")
                return {"type": "http.request", "body": b"x" * 10, "more_body": True}
            await asyncio.sleep(60)

        scope = {"type": "http", "path": "/classify", "headers": [(b"content-length", b"100")]}
        await BodyLimit(app, max_bytes=1000, timeout=0.2)(scope, receive, None)

    with pytest.raises(Exception) as e:
        asyncio.run(asyncio.wait_for(run(), 5))
    assert getattr(e.value, "status_code", None) == 408 and "stalled for 0.2 s" in e.value.detail


def test_head_of_the_page_answers_200():
    c = _bare()
    r = c.head("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html") and r.content == b""
    assert int(r.headers["content-length"]) == len(c.get("/").content)


def test_docs_serve_swagger_ui_5_from_this_server_without_the_token():
    """/docs loads Swagger UI 5 (4.x cannot render the OpenAPI 3.1 that FastAPI writes) from this server, and its
    files are open like /docs itself, so the page works on a server started with a token."""
    import re

    c = _bare(token="s3cret")
    docs = c.get("/docs").text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)""", docs)
    js = [a for a in assets if a.endswith("swagger-ui-bundle.js")]
    assert js and len(assets) == 3 and all(a.startswith("/") for a in assets), assets
    for asset in assets:
        assert c.get(asset).status_code == 200, asset
    version = re.search(r'PACKAGE_VERSION:"(\d+)\.', c.get(js[0]).text)
    assert version and int(version.group(1)) >= 5
