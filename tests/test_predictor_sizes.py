"""Every task's predictor takes user files of any size: smaller than the network's input, larger, of other aspect
ratios, mixed in one call. Each answers every file (sized as its training was), none crashes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mmkit.data.formats.captions import Vocabulary
from mmkit.data.formats.video import write_video
from mmkit.tasks.caption import CaptionMeta, CaptionPredictor
from mmkit.tasks.classify import ClassifierMeta, ClassifierPredictor
from mmkit.tasks.detect import DetectorMeta, DetectorPredictor
from mmkit.tasks.face import FaceMeta, FacePredictor
from mmkit.tasks.generate import GenerateMeta, GeneratorPredictor
from mmkit.tasks.matte import MatteMeta, MattePredictor
from mmkit.tasks.video import VideoMeta, VideoPredictor

SIZES = [(5, 5), (37, 23), (23, 61), (300, 200)]  # (width, height)
CPU = torch.device("cpu")


def untrained(cls, meta):
    torch.manual_seed(0)
    return cls(cls.network(meta), meta, CPU, "untrained")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[str]:
    d = tmp_path_factory.mktemp("sizes")
    rng = np.random.default_rng(0)
    paths = []
    for w, h in SIZES:
        p = d / f"{w}x{h}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


@pytest.mark.parametrize(
    "meta",
    [
        ClassifierMeta("smallcnn", 3, 1, 8, [0.5], [0.5], ["a", "b", "c"], native_size=8),  # digits at 8 px
        ClassifierMeta("smallcnn", 3, 1, 16, [0.5], [0.5], ["a", "b", "c"], native_size=8),  # digits at 16 px
        ClassifierMeta("smallcnn", 3, 3, 32, [0.5] * 3, [0.5] * 3, ["a", "b", "c"], native_size=32),
        ClassifierMeta("resnet18", 3, 3, 64, [0.5] * 3, [0.5] * 3, ["a", "b", "c"]),  # photos: resize + crop
    ],
    ids=["native-gray", "resized-gray", "native-rgb", "photo"],
)
def test_classifier(images, meta):
    results, failures = untrained(ClassifierPredictor, meta).predict(images, topk=2)
    assert failures == [] and [r["path"] for r in results] == images


def test_detector(images):
    meta = DetectorMeta("yolov3-tiny", 2, 64, ["circle", "square"])
    results, failures = untrained(DetectorPredictor, meta).predict(images, conf=0.0)
    assert failures == [] and len(results) == len(images)
    for r, (w, h) in zip(results, SIZES, strict=True):  # boxes in each image's own pixels
        assert r["detections"], r["path"]  # conf 0: an untrained net still proposes boxes
        boxes = np.array([d["box"] for d in r["detections"]])
        assert (boxes >= 0).all() and (boxes[:, 0::2] <= w).all() and (boxes[:, 1::2] <= h).all()


def test_captioner(images):
    vocab = Vocabulary(["a", "red", "circle", "."])
    kw = {"encoder": "smallcnn", "embed_dim": 16, "hidden_dim": 16}
    meta = CaptionMeta("show-tell", vocab.to_dict(), 32, [0.5] * 3, [0.5] * 3, model_kwargs=kw)
    results, failures = untrained(CaptionPredictor, meta).predict(images, beam=2)
    assert failures == [] and len(results) == len(images)


def test_face_embedder_on_aligned_crops(images):
    meta = FaceMeta("facenet-light", 128, 64, [0.5] * 3, [0.5] * 3, threshold=0.5)
    p = FacePredictor(FacePredictor.network(meta), meta, CPU, "untrained", "fingerprint")
    results = p.predict(images, aligned=True)
    assert [len(r["faces"]) for r in results] == [1] * len(images)
    assert all(len(r["faces"][0]["embedding"]) == 128 for r in results)


def test_matting_model(images, tmp_path):
    trimaps = []
    for w, h in SIZES:
        t = np.full((h, w), 128, np.uint8)
        t[: h // 3], t[-(h // 3) or h :] = 0, 255
        trimaps.append(tmp_path / f"trimap_{w}x{h}.png")
        Image.fromarray(t).save(trimaps[-1])
    meta = MatteMeta("dim-small", 32)
    results = untrained(MattePredictor, meta).predict(images, trimaps, out=tmp_path / "out")
    for r, (w, h) in zip(results, SIZES, strict=True):
        assert Image.open(r["alpha"]).size == (w, h)  # the alpha of the image as given


@pytest.mark.parametrize(
    "meta",
    [
        GenerateMeta("pix2pix", "edges2shapes", "paired", 3, 32, 3, 32),
        GenerateMeta("lapsrn", "photo-sr", "paired", 3, 32, 3, 8, model_kwargs={}),
    ],
    ids=["translate", "upscale"],
)
def test_generator(images, meta, tmp_path):
    results, failures = untrained(GeneratorPredictor, meta).predict(images, out_dir=tmp_path)
    assert failures == [] and len(results) == len(images)


def test_video_model(tmp_path):
    meta = VideoMeta("cnn-mean", 3, ["left", "right", "still"], "clips", False, img_size=32, frames=4)
    meta.model_kwargs = {"width": 8}
    g = torch.Generator().manual_seed(0)
    videos = []
    for w, h in [(16, 12), (64, 48), (48, 96)]:
        videos.append(str(tmp_path / f"{w}x{h}.mp4"))
        write_video(videos[-1], torch.randint(0, 255, (8, 3, h, w), dtype=torch.uint8, generator=g), fps=8)
    results, failures = untrained(VideoPredictor, meta).predict(videos, topk=2)
    assert failures == [] and len(results) == len(videos)
