"""The single-object localizer: registry entry, output shapes and ranges, and that it learns where objects are."""

import pytest
import torch
from torchvision.ops import box_convert, box_iou

from mmkit.errors import MMKitError
from mmkit.losses.detection import localizer_loss
from mmkit.models import get_model, get_model_info
from mmkit.models.localizer import Localizer


def test_registered():
    info = get_model_info("localizer")
    assert (info.task, info.family, info.default_input_size) == ("detect", "localizer", 128)
    assert isinstance(get_model("localizer", num_classes=3), Localizer)
    with pytest.raises(MMKitError, match="num_classes"):
        Localizer(0)


@pytest.mark.parametrize("size,in_chans", [(64, 3), (128, 3), (96, 1)])
def test_shapes_and_ranges(size, in_chans):
    torch.manual_seed(0)
    model = get_model("localizer", num_classes=5, in_chans=in_chans).eval()
    with torch.no_grad():
        out = model(torch.rand(2, in_chans, size, size))
    assert set(out) == {"box", "logits"}
    assert out["box"].shape == (2, 4) and out["logits"].shape == (2, 5)
    assert ((out["box"] > 0) & (out["box"] < 1)).all()


def _squares(n: int = 6, size: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n noisy images, each with one red (class 0) or green (class 1) rectangle; boxes as normalized cx, cy, w, h."""
    g = torch.Generator().manual_seed(0)
    x = 0.3 + 0.05 * torch.randn(n, 3, size, size, generator=g)
    boxes, labels = [], []
    for i in range(n):
        w, h = (int(v) for v in torch.randint(12, 30, (2,), generator=g))
        x1, y1 = (
            int(torch.randint(0, size - w, (1,), generator=g)),
            int(torch.randint(0, size - h, (1,), generator=g)),
        )
        label = i % 2
        x[i, label, y1 : y1 + h, x1 : x1 + w] = 1.0
        boxes.append([(x1 + w / 2) / size, (y1 + h / 2) / size, w / size, h / size])
        labels.append(label)
    return x, torch.tensor(boxes), torch.tensor(labels)


def test_loss_parts():
    out = {"box": torch.tensor([[0.5, 0.5, 0.2, 0.2]]), "logits": torch.tensor([[5.0, -5.0]])}
    loss, parts = localizer_loss(out, torch.tensor([[0.5, 0.5, 0.2, 0.2]]), torch.tensor([0]))
    assert parts["box"] == pytest.approx(0.0, abs=1e-4) and parts["cls"] < 1e-3
    worse, parts = localizer_loss(out, torch.tensor([[0.2, 0.7, 0.3, 0.1]]), torch.tensor([1]))
    assert worse > loss and parts["box"] > 0.5 and parts["cls"] > 5


def test_overfits_a_few_images():
    torch.manual_seed(0)
    x, boxes, labels = _squares()
    model = get_model("localizer", num_classes=2, width=0.5)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(80):
        loss, _ = localizer_loss(model(x), boxes, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.2 * sum(losses[:5])
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert (out["logits"].argmax(1) == labels).all()
    iou = box_iou(box_convert(out["box"], "cxcywh", "xyxy"), box_convert(boxes, "cxcywh", "xyxy")).diag()
    assert (iou > 0.6).all(), iou
