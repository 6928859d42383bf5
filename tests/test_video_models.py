"""Video models: shapes, padding invariance, gradients, RNN variants against unpadded runs, MoE, DBoF and the
logistic models against the starter code's formulas, head replacement, and a toy task that needs frame order."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mmkit.models.video  # noqa: F401  (registers the video family)
from mmkit.errors import MMKitError
from mmkit.models import classifier_head, get_model, get_model_info, list_models
from mmkit.models.video import MoE

D = 12  # small feature width for the tests
C = 5
FEATURE_MODELS = {
    "video-mean": {"hidden": 32},
    "lstm": {"hidden": 16},
    "gru": {"hidden": 16},
    "rnn": {"hidden": 16},
    "netvlad": {"clusters": 4, "hidden": 32},
    "moe": {},
    "frame-logistic": {},
    "dbof": {"cluster": 16, "hidden": 8},
}
VIDEO_LEVEL_MODELS = {"logistic"}  # refuse frame-level input: tested on their own
CLIP_MODELS = {
    "cnn-lstm": {"width": 8, "feat": 16, "hidden": 16},
    "cnn-gru": {"width": 8, "feat": 16, "hidden": 16},
    "cnn-rnn": {"width": 8, "feat": 16, "hidden": 16},
    "cnn-mean": {"width": 8, "feat": 16, "hidden": 16},
}
VARIANTS = [
    ("lstm", {"hidden": 16, "layers": 2, "bidirectional": True}),
    ("gru", {"hidden": 16, "layers": 2, "bidirectional": True, "readout": "mean"}),
    ("lstm", {"hidden": 16, "bidirectional": True, "readout": "mean"}),
    ("video-mean", {"hidden": 32, "pool": "meanmax"}),
    ("video-mean", {"hidden": 0, "pool": "max"}),
    ("netvlad", {"clusters": 4, "hidden": 32, "head": "linear", "relu": True, "gating": False}),
    ("rnn", {"hidden": 16, "layers": 2, "bidirectional": True, "readout": "mean"}),
    ("dbof", {"cluster": 16, "hidden": 8, "iterations": 0, "pool": "mean", "act": "relu6", "head": "linear"}),
    ("dbof", {"cluster": 16, "hidden": 8, "batch_norm": False}),
    ("cnn-gru", {"width": 8, "feat": 16, "hidden": 16, "layers": 2, "bidirectional": True}),
    ("cnn-lstm", {"width": 8, "feat": 16, "hidden": 16, "diff": True, "grid": 2}),
]
ALL = [(n, kw) for n, kw in {**FEATURE_MODELS, **CLIP_MODELS}.items()] + VARIANTS
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw in ALL]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread is fastest, and on a shared machine far faster than oversubscribing."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def build(name: str, **kwargs) -> nn.Module:
    size = {"in_chans": 3} if name.startswith("cnn-") else {"feature_dim": D}
    return get_model(name, num_classes=C, **size, **kwargs)


def inputs(name: str, b: int = 3, t: int = 6) -> torch.Tensor:
    return torch.randn(b, t, 3, 32, 32) if name.startswith("cnn-") else torch.randn(b, t, D)


def test_registry_entries():
    assert set(list_models(task="video")) == set(FEATURE_MODELS) | set(CLIP_MODELS) | VIDEO_LEVEL_MODELS
    for name in FEATURE_MODELS:
        info = get_model_info(name)
        assert (info.family, info.in_chans, info.default_input_size) == ("video", 1152, 300)
    assert get_model_info("cnn-lstm").in_chans == 3
    m = get_model("lstm", num_classes=7)
    assert m.rnn.input_size == 1152 and m(torch.randn(2, 4, 1152)).shape == (2, 7)


@pytest.mark.parametrize(("name", "kwargs"), ALL, ids=IDS)
def test_output_shape_and_padding_invariance(name, kwargs):
    torch.manual_seed(0)
    model = build(name, dropout=0.0, **kwargs)
    x = inputs(name)
    lengths = torch.tensor([6, 2, 4])
    padded = torch.cat([x, 10 * torch.randn_like(x[:, :3])], 1)  # three garbage frames past the end
    padded[1, 2:] = 7.0  # video 1 is garbage from its frame 2 on
    padded[2, 5] = float("nan")
    for train in (False, True):  # train mode too: BatchNorm statistics must ignore the padding
        model.train(train)
        torch.manual_seed(1)
        out = model(x, lengths)
        torch.manual_seed(1)
        out_padded = model(padded, lengths)
        assert out.shape == (3, C) and torch.isfinite(out).all()
        torch.testing.assert_close(out_padded, out, atol=1e-5, rtol=1e-5)
    model.eval()
    # no lengths: every frame counts; a video-level input [B, D] is a one-frame video
    torch.testing.assert_close(model(x), model(x, torch.tensor([6, 6, 6])))
    if not name.startswith("cnn-"):
        video = torch.randn(3, D)
        torch.testing.assert_close(model(video), model(video.unsqueeze(1), torch.ones(3, dtype=torch.long)))
        assert model(video).shape == (3, C)
    else:
        assert model(x.mul(40).add(128).clamp(0, 255).to(torch.uint8)).shape == (3, C)


@pytest.mark.parametrize(("name", "kwargs"), ALL, ids=IDS)
def test_gradients_reach_every_parameter(name, kwargs):
    torch.manual_seed(0)
    model = build(name, **kwargs).train()
    out = model(inputs(name, b=4), torch.tensor([6, 3, 1, 5]))
    F.binary_cross_entropy_with_logits(out, torch.rand(4, C).round()).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


def _reference_rnn(model, x, lengths):
    """Run the model's RNN on every video alone, unpadded, and read it out as the model should."""
    rows = []
    for i, n in enumerate(lengths.tolist()):
        out, state = model.rnn(x[i : i + 1, :n])
        h = state[0] if isinstance(state, tuple) else state
        if model.readout == "last":
            rows.append(torch.cat(list(h[-model.directions :, 0]), 0))
        else:
            rows.append(out[0].mean(0))
    return torch.stack(rows)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("readout", ["last", "mean"])
