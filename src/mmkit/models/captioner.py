"""Image captioning models: Show-and-Tell, Show-Attend-and-Tell and a hierarchical paragraph captioner.

    model = get_model("show-attend-tell", vocab_size=V, encoder="resnet50", encoder_weights="imagenet")
    logits, alphas = model(images, tokens)          # images [B, 3, H, W]; tokens [B, T] -> [B, T-1, V], [B, T-1, L]
    loss, logs = caption_loss(model(images, tokens), tokens)
    captions = generate(model.eval(), images, beam=3)   # mmkit.models.captioner_decode

Conventions shared by every model here:
- Token ids are fixed: 0 `<pad>`, 1 `<bos>`, 2 `<eos>`, 3 `<unk>`, then the words. A sentence is
  `<bos> w1 .. wn <eos> <pad> ..` ([B, T] int64); a paragraph is [B, S, T] sentences, padded sentences all zero.
- The builders take the vocabulary size V (special tokens included) as `vocab_size`; the registry's positional
  `num_classes` stands for it when `vocab_size` is not given. `in_chans` is the number of image channels (3). The
  registry's `default_input_size` (224) is the image side in pixels.
- `forward` uses teacher forcing and returns logits for tokens[:, 1:] (the word after each input token).
- The image encoder is any registered classifier (`encoder="resnet50"`, ...), cut before its pooling
  (`ImageEncoder`). Options for it: `encoder_weights` (e.g. "imagenet", loaded offline by the registry; the
  registry's own `weights=` argument is for a whole captioner checkpoint), `freeze_encoder`, and
  `encoder_options` (a dict for `ImageEncoder`, e.g. {"grid": 7} or smallcnn's {"width": 2}).
- `get_classifier()` is the word output layer; `reset_classifier(V)` gives a new vocabulary (fresh word embedding
  and output layer), so `get_model(name, weights=checkpoint)` takes the vocabulary size from the file.
- Decoding (`decode_start` / `decode_step`, used by `captioner_decode.generate`) never emits `<pad>` or `<bos>`.

Models:
  show-tell         Vinyals et al. 2015: the pooled image feature, projected to the word embedding size, is the
                    first input of an LSTM (zero initial state); then `<bos>` and the words
  show-attend-tell  Xu et al. 2015 (soft attention): Bahdanau attention over the L = H'·W' encoder locations,
                    context gated by a scalar beta = sigmoid(f(h)), h0/c0 = tanh(MLP(mean feature)), LSTMCell on
                    [word embedding, context], deep output L_o(E y + L_h h + L_z z); returns the attention maps
                    for the doubly stochastic regularization
  paragraph         Krause et al. 2017 (hierarchical): locations projected and max-pooled into one vector (their
                    region pooling, with encoder locations as regions), a sentence LSTM run for S steps giving a
                    STOP logit and (two-layer MLP) a topic vector per sentence, and a 2-layer word LSTM fed the
                    topic then `<bos>` and the words of that sentence
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision import models as tvm

from mmkit.errors import MMKitError
from mmkit.models.classifiers import SmallCNN
from mmkit.models.registry import get_model, get_model_info, model_family

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")

__all__ = [
    "BOS",
    "EOS",
    "PAD",
    "UNK",
    "AttentionOutput",
    "ImageEncoder",
    "ParagraphCaptioner",
    "ParagraphOutput",
    "ShowAttendTell",
    "ShowTell",
    "SoftAttention",
    "WordLSTM",
    "caption_loss",
    "doubly_stochastic_penalty",
    "sentence_mask",
]

State = tuple[Tensor, ...]  # decoder state: tensors with the batch as dim 0 (so beam search can reorder them)


# ---------------------------------------------------------------------------------------------------------------
# Encoder


class _TimmFeatures(nn.Module):
    """A timm model without its classifier, returning its unpooled `forward_features` map."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        model.reset_classifier(0)
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model.forward_features(x)


