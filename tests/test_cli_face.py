"""Faces end to end through the `mmkit` command: synthetic identities on disk, training, the LFW protocol,
MTCNN on a real photo, and the gallery."""

import json
import sqlite3

import numpy as np
import pytest
from _cli import mmkit, run_fixture, synth_fixture
from PIL import Image

from mmkit.engine import load_checkpoint

identities = synth_fixture("identities", "--identities", "40", "--images", "6", "--seed", "1")
face_run = run_fixture(
    "face", "--model", "facenet-light", "--epochs", "2", "--batch-size", "32", "--images-per-person", "4",
    "--lr", "3e-3", "--threads", "2", data="identities",
)  # fmt: skip


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory):
    import skimage.data

    d = tmp_path_factory.mktemp("photos")
    img = skimage.data.astronaut()
    Image.fromarray(img).save(d / "astronaut.png")
    Image.fromarray(skimage.data.coffee()).save(d / "coffee.png")
    Image.fromarray(np.concatenate([img, img[:, ::-1]], axis=1)).save(d / "two.png")
    return d


def test_train_writes_a_face_run(face_run):
    for f in ("best.pt", "last.pt", "metrics.csv", "report.html", "roc.png", "config.yaml"):
        assert (face_run / f).is_file(), f
    ck = load_checkpoint(face_run / "best.pt")
    assert ck["task"] == "face"
    assert ck["meta"]["model"] == "facenet-light" and ck["meta"]["embedding_dim"] == 128
    assert 0.0 < ck["meta"]["threshold"] < 4.0
    header = (face_run / "metrics.csv").read_text().splitlines()[0]
    assert "val/acc" in header and "val/val_far" in header


