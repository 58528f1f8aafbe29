"""Deployment formats of a checkpoint: ONNX (with the input scaling and softmax inside) for onnxruntime and the
Deepness QGIS plugin."""

from __future__ import annotations

import importlib
from types import ModuleType

from rsseg_cli.errors import UserError


def require(package: str, purpose: str) -> ModuleType:
    """Import an optional dependency of the ONNX path, or refuse with the install command."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise UserError(
            f"{purpose} needs the optional package {package}, which is not installed. Install rsseg's ONNX "
            "extra: pip install 'rsseg-cli[onnx]'."
        ) from None
