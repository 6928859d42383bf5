"""Generation at full size (issue 19): translate / upscale run on the whole image at its own size (the translation
generators reflect-pad to the multiple they need and crop back; images larger than the tile go through in overlapping
tiles, blended), odd and tiny sizes round-trip, the export takes any height and width; and `generate eval` of a
text-to-image model reports the attribute check and FID."""

import json

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from _cli import mmkit
from PIL import Image

from mmkit.errors import MMKitError
from mmkit.metrics.generation import psnr
from mmkit.models import get_model
from mmkit.models.translation import run_padded, tiled
from mmkit.tasks.generate import GenerateMeta, GeneratorPredictor, attributes
from mmkit.tasks.generate.task import translate_batch, translate_image

CPU = torch.device("cpu")
SMALL = {"ngf": 8, "ndf": 8}
META = {
    "pix2pix": GenerateMeta("pix2pix", "edges2shapes", "paired", 3, 32, 3, 32, model_kwargs=SMALL),
    "cyclegan": GenerateMeta(
        "cyclegan", "horses", "unpaired", 3, 32, 3, 32, model_kwargs={**SMALL, "n_blocks": 2}
    ),
    "lapsrn": GenerateMeta(
        "lapsrn", "photo-sr", "paired", 3, 32, 3, 8, model_kwargs={"features": 8, "depth": 2}
    ),
}


def predictor(model: str) -> GeneratorPredictor:
    """An untrained predictor of META[model] with PyTorch's default initialisation (the GAN init's N(0, 0.02)
    weights give near-constant images, on which any two paths would agree)."""
    torch.manual_seed(0)
    net = GeneratorPredictor.network(META[model])
    for m in net.modules():
        if m is not net and hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return GeneratorPredictor(net.eval(), META[model], CPU, model)


def photo(width: int, height: int) -> torch.Tensor:
    """skimage's astronaut resized to width x height: uint8 [3, height, width]."""
    x = torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1)[None].float()
    return F.interpolate(x, size=(height, width), mode="area").round().to(torch.uint8)[0]


def write_png(x: torch.Tensor, path) -> str:
    Image.fromarray(x.permute(1, 2, 0).numpy()).save(path)
    return str(path)


def signed(x: torch.Tensor) -> torch.Tensor:
    return x[None].float() / 127.5 - 1


