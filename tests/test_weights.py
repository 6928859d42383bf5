"""Weights: the real offline EfficientNet-Lite0 ImageNet weights, transfer learning, weight files (good and bad),
and the offline lookup of published weights."""

import logging
import os
import pickle

import pytest
import skimage.data
import torch
import torchvision.transforms.v2.functional as TF

from mmkit.errors import MMKitError
from mmkit.models import classifier_head, get_model, get_weights, load_state_dict_file
from mmkit.models.weights import remap_by_order

CATS = {"tabby", "tiger cat", "Egyptian cat"}


@pytest.fixture(scope="module")
def lite0():
    return get_model("efficientnet_lite0", weights="imagenet").eval()


def _preprocess(image, w):
    x = torch.from_numpy(image).permute(2, 0, 1)
    x = TF.center_crop(TF.resize(x, [w.resize_size], antialias=True), [w.input_size])
    return TF.normalize(x.float() / 255, w.mean, w.std).unsqueeze(0)


def test_efficientnet_lite0_imagenet_classifies_real_photos(lite0):
    w = get_weights("efficientnet_lite0", "imagenet")
    x = torch.cat([_preprocess(skimage.data.coffee(), w), _preprocess(skimage.data.chelsea(), w)])
    with torch.no_grad():
        probs = lite0(x).softmax(1)
    coffee_p, coffee_i = probs[0].max(0)
    assert w.categories[coffee_i] == "espresso" and coffee_p > 0.8
    assert CATS & {w.categories[i] for i in probs[1].topk(5).indices}


def test_transfer_learning_freezes_backbone(lite0):
    model = get_model("efficientnet_lite0", num_classes=5, weights="imagenet", freeze_backbone=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"classifier.weight", "classifier.bias"}
    assert classifier_head(model).out_features == 5
    reference = lite0.state_dict()
    for k, v in model.state_dict().items():
        if not k.startswith("classifier."):
            assert torch.equal(v, reference[k]), k
    # One optimizer step moves the head only.
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    torch.nn.functional.cross_entropy(model(torch.randn(2, 3, 64, 64)), torch.tensor([0, 1])).backward()
    opt.step()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"classifier.weight", "classifier.bias"}


def test_imagenet_weights_on_one_channel_input(lite0):
    gray = get_model("efficientnet_lite0", weights="imagenet", in_chans=1)
    stem = lite0.conv_stem.weight
    assert torch.allclose(gray.conv_stem.weight, stem.sum(dim=1, keepdim=True))
    assert torch.equal(gray.classifier.weight, lite0.classifier.weight)


def test_remap_by_order_checks_every_pair():
    src = {"_a.weight": torch.zeros(2, 3), "_a.bias": torch.zeros(2)}
    assert list(remap_by_order(src, {"a.weight": torch.ones(2, 3), "a.bias": torch.ones(2)}, "x")) == [
        "a.weight",
        "a.bias",
    ]
    with pytest.raises(MMKitError, match="does not map"):
        remap_by_order(src, {"a.weight": torch.ones(3, 3), "a.bias": torch.ones(2)}, "x")
    with pytest.raises(MMKitError, match="does not map"):  # same shapes, different kind of tensor
        remap_by_order(src, {"a.bias": torch.ones(2, 3), "a.weight": torch.ones(2)}, "x")
    with pytest.raises(MMKitError, match="2 tensors, but the model has 1"):
        remap_by_order(src, {"a.weight": torch.ones(2, 3)}, "x")


# --------------------------------------------------------------------------------------------------------------
# Weight files


@pytest.fixture()
def trained(tmp_path):
    torch.manual_seed(0)
    model = get_model("smallcnn", num_classes=10, width=0.5)
    return model, model.state_dict()


def _equal_except_head(a, b):
    return all(torch.equal(v, b[k]) for k, v in a.items() if not k.startswith("fc."))


def test_load_plain_state_dict_file(tmp_path, trained):
    model, sd = trained
    path = tmp_path / "plain.pt"
    torch.save(sd, path)
    loaded = get_model("smallcnn", weights=path, width=0.5)  # num_classes taken from the file
    assert classifier_head(loaded).out_features == 10
    assert all(torch.equal(v, sd[k]) for k, v in loaded.state_dict().items())
    again = get_model("smallcnn", weights=str(path), num_classes=10, width=0.5)
    assert torch.equal(again.fc.weight, sd["fc.weight"])


def test_load_mmkit_checkpoint_and_ddp_prefixes(tmp_path, trained):
    _, sd = trained
    path = tmp_path / "last.pt"
    ckpt = {"format": "mmkit-checkpoint", "version": 1, "epoch": 3, "model": sd, "optimizer": {"lr": 0.1}}
    torch.save(ckpt, path)
    assert load_state_dict_file(path).keys() == sd.keys()
    loaded = get_model("smallcnn", weights=path, width=0.5)
    assert all(torch.equal(v, sd[k]) for k, v in loaded.state_dict().items())
    ddp = tmp_path / "ddp.pt"
    torch.save({f"module.{k}": v for k, v in sd.items()}, ddp)
    assert load_state_dict_file(ddp).keys() == sd.keys()


def test_load_safetensors_file(tmp_path, trained):
    from safetensors.torch import save_file

    _, sd = trained
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    loaded = get_model("smallcnn", weights=path, width=0.5)
    assert all(torch.equal(v, sd[k]) for k, v in loaded.state_dict().items())
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
    with pytest.raises(MMKitError, match=f"{path}: not a PyTorch state_dict"):
        load_state_dict_file(path)


