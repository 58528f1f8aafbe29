"""Endless, resumable batch streams over the chip datasets."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from rsseg_cli.engine.determinism import loader_generator, seed_worker
from rsseg_cli.engine.sampler import EpochSampler


class BatchStream:
    """Batches forever; epoch e uses the permutation seeded by (seed, e). `start(step)` positions the stream
    at the batch a run that never stopped would be at, without reading the skipped chips."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        seed: int,
        rank: int,
        world: int,
        workers: int,
        device: torch.device,
        epoch_samples: int | None = None,
    ):
        self.dataset = dataset
        self.sampler = EpochSampler(len(dataset), batch_size, seed, rank, world, epoch_samples)
        self.seed = seed
        self.rank = rank
        self.batch_size = batch_size
        self.workers = workers
        self.device = device
        self.epoch = 0
        self._loader: DataLoader | None = None
        self._it = None

    @property
    def batches_per_epoch(self) -> int:
        return self.sampler.batches_per_epoch

    def start(self, step: int) -> None:
        epoch, batch = divmod(step, self.batches_per_epoch)
        self._open(epoch, batch)

    def _open(self, epoch: int, batch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch, batch)
        if self._loader is None:
            self._loader = DataLoader(
                self.dataset,
                batch_size=self.batch_size,
                sampler=self.sampler,
                num_workers=self.workers,
                pin_memory=self.device.type == "cuda",
                drop_last=True,
                persistent_workers=self.workers > 0,  # no process start-up at every epoch
                # Samples draw from (seed, epoch, index) generators; the workers' own RNGs (torch, numpy,
                # random) are seeded from the run's seed and rank too, not from the global RNG.
                generator=loader_generator(self.seed * 1_000_003 + self.rank),
                worker_init_fn=seed_worker,
            )
        self._it = iter(self._loader)

    def next(self) -> dict[str, Any]:
        assert self._it is not None, "start() first"
        try:
            batch = next(self._it)
        except StopIteration:
            self._open(self.epoch + 1, 0)
            batch = next(self._it)
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
