"""A single-object localizer: a small CNN that regresses one box and classifies the object ("where is it?").

    out = get_model("localizer", num_classes=10)(images)   # {"box": [B, 4] cx, cy, w, h in 0..1, "logits": [B, C]}

Train it with `mmkit.losses.detection.localizer_loss`. The features keep a coarse 4×4 spatial layout (adaptive
average pooling, not global pooling) so that the box head can see where the object is.
"""

from __future__ import annotations

from torch import Tensor, nn

from mmkit.errors import MMKitError
from mmkit.models.registry import register_model


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class Localizer(nn.Module):
    """Four conv stages (32/64/128/256 channels × `width`, each halving the size), a 4×4 adaptive pool, a shared
    fully connected layer, then a box head (sigmoid: normalized cx, cy, w, h) and a class head (logits).

    Any input of at least 16×16 works; 64–224 px is the intended range (default 128)."""

    def __init__(
        self, num_classes: int = 10, in_chans: int = 3, width: float = 1.0, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise MMKitError(f"localizer: num_classes must be at least 1, got {num_classes}")
        chans = [max(8, round(c * width)) for c in (32, 64, 128, 256)]
        stages, cin = [], in_chans
        for c in chans:
            stages.append(_stage(cin, c))
            cin = c
        self.features = nn.Sequential(*stages, nn.AdaptiveAvgPool2d(4), nn.Flatten())
        hidden = max(64, round(256 * width))
        self.fc = nn.Sequential(nn.Linear(cin * 16, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.box = nn.Linear(hidden, 4)
        self.classifier = nn.Linear(hidden, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        nn.init.normal_(self.box.weight, std=0.01)  # boxes start near (0.5, 0.5, 0.5, 0.5), off the
        nn.init.zeros_(self.box.bias)  # saturated ends of the sigmoid

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        h = self.fc(self.features(x))
        return {"box": self.box(h).sigmoid(), "logits": self.classifier(h)}


@register_model(
    "localizer",
    task="detect",
    family="localizer",
    description="single-object localizer: small CNN regressing one box (normalized cx, cy, w, h) and a class",
    default_input_size=128,
)
def localizer(num_classes: int, in_chans: int, **kwargs) -> nn.Module:
    return Localizer(num_classes, in_chans, **kwargs)