def test_head_of_other_size_is_replaced_with_a_warning(tmp_path, trained, caplog):
    _, sd = trained
    path = tmp_path / "w.pt"
    torch.save(sd, path)
    with caplog.at_level(logging.WARNING, logger="mmkit.models.registry"):
        model = get_model("smallcnn", num_classes=4, weights=path, width=0.5, freeze_backbone=True)
    assert "classifier head" in caplog.text and str(path) in caplog.text
    assert classifier_head(model).out_features == 4
    assert _equal_except_head(model.state_dict(), sd)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"fc.weight", "fc.bias"}


def test_backbone_that_does_not_fit_is_an_error(tmp_path, trained):
    _, sd = trained
    path = tmp_path / "w.pt"
    torch.save(sd, path)
    with pytest.raises(MMKitError, match=f"{path}: features.0.weight has shape"):
        get_model("smallcnn", weights=path, width=1.0)
    with pytest.raises(MMKitError, match=f"{path}: does not fit ResNet"):
        get_model("resnet18", weights=path)


class Payload:
    """Not a tensor: `weights_only=True` must refuse to unpickle it."""

    def __init__(self):
        self.x = 1


BAD_FILES = {
    "random-bytes": "",
    "text": "neither a zip archive nor a pickle",
    "arbitrary-class": "refused: it pickles test_weights.Payload",
    "missing": "file not found",
    "no-tensors": "the dict holds no tensors",
    "bare-tensor": "holds a Tensor, not a dict",
    "empty": "empty file",
    "truncated": "truncated or corrupt zip archive",
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_weight_files_are_refused(tmp_path, kind):
    path = tmp_path / f"{kind}.pt"
    if kind == "random-bytes":
        path.write_bytes(os.urandom(4096))
    elif kind == "text":
        path.write_text("these are not weights\n" * 20)
    elif kind == "arbitrary-class":
        torch.save({"model": Payload(), "w": torch.zeros(2)}, path)
    elif kind == "no-tensors":
        torch.save({"epoch": 3, "lr": 0.1}, path)
    elif kind == "bare-tensor":
        torch.save(torch.zeros(3), path)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        torch.save({"w": torch.zeros(100)}, path)
        path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(MMKitError, match="not a PyTorch state_dict or mmkit checkpoint") as err:
        load_state_dict_file(path)
    assert str(err.value).startswith(f"{path}: ")
    assert BAD_FILES[kind] in str(err.value)
    with pytest.raises(MMKitError, match=str(path)):
        get_model("smallcnn", weights=path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_plain_pickle_is_refused_not_executed(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(MMKitError, match=f"{path}: not a PyTorch state_dict"):
        load_state_dict_file(path)


def test_unknown_weights_name_is_not_taken_for_a_path():
    with pytest.raises(MMKitError, match="imagenet22k: no such weights for model resnet18"):
        get_model("resnet18", weights="imagenet22k")


# --------------------------------------------------------------------------------------------------------------
# Published weights that are not shipped: looked up offline, never downloaded


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("MMKIT_WEIGHTS", raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_online_weights_missing_offline_name_the_url(hub):
    url = get_weights("resnet18", "imagenet").source
    with pytest.raises(MMKitError, match=f"offline: download {url} to {hub}"):
        get_model("resnet18", weights="imagenet")
    with pytest.raises(MMKitError, match="huggingface.co/timm/inception_resnet_v2"):
        get_model("inception_resnet_v2", weights="imagenet")


def test_online_weights_load_from_the_hub_cache(hub, monkeypatch, tmp_path):
    torch.manual_seed(1)
    sd = get_model("resnet18").state_dict()  # stands in for the published file
    hub.mkdir(parents=True)
    torch.save(sd, hub / "resnet18-f37072fd.pth")
    model = get_model("resnet18", weights="imagenet")
    assert all(torch.equal(v, sd[k]) for k, v in model.state_dict().items())
    transfer = get_model("resnet18", num_classes=3, weights="imagenet")
    assert classifier_head(transfer).out_features == 3
    assert _equal_except_head(transfer.state_dict(), sd)

    # $MMKIT_WEIGHTS is searched first.
    own = tmp_path / "own"
    own.mkdir()
    sd2 = {k: v + 1 if v.is_floating_point() else v for k, v in sd.items()}
    torch.save(sd2, own / "resnet18-f37072fd.pth")
    monkeypatch.setenv("MMKIT_WEIGHTS", str(own))
    assert torch.equal(get_model("resnet18", weights="imagenet").fc.weight, sd2["fc.weight"])


def test_inception_v3_weights_with_aux_head_load_without_it(hub):
    """torchvision's Inception-v3 file holds the auxiliary classifier; our default model has none."""
    torch.manual_seed(2)
    sd = get_model("inception_v3", aux_logits=True).state_dict()
    assert any(k.startswith("AuxLogits.") for k in sd)
    hub.mkdir(parents=True)
    torch.save(sd, hub / "inception_v3_google-0cc3c7bd.pth")
    model = get_model("inception_v3", weights="imagenet")
    assert torch.equal(model.fc.weight, sd["fc.weight"])
    assert not any(k.startswith("AuxLogits.") for k in model.state_dict())
