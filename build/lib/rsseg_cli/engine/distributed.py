"""torch DDP: one process per device, started by torchrun (which sets RANK, WORLD_SIZE, LOCAL_RANK).

torch is imported lazily: `rsseg predict` with an .onnx model calls setup / broadcast_object / teardown on
machines without it, where there is one process and every helper passes its value through.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from rsseg_cli.compat import has_torch

if TYPE_CHECKING:
    import torch


def _dist() -> ModuleType | None:
    """torch.distributed when a process group can exist (torch installed and built with it), else None."""
    if not has_torch():
        return None
    import torch.distributed as dist

    return dist if dist.is_available() else None


def _group() -> Any:
    """torch.distributed when this process is in an initialized process group, else None."""
    dist = _dist()
    return dist if dist is not None and dist.is_initialized() else None


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 alone logs and writes files."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup(device: torch.device) -> Dist:
    """Join the process group when started by torchrun; gloo on CPU, nccl on CUDA."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def teardown() -> None:
    if (dist := _group()) is not None:
        dist.destroy_process_group()


def all_reduce_mean(values: torch.Tensor) -> torch.Tensor:
    if (dist := _group()) is not None:
        device = values.device
        # nccl reduces CUDA tensors only; gloo takes CPU tensors.
        values = values.to("cuda" if dist.get_backend() == "nccl" else "cpu", copy=True)
        dist.all_reduce(values)
        values = values.to(device)
        values /= dist.get_world_size()
    return values


def broadcast_object(obj):
    """Rank 0's value on every rank (for decisions such as the labeled subset or the run folder)."""
    if (dist := _group()) is None:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if (dist := _group()) is not None:
        dist.barrier()


def all_gather_object(obj) -> list:
    """Every rank's `obj`, in rank order, on every rank ([obj] without a process group)."""
    if (dist := _group()) is None:
        return [obj]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
