"""Devices, autocast and loss scaling for the chosen precision.

torch is imported lazily: `rsseg predict` with an .onnx model resolves --device and --precision on machines
without it (onnxruntime runs the graph in its own precision; see OnnxDevice).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rsseg_cli.compat import has_torch
from rsseg_cli.errors import UserError

if TYPE_CHECKING:
    import torch

log = logging.getLogger("rsseg")


@dataclass(frozen=True)
class OnnxDevice:
    """A device where torch is not installed: what the ONNX path reads of one (`type`, `index`). onnxruntime
    picks its own execution provider for it (predict.onnx_model)."""

    type: str
    index: int | None = None

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


def _device_without_torch(name: str) -> OnnxDevice:
    kind, _, index = name.partition(":")
    if name == "auto":
        return OnnxDevice("cpu")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()) or (kind == "cpu" and index):
        raise UserError(f"--device {name!r} is not supported here (no PyTorch); use auto, cpu or cuda[:N].")
    return OnnxDevice(kind, int(index) if index else None)


def resolve_device(name: str) -> torch.device | OnnxDevice:
    """A torch.device, or without torch an OnnxDevice (only the ONNX path can run there)."""
    if not has_torch():
        return _device_without_torch(name)
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name} was asked for but this machine has no CUDA GPU; use --device cpu.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise UserError(f"--device {name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {name}: this machine or PyTorch build has no Apple MPS; use --device cpu.")
    if device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"--device {name!r} is not supported; use auto, cpu, cuda or cuda:N (mps on a Mac).")
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    if name == "auto":
        if device.type == "cuda" and not has_torch():
            return "fp32"  # an ONNX graph runs in the precision it was exported in
        if device.type == "cuda":
            import torch

            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"  # CPU autocast in bf16 is slower than fp32 for these models (environment.md)
    if name not in ("fp32", "bf16", "fp16"):
        raise UserError(
            f"--precision {name!r} is not a precision; use auto (bf16/fp16 on a GPU, fp32 on CPU), fp32, bf16 or fp16."
        )
    if name == "fp16" and device.type != "cuda":
        raise UserError(
            f"--precision fp16 needs a CUDA GPU and this run is on {device.type}; use fp32 or bf16, or auto "
            "(fp32 on CPU, bf16/fp16 on a GPU)."
        )
    return name


def autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return contextlib.nullcontext()
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """fp16 needs loss scaling; for other precisions the scaler is disabled and passes values through."""
    import torch

    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
