"""Batch samplers. `PKSampler`: batches of P identities × K images each, for online triplet mining.

    sampler = PKSampler(labels, p=16, k=4, seed=0, rank=rank, world=world)
    loader = DataLoader(dataset, batch_sampler=sampler)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in loader: ...              # 64 images: identities i1 x4, i2 x4, ... (this rank's share)

One epoch: the identities with at least 2 images are shuffled and cut into groups of P (the n mod P left over
wait for a later epoch's order), so every identity appears about once per epoch; `batches_per_epoch` asks for
more (or fewer) batches, drawn from further shuffled passes over the identities. An identity with at least K
images gives K distinct ones, drawn at random; one with fewer gives all of its images plus random repeats
(sampling with replacement fills the K). Identities with a single image are skipped: they have no positive.

Determinism: the batches of an epoch depend only on (seed, epoch), through a `torch.Generator` seeded with
seed·1,000,003 + epoch, so a resumed run and every DDP rank draw the same ones. With world > 1, every rank builds
the same global P×K batch and keeps its contiguous 1/world share (rank r: images [r·PK/world, (r+1)·PK/world)):
N ranks together see exactly the batches one process sees. When P is a multiple of world, each rank holds
P/world whole identities with all K images, so each rank can mine its triplets locally.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from mmkit.errors import MMKitError

log = logging.getLogger(__name__)


class PKSampler(Sampler[list[int]]):
    """Batch sampler of P identities × K images (this rank's share of each batch); see the module docstring."""

    def __init__(
        self,
        labels: Sequence[int] | torch.Tensor,
        p: int,
        k: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        batches_per_epoch: int | None = None,
    ) -> None:
        if p < 2 or k < 2:
            raise MMKitError(f"P x K batches need p >= 2 identities and k >= 2 images each, got p={p}, k={k}")
        if (p * k) % world:
            raise MMKitError(
                f"a batch of p x k = {p * k} images does not split evenly over {world} processes"
            )
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in 0..{world - 1}")
        by_label: dict[int, list[int]] = {}
        for i, y in enumerate(torch.as_tensor(labels).tolist()):
            by_label.setdefault(int(y), []).append(i)
        self.groups = [torch.tensor(by_label[y]) for y in sorted(by_label) if len(by_label[y]) >= 2]
        skipped = len(by_label) - len(self.groups)
        if len(self.groups) < p:
            raise MMKitError(
                f"P x K batches need at least p={p} identities with 2 or more images; the data has "
                f"{len(self.groups)} ({skipped} identities have a single image)"
            )
        if skipped:
            log.info("PKSampler: %d identities with a single image are never sampled (no positive)", skipped)
        self.p, self.k, self.seed, self.rank, self.world = p, k, seed, rank, world
        self.batches_per_epoch = batches_per_epoch or len(self.groups) // p
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches_per_epoch

    def _images(self, group: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """K images of one identity: K distinct ones, or all of them plus random repeats when it has fewer."""
        n = len(group)
        if n >= self.k:
            return group[torch.randperm(n, generator=g)[: self.k]]
        extra = torch.randint(n, (self.k - n,), generator=g)
        return group[torch.cat([torch.randperm(n, generator=g), extra])]

    def global_batches(self) -> list[list[int]]:
        """This epoch's full P×K batches (what all ranks together see), identity by identity."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        batches: list[list[int]] = []
        while len(batches) < self.batches_per_epoch:
            order = torch.randperm(len(self.groups), generator=g)
            for start in range(0, len(order) - self.p + 1, self.p):
                ids = order[start : start + self.p].tolist()
                batches.append(torch.cat([self._images(self.groups[i], g) for i in ids]).tolist())
                if len(batches) == self.batches_per_epoch:
                    break
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        share = self.p * self.k // self.world
        for batch in self.global_batches():
            yield batch[self.rank * share : (self.rank + 1) * share]
