"""Matting models (dim-small, dim-resnet18), their input, the ImageNet encoder mapping, and DIM's losses."""

import pytest
import torch
import torchvision.models as tvm

from mmkit.data.synthetic_matting import SyntheticMatting
from mmkit.errors import MMKitError
from mmkit.losses.matting import alpha_prediction_loss, compositional_loss, dim_loss
from mmkit.models import get_model, get_model_info, list_models
from mmkit.models.matting import DIMSmall, imagenet_encoder, matting_input


def test_registered_for_the_matte_task():
    assert {"dim-small", "dim-resnet18"} <= set(list_models("matte"))
    info = get_model_info("dim-small")
    assert info.family == "matting" and info.in_chans == 4
    assert "imagenet" in get_model_info("dim-resnet18").weights


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("dim-small", {"width": 8}),
        ("dim-small", {"width": 8, "depth": 3, "refine": True}),
        ("dim-resnet18", {"decoder_width": 16}),
    ],
)
def test_forward_any_size_gives_an_alpha_in_0_1(name, kwargs):
    torch.manual_seed(0)
    model = get_model(name, **kwargs).eval()
    x = torch.randn(2, 4, 67, 91)
    with torch.no_grad():
        alpha = model(x)
    assert alpha.shape == (2, 1, 67, 91)
    assert alpha.min() >= 0 and alpha.max() <= 1
    with torch.no_grad():  # odd and tiny sizes are padded to the stride inside and cropped back
        assert model(x[..., :33, :20]).shape == (2, 1, 33, 20)


def test_refinement_starts_as_the_identity_and_stages_give_both():
    model = DIMSmall(width=8, depth=2, refine=True).eval()
    x = torch.randn(1, 4, 20, 24)
    with torch.no_grad():
        raw, refined = model.stages(x)
        assert torch.allclose(raw, refined) and torch.equal(model(x), refined)
        assert DIMSmall(width=8, depth=2).stages(x)[1] is None


def test_model_options_are_typed_and_checked():
    assert sum(p.numel() for p in get_model("dim-small", width=4).parameters()) < sum(
        p.numel() for p in get_model("dim-small", width=8).parameters()
    )
    with pytest.raises(MMKitError, match="does not take"):
        get_model("dim-small", decoder_width=3)
    with pytest.raises(MMKitError, match="depth"):
        get_model("dim-small", depth=0)


def test_matting_input_standardizes_rgb_and_scales_the_trimap():
    image = torch.full((2, 3, 4, 5), 255, dtype=torch.uint8)
    trimap = torch.tensor([0, 128, 255, 128, 0], dtype=torch.uint8).expand(2, 1, 4, 5)
    x = matting_input(image, trimap)
    assert x.shape == (2, 4, 4, 5)
    assert torch.allclose(x[0, 0], torch.full((4, 5), (1 - 0.485) / 0.229))
    assert x[0, 3, 0].tolist() == pytest.approx([0, 128 / 255, 1, 128 / 255, 0])
    assert matting_input(image[0], trimap[0]).shape == (4, 4, 5)


def test_imagenet_weights_load_into_the_encoder(tmp_path, monkeypatch):
    torch.manual_seed(0)
    sd = tvm.resnet18().state_dict()
    url = tvm.ResNet18_Weights.IMAGENET1K_V1.url
    torch.save(sd, tmp_path / url.rsplit("/", 1)[-1])
    monkeypatch.setenv("MMKIT_WEIGHTS", str(tmp_path))
    model = get_model("dim-resnet18", weights="imagenet", decoder_width=8)
    w = model.encoder.conv1.weight
    assert w.shape == (64, 4, 7, 7) and torch.equal(w[:, :3], sd["conv1.weight"]) and (w[:, 3] == 0).all()
    assert torch.equal(model.encoder.layer4[1].conv2.weight, sd["layer4.1.conv2.weight"])
    with pytest.raises(MMKitError, match="not a torchvision ResNet"):
        imagenet_encoder({"features.0.weight": torch.zeros(1)}, model)


# ---------------------------------------------------------------------------------------------------------------
# Losses


def test_alpha_prediction_loss_counts_the_unknown_region_only():
    alpha = torch.zeros(1, 1, 4, 4)
    pred = torch.full((1, 1, 4, 4), 0.9)
    unknown = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    unknown[..., :2, :] = True
    pred[..., :2, :] = 0.3
    assert alpha_prediction_loss(pred, alpha, unknown).item() == pytest.approx(0.3, abs=1e-5)
    assert alpha_prediction_loss(pred, alpha, torch.zeros_like(unknown)).item() == 0


def test_compositional_loss_is_small_for_the_true_alpha():
    image, alpha, trimap, fg, bg = (x[None] for x in SyntheticMatting(1, seed=0)[0])
    unknown = trimap == 128
    assert compositional_loss(alpha, fg, bg, image, unknown).item() <= 0.5 / 255 + 1e-5  # rounding only
    wrong = compositional_loss(1 - alpha, fg, bg, image, unknown).item()
    assert wrong > 0.01
    assert dim_loss(alpha, alpha, fg, bg, image, unknown).item() <= 0.5 / 255


def test_a_few_steps_on_eight_composites_lower_the_loss():
    torch.manual_seed(0)
    data = SyntheticMatting(8, seed=1, size=32)
    image, alpha, trimap, fg, bg = (torch.stack(x) for x in zip(*(data[i] for i in range(8)), strict=True))
    x, unknown = matting_input(image, trimap), trimap == 128
    model = get_model("dim-small", width=8, depth=3)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = dim_loss(model(x), alpha, fg, bg, image, unknown)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