def _feature_body(model: nn.Module, name: str) -> tuple[nn.Module, int]:
    """The part of a registered classifier that maps images to its last spatial feature map, and its channels."""
    if isinstance(model, SmallCNN):
        convs = [m for m in model.features.modules() if isinstance(m, nn.Conv2d)]
        return model.features, convs[-1].out_channels
    if isinstance(model, tvm.ResNet):
        parts = [model.conv1, model.bn1, model.relu, model.maxpool]
        parts += [model.layer1, model.layer2, model.layer3, model.layer4]
        return nn.Sequential(*parts), model.fc.in_features
    if isinstance(model, tvm.Inception3):
        if model.transform_input:
            raise MMKitError(f"{name}: transform_input=True is not supported in a caption encoder")
        head = {"AuxLogits", "avgpool", "dropout", "fc"}
        body = nn.Sequential(*[m for n, m in model.named_children() if n not in head])
        return body, model.fc.in_features
    if callable(getattr(model, "forward_features", None)) and hasattr(model, "num_features"):
        return _TimmFeatures(model), int(model.num_features)
    raise MMKitError(f"--encoder {name}: no spatial feature layer is known for {type(model).__name__}")


class ImageEncoder(nn.Module):
    """A registered classifier cut before its global pooling: images [B, C_in, H, W] -> spatial features
    [B, L, C] (L = H'·W', row-major) and their mean, the pooled vector [B, C].

    The feature map used, per family:
      smallcnn             `features`: the last conv stage after its max-pool (stride 8), 64·width channels
      resnet18/34/50       `layer4` (stride 32), 512 / 512 / 2048 channels
      inception_v3         `Mixed_7c` (stride 32, 8×8 at 299 px), 2048 channels
      inception_resnet_v2  timm `forward_features`, ending with `conv2d_7b` (stride 32), 1536 channels
      efficientnet_lite0   timm `forward_features`, ending with `conv_head` + BN + ReLU6 (stride 32), 1280 channels
    `weights` ("imagenet" or a file) are loaded by the registry (offline); the classifier head is dropped.
    `grid` average-pools the map to grid×grid (Xu et al. used 14×14), so L is fixed whatever the image size.
    `freeze=True` stops gradients into the encoder and keeps its BatchNorm in eval mode (pretrained statistics).
    Other keyword arguments go to the classifier's builder (e.g. smallcnn's width, norm)."""

    def __init__(
        self,
        backbone: str = "smallcnn",
        weights: str | None = None,
        freeze: bool = False,
        *,
        in_chans: int = 3,
        grid: int | None = None,
        **backbone_kwargs: Any,
    ) -> None:
        super().__init__()
        info = get_model_info(backbone)
        if info.task != "classify":
            raise MMKitError(
                f"--encoder {backbone}: is a {info.task} model; the encoder must be a classifier"
            )
        if grid is not None and grid < 1:
            raise MMKitError(f"--encoder {backbone}: grid must be >= 1, got {grid}")
        classes = (
            None if weights is not None else 1
        )  # the head is dropped: keep it small when there are no weights
        classifier = get_model(backbone, classes, weights=weights, in_chans=in_chans, **backbone_kwargs)
        self.backbone, self.freeze, self.grid = backbone, freeze, grid
        self.body, self.out_channels = _feature_body(classifier, backbone)
        self.pool = nn.AdaptiveAvgPool2d(grid) if grid is not None else nn.Identity()
        if freeze:
            self.body.requires_grad_(False)
            self.body.eval()

    def train(self, mode: bool = True) -> ImageEncoder:
        super().train(mode)
        if self.freeze:
            self.body.eval()
        return self

    def feature_map(self, images: Tensor) -> Tensor:
        """The spatial feature map [B, C, H', W']."""
        if images.ndim != 4:
            raise MMKitError(f"{self.backbone}: images of shape {tuple(images.shape)}; expected [B, C, H, W]")
        return self.pool(self.body(images))

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        feats = self.feature_map(images).flatten(2).transpose(1, 2)  # [B, L, C]
        return feats, feats.mean(1)


