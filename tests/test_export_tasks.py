"""Every task's export: the files `Predictor.export` writes, run in ONNX Runtime (and reloaded as TorchScript) on
real inputs of other batch sizes, frame counts and image sizes than the trace saw, against PyTorch; the greedy
caption decoding over ONNX Runtime against `generate(beam=1)`; and `mmkit <task> export` on a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from _cli import mmkit

from mmkit.data.formats.captions import Vocabulary
from mmkit.data.synthetic_videos import motion_clips
from mmkit.models.captioner import caption_loss
from mmkit.models.captioner_decode import generate
from mmkit.models.mtcnn import load_mtcnn
from mmkit.tasks.caption import CaptionMeta, CaptionPredictor
from mmkit.tasks.caption.exported import greedy_decode
from mmkit.tasks.face import FaceMeta, FacePredictor
from mmkit.tasks.generate import GenerateMeta, GeneratorPredictor
from mmkit.tasks.matte import MatteMeta, MattePredictor
from mmkit.tasks.video import VideoMeta, VideoPredictor

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
CPU = torch.device("cpu")


def untrained(cls, meta, tmp_path, std: float | None = None):
    """An untrained predictor of `meta` whose weights file would be tmp_path/best.pt; with `std`, its parameters
    drawn from N(0, std²) (untrained generators start as the identity or a bilinear upscaler)."""
    torch.manual_seed(0)
    net = cls.network(meta)
    if std is not None:
        with torch.no_grad():
            for p in net.parameters():
                p.normal_(0, std)
    return cls(net.eval(), meta, CPU, str(tmp_path / "best.pt"))


def onnx_run(path, *inputs: torch.Tensor) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, {n: x.numpy() for n, x in zip(names, inputs, strict=True)})


def torchscript_run(path, *inputs: torch.Tensor) -> list[np.ndarray]:
    out = torch.jit.load(str(path))(*inputs)
    return [t.detach().numpy() for t in (out if isinstance(out, tuple | list) else [out])]


def assert_close(got: list[np.ndarray], expected, atol: float = 1e-4) -> None:
    expected = expected if isinstance(expected, tuple | list) else [expected]
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.shape == tuple(e.shape)
        assert np.abs(g - e.detach().numpy()).max() < atol


def photos(size: int, n: int = 3) -> torch.Tensor:
    """Real photos (skimage's astronaut, coffee, chelsea, ...) as uint8 [n, 3, size, size]."""
    pics = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    x = [torch.from_numpy(p).permute(2, 0, 1)[None].float() for p in pics[:n]]
    return torch.cat([F.interpolate(p, size=(size, size), mode="area") for p in x]).round().to(torch.uint8)


def signed(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 127.5 - 1


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_face_embedder_and_mtcnn(tmp_path, fmt):
    meta = FaceMeta("facenet-light", 128, 64, [0.5] * 3, [0.5] * 3, threshold=0.5)
    p = untrained(FacePredictor, meta, tmp_path)
    files = p.export(fmt)
    assert [f.graph for f in files] == ["embedder", "pnet", "rnet", "onet"]
    assert [f.path.name for f in files] == [f"best.{g}.{fmt}" for g in ("embedder", "pnet", "rnet", "onet")]
    assert all(f.max_abs_diff < 1e-4 for f in files)
    run = onnx_run if fmt == "onnx" else torchscript_run
    crops = photos(64)  # three faces' worth of real pixels, not the traced two
    assert_close(run(files[0].path, crops), p.embed(crops), atol=1e-5)  # normalization and flip test inside

    mtcnn = load_mtcnn()
    with torch.no_grad():
        for graph, net, side in [
            (files[1], mtcnn.pnet, 100),
            (files[2], mtcnn.rnet, 24),
            (files[3], mtcnn.onet, 48),
        ]:
            x = (photos(side).float() - 127.5) / 128  # P-Net on another image size than the trace's
            assert_close(run(graph.path, x), net(x))


CLIPS = {"img_size": 32, "frames": 4}
VIDEO_MODELS = {
    "cnn-gru": dict(
        kind="clips", **CLIPS, model_kwargs={"width": 8, "feat": 16, "hidden": 16, "readout": "mean"}
    ),
    "cnn-mean": dict(kind="clips", **CLIPS, model_kwargs={"width": 8, "feat": 16, "hidden": 16}),
    "lstm": dict(kind="features", feature_dim=12, model_kwargs={"hidden": 16, "readout": "mean"}),
    "netvlad": dict(kind="features", feature_dim=12, model_kwargs={"clusters": 4}),
    "logistic": dict(kind="features", feature_dim=12, level="video"),
}


def video_meta(model: str, **kw) -> VideoMeta:
    spec = {**VIDEO_MODELS.get(model, VIDEO_MODELS["cnn-gru"]), **kw}
    return VideoMeta(model, 9, [str(i) for i in range(9)], multi_label=False, **spec)


def video_inputs(meta: VideoMeta) -> tuple[torch.Tensor, ...]:
    """Three real clips of 6 frames (their frame counts 6, 2 and 4), or features pooled from them."""
    clips, _, _ = motion_clips(3, frames=6, size=32)
    lengths = torch.tensor([6, 2, 4])
    if meta.kind == "clips":
        return clips, lengths
    feats = F.adaptive_avg_pool2d(clips.flatten(0, 1).float() / 255, 2).flatten(1).unflatten(0, (3, 6))
    return (feats.mean(1),) if meta.level == "video" else (feats, lengths)


@pytest.mark.parametrize("model", list(VIDEO_MODELS))
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_video_models(tmp_path, model, fmt):
    p = untrained(VideoPredictor, video_meta(model), tmp_path)
    (file,) = p.export(fmt)
    assert file.path.name == f"best.{fmt}" and file.max_abs_diff < 1e-4
    x = video_inputs(p.meta)
    with torch.no_grad():
        expected = p.net(*x)
    assert_close((onnx_run if fmt == "onnx" else torchscript_run)(file.path, *x), expected, atol=1e-5)


def test_video_recurrent_last_readout_onnx(tmp_path):
    p = untrained(VideoPredictor, video_meta("cnn-gru", model_kwargs={"width": 8, "feat": 16}), tmp_path)
    (file,) = p.export("onnx")
    x = video_inputs(p.meta)
    with torch.no_grad():
        assert_close(onnx_run(file.path, *x), p.net(*x), atol=1e-5)


VOCAB = Vocabulary(["a", "red", "blue", "circle", "square", "on", "the", "left", "."])
CAPTIONS = [
    "a red circle on the left .",
    "a blue square .",
    "the red square on the left .",
    "a blue circle .",
]
SMALL = {"encoder": "smallcnn", "embed_dim": 16, "hidden_dim": 16, "dropout": 0.0}
SMALL["encoder_options"] = {"width": 0.25, "depths": [1, 1, 1]}
CAPTIONERS = {
    "show-tell": SMALL,
    "show-attend-tell": {**SMALL, "attn_dim": 8},
    "paragraph": {**SMALL, "pool_dim": 16, "sentence_dim": 16, "s_max": 3},
}


def fit(p: CaptionPredictor, images: torch.Tensor, steps: int = 25) -> None:
    """A few teacher-forced steps on a caption per image (paragraphs: that caption and the previous image's), so
    that greedy decoding gives captions that end with `<eos>` and paragraphs that stop."""
    ids = [VOCAB.encode(c.split(), 10) for c in CAPTIONS]
    tokens = torch.tensor([t + [0] * (9 - len(t)) for t in ids])
    if p.meta.paragraph:
        tokens = torch.stack([tokens, tokens.roll(1, 0)], 1)
    opt = torch.optim.Adam(p.net.parameters(), 2e-2)
    x = p.norm(images)
    p.net.train()
    for _ in range(steps):
        loss, _ = caption_loss(p.net(x, tokens), tokens)
        opt.zero_grad()
        loss.backward()
        opt.step()
    p.net.eval()


@pytest.mark.parametrize("model", list(CAPTIONERS))
def test_caption_greedy_decoding_over_onnx_runtime_equals_pytorch(tmp_path, model):
    meta = CaptionMeta(
        model, VOCAB.to_dict(), 32, [0.5] * 3, [0.5] * 3, max_len=8, model_kwargs=CAPTIONERS[model]
    )
    p = untrained(CaptionPredictor, meta, tmp_path)
    images = photos(32, 4)
    fit(p, images)
    encoder, step = p.export("onnx")
    assert (encoder.graph, step.graph) == ("encoder", "step")
    assert (encoder.path.name, step.path.name) == ("best.encoder.onnx", "best.step.onnx")
    got = greedy_decode(encoder.path, step.path, images.numpy(), max_len=meta.max_len + 1)
    found = generate(p.net, p.norm(images), beam=1, max_len=meta.max_len + 1)
    assert got == [c.sentences if model == "paragraph" else c.tokens for c in found]
    sentences = [s for paragraph in got for s in paragraph] if model == "paragraph" else got
    assert all(len(words) < meta.max_len + 1 for words in sentences)  # each ended with <eos>
    if model == "paragraph":
        assert all(len(paragraph) < meta.model_kwargs["s_max"] for paragraph in got)  # each stopped

    ts_encoder, _ = p.export("torchscript")  # the same graphs reloaded as TorchScript
    with torch.no_grad():
        assert_close(torchscript_run(ts_encoder.path, images), p.export_graphs(p.net)[0].module(images), 1e-5)


GENERATORS = [
    GenerateMeta("dcgan", "fashion-mnist", "images", 1, 32),
    GenerateMeta("cgan", "fashion-mnist", "images", 1, 32, classes=list("abc")),
    GenerateMeta("cc-lapgan", "mnist5k", "images", 1, 28, classes=list("abc"), model_kwargs={"width": 8}),
    GenerateMeta("progan", "synthetic-faces", "images", 3, 32, model_kwargs={"fmap_base": 64}),
    GenerateMeta("pix2pix", "edges2shapes", "paired", 3, 32, 3, 32),
    GenerateMeta("cyclegan", "horses", "unpaired", 3, 32, 3, 32, model_kwargs={"n_blocks": 2, "ngf": 8}),
    GenerateMeta("lapsrn", "photo-sr", "paired", 3, 32, 3, 8, model_kwargs={"features": 8, "depth": 2}),
    GenerateMeta("rednet", "photo-noise", "paired", 3, 32, 3, 32, model_kwargs={"layers": 4, "features": 8}),
]


@pytest.mark.parametrize("meta", GENERATORS, ids=[m.model for m in GENERATORS])
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_generators(tmp_path, meta, fmt):
    p = untrained(GeneratorPredictor, meta, tmp_path, std=0.05)
    (file,) = p.export(fmt)
    assert file.graph == "generator" and file.max_abs_diff < 1e-4
    if p.verb == "sample":
        z = torch.randn(5, p.net.latent_dim)
        x = (z, torch.tensor([0, 1, 2, 0, 1])) if meta.conditional else (z,)
    else:  # RED-Net and LapSRN take any size
        x = (signed(photos(meta.size_a if meta.model in ("pix2pix", "cyclegan") else 20)),)
    with torch.no_grad():
        expected = p.net(*x) if p.verb == "sample" else p.export_graphs(p.net)[0].module(*x)
    assert_close((onnx_run if fmt == "onnx" else torchscript_run)(file.path, *x), expected)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_matting(tmp_path, fmt):
    p = untrained(MattePredictor, MatteMeta("dim-small", 32), tmp_path)
    (file,) = p.export(fmt)
    assert file.max_abs_diff < 1e-4
    run = onnx_run if fmt == "onnx" else torchscript_run
    for h, w in [(48, 48), (37, 50)]:  # a multiple of the stride, and not
        image = F.interpolate(photos(64, 2).float(), size=(h, w), mode="area").round().to(torch.uint8)
        trimap = torch.full((2, 1, h, w), 128, dtype=torch.uint8)
        trimap[..., : h // 4, :], trimap[..., -(h // 4) :, :] = 0, 255
        with torch.no_grad():
            expected = p.export_graphs(p.net)[0].module(image, trimap)
        assert_close(run(file.path, image, trimap), expected, atol=1e-5)


TASKS = {
    "face": (FacePredictor, FaceMeta("facenet-light", 32, 32, [0.5] * 3, [0.5] * 3), 4),
    "video": (VideoPredictor, video_meta("cnn-mean"), 1),
    "caption": (
        CaptionPredictor,
        CaptionMeta("show-tell", VOCAB.to_dict(), 32, [0.5] * 3, [0.5] * 3, model_kwargs=SMALL),
        2,
    ),
    "generate": (GeneratorPredictor, GENERATORS[0], 1),
    "matte": (MattePredictor, MatteMeta("dim-small", 32), 1),
}


@pytest.mark.parametrize("task", list(TASKS))
def test_every_task_exports_from_the_cli(tmp_path, capsys, task):
    cls, meta, n = TASKS[task]
    weights = untrained(cls, meta, tmp_path).save(tmp_path / "best.pt")
    for fmt, out in [("onnx", tmp_path / "x.onnx"), ("torchscript", None)]:  # at --out, or beside the weights
        where = ["--out", out] if out else []
        code, text, err = mmkit(
            capsys, task, "export", "--weights", weights, "--format", fmt, *where, "--json"
        )
        assert code == 0, err
        r = json.loads(text)
        assert r["format"] == fmt and len(r["files"]) == n and r["max_abs_diff"] < 1e-4
        base = out or weights.with_suffix(f".{fmt}")
        names = [base.name] if n == 1 else [f"{base.stem}.{f['graph']}.{fmt}" for f in r["files"]]
        assert [f["path"] for f in r["files"]] == [str(base.parent / name) for name in names]
        assert all(Path(f["path"]).is_file() for f in r["files"])
