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


def build_transforms(
    train: bool,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    in_channels: int,
    out_channels: int,
    hflip: bool = True,
    native_size: int | None = None,
    any_size: bool = False,
) -> torch.nn.Module:
    """Transform a uint8 [in_channels, H, W] image to float32 [out_channels, image_size, image_size].

    Small native images (``native_size`` <= 64: digits, MNIST, CIFAR): train = resize if needed, RandomCrop with
    zero padding of image_size // 8, optional flip; eval = resize only. Photos: train = RandomResizedCrop +
    optional flip; eval = Resize(image_size / 0.875) + CenterCrop. Then scale to 0-1, convert channels (1->3 by
    repeating, 3->1 by luminance), and Normalize. Given 3-channel mean/std for a 1-channel output, the
    luminance-weighted values are used (exact for the mean, an approximation for the std).
    """
    if in_channels not in (1, 3) or out_channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got in={in_channels} out={out_channels}")
    steps: list[torch.nn.Module] = []
    if native_size is not None and native_size <= SMALL_NATIVE_MAX:
        if native_size != image_size or any_size:  # any_size: user files of any size into a small-image model
            steps.append(v2.Resize([image_size, image_size], antialias=True))
        if train:
            steps.append(v2.RandomCrop(image_size, padding=max(1, image_size // 8), padding_mode="constant"))
    elif train:
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