@pytest.mark.parametrize(("layers", "bidirectional"), [(1, False), (2, True)])
def test_rnn_readout_equals_unpadded_runs(cell, readout, layers, bidirectional):
    torch.manual_seed(0)
    model = build(cell, hidden=8, layers=layers, bidirectional=bidirectional, readout=readout).eval()
    x, lengths = torch.randn(4, 7, D), torch.tensor([7, 1, 4, 6])
    with torch.no_grad():
        got = model.encode(x, lengths)
        want = _reference_rnn(model, x, lengths)
    assert got.shape == (4, 8 * (2 if bidirectional else 1))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_moe_is_the_starter_codes_mixture():
    torch.manual_seed(0)
    e, c = 3, 4
    moe = MoE(D, c, experts=e)
    nn.init.normal_(moe.proj.bias)
    x = torch.randn(5, D)
    z = moe.proj(x).view(5, c, 2 * e + 1)
    gates = z[..., : e + 1].softmax(-1)[..., :e]  # the dummy expert's share is dropped
    p = (gates * torch.sigmoid(z[..., e + 1 :])).sum(-1)
    torch.testing.assert_close(torch.sigmoid(moe(x)), p, atol=1e-6, rtol=1e-5)
    # stable at extreme activations: finite, clamped log-odds
    big = moe(1e4 * x)
    assert torch.isfinite(big).all() and big.abs().max() <= 30


