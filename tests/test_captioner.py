"""Captioning models: registry, encoders per family, shapes, losses, greedy and beam decoding (against greedy by
teacher forcing and an exhaustive search), and overfitting a tiny batch until decoding returns it exactly."""

import itertools

import pytest
import torch

from mmkit.errors import MMKitError
from mmkit.models import get_model, get_model_info, list_models
from mmkit.models.captioner import (
    BOS,
    EOS,
    PAD,
    AttentionOutput,
    ImageEncoder,
    ParagraphOutput,
    caption_loss,
    doubly_stochastic_penalty,
)
from mmkit.models.captioner_decode import generate, length_normalizer, score_captions

V = 12  # 4 special tokens + 8 words (ids 4..11)
SMALL = {"encoder": "smallcnn", "encoder_options": {"width": 0.5}}
SIZES = {
    "show-tell": {"embed_dim": 24, "hidden_dim": 48},
    "show-attend-tell": {"embed_dim": 24, "hidden_dim": 48, "attn_dim": 24},
    "paragraph": {"pool_dim": 32, "sentence_dim": 32, "embed_dim": 24, "hidden_dim": 48, "s_max": 4},
}
WORD_MODELS = ["show-tell", "show-attend-tell"]


def build(name: str, seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    return get_model(name, vocab_size=V, **{**SMALL, **SIZES[name], "dropout": 0.0, **kw})


def sentences(captions: list[list[int]], t: int) -> torch.Tensor:
    """<bos> words <eos> <pad>.. rows of length t."""
    out = torch.full((len(captions), t), PAD, dtype=torch.int64)
    for i, c in enumerate(captions):
        row = [BOS, *c, EOS]
        out[i, : len(row)] = torch.tensor(row)
    return out


def images(n: int = 4, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def peaky(model: torch.nn.Module, scale: float = 4.0) -> torch.nn.Module:
    """A random model with sharper word distributions than at init (more interesting for search)."""
    with torch.no_grad():
        model.get_classifier().weight.mul_(scale)
    return model.eval()


CAPTIONS = [[4, 5, 6], [7, 8], [9, 10, 11, 4], [5, 4]]


# ---------------------------------------------------------------------------------------------------------------
# Registry and encoder


def test_registered_as_caption_models():
    assert set(list_models(task="caption")) == {"show-tell", "show-attend-tell", "paragraph"}
    for name in list_models(task="caption"):
        info = get_model_info(name)
        assert (info.family, info.in_chans) == ("captioner", 3)
        model = build(name)
        assert model.get_classifier().out_features == model.vocab_size == V
        # the vocabulary size is the builder's named argument; a num_classes is refused, never misread
        assert get_model(name, vocab_size=V + 1, **SMALL, **SIZES[name]).vocab_size == V + 1
        with pytest.raises(MMKitError, match="takes no num_classes"):
            get_model(name, V + 1, **SMALL, **SIZES[name])
        assert model.encoder.backbone == "smallcnn"


@pytest.mark.parametrize(
    ("backbone", "size", "channels", "grid"),
    [
        ("smallcnn", 32, 64, (4, 4)),
        ("resnet18", 64, 512, (2, 2)),
        ("resnet50", 64, 2048, (2, 2)),
        ("inception_v3", 75, 2048, (1, 1)),
        ("inception_resnet_v2", 75, 1536, (1, 1)),
        ("efficientnet_lite0", 64, 1280, (2, 2)),
    ],
)
def test_encoder_spatial_features(backbone, size, channels, grid):
    enc = ImageEncoder(backbone).eval()
    x = torch.randn(2, 3, size, size)
    fmap = enc.feature_map(x)
    feats, pooled = enc(x)
    assert enc.out_channels == channels and fmap.shape == (2, channels, *grid)
    assert feats.shape == (2, grid[0] * grid[1], channels)
    torch.testing.assert_close(
        feats[:, 1 if grid[1] > 1 else 0], fmap.flatten(2)[:, :, 1 if grid[1] > 1 else 0]
    )
    torch.testing.assert_close(pooled, fmap.mean((2, 3)))
    assert not any(n.endswith(("fc.weight", "classifier.weight")) for n, _ in enc.named_parameters())


def test_encoder_imagenet_weights_grid_and_freeze():
    enc = ImageEncoder("efficientnet_lite0", weights="imagenet", freeze=True, grid=3)
    reference = get_model("efficientnet_lite0", weights="imagenet")
    torch.testing.assert_close(enc.body.model.conv_stem.weight, reference.conv_stem.weight)
    assert enc.feature_map(torch.randn(2, 3, 64, 64)).shape == (2, 1280, 3, 3)
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not any(m.training for m in enc.body.modules())  # BatchNorm keeps the ImageNet statistics
    with pytest.raises(MMKitError, match="classifier"):
        ImageEncoder("yolov3-tiny")


def test_new_vocabulary_from_a_checkpoint_file(tmp_path):
    model = build("show-attend-tell")
    torch.save(model.state_dict(), tmp_path / "sat.pt")
    loaded = get_model("show-attend-tell", weights=tmp_path / "sat.pt", **SMALL, **SIZES["show-attend-tell"])
    assert loaded.get_classifier().out_features == V and loaded.embed.num_embeddings == V
    x, tok = images(2), sentences(CAPTIONS[:2], 6)
    torch.testing.assert_close(loaded.eval()(x, tok).logits, model.eval()(x, tok).logits)


# ---------------------------------------------------------------------------------------------------------------
# Forward, loss


def test_forward_shapes_and_attention():
    x, tok = images(), sentences(CAPTIONS, 7)
    assert build("show-tell")(x, tok).shape == (4, 6, V)
    out = build("show-attend-tell")(x, tok)
    assert isinstance(out, AttentionOutput)
    assert out.logits.shape == (4, 6, V) and out.alphas.shape == (
        4,
        6,
        16,
    )  # 32 px / stride 8 = 4x4 locations
    torch.testing.assert_close(out.alphas.sum(2), torch.ones(4, 6))
    para = torch.zeros(4, 3, 7, dtype=torch.int64)
    para[:, 0], para[1, 1], para[2, 1:] = tok, tok[0], tok[:2]
    out = build("paragraph")(x, para)
    assert isinstance(out, ParagraphOutput)
    assert out.word_logits.shape == (4, 3, 6, V) and out.stop_logits.shape == (4, 3)
    assert out.word_logits[0, 1:].abs().sum() == 0 and out.word_logits[2, 2].abs().sum() > 0
    with pytest.raises(MMKitError, match="tokens"):
        build("show-tell")(x, tok.float())


def test_paragraph_words_do_not_depend_on_trailing_padding():
    """The word LSTM runs up to the longest real sentence only: more padding columns change nothing."""
    model, x = build("paragraph").eval(), images()
    para = torch.zeros(4, 3, 6, dtype=torch.int64)
    para[:, 0], para[1, 1], para[2, 1:] = (
        sentences(CAPTIONS, 6),
        sentences([[4]], 6),
        sentences([[5, 6], [7]], 6),
    )
    wide = torch.cat([para, torch.zeros(4, 3, 9, dtype=torch.int64)], 2)
    out, out_wide = model(x, para), model(x, wide)
    torch.testing.assert_close(out_wide.word_logits[:, :, :5], out.word_logits)
    assert out_wide.word_logits[:, :, 5:].abs().sum() == 0
    torch.testing.assert_close(caption_loss(out_wide, wide)[0], caption_loss(out, para)[0])


def test_loss_ignores_padding_and_weights_its_parts():
    tok = sentences(CAPTIONS, 7)
    logits = torch.randn(4, 6, V)
    loss, logs = caption_loss(logits, tok)
    real = tok[:, 1:] != PAD
    expected = -logits.log_softmax(-1).gather(2, tok[:, 1:, None]).squeeze(2)[real].mean()
    torch.testing.assert_close(loss, expected)
    changed = logits.clone()
    changed[~real] = 100.0  # predictions at padding positions do not count
    torch.testing.assert_close(caption_loss(changed, tok)[0], loss)
    alphas = torch.rand(4, 6, 16).softmax(2)
    loss2, logs2 = caption_loss(AttentionOutput(logits, alphas), tok, attention_weight=2.0)
    torch.testing.assert_close(loss2, loss + 2.0 * doubly_stochastic_penalty(alphas, real))
    assert set(logs) == {"word_loss"} and set(logs2) == {"word_loss", "attention_penalty"}


def test_paragraph_stop_target_is_the_last_real_sentence():
    para = torch.zeros(2, 3, 4, dtype=torch.int64)
    para[0, 0] = para[1, 0] = para[1, 1] = sentences([[4, 5]], 4)[0]
    words = torch.zeros(2, 3, 3, V)  # uniform word predictions: word loss log V
    stop = torch.tensor(
        [[8.0, -8.0, 50.0], [-8.0, 8.0, -50.0]]
    )  # right on the real sentences, wild on padding
    loss, logs = caption_loss(ParagraphOutput(words, stop), para, stop_weight=5.0)
    assert logs["stop_loss"] < 1e-3
    torch.testing.assert_close(logs["word_loss"], torch.log(torch.tensor(float(V))))
    wrong = caption_loss(ParagraphOutput(words, -stop), para)[1]["stop_loss"]
    assert wrong > 7.0
    n = torch.tensor([1, 1])  # n_sentences overrides the non-zero rows
    assert caption_loss(ParagraphOutput(words, stop), para, n_sentences=n)[1]["stop_loss"] > 1.0


def test_doubly_stochastic_penalty():
    perm = torch.eye(5)[torch.tensor([3, 0, 4, 1, 2])]  # [T=5, L=5]: every location attended once over time
    alphas = torch.stack([perm, torch.eye(5)])
    assert doubly_stochastic_penalty(alphas) == 0
    padded = torch.cat([alphas, torch.full((2, 2, 5), 0.2)], 1)  # two padding steps, masked out
    mask = torch.arange(7).expand(2, 7) < 5
    assert doubly_stochastic_penalty(padded, mask) == 0
    assert doubly_stochastic_penalty(padded) > 0
    uniform = torch.full((1, 2, 4), 0.25)  # sums over time to 0.5 at each location
    torch.testing.assert_close(doubly_stochastic_penalty(uniform), torch.tensor(0.25))


# ---------------------------------------------------------------------------------------------------------------
# Decoding


def greedy_by_teacher_forcing(model, x: torch.Tensor, max_len: int) -> list[list[int]]:
    """Reference greedy decoding through `forward` (never the decoding code): argmax of the last position."""
    out = []
    for i in range(x.shape[0]):
        seq = [BOS]
        while len(seq) - 1 < max_len and seq[-1] != EOS:
            tok = torch.tensor([seq + [PAD]])
            o = model(x[i : i + 1], tok)
            logits = (o.logits if isinstance(o, AttentionOutput) else o)[0, -1].clone()
            logits[[PAD, BOS]] = float("-inf")
            seq.append(int(logits.argmax()))
        out.append([t for t in seq[1:] if t != EOS])
    return out


@pytest.mark.parametrize("name", WORD_MODELS)
def test_beam_one_is_greedy_and_scores_match_teacher_forcing(name):
    model = peaky(build(name, seed=3))
    x = images(3, seed=5)
    caps = generate(model, x, beam=1, max_len=6)
    assert [c.tokens for c in caps] == greedy_by_teacher_forcing(model, x, 6)
    for c, xi in zip(caps, x, strict=True):
        tok = torch.tensor([[BOS, *c.tokens] + ([EOS] if len(c.tokens) < 6 else [])])
        assert c.score == pytest.approx(float(score_captions(model, xi[None], tok)), abs=1e-4)
        if name == "show-attend-tell":
            assert c.attention.shape == (len(c.tokens), 16) and c.grid == (4, 4)
            torch.testing.assert_close(c.attention.sum(1), torch.ones(len(c.tokens)))
            torch.testing.assert_close(c.attention, model(xi[None], tok).alphas[0, : len(c.tokens)])


def all_sequences(words: list[int], max_len: int) -> list[list[int]]:
    """Every decodable output: words then <eos> (at most max_len tokens), or max_len words without <eos>."""
    out = []
    for n in range(max_len + 1):
        for seq in itertools.product(words, repeat=n):
            if n < max_len:
                out.append([*seq, EOS])
            else:
                out.append(list(seq))
    return out


@pytest.mark.parametrize("name", WORD_MODELS)
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_wide_beam_is_exhaustive_search(name, alpha):
    model = peaky(build(name, seed=7), scale=2.0)
    with (
        torch.no_grad()
    ):  # make only 2 words likely, so 3 tokens of search space are small: <unk>, 4, 5, <eos>
        model.get_classifier().bias[6:] = -30.0
    x = images(2, seed=11)
    candidates = all_sequences([3, 4, 5], 3)  # 40 sequences
    for i in range(2):
        toks = [[BOS, *s] + [PAD] * (3 - len(s)) for s in candidates]
        scores = score_captions(
            model, x[i : i + 1].expand(len(toks), -1, -1, -1), torch.tensor(toks), length_penalty=alpha
        )
        best = candidates[int(scores.argmax())]
        cap = generate(model, x[i : i + 1], beam=40, max_len=3, length_penalty=alpha)[0]
        assert cap.tokens == [t for t in best if t != EOS]
        assert cap.score == pytest.approx(float(scores.max()), abs=1e-4)


@pytest.mark.parametrize("name", WORD_MODELS)
def test_beam_finds_at_least_greedy_probability(name):
    model = peaky(build(name, seed=2))
    x = images(6, seed=3)
    for alpha in (0.0, 0.7):
        greedy = generate(model, x, beam=1, max_len=8, length_penalty=alpha)
        beam = generate(model, x, beam=5, max_len=8, length_penalty=alpha)
        assert all(b.score >= g.score - 1e-5 for b, g in zip(beam, greedy, strict=True))
        assert any(
            b.score > g.score + 1e-3 for b, g in zip(beam, greedy, strict=True)
        )  # the search does work
        for c, xi in zip(beam, x, strict=True):  # the reported score is the model's (normalized) log-prob
            tok = torch.tensor([[BOS, *c.tokens] + ([EOS] if len(c.tokens) < 8 else [])])
            assert c.score == pytest.approx(
                float(score_captions(model, xi[None], tok, length_penalty=alpha)), abs=1e-4
            )
            if name == "show-attend-tell":  # each word's map follows its hypothesis through the beam
                with torch.no_grad():
                    alphas = model(xi[None], tok).alphas[0, : len(c.tokens)]
                torch.testing.assert_close(c.attention, alphas)


@pytest.mark.parametrize("beam", [1, 4])
def test_eos_stops_and_max_len_caps(beam):
    model = build("show-tell", seed=4).eval()
    x = images(3)
    out = model.get_classifier()
    with torch.no_grad():  # outputs independent of the input: the bias alone
        out.weight.zero_()
        out.bias.zero_()
        out.bias[EOS] = 10.0
    eos_logp = float(out.bias.detach().log_softmax(0)[EOS])
    for c in generate(model, x, beam=beam, max_len=5):
        assert c.tokens == [] and c.score == pytest.approx(eos_logp)
    with torch.no_grad():
        out.bias[EOS] = -10.0
        out.bias[6] = 5.0
    word_logp = float(out.bias.detach().log_softmax(0)[6])
    for alpha in (0.0, 0.5):
        for c in generate(model, x, beam=beam, max_len=5, length_penalty=alpha):
            assert c.tokens == [6] * 5  # cut at max_len without <eos>
            lp = float(length_normalizer(torch.tensor(5), alpha))
            assert c.score == pytest.approx(5 * word_logp / lp, abs=1e-4)
    with pytest.raises(MMKitError, match="beam"):
        generate(model, x, beam=0)


def test_length_normalizer_is_gnmt():
    assert float(length_normalizer(torch.tensor(1), 0.7)) == pytest.approx(1.0)
    assert float(length_normalizer(torch.tensor(7), 0.7)) == pytest.approx((12 / 6) ** 0.7)
    assert float(length_normalizer(torch.tensor(7), 0.0)) == 1.0


# ---------------------------------------------------------------------------------------------------------------
# Overfitting a tiny batch


def fit(model, x, tokens, steps: int, lr: float = 5e-3) -> float:
    """Adam on one fixed batch; returns the last word loss."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss, logs = caption_loss(model(x, tokens), tokens)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(logs["word_loss"])


@pytest.mark.parametrize("name", WORD_MODELS)
def test_overfits_four_captions(name):
    torch.set_num_threads(1)
    model, x, tok = build(name), images(), sentences(CAPTIONS, 7)
    assert fit(model, x, tok, steps=100) < 0.02
    model.eval()
    for beam in (1, 3):
        assert [c.tokens for c in generate(model, x, beam=beam, max_len=10)] == CAPTIONS


def test_paragraph_overfits_and_stops_at_the_right_sentence():
    torch.set_num_threads(1)
    paragraphs = [[[4, 5], [6, 7, 8]], [[9, 10]], [[11, 4, 5], [6, 7], [8, 9]], [[10, 11, 4]]]
    tok = torch.zeros(4, 3, 5, dtype=torch.int64)
    for i, p in enumerate(paragraphs):
        tok[i, : len(p)] = sentences(p, 5)
    model, x = build("paragraph"), images()
    fit(model, x, tok, steps=200)
    model.eval()
    out = generate(model, x, beam=2, max_len=6)  # s_max = 4: stopping is up to the STOP probabilities
    assert [p.sentences for p in out] == paragraphs
    for p in out:
        assert all(q < 0.5 for q in p.stop_probs[:-1]) and p.stop_probs[-1] > 0.5