def test_eval_on_pairs_file_matches_protocol(face_run, identities, capsys, tmp_path):
    code, out, _ = mmkit(
        capsys, "face", "eval", "--weights", face_run / "best.pt", "--data", identities / "test",
        "--pairs", identities / "pairs.txt", "--out", tmp_path / "ev", "--json",
    )  # fmt: skip
    assert code == 0
    r = json.loads(out)
    lines = (tmp_path / "ev" / "pair_distances.csv").read_text().splitlines()[1:]
    assert r["pairs"] == len(lines) > 0
    assert 0.5 <= r["accuracy"] <= 1.0 and 0.0 <= r["val_far"] <= 1.0
    assert (tmp_path / "ev" / "roc.png").stat().st_size > 1000
    same = np.array([int(line.split(",")[2]) for line in lines]) == 1
    fold = np.array([int(line.split(",")[3]) for line in lines])
    dist = np.array([float(line.split(",")[4]) for line in lines])
    assert dist[same].mean() < dist[~same].mean()  # two epochs already separate people
    # the LFW protocol recomputed from the written distances, by brute force: for each of the 10 folds, the
    # threshold (the middle of the first best run of a 4001-point grid, "same" when d < t) that is most accurate
    # on the other 9 folds, scored on the held-out fold; the reported accuracy is their mean
    pad = (dist.max() - dist.min()) / 4000
    grid = np.linspace(dist.min() - pad, dist.max() + pad, 4001)
    fold_acc = []
    for f in range(10):
        train, test = fold != f, fold == f
        acc = np.array([((dist[train] < t) == same[train]).mean() for t in grid])
        best = np.flatnonzero(acc == acc.max())
        run = best[: np.argmax(np.diff(np.append(best, -1)) != 1) + 1]  # the first run of best points
        t = grid[(run[0] + run[-1]) // 2]
        fold_acc.append(((dist[test] < t) == same[test]).mean())
    assert sorted(set(fold)) == list(range(10))
    assert r["accuracy"] == pytest.approx(np.mean(fold_acc), abs=1e-9)
    assert r["accuracy_std"] == pytest.approx(np.std(fold_acc), abs=1e-9)


def test_detect_real_photo_draws_and_crops(astronaut, capsys, tmp_path):
    code, out, _ = mmkit(
        capsys, "face", "detect", astronaut / "astronaut.png", astronaut / "coffee.png", "--save-dir", tmp_path,
        "--json",
    )  # fmt: skip
    assert code == 0
    dets = json.loads(out)["detections"]
    assert [len(d["faces"]) for d in dets] == [1, 0]
    face = dets[0]["faces"][0]
    assert face["score"] > 0.95 and len(face["landmarks"]) == 5
    assert (tmp_path / "astronaut_faces.jpg").is_file()
    assert Image.open(tmp_path / "crops" / "astronaut_0.png").size == (160, 160)


def test_gallery_enroll_identify_verify_list_remove(face_run, identities, capsys, tmp_path):
    people = sorted(p for p in (identities / "test").iterdir() if p.is_dir())[:3]
    db = tmp_path / "faces.db"
    w = face_run / "best.pt"
    for p in people:
        imgs = sorted(p.iterdir())[:3]
        code, _, _ = mmkit(
            capsys, "face", "enroll", "--db", db, "--name", p.name, "--weights", w, "--aligned", *imgs
        )
        assert code == 0
    code, out, _ = mmkit(capsys, "face", "list", "--db", db, "--json")
    assert {d["name"]: d["faces"] for d in json.loads(out)["people"]} == {p.name: 3 for p in people}

    # every enrolled image finds itself at distance ~0
    probe = sorted(people[0].iterdir())[0]
    code, out, _ = mmkit(capsys, "face", "identify", "--db", db, "--weights", w, "--aligned", probe, "--json")
    face = json.loads(out)["identities"][0]["faces"][0]
    assert code == 0 and face["name"] == people[0].name and face["distance"] < 1e-4
    # a threshold of 0 makes a new image of someone unknown, but the nearest is still reported
    other = sorted(people[0].iterdir())[-1]
    code, out, _ = mmkit(
        capsys, "face", "identify", "--db", db, "--weights", w, "--aligned", "--threshold", "0", other,
        "--json",
    )  # fmt: skip
    face = json.loads(out)["identities"][0]["faces"][0]
    assert face["name"] == "unknown" and face["nearest"] is not None

    code, out, _ = mmkit(capsys, "face", "verify", "--weights", w, "--aligned", probe, probe, "--json")
    assert code == 0 and json.loads(out)["same"] is True

    code, out, _ = mmkit(capsys, "face", "remove", "--db", db, "--name", people[0].name, "--json")
    assert code == 0 and json.loads(out)["removed_faces"] == 3
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM faces").fetchone()[0] == 6


def test_enroll_refuses_no_face_or_two_faces(face_run, astronaut, capsys, tmp_path):
    db = tmp_path / "faces.db"
    w = face_run / "best.pt"
    for bad, what in (("coffee.png", "no face"), ("two.png", "2 faces")):
        code, _, err = mmkit(
            capsys, "face", "enroll", "--db", db, "--name", "x", "--weights", w, astronaut / "astronaut.png",
            astronaut / bad,
        )  # fmt: skip
        assert code == 2
        assert bad in err and what in err and "nothing enrolled" in err
    assert not db.exists() or not sqlite3.connect(db).execute("SELECT COUNT(*) FROM faces").fetchone()[0]


def test_bad_inputs_are_one_line_errors(face_run, tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    code, _, err = mmkit(capsys, "face", "verify", "--weights", junk, junk, junk)
    assert code == 2 and "junk.pt" in err
    code, _, err = mmkit(capsys, "face", "list", "--db", tmp_path / "missing.db")
    assert code == 2 and "missing.db" in err
    notdb = tmp_path / "text.db"
    notdb.write_text("hello " * 100)
    code, _, err = mmkit(capsys, "face", "list", "--db", notdb)
    assert code == 2 and "text.db" in err
    code, _, err = mmkit(capsys, "face", "train", "--data", tmp_path / "nowhere", "--project", tmp_path)
    assert code == 2 and "nowhere" in err


def test_builtin_recipe_is_the_bench_recipe_and_folders_keep_the_old_defaults(capsys, monkeypatch, tmp_path):
    """`face train --data synthetic-faces-large` with no other flag runs bench/face_quality.py's recipe; a folder gets
    the defaults `face train` always had; a flag given wins over either."""
    import mmkit.cli.common as common

    seen = []
    monkeypatch.setattr(common, "run_train", lambda task, t, e, **kw: seen.append((t, e)))
    for data, extra in (
        ("synthetic-faces-large", []),
        (str(tmp_path), []),
        ("synthetic-faces", ["--lr", "0.5"]),
    ):
        code, _, err = mmkit(capsys, "face", "train", "--data", data, *extra)
        assert code == 0, err
    (large, engine_large), (folder, engine_folder), (small, engine_small) = seen
    assert engine_large["lr"] == 1e-2 and engine_large["epochs"] == 20 and engine_large["warmup"] == 1.0
    assert engine_large["optimizer"] == "adamw" and engine_large["schedule"] == "cosine"
    assert large["model"] == "facenet-light" and large["loss_type"] == "triplet" and large["img_size"] is None
    assert (
        engine_folder["lr"] == 3e-3 and engine_folder["batch_size"] == 128 and folder["data"] == str(tmp_path)
    )
    assert engine_small["lr"] == 0.5 and engine_small["weight_decay"] == 5e-4


def test_runs_written_before_loss_type_still_build():
    from mmkit.tasks.face.task import face_task

    t = face_task(data="synthetic-faces", loss="arcface")
    assert t.loss_type == "arcface" and callable(t.loss)


def test_mmkit_load_gives_the_face_predictor(face_run, identities):
    import torch

    from mmkit import load
    from mmkit.tasks.face import FacePredictor, load_embedder

    p = load(face_run / "best.pt")
    assert isinstance(p, FacePredictor) and p.meta.embedding_dim == 128
    assert p.fingerprint == load_embedder(face_run / "best.pt")[2]  # galleries filled before stay usable
    person = sorted(d for d in (identities / "test").iterdir() if d.is_dir())[0]
    out = p.predict(sorted(person.iterdir())[:2], aligned=True)
    emb = torch.tensor([r["faces"][0]["embedding"] for r in out])
    assert emb.shape == (2, 128) and torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-4)


def test_named_weights_load_embed_and_verify(identities, capsys, tmp_path, monkeypatch):
    """facenet + vggface2 (a stand-in file where mmkit looks for the published one): no validated threshold, so
    verify asks for --threshold."""
    import torch

    from mmkit import load
    from mmkit.models import get_model

    monkeypatch.setenv("MMKIT_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.manual_seed(0)
    torch.save(get_model("facenet").state_dict(), tmp_path / "20180402-114759-vggface2.pt")
    p = load("facenet:vggface2")
    assert (
        p.fingerprint == p.source == "facenet:vggface2"
        and p.meta.img_size == 160
        and p.meta.threshold is None
    )
    assert p.embed(torch.zeros(1, 3, 64, 64, dtype=torch.uint8)).shape == (1, 512)
    a, b = sorted(sorted(d for d in (identities / "test").iterdir() if d.is_dir())[0].iterdir())[:2]
    args = ("face", "verify", "--weights", "vggface2", "--model", "facenet", "--aligned", a, b, "--json")
    code, _, err = mmkit(capsys, *args)
    assert code == 2 and "--threshold" in err
    code, out, _ = mmkit(capsys, *args, "--threshold", "4")
    assert code == 0 and json.loads(out)["same"] is True
