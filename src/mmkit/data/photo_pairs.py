"""Paired and unpaired image sets cut from scikit-image's CC0 photos, made offline and deterministically.

Photos: the colour pictures in ``skimage.data`` that load offline (astronaut, chelsea, coffee, rocket,
immunohistochemistry, and the left view of stereo_motorcycle). Each photo is split once along its longer side: the
first 75% is the train region and the last 25% the test region. Train items are random ``size``×``size`` crops lying
wholly in a train region, drawn when they are read (item i from the seed (``seed``, i), so nothing is stored and a
large ``n`` costs no memory); for the restoration sets (denoise, deblur, sr) each crop is also flipped and rotated by
a random multiple of 90°, as super-resolution training usually does. Test items are the non-overlapping
``size``×``size`` tiles of the test regions (the same for every seed). Degradations are computed on each crop alone,
so no test pixel is ever seen in training. Images are uint8 [C, H, W]; B is the clean RGB crop, A the model's input:

- ``edges``: Canny edges (σ 1.5) of the crop's gray level, 1 channel, 0 or 255.
- ``colorize``: the crop's luminance, 1 channel.
- ``denoise``: the crop plus Gaussian noise of σ 25 (on 0..255), rounded and clipped.
- ``deblur``: the crop blurred by a Gaussian of σ 2 (13-tap, reflected borders).
- ``sr``: the crop downscaled ×4 (bicubic, antialiased): A is ``size / 4`` pixels wide, B ``size``.
- ``tint`` (for the unpaired day ↔ tinted set): a warm tint (RGB × 1, 0.85, 0.62) and 80% brightness.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from mmkit.errors import MMKitError

log = logging.getLogger(__name__)

PHOTO_NAMES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "stereo_motorcycle")
TEST_FRACTION = 0.25
NOISE_SIGMA = 25.0
BLUR_SIGMA = 2.0
SR_SCALE = 4
TINT = (1.0, 0.85, 0.62)
TINT_BRIGHTNESS = 0.8
_TEST_SEED = 12345  # noise of the test split: fixed, whatever the training seed


@functools.lru_cache(maxsize=1)
def photo_regions() -> tuple[tuple[str, np.ndarray, np.ndarray], ...]:
    """(name, train region, test region) for every photo that loads offline; uint8 [H, W, 3] arrays."""
    import skimage.data

    regions = []
    for name in PHOTO_NAMES:
        try:
            img = getattr(skimage.data, name)()
        except Exception as e:  # a photo that needs a download (pooch) is just left out
            log.info("skimage.data.%s not available offline (%s); left out", name, type(e).__name__)
            continue
        if isinstance(img, tuple):  # stereo_motorcycle: (left, right, disparity); the left view only
            img = img[0]
        if img.ndim != 3 or img.shape[2] != 3:
            continue
        h, w = img.shape[:2]
        if w >= h:
            cut = int(round(w * (1 - TEST_FRACTION)))
            regions.append((name, img[:, :cut], img[:, cut:]))
        else:
            cut = int(round(h * (1 - TEST_FRACTION)))
            regions.append((name, img[:cut], img[cut:]))
    if not regions:
        raise MMKitError("skimage.data: none of its colour photos load offline (reinstall scikit-image)")
    return tuple(regions)


def _to_tensor(crops: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


def _train_regions(size: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The train regions a size×size crop fits in, and the probability of each (its number of crop positions)."""
    regions = [r for _, r, _ in photo_regions() if min(r.shape[:2]) >= size]
    if not regions:
        raise MMKitError(
            f"photo crops of {size}px do not fit in the photos' train regions; use a smaller size"
        )
    weights = np.array([(r.shape[0] - size + 1) * (r.shape[1] - size + 1) for r in regions], dtype=np.float64)
    return regions, weights / weights.sum()


