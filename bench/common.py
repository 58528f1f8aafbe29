"""Pieces the training benchmarks share: synthetic batches and a timed step loop."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable

import torch


def synthetic_batch(
    n: int, bands: int, crop: int, classes: int, device: torch.device, seed: int = 1
) -> tuple[dict, dict]:
    """A labeled and an unlabeled batch as the loaders give them (random pixels: timing does not care)."""
    g = torch.Generator().manual_seed(seed)
    box = torch.zeros(n, crop, crop, dtype=torch.bool)
    box[:, crop // 4 : crop // 2, crop // 4 : crop // 2] = True
    labeled = {
        "image": torch.randn(n, bands, crop, crop, generator=g),
        "mask": torch.randint(0, classes, (n, crop, crop), generator=g),
    }
    unlabeled = {
        "weak": torch.randn(n, bands, crop, crop, generator=g),
        "strong1": torch.randn(n, bands, crop, crop, generator=g),
        "strong2": torch.randn(n, bands, crop, crop, generator=g),
        "ignore": torch.zeros(n, crop, crop, dtype=torch.bool),
        "box1": box,
        "box2": box.flip(-1),
    }

    def move(d: dict) -> dict:
        return {k: v.to(device) for k, v in d.items()}

    return move(labeled), move(unlabeled)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_steps(step: Callable[[int], None], steps: int, device: torch.device) -> list[float]:
    """Seconds of each call of step(i)."""
    times = []
    for i in range(steps):
        sync(device)
        t0 = time.perf_counter()
        step(i)
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def median_after_first(times: list[float]) -> float:
    """The first step pays for allocations and lazy initialization."""
    return statistics.median(times[1:] or times)


def peak_memory_mb(device: torch.device) -> float:
    """Peak allocated GPU memory on CUDA, else this process's peak resident memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
