"""Classification transforms (torchvision.transforms.v2) from uint8 [C, H, W] images to normalized float tensors.

Random transforms draw from torch's global RNG, so seeding it (``torch.manual_seed``) or restoring its state
reproduces a run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

SMALL_NATIVE_MAX = 64
EVAL_CROP_RATIO = 0.875
_LUMINANCE = (0.2989, 0.587, 0.114)  # the weights torchvision's rgb_to_grayscale uses


def _channel_stats(values: Sequence[float], out_channels: int, what: str) -> list[float]:
    values = [float(v) for v in values]
    if len(values) == out_channels:
        return values
    if len(values) == 1:
        return values * out_channels
    if len(values) == 3 and out_channels == 1:
        return [sum(w * v for w, v in zip(_LUMINANCE, values, strict=True))]
    raise ValueError(f"{what} has {len(values)} values; expected 1 or {out_channels}")


def crop_padding(image_size: int) -> int:
    """Zero padding of the small-image RandomCrop: an eighth of the side (2 px at 16, 3 at 28, 4 at 32)."""
    return max(1, image_size // 8)


def build_transforms(
    train: bool,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    in_channels: int,
    out_channels: int,
    hflip: bool = True,
    crop: bool = True,
    native_size: int | None = None,
    any_size: bool = False,
) -> torch.nn.Module:
    """Transform a uint8 [in_channels, H, W] image to float32 [out_channels, image_size, image_size].

    Small native images (``native_size`` <= 64: digits, MNIST, CIFAR): train = resize if needed, RandomCrop with
    zero padding of image_size // 8, optional flip; eval = resize only. Photos: train = RandomResizedCrop +
    optional flip; eval = Resize(image_size / 0.875) + CenterCrop. ``crop=False`` trains without the random crop
    (small images: resize only; photos: the eval resize and center crop), keeping the flip. Then scale to 0-1, convert channels (1->3 by
    repeating, 3->1 by luminance), and Normalize. Given 3-channel mean/std for a 1-channel output, the
    luminance-weighted values are used (exact for the mean, an approximation for the std).
    """
    if in_channels not in (1, 3) or out_channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got in={in_channels} out={out_channels}")
    steps: list[torch.nn.Module] = []
    if native_size is not None and native_size <= SMALL_NATIVE_MAX:
        if native_size != image_size or any_size:  # any_size: user files of any size into a small-image model
            steps.append(v2.Resize([image_size, image_size], antialias=True))
        if train and crop:
            steps.append(v2.RandomCrop(image_size, padding=crop_padding(image_size), padding_mode="constant"))
    elif train and crop:
        steps.append(v2.RandomResizedCrop(image_size, antialias=True))
    else:
        steps += [v2.Resize(int(image_size / EVAL_CROP_RATIO), antialias=True), v2.CenterCrop(image_size)]
    if train and hflip:
        steps.append(v2.RandomHorizontalFlip())
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if in_channels == 1 and out_channels == 3:
        steps.append(v2.RGB())
    elif in_channels == 3 and out_channels == 1:
        steps.append(v2.Grayscale(num_output_channels=1))
    steps.append(
        v2.Normalize(_channel_stats(mean, out_channels, "mean"), _channel_stats(std, out_channels, "std"))
    )
    return v2.Compose(steps)


class BatchTransform(torch.nn.Module):
    """The small-image transform of `build_transforms`, on a whole uint8 [B, C, H, W] batch on its own device.

    Train: Resize to ``size`` when given (bilinear, antialiased, rounded back to uint8 like v2.Resize), RandomCrop
    with zero padding of ``pad`` pixels and a horizontal flip, drawn per image; then scale to 0-1, repeat 1 channel to 3 if asked, and Normalize. Eval: only the last three steps. Used for in-memory
    datasets at their native size, where per-image transforms in a DataLoader would cost more than the model:
    54,000 Fashion-MNIST images take ~18 s per epoch through v2 on one core and ~1 s here.
    """

    def __init__(
        self,
        train: bool,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        out_channels: int,
        size: int | None = None,
        pad: int = 0,
        hflip: bool = True,
    ) -> None:
        super().__init__()
        self.train_mode, self.pad, self.hflip, self.out_channels = train, pad, hflip, out_channels
        self.size = size
        c = out_channels
        self.register_buffer("mean", torch.tensor(_channel_stats(mean, c, "mean")).view(1, c, 1, 1), False)
        self.register_buffer("std", torch.tensor(_channel_stats(std, c, "std")).view(1, c, 1, 1), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8 or x.dim() != 4:
            raise ValueError(
                f"BatchTransform expects a uint8 [B, C, H, W] batch, got {x.dtype} {tuple(x.shape)}"
            )
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            x = torch.nn.functional.interpolate(
                x.float(), size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False
            )
            x = x.round_().clamp_(0, 255).to(torch.uint8)
        if self.train_mode:
            x = self._augment(x)
        x = x.float().div_(255)
        if x.shape[1] == 1 and self.out_channels == 3:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        dev = x.device
        if self.pad > 0:
            p = self.pad
            padded = torch.nn.functional.pad(x, (p, p, p, p))
            dy = torch.randint(0, 2 * p + 1, (b, 1, 1), device=dev)
            dx = torch.randint(0, 2 * p + 1, (b, 1, 1), device=dev)
            rows = dy + torch.arange(h, device=dev).view(1, h, 1)
            cols = dx + torch.arange(w, device=dev).view(1, 1, w)
            x = padded[torch.arange(b, device=dev).view(b, 1, 1), :, rows, cols].permute(0, 3, 1, 2)
        if self.hflip:
            flip = torch.rand(b, device=dev) < 0.5
            x = torch.where(flip.view(b, 1, 1, 1), x.flip(-1), x)
        return x


class TransformedDataset(Dataset):
    """Apply ``transform`` to the image of each (image, label) item; None items (unreadable images) pass through."""

    def __init__(self, dataset: Dataset, transform: Callable[[torch.Tensor], torch.Tensor]):
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        item = self.dataset[index]
        return None if item is None else self.apply(item)

    def apply(self, item):
        """Transform one (image, label) item; subclasses with richer targets override this."""
        image, label = item
        return self.transform(image), label

    @property
    def targets(self) -> list[int]:
        return self.dataset.targets