def _random_crop(regions: list[np.ndarray], p: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    r = regions[rng.choice(len(regions), p=p)]
    y, x = rng.integers(0, r.shape[0] - size + 1), rng.integers(0, r.shape[1] - size + 1)
    return r[y : y + size, x : x + size]


def train_crops(n: int, size: int, seed: int) -> torch.Tensor:
    """``n`` random size×size crops [n, 3, size, size] from the train regions; photos drawn by their crop area."""
    regions, p = _train_regions(size)
    rng = np.random.default_rng(seed)
    return _to_tensor([_random_crop(regions, p, size, rng) for _ in range(n)])


class TrainPairs(Dataset):
    """``n`` training pairs (A, B) of one of ``DEGRADATIONS``, drawn on access: item i is a random crop of the train
    regions (seeded by (seed, i), so it is the same every epoch and in every worker), flipped and rotated by a
    random multiple of 90° when ``augment``, then degraded."""

    def __init__(self, task: str, size: int, n: int, seed: int, augment: bool) -> None:
        self.regions, self.p = _train_regions(size)
        self.degrade, self.size, self.n, self.seed, self.augment = DEGRADATIONS[task], size, n, seed, augment

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.n:
            raise IndexError(index)
        rng = np.random.default_rng((self.seed, index))
        crop = _random_crop(self.regions, self.p, self.size, rng)
        if self.augment:
            crop = np.rot90(crop, int(rng.integers(4)))
            if rng.integers(2):
                crop = crop[:, ::-1]
        b = _to_tensor([crop])  # np.stack copies the flipped/rotated view
        a = self.degrade(b, int(rng.integers(2**31)))
        return a[0], b[0]


def test_tiles(size: int) -> torch.Tensor:
    """Every non-overlapping size×size tile of the test regions, row by row, photo by photo: [N, 3, size, size]."""
    tiles = []
    for _, _, r in photo_regions():
        for y in range(0, r.shape[0] - size + 1, size):
            for x in range(0, r.shape[1] - size + 1, size):
                tiles.append(r[y : y + size, x : x + size])
    if not tiles:
        raise MMKitError(f"no {size}px test tiles fit in the photos' test regions; use a smaller size")
    return _to_tensor(tiles)


# ---------------------------------------------------------------------------------------------------------------
# Degradations: clean uint8 batch [N, 3, S, S] -> input uint8 batch


def edges(b: torch.Tensor, seed: int) -> torch.Tensor:
    from skimage.feature import canny

    gray = TF.rgb_to_grayscale(b).squeeze(1).numpy().astype(np.float64) / 255
    maps = [canny(g, sigma=1.5) for g in gray]
    return torch.from_numpy(np.stack(maps)).to(torch.uint8).mul_(255).unsqueeze(1)


def colorize(b: torch.Tensor, seed: int) -> torch.Tensor:
    return TF.rgb_to_grayscale(b)


def denoise(b: torch.Tensor, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(b.shape, generator=gen) * NOISE_SIGMA
    return (b.float() + noise).round_().clamp_(0, 255).to(torch.uint8)


def deblur(b: torch.Tensor, seed: int) -> torch.Tensor:
    k = 2 * int(np.ceil(3 * BLUR_SIGMA)) + 1
    return TF.gaussian_blur(b, [k, k], [BLUR_SIGMA, BLUR_SIGMA])


def downscale(b: torch.Tensor, seed: int) -> torch.Tensor:
    size = b.shape[-1] // SR_SCALE
    lr = F.interpolate(b.float(), size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    return lr.round_().clamp_(0, 255).to(torch.uint8)


def tint(b: torch.Tensor) -> torch.Tensor:
    factors = torch.tensor(TINT).view(1, 3, 1, 1) * TINT_BRIGHTNESS
    return (b.float() * factors).round_().clamp_(0, 255).to(torch.uint8)


DEGRADATIONS: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
    "edges": edges,
    "colorize": colorize,
    "denoise": denoise,
    "deblur": deblur,
    "sr": downscale,
}


RESTORATION = ("denoise", "deblur", "sr")  # the sets whose training crops are flipped and rotated


def photo_pairs(
    task: str, size: int, n_train: int, seed: int
) -> tuple[TrainPairs, tuple[torch.Tensor, torch.Tensor]]:
    """(training pairs drawn on access, (test A, test B) uint8 batches) for one of ``DEGRADATIONS``."""
    if task == "sr" and size % SR_SCALE:
        raise MMKitError(f"photo-sr: image size {size} is not a multiple of {SR_SCALE}")
    test_b = test_tiles(size)
    train = TrainPairs(task, size, n_train, seed, augment=task in RESTORATION)
    return train, (DEGRADATIONS[task](test_b, _TEST_SEED), test_b)


def day_tinted(
    size: int, n_train: int, seed: int
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Unpaired ((train day, train tinted), (test day, test tinted)).

    Train: the two domains are different random crops (seeds ``seed`` and ``seed + 1``). Test: tile i of B is
    tile i of A tinted, so translations can be scored against the truth."""
    day, other = train_crops(n_train, size, seed), train_crops(n_train, size, seed + 1)
    tiles = test_tiles(size)
    return (day, tint(other)), (tiles, tint(tiles))
