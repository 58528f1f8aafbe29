"""`train.deterministic`: deterministic torch kernels, and seeded data-loader workers.

Training is already reproducible in what rsseg controls: the sampler's order and each sample's augmentation
are seeded by (seed, epoch, index), and the global RNG by (seed, step, rank). What remains are kernels whose
results depend on scheduling (atomics in CUDA scatter/index backward passes, cuDNN's autotuned algorithm
choice). `configure_determinism(True)` makes torch pick deterministic kernels, turns cuDNN benchmarking off,
and sets the cuBLAS workspace that deterministic cuBLAS needs. It is slower, which is why it is off by
default.

Strict where possible: on the CPU every kernel of training has a deterministic implementation, and an
operation without one raises (warn_only=False). On CUDA, torch has none for two kernels every rsseg model
runs (the backward pass of bilinear interpolation in the heads, and NLL loss inside cross-entropy), so strict
mode would abort every run at its first step: there it warns for those kernels instead (warn_only=True) and
everything else is deterministic.
"""

from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch

log = logging.getLogger("rsseg")

# cuBLAS is only deterministic with a fixed workspace; it must be set before the first cuBLAS call.
CUBLAS_WORKSPACE = ":4096:8"


def configure_determinism(enabled: bool, device: torch.device | str | None = None) -> None:
    """Switch deterministic algorithms on (or back off) for this process; `device` is the training device
    (strict, raising mode except on CUDA, see the module docstring)."""
    cuda = device is not None and torch.device(device).type == "cuda"
    warn_only = enabled and cuda
    if enabled and (cuda or torch.cuda.is_available()):
        current = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
        if current not in (":4096:8", ":16:8"):
            if current is not None:
                log.warning(
                    "CUBLAS_WORKSPACE_CONFIG=%s is not deterministic; using %s", current, CUBLAS_WORKSPACE
                )
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
    if enabled != torch.are_deterministic_algorithms_enabled() or (
        enabled and warn_only != torch.is_deterministic_algorithms_warn_only_enabled()
    ):
        # Only on a change: the call imports torch._inductor, seconds that a default run need not spend.
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    if warn_only:
        log.info(
            "deterministic training on CUDA: torch has no deterministic CUDA kernel for the backward pass of "
            "bilinear interpolation and for NLL loss; those warn, everything else is deterministic"
        )
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = False if enabled else torch.backends.cudnn.benchmark


def loader_generator(seed: int) -> torch.Generator:
    """The generator a DataLoader draws its workers' base seed from: the run's seed, not the global RNG."""
    return torch.Generator().manual_seed(seed & 0x7FFF_FFFF_FFFF_FFFF)


def seed_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: seed Python's and NumPy's RNGs from the worker's torch seed (base seed from
    `loader_generator` + worker id), so code that draws from them is seeded per worker as torch already is."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
