"""Resumable, distributed, epoch-seeded sampling.

The order of an epoch is a permutation seeded by (seed, epoch). Process r of w takes positions r, r + w, ...,
so at every step the union of the processes' batches is exactly the batch a single process would draw with
the global batch size. A resumed run starts at the batch it stopped at without touching the skipped data.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields (epoch, index): the epoch travels with each index, so persistent loader workers (which hold
    their own copy of the dataset) draw each sample's augmentation from (seed, epoch, index) too."""

    def __init__(
        self,
        size: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
        epoch_samples: int | None = None,
    ):
        self.size = size
        self.epoch_samples = epoch_samples
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world = world
        self.epoch = 0
        self.start_batch = 0

    @property
    def batches_per_epoch(self) -> int:
        """Full batches per process; a short last batch is dropped (as the recipes do). With `epoch_samples`
        above the dataset size the chips repeat until an epoch holds at least that many (the supervised
        recipes' epoch of 3000 samples, their repeated labeled list)."""
        per_step = self.batch_size * self.world
        if self.epoch_samples is not None and self.epoch_samples > self.size:
            return math.ceil(self.epoch_samples / per_step)
        return max(1, self.size // per_step)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.start_batch = start_batch

    def _order(self) -> list[int]:
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) & 0x7FFF_FFFF_FFFF_FFFF)
        needed = self.batches_per_epoch * self.batch_size * self.world
        order: list[int] = []
        while len(order) < needed:  # datasets smaller than one global batch repeat
            order.extend(torch.randperm(self.size, generator=g).tolist())
        return order[:needed]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        mine = self._order()[self.rank :: self.world]
        return iter([(self.epoch, i) for i in mine[self.start_batch * self.batch_size :]])

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size