def test_head_replacement_and_transfer(tmp_path):
    torch.manual_seed(0)
    for name, kwargs in [("lstm", {"hidden": 16}), ("netvlad", {"clusters": 4, "hidden": 32})]:
        src = build(name, **kwargs)
        path = tmp_path / f"{name}.pt"
        torch.save(src.state_dict(), path)
        tgt = get_model(name, num_classes=3, feature_dim=D, weights=path, **kwargs).eval()
        assert tgt.num_classes == 3 and tgt(torch.randn(2, 5, D)).shape == (2, 3)
        # everything but the head came from the file
        same = {
            k
            for k, v in tgt.state_dict().items()
            if k in src.state_dict() and torch.equal(v, src.state_dict()[k])
        }
        assert {k.split(".")[0] for k in tgt.state_dict() if k not in same} == {"classifier"}
    head = classifier_head(build("moe"))
    assert head.out_features == C * 5  # the MoE's one projection: C · (2E + 1)
    frozen = get_model("netvlad", num_classes=C, feature_dim=D, freeze_backbone=True, clusters=4, hidden=32)
    assert {n for n, p in frozen.named_parameters() if p.requires_grad} == {
        "classifier.proj.weight",
        "classifier.proj.bias",
    }


def test_bad_inputs_and_options():
    model = build("lstm", hidden=8)
    with pytest.raises(MMKitError, match=r"\[B, T, 12\]"):
        model(torch.randn(2, 5, D + 1))
    with pytest.raises(MMKitError, match="lengths"):
        model(torch.randn(2, 5, D), torch.tensor([1, 2, 3]))
    with pytest.raises(MMKitError, match="frames"):
        build("cnn-lstm", width=8)(torch.randn(2, 3, 32, 32))
    with pytest.raises(MMKitError, match="pool"):
        build("video-mean", pool="median")
    with pytest.raises(MMKitError, match="readout"):
        build("gru", readout="first")
    with pytest.raises(MMKitError, match="head"):
        build("netvlad", head="svm")