def db(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of two images in [-1, 1]."""
    return float(psnr((a + 1) / 2, (b + 1) / 2).mean())


# ---------------------------------------------------------------------------------------------------------------
# The whole image at its own size


@pytest.mark.parametrize("model", ["pix2pix", "cyclegan"])
def test_a_600x400_photo_translates_to_600x400_in_one_piece_and_in_tiles(capsys, tmp_path, model):
    p = predictor(model)
    weights = p.save(tmp_path / "best.pt")
    x = photo(600, 400)
    image = write_png(x, tmp_path / "photo.png")
    for tile, out in [(None, tmp_path / "whole"), (256, tmp_path / "tiles")]:
        args = ["--tile", tile] if tile else []
        code, _, err = mmkit(
            capsys, "generate", "translate", image, "--weights", weights, "--out", out, *args
        )
        assert code == 0, err
        with Image.open(out / "photo.translate.png") as y:
            assert y.size == (600, 400)
    with torch.no_grad():
        whole = translate_batch(p.net, p.meta, signed(x))  # the network on the full image, no resizing
    written = np.asarray(Image.open(tmp_path / "whole" / "photo.translate.png"), dtype=np.float64)
    expected = ((whole[0].clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).numpy()
    assert np.abs(written - expected).max() <= 0.5 + 1e-3  # rounding only


def test_tiles_blend_into_the_whole_image_translation():
    """pix2pix (BatchNorm at test time: each output pixel depends on its neighbourhood only) and LapSRN on a photo
    larger than the tile: the blended tiles match the network on the whole image (they differ only where a tile's
    border cuts the receptive field), better than tiles that only abut."""
    p = predictor("pix2pix")
    a = signed(photo(600, 400))
    with torch.no_grad():
        whole = translate_image(p.net, p.meta, a)  # 600 px < the default tile: one piece
        assert torch.equal(whole, translate_batch(p.net, p.meta, a))
        blended = translate_image(p.net, p.meta, a, tile=256)  # 3 x 2 tiles, overlapping by 64 px
        abutting = translate_image(p.net, p.meta, a, tile=256, overlap=0)
    assert db(blended, whole) > 45
    assert db(blended, whole) > db(abutting, whole) + 2

    sr = predictor("lapsrn")
    small = signed(photo(150, 100))
    with torch.no_grad():
        whole = translate_batch(sr.net, sr.meta, small)
        tiles = translate_image(sr.net, sr.meta, small, tile=64)
    assert whole.shape == tiles.shape == (1, 3, 400, 600)
    assert db(tiles, whole) > 45


def test_instance_normalised_tiles_stay_near_the_whole_image():
    """CycleGAN normalises each tile by its own statistics (InstanceNorm), so its tiles are near the whole-image
    result, not equal to it: the reason the default tile (1024 px) keeps ordinary photos in one piece."""
    p = predictor("cyclegan")
    a = signed(photo(600, 400))
    with torch.no_grad():
        whole = translate_batch(p.net, p.meta, a)
        tiles = translate_image(p.net, p.meta, a, tile=256)
    assert tiles.shape == whole.shape
    assert 15 < db(tiles, whole) < 40


def test_tiling_places_and_blends_tiles_exactly():
    x = torch.randn(2, 3, 257, 131)
    for tile, overlap in [(64, 16), (64, 0), (100, None), (300, 8)]:
        assert torch.allclose(tiled(lambda t: 2 * t + 1, x, tile, overlap), 2 * x + 1, atol=1e-5)
    up = torch.nn.Upsample(
        scale_factor=2
    )  # a function that doubles the size: outputs land at twice the place
    assert torch.allclose(tiled(up, x, 48, 12), up(x), atol=1e-5)
    with pytest.raises(MMKitError, match="overlap"):
        tiled(up, x, 48, 48)


# ---------------------------------------------------------------------------------------------------------------
# Odd and tiny sizes


def test_padding_reflects_to_the_multiple_and_repeats_the_border_of_tiny_images():
    seen = []

    def record(t):
        seen.append(t)
        return t

    x = torch.arange(2 * 3 * 5, dtype=torch.float32).view(1, 2, 3, 5)
    assert torch.equal(run_padded(record, x, 4), x)
    padded = seen[-1]
    assert padded.shape[-2:] == (4, 8) and torch.equal(padded[..., :3, :5], x)
    assert torch.equal(padded[..., 3, :5], x[..., 1, :])  # reflected about the last row
    assert torch.equal(padded[..., :3, 5:], x[..., [3, 2, 1]])
    assert torch.equal(
        run_padded(record, x, 8, minimum=16), x
    )  # padding wider than the image: its border repeats
    assert seen[-1].shape[-2:] == (16, 16) and torch.equal(seen[-1][..., 15, 15], x[..., 2, 4])
    assert torch.equal(run_padded(record, x[..., :1, :1], 4), x[..., :1, :1])  # 1 x 1
    run_padded(record, torch.zeros(1, 1, 8, 12), 4)
    assert seen[-1].shape[-2:] == (8, 12)  # a multiple already: as it is


@pytest.mark.parametrize("model", ["pix2pix", "cyclegan", "discogan", "dualgan"])
def test_translation_generators_take_any_size(model):
    kwargs = {"n_blocks": 2} if model == "cyclegan" else {}
    net = get_model(model, in_chans=3, out_chans=1, img_size=64, **SMALL, **kwargs).eval()
    with torch.no_grad():
        for h, w in [
            (257, 131),
            (64, 64),
            (5, 3),
            (1, 1),
        ]:  # 5 x 3 and 1 x 1: smaller than the padding multiple
            y = net(torch.rand(2, 3, h, w) * 2 - 1)
            assert y.shape == (2, 1, h, w) and y.abs().max() <= 1


def test_odd_and_tiny_images_round_trip_through_the_cli(capsys, tmp_path):
    weights = predictor("pix2pix").save(tmp_path / "best.pt")
    images = [write_png(photo(w, h), tmp_path / f"p{w}x{h}.png") for w, h in [(257, 131), (5, 3)]]
    code, out, err = mmkit(
        capsys, "generate", "translate", *images, "--weights", weights, "--out", tmp_path, "--json"
    )
    assert code == 0, err
    assert [r["size_out"] for r in json.loads(out)["images"]] == [[131, 257], [3, 5]]
    for w, h in [(257, 131), (5, 3)]:
        with Image.open(tmp_path / f"p{w}x{h}.translate.png") as y:
            assert y.size == (w, h)


# ---------------------------------------------------------------------------------------------------------------
# Export


@pytest.mark.parametrize("model", ["pix2pix", "cyclegan"])
def test_the_exported_translator_takes_any_height_and_width(tmp_path, model):
    import onnxruntime as ort

    p = predictor(model)
    p.source = str(tmp_path / "best.pt")
    (file,) = p.export("onnx")
    session = ort.InferenceSession(str(file.path), providers=["CPUExecutionProvider"])
    assert [d for d in session.get_inputs()[0].shape[2:]] == ["height", "width"]
    for h, w in [(131, 257), (64, 96)]:  # off the multiple (padded inside the graph), and on it
        a = signed(photo(w, h))
        (got,) = session.run(None, {"images": a.numpy()})
        with torch.no_grad():
            expected = translate_batch(p.net, p.meta, a)
        assert got.shape == (1, 3, h, w) and np.abs(got - expected.numpy()).max() < 1e-4


# ---------------------------------------------------------------------------------------------------------------
# Text to image: generate eval


def test_text_to_image_eval_reports_the_attribute_check_and_fid(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MMKIT_HOME", str(tmp_path / "home"))
    # a quick reader: one epoch on caption-scenes' 3,000 training scenes, not four on the 20,000 of the large set
    monkeypatch.setattr(attributes, "READER_DATA", "caption-scenes")
    monkeypatch.setattr(attributes, "READER_EPOCHS", 1)
    code, _, err = mmkit(
        capsys, "generate", "train", "--data", "caption-scenes", "--model", "gan-int-cls", "--img-size", "32",
        "--model-arg", "base=8", "--model-arg", "d_base=8", "--epochs", "1", "--max-steps", "2",
        "--batch-size", "8", "--threads", "1", "--project", tmp_path, "--name", "int",
    )  # fmt: skip
    assert code == 0, err
    weights = tmp_path / "generate" / "int" / "last.pt"
    code, out, err = mmkit(
        capsys,
        "generate",
        "eval",
        "--weights",
        weights,
        "--n",
        "40",
        "--device",
        "cpu",
        "--out",
        tmp_path / "ev",
    )
    assert code == 0, err
    assert "40 test captions" in out and "attributes matched" in out and "FID" in out
    r = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert (r["model"], r["data"], r["captions"], r["images"]) == ("gan-int-cls", "caption-scenes", 40, 40)
    for row in ("generated", "real", "other_captions"):
        assert set(r[row]) == {*attributes.CHECKS, "all"} and all(0 <= v <= 1 for v in r[row].values())
    assert "attribute reader" in r["feature_network"] and np.isfinite(r["fid"]) and r["fid"] > 0
    assert (tmp_path / "home" / "feature-nets" / "caption-scenes-attributes" / "best.pt").is_file()

    # the same check as the predictor's own, on the same 40 captions and noise
    p = GeneratorPredictor.load(weights)
    check = p.attribute_check(40)
    assert {k: check[k] for k in ("generated", "real", "other_captions")} == {
        k: r[k] for k in ("generated", "real", "other_captions")
    }
    # real images drawn for their own captions (twice each) score the ceiling exactly
    prompts = attributes.scene_prompts(40)
    reader = attributes.attribute_reader(tmp_path / "home" / "feature-nets")
    perfect = attributes.check(reader, prompts.real.repeat(2, 1, 1, 1), prompts)
    assert perfect["images"] == 80 and perfect["generated"] == perfect["real"] == r["real"]

    with pytest.raises(MMKitError, match="caption-scenes"):
        p.evaluate("digits", out=tmp_path / "no")
    with pytest.raises(MMKitError, match="does not draw from text"):
        predictor("pix2pix").attribute_check(4)
