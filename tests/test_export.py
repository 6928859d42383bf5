"""Export to ONNX (checked in ONNX Runtime) and TorchScript."""

import logging
import sys

import numpy as np
import pytest
import torch

from mmkit.errors import MMKitError
from mmkit.export import Graph, export_graphs, export_onnx, export_torchscript
from mmkit.models import get_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = get_model("smallcnn", num_classes=10, width=0.5)
    # Non-trivial BatchNorm statistics, so eval vs train mode would show in the outputs.
    with torch.no_grad():
        m.train()(torch.randn(16, 1, 28, 28) * 2 + 1)
    return m.train()


def test_onnx_matches_pytorch_with_dynamic_batch(model, tmp_path):
    path = tmp_path / "out" / "smallcnn.onnx"
    diff = export_onnx(model, torch.randn(2, 1, 28, 28), path)
    assert diff is not None and diff < 1e-4
    assert model.training  # the caller's mode is restored
    assert sorted(p.name for p in path.parent.iterdir()) == ["smallcnn.onnx"]  # no temporary files left

    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 1, 28, 28)
    (got,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    model.train()
    assert got.shape == (3, 10)
    assert np.abs(got - expected).max() < 1e-4


def test_onnx_fixed_batch(model, tmp_path):
    import onnxruntime as ort

    path = tmp_path / "fixed.onnx"
    assert export_onnx(model, torch.randn(2, 1, 28, 28), path, dynamic_batch=False) < 1e-4
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [2, 1, 28, 28]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_torchscript_matches_pytorch(model, tmp_path):
    path = tmp_path / "smallcnn.ts"
    diff = export_torchscript(model, torch.randn(2, 1, 28, 28), path)
    assert diff is not None and diff < 1e-4
    assert model.training
    loaded = torch.jit.load(str(path))
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        expected = model.eval()(x)
    model.train()
    assert torch.allclose(loaded(x), expected, atol=1e-4)


def test_falls_back_to_the_dynamo_exporter(model, tmp_path, monkeypatch, caplog):
    real_export = torch.onnx.export
    calls = []

    def legacy_fails(*args, dynamo=True, **kwargs):
        calls.append(dynamo)
        if not dynamo:
            raise RuntimeError("the TorchScript exporter is gone")
        return real_export(*args, dynamo=True, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", legacy_fails)
    with caplog.at_level(logging.DEBUG, logger="mmkit.export"):
        diff = export_onnx(model, torch.randn(2, 1, 28, 28), tmp_path / "m.onnx")
    assert calls == [False, True] and diff < 1e-4
    assert "trying the dynamo exporter" in caplog.text

    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": np.zeros((3, 1, 28, 28), np.float32)})[0].shape == (3, 10)


def test_failed_export_keeps_the_old_file(model, tmp_path, monkeypatch):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"previous export")

    def broken(*args, **kwargs):
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(RuntimeError, match="exporter crashed"):
        export_onnx(model, torch.randn(2, 1, 28, 28), path)
    assert path.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_missing_onnxruntime_says_what_to_install(model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(MMKitError, match=r'pip install "mmkit\[export\]"'):
        export_onnx(model, torch.randn(2, 1, 28, 28), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


class TwoInOut(torch.nn.Module):
    """Frames [B, T, D] and int64 lengths [B] -> (masked mean [B, D], per-frame scores [B, T])."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(4, 4)

    def forward(self, x, lengths):
        mask = torch.arange(x.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
        y = self.proj(x) * mask.unsqueeze(2)
        return y.sum(1) / lengths.unsqueeze(1), y.sum(2)


AXES = {"x": {0: "batch", 1: "frames"}, "lengths": {0: "batch"}, "mean": {0: "batch"}}
AXES["scores"] = {0: "batch", 1: "frames"}


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript-exporter", "dynamo-exporter"])
def test_several_inputs_and_outputs_with_named_dynamic_axes(tmp_path, monkeypatch, dynamo):
    import onnxruntime as ort

    if dynamo:  # the fallback gets the same names and axes
        real_export = torch.onnx.export

        def legacy_fails(*args, dynamo=True, **kwargs):
            if not dynamo:
                raise RuntimeError("the TorchScript exporter is gone")
            return real_export(*args, dynamo=True, **kwargs)

        monkeypatch.setattr(torch.onnx, "export", legacy_fails)
    torch.manual_seed(0)
    model, path = TwoInOut(), tmp_path / "two.onnx"
    example = (torch.randn(2, 5, 4), torch.tensor([5, 3]))
    names = dict(input_names=["x", "lengths"], output_names=["mean", "scores"])
    assert export_onnx(model, example, path, dynamic_axes=AXES, **names) < 1e-5
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x", "lengths"]
    x, lengths = torch.randn(3, 7, 4), torch.tensor([7, 1, 4])  # another batch size and frame count
    got = session.run(None, {"x": x.numpy(), "lengths": lengths.numpy()})
    with torch.no_grad():
        expected = model(x, lengths)
    assert [g.shape for g in got] == [(3, 4), (3, 7)]
    assert all(np.abs(g - e.numpy()).max() < 1e-5 for g, e in zip(got, expected, strict=True))


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_export_graphs_names_the_files_of_a_pipeline(model, tmp_path):
    example = (torch.randn(2, 5, 4), torch.tensor([5, 3]))
    graphs = [
        Graph("classifier", model, (torch.randn(2, 1, 28, 28),), ["input"], ["output"]),
        Graph("pool", TwoInOut(), example, ["x", "lengths"], ["mean", "scores"], AXES),
    ]
    files = export_graphs(graphs, "torchscript", tmp_path / "best.torchscript")
    assert [(f.graph, f.path.name) for f in files] == [
        ("classifier", "best.classifier.torchscript"),
        ("pool", "best.pool.torchscript"),
    ]
    assert all(f.max_abs_diff < 1e-5 for f in files)
    (one,) = export_graphs(graphs[:1], "onnx", tmp_path / "single.onnx")  # one graph: the path as given
    assert one.path == tmp_path / "single.onnx" and one.path.is_file()
    with pytest.raises(MMKitError, match="--format tflite: choose onnx or torchscript"):
        export_graphs(graphs, "tflite", tmp_path / "x")