def _order_task(n: int, t: int = 12, d: int = 4, seed: int = 0):
    """Noise frames with one marker (feature 0 = 3) in a random frame; label 1 if it is in the second half of the
    video's valid frames. The mean over frames is the same wherever the marker is: pooling cannot tell."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(t // 2, t + 1, (n,), generator=g)
    x = 0.5 * torch.randn(n, t, d, generator=g)
    pos = (torch.rand(n, generator=g) * lengths).long()
    x[torch.arange(n), pos, 0] = 3.0
    y = (2 * pos >= lengths).long()
    return x, lengths, y


def _fit(model, x, lengths, y, steps=100):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(y), (64,), generator=g)
        loss = F.cross_entropy(model(x[idx], lengths[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_lstm_learns_frame_order_that_mean_pooling_cannot():
    torch.manual_seed(0)
    x, lengths, y = _order_task(1024)
    xt, lt, yt = _order_task(512, seed=1)
    lstm = _fit(get_model("lstm", num_classes=2, feature_dim=4, hidden=24, dropout=0.0), x, lengths, y)
    mean = _fit(get_model("video-mean", num_classes=2, feature_dim=4, hidden=24, dropout=0.0), x, lengths, y)
    with torch.no_grad():
        acc_lstm = (lstm(xt, lt).argmax(1) == yt).float().mean().item()
        acc_mean = (mean(xt, lt).argmax(1) == yt).float().mean().item()
    assert acc_lstm > 0.9, acc_lstm
    assert abs(acc_mean - 0.5) < 0.1, acc_mean


def test_rnn_is_the_elman_recurrence():
    torch.manual_seed(0)
    model = build("rnn", hidden=6).eval()
    x, lengths = torch.randn(3, 5, D), torch.tensor([5, 2, 4])
    w_ih, w_hh = model.rnn.weight_ih_l0, model.rnn.weight_hh_l0
    b = model.rnn.bias_ih_l0 + model.rnn.bias_hh_l0
    want = []
    for i, n in enumerate(lengths.tolist()):
        h = torch.zeros(6)
        for t in range(n):  # h_t = tanh(W x_t + U h_(t-1) + b)
            h = torch.tanh(w_ih @ x[i, t] + w_hh @ h + b)
        want.append(h)
    with torch.no_grad():
        torch.testing.assert_close(model.encode(x, lengths), torch.stack(want), atol=1e-5, rtol=1e-5)
    clip = get_model("cnn-rnn", num_classes=C, width=8, feat=16, hidden=16)
    assert isinstance(clip.rnn.rnn, nn.RNN) and clip.rnn.rnn.nonlinearity == "tanh"


def test_logistic_models_are_the_starter_codes():
    torch.manual_seed(0)
    frames, lengths = torch.randn(4, 6, D), torch.tensor([6, 1, 3, 5])
    frame_level = build("frame-logistic").eval()
    w, b = frame_level.classifier.weight, frame_level.classifier.bias
    # FrameLevelLogisticModel: sum of the frames / num_frames, then sigmoid(W x + b)
    avg = torch.stack([frames[i, :n].sum(0) / n for i, n in enumerate(lengths.tolist())])
    with torch.no_grad():
        torch.testing.assert_close(frame_level(frames, lengths).sigmoid(), torch.sigmoid(avg @ w.T + b))
        # LogisticModel on the video-level features (the frame mean): the same layer, the same output
        video_level = build("logistic").eval()
        video_level.load_state_dict(frame_level.state_dict())
        torch.testing.assert_close(video_level(avg), frame_level(frames, lengths))
    assert {k for k in video_level.state_dict()} == {"classifier.weight", "classifier.bias"}
    with pytest.raises(MMKitError, match="video-level model.*--level video"):
        video_level(frames, lengths)
    with pytest.raises(MMKitError, match="hidden"):
        build("logistic", hidden=8)


def test_dbof_is_the_starter_codes_deep_bag_of_frames():
    torch.manual_seed(0)
    model = build("dbof", cluster=16, hidden=8, iterations=0, experts=3)
    for bn in (
        model.pool.input_bn,
        model.pool.cluster[1],
        model.hidden[1],
    ):  # eval-mode BatchNorm with real statistics
        nn.init.normal_(bn.running_mean)
        nn.init.uniform_(bn.running_var, 0.5, 2.0)
        nn.init.normal_(bn.bias)
    model.eval()
    x, lengths = torch.randn(3, 7, D), torch.tensor([7, 2, 5])

    def bn(m, v):
        return (v - m.running_mean) / torch.sqrt(m.running_var + m.eps) * m.weight + m.bias

    w_c, w_h = model.pool.cluster[0].weight.T, model.hidden[0].weight.T  # cluster_weights, hidden1_weights
    rows = []
    for i, n in enumerate(lengths.tolist()):
        act = torch.sigmoid(
            bn(model.pool.cluster[1], bn(model.pool.input_bn, x[i, :n]) @ w_c)
        )  # [n, cluster]
        pooled = act.max(0).values  # FramePooling "max"
        rows.append(torch.sigmoid(bn(model.hidden[1], pooled @ w_h)))
    with torch.no_grad():
        torch.testing.assert_close(
            model(x, lengths), model.classifier(torch.stack(rows)), atol=1e-5, rtol=1e-5
        )
    assert model.pool.cluster[0].bias is None and isinstance(model.classifier, MoE)
    assert build("dbof", batch_norm=False).pool.cluster[0].bias is not None


def test_dbof_samples_valid_frames_in_training_and_spreads_them_in_eval():
    from mmkit.models.video import _frame_sample

    lengths = torch.tensor([1, 5, 300, 40])
    torch.manual_seed(0)
    drawn = _frame_sample(lengths, 30, random=True)
    assert drawn.shape == (4, 30) and (drawn >= 0).all() and (drawn < lengths[:, None]).all()
    assert len(drawn[2].unique()) > 20  # random draws, not the first 30 frames
    spread = _frame_sample(lengths, 4, random=False)
    assert spread[1].tolist() == [0, 1, 3, 4] and spread[2].tolist() == [37, 112, 187, 262]
    assert torch.equal(_frame_sample(torch.tensor([6]), 6, random=False)[0], torch.arange(6))
    # eval is repeatable; training draws differ from step to step
    model = build("dbof", cluster=16, hidden=8, iterations=4)
    x = torch.randn(2, 12, D)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    assert not torch.allclose(model(x), model(x))
    with pytest.raises(MMKitError, match="iterations"):
        build("dbof", iterations=-1)
    with pytest.raises(MMKitError, match="act=softsign: unknown activation; known: relu"):
        build("dbof", act="softsign")
