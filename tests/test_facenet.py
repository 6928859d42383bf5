"""FaceNet embedding models: registry entries, unit-norm embeddings at several input sizes, the parameter count of
Inception-ResNet-v1, and the published weights' key layout (facenet-pytorch) loading through the registry."""

import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch

from mmkit.errors import MMKitError
from mmkit.losses.metric import TripletLoss
from mmkit.models import get_model, get_model_info, get_weights, list_models
from mmkit.models.facenet import FaceNetLight, InceptionResnetV1

VGGFACE2_FILE = "20180402-114759-vggface2.pt"


def test_registered_as_face_models():
    assert {"facenet", "facenet-light"} <= set(list_models(task="face"))
    for name, size in (("facenet", 160), ("facenet-light", 64)):
        info = get_model_info(name)
        assert (info.task, info.family, info.default_input_size, info.in_chans) == (
            "face",
            "facenet",
            size,
            3,
        )
    assert set(get_model_info("facenet").weights) == {"vggface2", "casia-webface"}
    w = get_weights("facenet", "casia-webface")
    assert w.source.endswith("/v2.2.9/20180408-102900-casia-webface.pt") and w.input_size == 160
    # facenet's prewhitening (x - 127.5) / 128 on 0..255 pixels, written as mean/std on 0..1 images
    x = torch.tensor([0.0, 127.5, 255.0])
    assert torch.allclose((x / 255 - w.mean[0]) / w.std[0], (x - 127.5) / 128)
    assert isinstance(get_model("facenet"), InceptionResnetV1)
    assert isinstance(get_model("facenet-light"), FaceNetLight)
    with pytest.raises(MMKitError, match="takes no num_classes"):  # an embedding: no classes to misread
        get_model("facenet-light", 10)


def test_parameter_counts():
    """Inception-ResNet-v1 as in facenet-pytorch (without its `logits` classifier): 23,482,624 parameters at 512
    dims; the embedding layer is 1792 x D + 2 D of them. facenet-light stays within 0.3..1 M."""
    with torch.device("meta"):
        count = {
            d: sum(p.numel() for p in get_model("facenet", embedding_dim=d).parameters()) for d in (512, 128)
        }
        light = sum(p.numel() for p in get_model("facenet-light").parameters())
    assert count[512] == 23_482_624
    assert count[512] - count[128] == (1792 + 2) * (512 - 128)
    assert 300_000 < light < 1_000_000


def _check_embeddings(emb: torch.Tensor, n: int, d: int) -> None:
    assert emb.shape == (n, d) and torch.isfinite(emb).all()
    assert torch.allclose(emb.norm(dim=1), torch.ones(n), atol=1e-5)


def test_inception_resnet_v1_sizes_and_channels():
    torch.manual_seed(0)
    model = get_model("facenet", embedding_dim=128).eval()
    with torch.no_grad():
        for h, w in ((80, 80), (96, 80)):
            _check_embeddings(model(torch.randn(2, 3, h, w)), 2, 128)
        with pytest.raises(MMKitError, match=">= 75"):
            model(torch.randn(1, 3, 64, 64))
    gray = get_model("facenet", in_chans=1).eval()
    with torch.no_grad():
        _check_embeddings(gray(torch.randn(2, 1, 80, 80)), 2, 512)


def test_facenet_light_sizes_channels_and_training_step():
    torch.manual_seed(0)
    model = get_model("facenet-light", in_chans=1, embedding_dim=64).eval()
    with torch.no_grad():
        for h, w in ((32, 32), (64, 64), (112, 112), (48, 80)):
            _check_embeddings(model(torch.randn(3, 1, h, w)), 3, 64)
        with pytest.raises(MMKitError, match=">= 32"):
            model(torch.randn(1, 1, 24, 24))
    # one training step with the triplet loss reaches every parameter (including the stem)
    model.train()
    loss, _ = TripletLoss(mining="hard")(model(torch.randn(8, 1, 48, 48)), torch.arange(8) // 2)
    loss.backward()
    assert loss > 0 and model.stem[0][0].weight.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# --------------------------------------------------------------------------------------------------------------
# Published weights: facenet-pytorch's files, looked up offline


def _facenet_pytorch_file(path, *, seed: int, drop_counters: bool = False) -> dict[str, torch.Tensor]:
    """A stand-in for a published file: our model's tensors, every one perturbed (BN statistics too), in
    facenet-pytorch's layout, plus its training classifier `logits.*`."""
    torch.manual_seed(seed)
    sd = get_model("facenet").state_dict()
    sd = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v for k, v in sd.items()}
    sd = {k: v.abs() if k.endswith("running_var") else v for k, v in sd.items()}
    if drop_counters:
        sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    sd["logits.weight"] = torch.randn(10, 512)
    sd["logits.bias"] = torch.randn(10)
    torch.save(sd, path)
    return sd


def test_registered_weights_with_logits_load_from_mmkit_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("MMKIT_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    sd = _facenet_pytorch_file(tmp_path / VGGFACE2_FILE, seed=1, drop_counters=True)
    model = get_model("facenet", weights="vggface2").eval()
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in sd.items() if not k.startswith("logits."))
    assert not any(k.startswith("logits.") for k in loaded)
    with torch.no_grad():
        _check_embeddings(model(torch.rand(2, 3, 80, 80)), 2, 512)

    url = get_weights("facenet", "casia-webface").source
    with pytest.raises(MMKitError, match=f"offline: download {url}"):
        get_model("facenet", weights="casia-webface")


def test_weights_file_path_loads(tmp_path):
    torch.manual_seed(3)
    source = get_model("facenet").eval()
    torch.save(source.state_dict(), tmp_path / "facenet.pt")
    model = get_model("facenet", weights=tmp_path / "facenet.pt").eval()
    x = torch.rand(2, 3, 80, 80)
    with torch.no_grad():
        assert torch.equal(model(x), source(x))


def test_same_layout_and_outputs_as_facenet_pytorch(monkeypatch):
    """The reference implementation: unpacked by `make test` into .venv/reference (never installed), or installed
    (it imports `requests`, which it only uses to download)."""
    reference = Path(sys.prefix) / "reference"
    if (reference / "facenet_pytorch").is_dir():
        monkeypatch.syspath_prepend(str(reference))
    if importlib.util.find_spec("facenet_pytorch") is None:
        pytest.skip("facenet-pytorch's code is not here (make test unpacks it into .venv/reference)")
    if importlib.util.find_spec("requests") is None:
        stub = types.ModuleType("requests")
        adapters = types.ModuleType("requests.adapters")
        adapters.HTTPAdapter = object
        monkeypatch.setitem(sys.modules, "requests", stub)
        monkeypatch.setitem(sys.modules, "requests.adapters", adapters)
    from facenet_pytorch.models.inception_resnet_v1 import InceptionResnetV1 as Reference

    torch.manual_seed(4)
    ref = Reference(classify=True, num_classes=7).eval()
    sd = ref.state_dict()
    model = get_model("facenet").eval()
    assert list(model.state_dict()) == [k for k in sd if not k.startswith("logits.")]
    model.load_state_dict({k: v for k, v in sd.items() if not k.startswith("logits.")}, strict=True)
    ref.classify = False
    x = torch.randn(2, 3, 80, 80)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x), atol=1e-6)