def _encoder(
    encoder: str | ImageEncoder,
    in_chans: int,
    weights: str | None,
    freeze: bool,
    options: dict[str, Any] | None,
) -> ImageEncoder:
    if isinstance(encoder, ImageEncoder):
        if weights is not None or freeze or options:
            raise MMKitError(
                "encoder_weights / freeze_encoder / encoder_options need an encoder name, not a module"
            )
        return encoder
    return ImageEncoder(encoder, weights, freeze, in_chans=in_chans, **(options or {}))


def _check_tokens(tokens: Tensor, ndim: int, name: str) -> None:
    kind = "[B, T]" if ndim == 2 else "[B, S, T]"
    if tokens.ndim != ndim or tokens.shape[-1] < 2 or tokens.dtype != torch.int64:
        raise MMKitError(
            f"{name}: tokens of shape {tuple(tokens.shape)} ({tokens.dtype}); expected int64 {kind} "
            "with T >= 2 (<bos> .. <eos>)"
        )


class _Captioner(nn.Module):
    """What every captioner here shares: the vocabulary size and the image `encoder` (built from its options, see
    the module docstring), and, for the models whose words come from a `WordLSTM` `decoder`, its output layer as
    the classifier."""

    def __init__(
        self,
        vocab_size: int,
        *,
        in_chans: int = 3,
        encoder: str | ImageEncoder = "smallcnn",
        encoder_weights: str | None = None,
        freeze_encoder: bool = False,
        encoder_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.encoder = _encoder(encoder, in_chans, encoder_weights, freeze_encoder, encoder_options)

    def get_classifier(self) -> nn.Module:
        return self.decoder.out

    def reset_classifier(self, num_classes: int) -> None:
        self.vocab_size = num_classes
        self.decoder.reset_vocab(num_classes)


# ---------------------------------------------------------------------------------------------------------------
# Show and Tell (and the word LSTM the paragraph model shares)


class WordLSTM(nn.Module):
    """An LSTM language model conditioned on a start vector: the start vector [N, E] is the first input (the image
    embedding in Show-and-Tell, the topic in the paragraph model), then `<bos>` and the words. Dropout on the
    inputs and on the outputs before the vocabulary layer."""

    def __init__(
        self, vocab_size: int, embed_dim: int, hidden_dim: int, layers: int = 1, dropout: float = 0.5
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.lstm = nn.LSTM(
            embed_dim, hidden_dim, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0
        )
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_dim, vocab_size)

    def reset_vocab(self, vocab_size: int) -> None:
        self.embed = nn.Embedding(vocab_size, self.embed.embedding_dim, padding_idx=PAD)
        self.out = nn.Linear(self.out.in_features, vocab_size)

    def forward(self, start: Tensor, tokens: Tensor) -> Tensor:
        """start [N, E], tokens [N, T] -> logits [N, T-1, V] for tokens[:, 1:]."""
        x = torch.cat([start.unsqueeze(1), self.embed(tokens[:, :-1])], 1)
        out, _ = self.lstm(self.drop(x))
        return self.out(self.drop(out[:, 1:]))

    def start(self, start: Tensor) -> State:
        """The state after the start vector: (h, c), each [N, layers, H]."""
        _, (h, c) = self.lstm(self.drop(start.unsqueeze(1)))
        return h.transpose(0, 1), c.transpose(0, 1)

    def step(self, prev: Tensor, state: State) -> tuple[Tensor, State]:
        """One word: previous tokens [N] -> logits [N, V] and the new state."""
        h, c = (s.transpose(0, 1).contiguous() for s in state)
        out, (h, c) = self.lstm(self.drop(self.embed(prev).unsqueeze(1)), (h, c))
        return self.out(self.drop(out[:, 0])), (h.transpose(0, 1), c.transpose(0, 1))


class ShowTell(_Captioner):
    """Show and Tell (Vinyals et al. 2015): CNN encoder, its pooled feature projected to the embedding size and fed
    as the first LSTM input (x_-1 = W_I CNN(I)), then `<bos>` and the words (teacher forcing). `encoder_args`: the
    image encoder's options (`_Captioner`)."""

    def __init__(
        self,
        vocab_size: int,
        *,
        embed_dim: int = 256,
        hidden_dim: int = 512,
        layers: int = 1,
        dropout: float = 0.5,
        **encoder_args: Any,
    ) -> None:
        super().__init__(vocab_size, **encoder_args)
        self.project = nn.Linear(self.encoder.out_channels, embed_dim)
        self.decoder = WordLSTM(vocab_size, embed_dim, hidden_dim, layers, dropout)

    def forward(self, images: Tensor, tokens: Tensor) -> Tensor:
        _check_tokens(tokens, 2, "show-tell")
        _, pooled = self.encoder(images)
        return self.decoder(self.project(pooled), tokens)

    def decode_start(self, images: Tensor) -> tuple[State, tuple[int, int] | None]:
        _, pooled = self.encoder(images)
        return self.decoder.start(self.project(pooled)), None

    def decode_step(self, prev: Tensor, state: State) -> tuple[Tensor, State, Tensor | None]:
        logits, state = self.decoder.step(prev, state)
        return logits, state, None


# ---------------------------------------------------------------------------------------------------------------
# Show, Attend and Tell


class AttentionOutput(NamedTuple):
    logits: Tensor  # [B, T-1, V]
    alphas: Tensor  # [B, T-1, L], each row sums to 1 over L


class SoftAttention(nn.Module):
    """Bahdanau (additive) attention: e_i = w·tanh(W_a a_i + W_h h), alpha = softmax_i(e)."""

    def __init__(self, feat_dim: int, hidden_dim: int, attn_dim: int) -> None:
        super().__init__()
        self.feat = nn.Linear(feat_dim, attn_dim)
        self.hidden = nn.Linear(hidden_dim, attn_dim)
        self.score = nn.Linear(attn_dim, 1)

    def forward(self, feats: Tensor, feats_proj: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """feats [N, L, C], feats_proj = self.feat(feats) [N, L, A], h [N, H] -> context [N, C], alpha [N, L]."""
        e = self.score(torch.tanh(feats_proj + self.hidden(h).unsqueeze(1))).squeeze(2)
        alpha = e.float().softmax(1).to(feats.dtype)
        return torch.bmm(alpha.unsqueeze(1), feats).squeeze(1), alpha


class ShowAttendTell(_Captioner):
    """Show, Attend and Tell with soft attention (Xu et al. 2015); see the module docstring. `encoder_args`: the
    image encoder's options (`_Captioner`)."""

    def __init__(
        self,
        vocab_size: int,
        *,
        embed_dim: int = 256,
        hidden_dim: int = 512,
        attn_dim: int = 256,
        dropout: float = 0.5,
        **encoder_args: Any,
    ) -> None:
        super().__init__(vocab_size, **encoder_args)
        c = self.encoder.out_channels
        self.attention = SoftAttention(c, hidden_dim, attn_dim)
        self.init_h = nn.Linear(c, hidden_dim)
        self.init_c = nn.Linear(c, hidden_dim)
        self.gate = nn.Linear(hidden_dim, 1)  # beta = sigmoid(f_beta(h_{t-1}))
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.cell = nn.LSTMCell(embed_dim + c, hidden_dim)
        self.out_h = nn.Linear(hidden_dim, embed_dim)  # deep output: L_o(E y + L_h h + L_z z)
        self.out_z = nn.Linear(c, embed_dim)
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Linear(embed_dim, vocab_size)

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        self.vocab_size = num_classes
        self.embed = nn.Embedding(num_classes, self.embed.embedding_dim, padding_idx=PAD)
        self.classifier = nn.Linear(self.classifier.in_features, num_classes)

    def decode_start(self, images: Tensor) -> tuple[State, tuple[int, int]]:
        """State (feats [B, L, C], their attention projection, h, c) and the feature grid (H', W')."""
        fmap = self.encoder.feature_map(images)
        feats = fmap.flatten(2).transpose(1, 2)
        mean = feats.mean(1)
        h, c = torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean))
        return (feats, self.attention.feat(feats), h, c), (fmap.shape[2], fmap.shape[3])

    def decode_step(self, prev: Tensor, state: State) -> tuple[Tensor, State, Tensor]:
        feats, proj, h, c = state
        z, alpha = self.attention(feats, proj, h)
        z = torch.sigmoid(self.gate(h)) * z
        e = self.embed(prev)
        h, c = self.cell(torch.cat([e, z], 1), (h, c))
        logits = self.classifier(self.drop(e + self.out_h(h) + self.out_z(z)))
        return logits, (feats, proj, h, c), alpha

    def forward(self, images: Tensor, tokens: Tensor) -> AttentionOutput:
        _check_tokens(tokens, 2, "show-attend-tell")
        state, _ = self.decode_start(images)
        logits, alphas = [], []
        for t in range(tokens.shape[1] - 1):
            step_logits, state, alpha = self.decode_step(tokens[:, t], state)
            logits.append(step_logits)
            alphas.append(alpha)
        return AttentionOutput(torch.stack(logits, 1), torch.stack(alphas, 1))


