"""FaceNet embedding models: Inception-ResNet-v1 (the published FaceNet backbone) and a small fast CPU model.

    model = get_model("facenet", weights="vggface2").eval()   # published weights, found offline only
    emb = model(faces)                                        # [B, 512], unit L2 norm
    light = get_model("facenet-light")                         # 0.69 M params, 128-d, 32..112 px inputs

Both map an image batch [B, C, H, W] to L2-normalised embeddings [B, D]; the squared distance of two embeddings
(0..4) is what FaceNet's triplet loss (`mmkit.losses.metric.TripletLoss`) trains and what verification thresholds.

Inception-ResNet-v1 (Szegedy et al., 2016) as FaceNet uses it: a stem, 5 Block35 (residual scale 0.17),
Mixed_6a, 10 Block17 (0.10), Mixed_7a, 5 Block8 (0.20) and a last Block8 without ReLU, global average pooling,
dropout, a bias-free linear layer to D, BatchNorm1d, L2 normalisation. Module and parameter names are those of
facenet-pytorch's `InceptionResnetV1`, so its state_dicts (ports of David Sandberg's TensorFlow FaceNet models,
trained on VGGFace2 and CASIA-WebFace) load strictly; the files also hold the `logits` layer of their training
classifier, which the registered weights drop. Those weights expect 160x160 RGB face crops prewhitened as
(x·255 − 127.5)/128, i.e. mean 0.5 and std 128/255 on 0..1 images. The nominal input is 160 px; any size from
75 px up works (the spatial size shrinks ~32x; below 75 the last reduction has nothing left to pool).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmkit.errors import MMKitError
from mmkit.models.registry import Weights, model_family
from mmkit.models.weights import offline_locator

PREWHITEN_MEAN = (0.5, 0.5, 0.5)  # (x - 127.5) / 128 on 0..255 pixels == (x - 0.5) / (128 / 255) on 0..1
PREWHITEN_STD = (128 / 255, 128 / 255, 128 / 255)
FACENET_RELEASE = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9"


def _check_size(x: Tensor, min_size: int, name: str) -> None:
    if x.ndim != 4 or min(x.shape[-2:]) < min_size:
        raise MMKitError(
            f"{name}: input of shape {tuple(x.shape)} is too small; it needs [B, C, H, W] with H, W >= {min_size}"
        )


# ---------------------------------------------------------------------------------------------------------------
# Inception-ResNet-v1


class BasicConv2d(nn.Module):
    """Conv (no bias) → BatchNorm (eps 1e-3, as in the TensorFlow original) → ReLU."""

    def __init__(self, cin: int, cout: int, kernel_size, stride: int = 1, padding=0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


class _ResidualInception(nn.Module):
    """x + scale · conv1x1(concat(branches(x))), then ReLU (the residual Inception blocks 35, 17 and 8)."""

    branches: list[str]

    def __init__(self, scale: float, relu: bool = True) -> None:
        super().__init__()
        self.scale = scale
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        mixed = torch.cat([getattr(self, b)(x) for b in self.branches], 1)
        return self.relu(x + self.scale * self.conv2d(mixed))


class Block35(_ResidualInception):
    """35x35 grid (at 299 px) block: three branches of 32 channels on 256."""

    branches = ["branch0", "branch1", "branch2"]

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__(scale)
        self.branch0 = BasicConv2d(256, 32, 1)
        self.branch1 = nn.Sequential(BasicConv2d(256, 32, 1), BasicConv2d(32, 32, 3, padding=1))
        self.branch2 = nn.Sequential(
            BasicConv2d(256, 32, 1), BasicConv2d(32, 32, 3, padding=1), BasicConv2d(32, 32, 3, padding=1)
        )
        self.conv2d = nn.Conv2d(96, 256, 1)


class _FactorisedBlock(_ResidualInception):
    """A 1x1 branch and a factorised 1xk / kx1 branch, `width` channels each, on `chans` (blocks 17 and 8)."""

    branches = ["branch0", "branch1"]

    def __init__(self, chans: int, width: int, k: int, scale: float, relu: bool = True) -> None:
        super().__init__(scale, relu)
        p = k // 2
        self.branch0 = BasicConv2d(chans, width, 1)
        self.branch1 = nn.Sequential(
            BasicConv2d(chans, width, 1),
            BasicConv2d(width, width, (1, k), padding=(0, p)),
            BasicConv2d(width, width, (k, 1), padding=(p, 0)),
        )
        self.conv2d = nn.Conv2d(2 * width, chans, 1)


class Block17(_FactorisedBlock):
    """17x17 grid block: a 1x1 branch and a factorised 1x7 / 7x1 branch, 128 channels each, on 896."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__(896, 128, 7, scale)


