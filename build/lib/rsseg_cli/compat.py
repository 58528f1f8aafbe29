"""Importing torchvision (needed by timm and open_clip) where its compiled ops cannot load.

On the CPU-only machines this project is developed on, the only torchvision matching torch is a CUDA build:
its ops library fails to load and the import dies with "operator torchvision::nms does not exist" (its
meta-registrations refer to ops that were never registered). Declaring those operator schemas lets the
pure-Python parts import; timm and open_clip then work fully, only compiled kernels (ops.nms, image decoding)
stay unavailable. Anywhere the normal import works, nothing here changes anything.

Also: whether torch can be imported at all. `rsseg predict` with an .onnx model runs on onnxruntime and numpy
alone, so the modules it touches import torch lazily and ask here first.
"""

from __future__ import annotations

import functools
import importlib
import logging
import sys

log = logging.getLogger("rsseg")

_MISSING_OP = "operator torchvision::nms does not exist"
_library = None  # keeps the schema definitions alive


def import_torchvision():
    """Import torchvision, declaring its missing op schemas only when the import fails in exactly that way."""
    global _library
    try:
        import torchvision
    except RuntimeError as exc:
        if _MISSING_OP not in str(exc):
            raise
        import torch

        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        _library = torch.library.Library("torchvision", "DEF")
        _library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _library.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
        import torchvision

        log.debug("torchvision imported without its compiled ops (%s)", exc)
    return torchvision


# The packages a machine without PyTorch lacks (timm, open_clip and torchvision all need torch).
TORCH_PACKAGES = frozenset({"torch", "torchvision", "timm", "open_clip"})


def is_missing_torch(exc: ImportError) -> bool:
    """Whether an ImportError says that torch (or a package built on it) is not installed, as opposed to a
    broken import inside rsseg that must not be hidden."""
    return (exc.name or "").split(".")[0] in TORCH_PACKAGES


@functools.cache
def has_torch() -> bool:
    """torch is importable (checked once: an import either works for the whole process or never does)."""
    try:
        importlib.import_module("torch")
    except ImportError as exc:
        if not is_missing_torch(exc):
            raise
        return False
    return True