def doubly_stochastic_penalty(alphas: Tensor, mask: Tensor | None = None) -> Tensor:
    """Xu et al.'s doubly stochastic regularization, ((1 - Σ_t alpha_ti)²).mean() over images and locations i.

    alphas [B, T, L]; mask [B, T] (True/1 at real steps) leaves padding steps out of the sum over t."""
    if mask is not None:
        alphas = alphas * mask.unsqueeze(2).to(alphas.dtype)
    return ((1.0 - alphas.float().sum(1)) ** 2).mean()


# ---------------------------------------------------------------------------------------------------------------
# Paragraphs (Krause et al. 2017)


class ParagraphOutput(NamedTuple):
    word_logits: Tensor  # [B, S, T-1, V], zero for padded sentences
    stop_logits: Tensor  # [B, S]


def sentence_mask(tokens: Tensor, n_sentences: Tensor | None = None) -> Tensor:
    """[B, S] bool: the real sentences of paragraphs [B, S, T] (s < n_sentences, else the non-zero rows)."""
    if n_sentences is None:
        return (tokens != PAD).any(2)
    n = torch.as_tensor(n_sentences, device=tokens.device).reshape(-1, 1)
    return torch.arange(tokens.shape[1], device=tokens.device).unsqueeze(0) < n


class ParagraphCaptioner(_Captioner):
    """Hierarchical paragraph captioner (Krause et al. 2017); see the module docstring. `s_max` bounds the number
    of sentences at generation; training runs the sentence RNN for as many steps as the paragraphs have.
    `encoder_args`: the image encoder's options (`_Captioner`)."""

    def __init__(
        self,
        vocab_size: int,
        *,
        pool_dim: int = 1024,
        sentence_dim: int = 512,
        embed_dim: int = 512,
        hidden_dim: int = 512,
        word_layers: int = 2,
        s_max: int = 6,
        dropout: float = 0.5,
        **encoder_args: Any,
    ) -> None:
        if s_max < 1:
            raise MMKitError(f"paragraph: s_max must be >= 1, got {s_max}")
        super().__init__(vocab_size, **encoder_args)
        self.s_max = s_max
        self.region = nn.Linear(self.encoder.out_channels, pool_dim)
        self.sentence_rnn = nn.LSTM(pool_dim, sentence_dim, batch_first=True)
        self.stop = nn.Linear(sentence_dim, 1)
        self.topic = nn.Sequential(
            nn.Linear(sentence_dim, pool_dim), nn.ReLU(inplace=True), nn.Linear(pool_dim, embed_dim)
        )
        self.decoder = WordLSTM(vocab_size, embed_dim, hidden_dim, word_layers, dropout)

    def plan(self, images: Tensor, n_sentences: int) -> tuple[Tensor, Tensor]:
        """The sentence RNN over `n_sentences` steps: topics [B, S, E] and STOP logits [B, S]."""
        feats, _ = self.encoder(images)
        pooled = self.region(feats).amax(1)  # [B, P]
        h, _ = self.sentence_rnn(pooled.unsqueeze(1).expand(-1, n_sentences, -1))
        return self.topic(h), self.stop(h).squeeze(2)

    def forward(self, images: Tensor, tokens: Tensor, n_sentences: Tensor | None = None) -> ParagraphOutput:
        _check_tokens(tokens, 3, "paragraph")
        b, s, t = tokens.shape
        topics, stop_logits = self.plan(images, s)
        valid = sentence_mask(tokens, n_sentences)
        real = tokens[valid]
        # only the real sentences, up to the longest: the columns after it are padding for every sentence
        length = max(2, int((real != PAD).any(0).nonzero().max()) + 1) if real.numel() else 2
        words = self.decoder(topics[valid], real[:, :length])
        word_logits = words.new_zeros(b, s, t - 1, words.shape[-1])
        word_logits[valid, : length - 1] = words
        return ParagraphOutput(word_logits, stop_logits)


