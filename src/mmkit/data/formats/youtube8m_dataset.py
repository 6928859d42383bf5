"""A torch Dataset over YouTube-8M TFRecord files (the format itself: `mmkit.data.formats.youtube8m`).

ds = YouTube8MDataset("yt8m/train", "frame", num_classes=3862, max_frames=300)
features, num_frames, labels = ds[0]
"""

from __future__ import annotations

import functools
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate, get_worker_info

from mmkit.data.formats.youtube8m import (
    QUANT_BIAS,
    QUANT_SCALE,
    SAMPLING,
    PathSpec,
    check_level,
    expand_paths,
    index_records,
    read_record_at,
)
from mmkit.errors import MMKitError

# ---------------------------------------------------------------------------------------------------------------------
# Dataset


class YouTube8MDataset(Dataset):
    """Map-style dataset over TFRecord files: record offsets are indexed once, records read on access.

    Item ``i`` is ``(features, num_frames, labels)``: float32 features ``[max_frames, D_rgb + D_audio]`` at
    frame level (``sample``: "pad" keeps the first max_frames frames and pads with zeros, "uniform" picks
    max_frames evenly spaced frames, "random" max_frames random frames in time order; both repeat frames of
    shorter videos) or ``[D_rgb + D_audio]`` at video level (num_frames 1), and multi-hot float32 labels
    ``[num_classes]``. ``num_frames`` counts the rows that hold frames (the rest are zero padding).
    With ``dequantize=False`` frame-level features stay uint8 (dequantize whole batches with
    `dequantize_batch`, e.g. on the GPU): batching 1.2 MB per video instead of 4.6 MB is what keeps a DataLoader
    ahead of tf.data.
    """

    def __init__(
        self,
        paths: PathSpec,
        level: str,
        num_classes: int,
        max_frames: int = 300,
        sample: str = "pad",
        *,
        verify_crc: bool = True,
        dequantize: bool = True,
    ) -> None:
        check_level(level)
        if sample not in SAMPLING:
            raise ValueError(f"sample must be one of {SAMPLING}, got {sample!r}")
        if num_classes < 1 or max_frames < 1:
            raise ValueError("num_classes and max_frames must be positive")
        self.level, self.num_classes, self.max_frames, self.sample = level, num_classes, max_frames, sample
        self.verify_crc, self.dequantize = verify_crc, dequantize
        self.files = expand_paths(paths)
        # numpy, not a list of tuples: compact, and DataLoader workers do not copy it by touching refcounts
        offsets = [np.asarray(index_records(p), dtype=np.int64) for p in self.files]
        self.file_of = np.concatenate([np.full(len(o), k, np.int32) for k, o in enumerate(offsets)])
        self.offset_of = np.concatenate(offsets)
        self.rgb_dim = self.audio_dim = 0
        if len(self.offset_of):
            first = self.record(0, dequantize=False)
            self.rgb_dim, self.audio_dim = first["rgb"].shape[-1], first["audio"].shape[-1]

    @property
    def feature_dim(self) -> int:
        return self.rgb_dim + self.audio_dim

    def __len__(self) -> int:
        return len(self.offset_of)

    def record(self, i: int, dequantize: bool = True) -> dict[str, Any]:
        """The parsed record ``i`` (as `read_records` yields it; uint8 frames with ``dequantize=False``)."""
        path, offset = self.files[self.file_of[i]], int(self.offset_of[i])
        return read_record_at(path, offset, self.level, verify_crc=self.verify_crc, dequantize=dequantize)

    def _frame_indices(self, n: int) -> np.ndarray:
        m = self.max_frames
        if self.sample == "pad" or n == 0:
            return np.arange(min(n, m))
        if self.sample == "uniform":
            return ((np.arange(m) + 0.5) * (n / m)).astype(np.int64)
        if n >= m:
            return np.sort(torch.randperm(n)[:m].numpy())
        return np.sort(np.concatenate([np.arange(n), torch.randint(0, n, (m - n,)).numpy()]))

    def _checked(self, i: int) -> tuple[np.ndarray, np.ndarray, list[int], int]:
        """Record ``i``'s uint8 (or video-level float) rgb and audio (frames sampled), labels, and frame count."""
        rec = self.record(i, dequantize=False)
        where = f"{self.files[self.file_of[i]]}: record at byte {self.offset_of[i]}"
        rgb, audio = rec["rgb"], rec["audio"]
        d_rgb, d_audio = rgb.shape[-1], audio.shape[-1]
        if (self.level == "video" or len(rgb)) and (d_rgb, d_audio) != (self.rgb_dim, self.audio_dim):
            raise MMKitError(
                f"{where}: feature widths {d_rgb}+{d_audio}, "
                f"expected {self.rgb_dim}+{self.audio_dim} as in the first record"
            )
        bad = [c for c in rec["labels"] if not 0 <= c < self.num_classes]
        if bad:
            raise MMKitError(f"{where}: label {bad[0]} outside [0, {self.num_classes})")
        if self.level == "video":
            return rgb, audio, rec["labels"], 1
        idx = self._frame_indices(len(rgb))
        if self.sample != "pad":
            rgb, audio = rgb[idx], audio[idx]
        return rgb, audio, rec["labels"], len(idx)

    def _fill(self, out: np.ndarray, rgb: np.ndarray, audio: np.ndarray, n: int) -> None:
        """Write one video's frames into ``out`` [max_frames, D] (uint8, or float32 dequantized), zero padding."""
        d_rgb = rgb.shape[-1]
        out[:n, :d_rgb] = rgb[:n]  # a cast-copy of the bytes for float32 ``out``
        out[:n, d_rgb:] = audio[:n]
        if out.dtype == np.float32:
            frames = out[:n]
            frames *= QUANT_SCALE
            frames += QUANT_BIAS
        out[n:] = 0

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        rgb, audio, label_ids, n = self._checked(i)
        labels = torch.zeros(self.num_classes)
        labels[label_ids] = 1.0
        if self.level == "video":
            return torch.from_numpy(np.concatenate([rgb, audio])), 1, labels
        # uint8 frames (dequantize=False) are a quarter of the bytes to batch and move
        out = np.empty((self.max_frames, self.feature_dim), np.float32 if self.dequantize else np.uint8)
        self._fill(out, rgb, audio, n)
        return torch.from_numpy(out), n, labels

    def __getitems__(self, indices: list[int]) -> PrebuiltBatch:
        """A whole batch at once (the DataLoader calls this): each record is written straight into one batch array.

        The arrays come from numpy, whose large allocations use huge pages (a fresh 44 MB torch tensor costs ~4x
        more in page faults on some VMs), or, in a DataLoader worker, from shared memory as default_collate does,
        so no copy is made to send them. `collate` hands these arrays on; any other collate_fn still works on the
        items, which are views of them."""
        b, m, d = len(indices), self.max_frames, self.feature_dim
        y, labels = _empty((b, self.num_classes), torch.float32)
        labels[:] = 0.0
        counts = np.ones(b, np.int64)
        if self.level == "video":
            x, feats = _empty((b, d), torch.float32)
        else:
            x, feats = _empty((b, m, d), torch.float32 if self.dequantize else torch.uint8)

        def work(ks: range) -> None:
            for k in ks:
                rgb, audio, label_ids, n = self._checked(indices[k])
                labels[k, label_ids] = 1.0
                counts[k] = n
                if self.level == "video":
                    feats[k, : rgb.shape[-1]] = rgb
                    feats[k, rgb.shape[-1] :] = audio
                else:
                    self._fill(feats[k], rgb, audio, n)

        # in the main process, torch's threads share the batch (numpy and the CRC release the GIL): 1.3x on 2 cores;
        # one thread for random frame sampling, whose draws must come in a fixed order
        threads = (
            min(torch.get_num_threads(), b) if get_worker_info() is None and self.sample != "random" else 1
        )
        bounds = [b * t // threads for t in range(threads + 1)]
        chunks = [range(lo, hi) for lo, hi in zip(bounds, bounds[1:], strict=False)]
        futures = [_pool(threads).submit(work, c) for c in chunks[1:]]
        work(chunks[0])
        for f in futures:
            f.result()
        n_t = torch.from_numpy(counts)
        batch = PrebuiltBatch((x[k], int(counts[k]), y[k]) for k in range(b))
        batch.collated = (x, n_t, y)
        return batch


def _empty(shape: tuple[int, ...], dtype: torch.dtype) -> tuple[torch.Tensor, np.ndarray]:
    """An uninitialized tensor and its numpy view: numpy's memory, or inside a DataLoader worker shared memory
    (as default_collate allocates it there), which the worker sends to the main process without a copy."""
    if get_worker_info() is None:
        a = np.empty(shape, torch.empty(0, dtype=dtype).numpy().dtype)
        return torch.from_numpy(a), a
    storage = torch.empty(0, dtype=dtype)._typed_storage()._new_shared(math.prod(shape))
    t = torch.empty(0, dtype=dtype).new(storage).view(shape)
    return t, t.numpy()


@functools.cache
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max(1, threads - 1), thread_name_prefix="yt8m-batch")


class PrebuiltBatch(list):
    """The items of one batch (views into batch arrays) and, in ``collated``, those arrays."""

    collated: tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def collate(batch: list) -> Any:
    """collate_fn for `YouTube8MDataset`: the arrays `__getitems__` built; default_collate for anything else."""
    if isinstance(batch, PrebuiltBatch):
        return batch.collated
    return default_collate(batch)