class Block8(_FactorisedBlock):
    """8x8 grid block: a 1x1 branch and a factorised 1x3 / 3x1 branch, 192 channels each, on 1792."""

    def __init__(self, scale: float = 1.0, relu: bool = True) -> None:
        super().__init__(1792, 192, 3, scale, relu)


class Mixed6a(nn.Module):
    """Reduction 35 → 17: strided 3x3 conv (384), 1x1-3x3-strided 3x3 (256) and max pooling; 256 → 896 channels."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = BasicConv2d(256, 384, 3, stride=2)
        self.branch1 = nn.Sequential(
            BasicConv2d(256, 192, 1), BasicConv2d(192, 192, 3, padding=1), BasicConv2d(192, 256, 3, stride=2)
        )
        self.branch2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)


class Mixed7a(nn.Module):
    """Reduction 17 → 8: three conv branches (384, 256, 256) and max pooling; 896 → 1792 channels."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = nn.Sequential(BasicConv2d(896, 256, 1), BasicConv2d(256, 384, 3, stride=2))
        self.branch1 = nn.Sequential(BasicConv2d(896, 256, 1), BasicConv2d(256, 256, 3, stride=2))
        self.branch2 = nn.Sequential(
            BasicConv2d(896, 256, 1), BasicConv2d(256, 256, 3, padding=1), BasicConv2d(256, 256, 3, stride=2)
        )
        self.branch3 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class InceptionResnetV1(nn.Module):
    """FaceNet's Inception-ResNet-v1 embedding network; `forward` returns unit-norm embeddings [B, embedding_dim]."""

    min_input_size = 75

    def __init__(self, embedding_dim: int = 512, in_chans: int = 3, dropout: float = 0.6) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.conv2d_1a = BasicConv2d(in_chans, 32, 3, stride=2)
        self.conv2d_2a = BasicConv2d(32, 32, 3)
        self.conv2d_2b = BasicConv2d(32, 64, 3, padding=1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = BasicConv2d(64, 80, 1)
        self.conv2d_4a = BasicConv2d(80, 192, 3)
        self.conv2d_4b = BasicConv2d(192, 256, 3, stride=2)
        self.repeat_1 = nn.Sequential(*(Block35(scale=0.17) for _ in range(5)))
        self.mixed_6a = Mixed6a()
        self.repeat_2 = nn.Sequential(*(Block17(scale=0.10) for _ in range(10)))
        self.mixed_7a = Mixed7a()
        self.repeat_3 = nn.Sequential(*(Block8(scale=0.20) for _ in range(5)))
        self.block8 = Block8(relu=False)
        self.avgpool_1a = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.last_linear = nn.Linear(1792, embedding_dim, bias=False)
        self.last_bn = nn.BatchNorm1d(embedding_dim, eps=1e-3, momentum=0.1)

    def features(self, x: Tensor) -> Tensor:
        """The pooled 1792-d backbone features, before dropout and the embedding layer."""
        _check_size(x, self.min_input_size, type(self).__name__)
        x = self.conv2d_2b(self.conv2d_2a(self.conv2d_1a(x)))
        x = self.conv2d_4b(self.conv2d_4a(self.conv2d_3b(self.maxpool_3a(x))))
        x = self.repeat_3(self.mixed_7a(self.repeat_2(self.mixed_6a(self.repeat_1(x)))))
        return self.avgpool_1a(self.block8(x)).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.last_bn(self.last_linear(self.dropout(self.features(x))))
        return F.normalize(x, p=2, dim=1)


# ---------------------------------------------------------------------------------------------------------------
# facenet-light


def _conv_bn(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, padding=k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)
    )