# ---------------------------------------------------------------------------------------------------------------
# Loss


def _token_ce(logits: Tensor, targets: Tensor, label_smoothing: float) -> Tensor:
    """Mean cross-entropy over the non-pad targets."""
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        targets.reshape(-1),
        ignore_index=PAD,
        label_smoothing=label_smoothing,
    )


def caption_loss(
    output: Tensor | AttentionOutput | ParagraphOutput,
    tokens: Tensor,
    *,
    n_sentences: Tensor | None = None,
    attention_weight: float = 1.0,
    stop_weight: float = 5.0,
    word_weight: float = 1.0,
    label_smoothing: float = 0.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The training loss of any captioner output, and its detached parts to log.

    - show-tell (logits): cross-entropy of tokens[:, 1:], averaged over the non-pad tokens of the batch.
    - show-attend-tell (AttentionOutput): that + attention_weight · doubly_stochastic_penalty over the real steps.
    - paragraph (ParagraphOutput, tokens [B, S, T]): word_weight · the token cross-entropy over the real
      sentences + stop_weight · the STOP binary cross-entropy over the real sentences (target 1 at the last
      one, sentence n-1), both averaged (Krause et al. weigh the sums 1 and 5)."""
    if isinstance(output, ParagraphOutput):
        valid = sentence_mask(tokens, n_sentences)
        targets = tokens[:, :, 1:].masked_fill(~valid.unsqueeze(2), PAD)
        words = _token_ce(output.word_logits, targets, label_smoothing)
        last = valid.sum(1, keepdim=True) - 1
        stop_target = (torch.arange(tokens.shape[1], device=tokens.device).unsqueeze(0) == last).float()
        stop = F.binary_cross_entropy_with_logits(output.stop_logits.float()[valid], stop_target[valid])
        loss = word_weight * words + stop_weight * stop
        return loss, {"word_loss": words.detach(), "stop_loss": stop.detach()}
    targets = tokens[:, 1:]
    if isinstance(output, AttentionOutput):
        words = _token_ce(output.logits, targets, label_smoothing)
        penalty = doubly_stochastic_penalty(output.alphas, targets != PAD)
        loss = words + attention_weight * penalty
        return loss, {"word_loss": words.detach(), "attention_penalty": penalty.detach()}
    words = _token_ce(output, targets, label_smoothing)
    return words, {"word_loss": words.detach()}


# ---------------------------------------------------------------------------------------------------------------
# Registry: builders take the vocabulary size by name, `get_model(name, vocab_size=V, encoder=...)`


_register = model_family("caption", "captioner", 224)


def _builder(model: type[_Captioner]) -> Callable[..., nn.Module]:
    """The registry's builder of `model`: the vocabulary size is `vocab_size` (from a weights file, the size stored
    in it: `get_model(name, weights=path)`)."""

    def build(vocab_size: int = 1000, in_chans: int = 3, **kwargs) -> nn.Module:
        return model(vocab_size, in_chans=in_chans, **kwargs)

    return build


for _name, _model, _description in (
    ("show-tell", ShowTell, "CNN encoder + LSTM decoder, image fed first (Show and Tell)"),
    ("show-attend-tell", ShowAttendTell, "CNN encoder + LSTM with soft attention (Show, Attend and Tell)"),
    ("paragraph", ParagraphCaptioner, "hierarchical sentence + word LSTMs for paragraphs (Krause et al.)"),
):
    _register(_name, _description)(_builder(_model))
