"""The main job, shortened: every part runs and the report holds the pictures."""

import json

from mmkit.cli import app
from mmkit.cli.common import run_cli


def test_quick_demo_writes_the_report(tmp_path, capsys):
    code = run_cli(app, ["demo", "--quick", "--out", str(tmp_path), "--device", "cpu", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    r = json.loads(out.strip().splitlines()[-1])
    assert r["results"]["digits"]["test_images"] == 359
    assert r["results"]["imagenet"]["coffee"] == "espresso"
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64") >= 3 and "EfficientNet-Lite0" in html
    assert (tmp_path / "predictions.png").is_file()
    assert (tmp_path / "classify" / "digits" / "best.pt").is_file()
    # the detection part: trained, evaluated on the 300 held-out scenes, boxes drawn
    det = r["results"]["digit-scenes"]
    assert det["val_images"] == 300 and 0.0 <= det["map"] <= det["map50"] <= 1.0
    assert (tmp_path / "detect" / "digit-scenes" / "best.pt").is_file()
    assert sorted(p.name for p in (tmp_path / "detections").glob("*.png")) == [
        f"scene{i}.png" for i in range(4)
    ]
    assert "YOLOv3-tiny on digit-scenes" in html and html.count("data:image/png;base64") >= 8
    # the face part: MTCNN on the astronaut (one face) and the coffee (none), a trained embedder, a gallery
    faces = r["results"]["faces"]
    assert faces["faces_found"] == [1, 0]
    assert faces["probes"] == 6 and 0 <= faces["identified"] <= 6
    assert (tmp_path / "face" / "synthetic-faces" / "best.pt").is_file()
    assert (tmp_path / "faces" / "astronaut_faces.jpg").is_file() and (tmp_path / "faces.db").is_file()
    assert "Faces: MTCNN, FaceNet" in html and "data:image/jpeg;base64" in html
    # the video part: a CNN + LSTM trained on motion clips, evaluated on the held-out clips
    assert 0.0 <= r["results"]["motion-clips"]["top1"] <= 100.0
    assert (
        tmp_path / "video" / "motion-clips" / "best.pt"
    ).is_file() and "CNN + LSTM on motion clips" in html
    # captioning and generation
    cap = r["results"]["captions"]
    assert 0.0 <= cap["BLEU-4"] <= 1.0 and (tmp_path / "captions" / "scene0.caption.png").is_file()
    assert (tmp_path / "generated_digits.png").is_file() and "conditional DCGAN" in html
    # analyze: the real photos and a clip, with everything the demo trained
    a = r["results"]["analyze"]
    assert a["files"] >= 5 and a["errors"] == 0
    doc = json.loads((tmp_path / "analyze" / "analysis.json").read_text())
    coffee = next(f for f in doc["files"] if f["path"].endswith("coffee.png"))
    assert coffee["imagenet"][0]["label"] == "espresso" and "caption" in coffee
    assert "Analyze: every model" in html