class SeparableBlock(nn.Module):
    """A residual block of two depthwise-separable 3x3 convolutions (Xception / MobileNet style).

    dw3x3 (stride s) → pw1x1 → BN → ReLU → dw3x3 → pw1x1 → BN, plus the input (through a strided 1x1 conv + BN
    when the shape changes), then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
            _conv_bn(cin, cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, groups=cout, bias=False),
            _conv_bn(cout, cout),
        )
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else _conv_bn(cin, cout, 1, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class FaceNetLight(nn.Module):
    """A small embedding network for 32..112 px faces on the CPU (0.69 M parameters at the defaults).

    Stem: 3x3 conv stride 2 (full conv: cheap on few channels); then three stages of separable residual blocks,
    each starting with a stride-2 block, at `widths` channels with `depths` blocks; a 1x1 conv to `head_width`,
    global average pooling, dropout, bias-free linear → BatchNorm1d → L2 normalisation (FaceNet's head). The
    total stride is 16: a 64 px face ends on a 4x4 grid, a 112 px face on 7x7.

    Measured training speed (forward + backward + SGD step, 64 px, batch 128, shared 2-core machine): about
    510 images/s with 2 threads, 370 with 1, so an epoch of 3,000 faces takes 6-8 s."""

    min_input_size = 32

    def __init__(
        self,
        embedding_dim: int = 128,
        in_chans: int = 3,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        depths: tuple[int, ...] = (1, 2, 3),
        head_width: int = 512,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if len(widths) != len(depths) + 1:
            raise ValueError(f"widths {widths} needs one entry more (the stem) than depths {depths}")
        self.embedding_dim = embedding_dim
        self.stem = nn.Sequential(_conv_bn(in_chans, widths[0], 3, stride=2), nn.ReLU(inplace=True))
        stages = []
        for cin, cout, depth in zip(widths[:-1], widths[1:], depths, strict=True):
            blocks = [SeparableBlock(cin, cout, stride=2)]
            blocks += [SeparableBlock(cout, cout) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(_conv_bn(widths[-1], head_width), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.last_linear = nn.Linear(head_width, embedding_dim, bias=False)
        self.last_bn = nn.BatchNorm1d(embedding_dim)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for (
            block
        ) in self.stages.modules():  # zero-init each residual branch's last BN: blocks start as identity
            if isinstance(block, SeparableBlock):
                nn.init.zeros_(block.body[-1][1].weight)

    def features(self, x: Tensor) -> Tensor:
        """The pooled `head_width`-d features, before dropout and the embedding layer."""
        _check_size(x, self.min_input_size, type(self).__name__)
        return self.pool(self.head(self.stages(self.stem(x)))).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.last_bn(self.last_linear(self.dropout(self.features(x))))
        return F.normalize(x, p=2, dim=1)


# ---------------------------------------------------------------------------------------------------------------
# Registration


def _from_facenet_pytorch(sd: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """facenet-pytorch's files hold the training classifier (`logits.*`): drop it. BatchNorm counters that a file
    may lack (older torch.save) are filled with zeros, so the strict load checks only the real tensors."""
    out = {k: v for k, v in sd.items() if not k.startswith("logits.")}
    for k, v in model.state_dict().items():
        if k.endswith(".num_batches_tracked") and k not in out:
            out[k] = torch.zeros_like(v)
    return out


def _facenet_weights(name: str, filename: str, lfw_accuracy: float) -> Weights:
    url = f"{FACENET_RELEASE}/{filename}"
    return Weights(
        name=name,
        source=url,
        num_classes=0,  # an embedding model: no classifier
        categories=None,
        mean=PREWHITEN_MEAN,
        std=PREWHITEN_STD,
        input_size=160,
        resize_size=160,
        license="MIT (facenet-pytorch port of davidsandberg/facenet weights)",
        metrics={"lfw_accuracy": lfw_accuracy},  # as listed by davidsandberg/facenet
        locate=offline_locator(url),
        convert=_from_facenet_pytorch,
    )


_register = model_family("face", "facenet", 160)


@_register(
    "facenet",
    "FaceNet Inception-ResNet-v1 face embeddings (512-d, 160 px; facenet-pytorch layout)",
    weights=[
        _facenet_weights("vggface2", "20180402-114759-vggface2.pt", 0.9965),
        _facenet_weights("casia-webface", "20180408-102900-casia-webface.pt", 0.9905),
    ],
)
def facenet(in_chans: int = 3, embedding_dim: int = 512, **kwargs) -> nn.Module:
    """An embedding model (no classes); options: dropout (0.6)."""
    return InceptionResnetV1(in_chans=in_chans, embedding_dim=embedding_dim, **kwargs)


@_register(
    "facenet-light",
    "small separable-conv face embedding net for 32..112 px faces on the CPU (128-d)",
    default_input_size=64,
)
def facenet_light(in_chans: int = 3, embedding_dim: int = 128, **kwargs) -> nn.Module:
    """An embedding model (no classes); options: widths, depths, head_width, dropout."""
    return FaceNetLight(in_chans=in_chans, embedding_dim=embedding_dim, **kwargs)
