"""A checkpoint ready for inference: the network in eval mode, its input normalization, and a batched
`predict` (autocast on GPU, optional test-time augmentation) returning class probabilities.

torch is imported only where a .pt model needs it: an .onnx model (predict.onnx_model) loads and predicts
through this module on machines without torch, with the same TTA views on numpy arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from rsseg_cli.compat import has_torch
from rsseg_cli.engine.checkpoint import Checkpoint
from rsseg_cli.errors import UserError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from rsseg_cli.data.normalize import Normalization

# Test-time augmentation: the dihedral views of a square window. Each is (forward, inverse) on (B, C, H, W)
# torch tensors or numpy arrays (the same rotations: torch.rot90 and torch.flip follow numpy's).
View = tuple[Callable[[Any], Any], Callable[[Any], Any]]


def _rot90(x: Any, k: int) -> Any:
    if isinstance(x, np.ndarray):
        return np.rot90(x, k, axes=(2, 3))
    import torch

    return torch.rot90(x, k, dims=(2, 3))


def _flip(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return np.flip(x, axis=3)
    import torch

    return torch.flip(x, dims=(3,))


def _view(k: int, flip: bool) -> View:
    def forward(x: Any) -> Any:
        x = _rot90(x, k) if k else x
        return _flip(x) if flip else x

    def inverse(y: Any) -> Any:
        y = _flip(y) if flip else y
        return _rot90(y, -k) if k else y

    return forward, inverse


TTA_VIEWS: dict[str, list[View]] = {
    "none": [_view(0, False)],
    # identity, horizontal, vertical (= rot 180 + horizontal), both (= rot 180)
    "flip": [_view(0, False), _view(0, True), _view(2, True), _view(2, False)],
    "d4": [_view(k, f) for k in range(4) for f in (False, True)],
}


@dataclass
class InferenceModel:
    path: Path
    model: nn.Module
    checkpoint: Checkpoint  # without its weights (the network holds them)
    normalization: Normalization
    device: torch.device
    precision: str
    arrays: ClassVar[str] = "torch"  # what predictor() and prepare() take and return (predict.stream)

    @property
    def classes(self) -> list[dict]:
        return self.checkpoint.classes

    @property
    def num_classes(self) -> int:
        return len(self.checkpoint.classes)

    @property
    def window(self) -> int:
        return int(self.checkpoint.crop)

    def predictor(self, tta: str = "none") -> Callable[[torch.Tensor], torch.Tensor]:
        """Batch of model inputs (B, C, w, w) on any device -> probabilities (B, K, w, w) on the model's."""
        if tta not in TTA_VIEWS:
            raise UserError(f"--tta {tta!r} is not known; use one of {', '.join(TTA_VIEWS)}.")
        import torch

        from rsseg_cli.engine.precision import autocast

        views = TTA_VIEWS[tta]
        model, device, precision = self.model, self.device, self.precision

        @torch.inference_mode()
        def predict(x: torch.Tensor) -> torch.Tensor:
            x = x.to(device, non_blocking=True)
            total = None
            for forward, inverse in views:
                with autocast(precision, device):
                    logits = model(forward(x))
                p = inverse(logits.float().softmax(dim=1))
                total = p if total is None else total.add_(p)
            assert total is not None
            return total / len(views) if len(views) > 1 else total

        return predict

    def prepare(self, data: np.ndarray, valid: np.ndarray) -> torch.Tensor:
        """Raw window (C, h, w) -> model input with the checkpoint's stored statistics (never per window)."""
        import torch

        return torch.from_numpy(self.normalization.model_input(data, valid))


def load_inference_model(
    path: Path, device: torch.device, precision: str, variant: str | None = None
) -> InferenceModel:
    if Path(path).suffix.lower() == ".onnx":  # an `rsseg export --onnx` model: same interface, onnxruntime
        from rsseg_cli.predict.onnx_model import load_onnx_model

        return load_onnx_model(Path(path), device, variant)  # type: ignore[return-value]
    if not has_torch():
        raise UserError(
            f"{path} is a PyTorch checkpoint, and PyTorch is not installed here. Install it (pip install "
            "torch), or predict with an ONNX model: `rsseg export --onnx model.onnx` on a machine with "
            "PyTorch, then `rsseg predict --checkpoint model.onnx`, which needs only onnxruntime."
        )
    from rsseg_cli.data.normalize import Normalization

    ckpt = Checkpoint.read(path)
    model = ckpt.load_model(device, variant)
    # The network now owns the weights: drop the checkpoint's copies (and a last.pt's training state).
    ckpt.state_dict, ckpt.train_state = {}, None
    norm = Normalization.from_dict(ckpt.normalization)
    return InferenceModel(Path(path), model, ckpt, norm, device, precision)
