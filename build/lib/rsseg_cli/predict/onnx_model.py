"""An exported .onnx model behind the interface of predict.model.InferenceModel, so that `rsseg predict
--checkpoint model.onnx` runs the same streaming pipeline through onnxruntime.

The graph takes raw values (divided by its input scale) and returns probabilities: `prepare` casts the
window and gives invalid pixels the raw value that standardizes to 0, as the .pt path does (the pipeline
masks them in the outputs). TTA views are flipped / rotated in numpy around onnxruntime. Nothing here needs
torch: windows, probabilities and the stream's blending are numpy arrays (`arrays`), so a machine with
onnxruntime and without PyTorch predicts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rsseg_cli.engine.checkpoint import Checkpoint
from rsseg_cli.errors import UserError
from rsseg_cli.export import require
from rsseg_cli.export.onnx_metadata import MODEL_KEY, read_metadata
from rsseg_cli.predict.model import TTA_VIEWS


@dataclass
class PatchInfo:
    """What predict.guard.check_window reads of a network: its patch size."""

    patch_size: int | None


@dataclass
class OnnxInferenceModel:
    path: Path
    session: Any  # onnxruntime.InferenceSession
    checkpoint: Checkpoint  # rebuilt from the metadata, without weights
    metadata: dict[str, Any]
    device: Any  # a torch.device, or without torch an engine.precision.OnnxDevice: its .type is read
    precision: str = "fp32"  # the graph's own
    arrays: ClassVar[str] = "numpy"  # what predictor() and prepare() take and return (predict.stream)

    @property
    def classes(self) -> list[dict]:
        return self.checkpoint.classes

    @property
    def num_classes(self) -> int:
        return len(self.checkpoint.classes)

    @property
    def window(self) -> int:
        return int(self.metadata.get("rsseg_window") or self.checkpoint.crop)

    @property
    def fixed_window(self) -> int | None:
        return self.metadata.get("rsseg_window")

    @property
    def model(self) -> PatchInfo:
        return PatchInfo(self.metadata.get("rsseg_patch_size"))

    @property
    def input_scale(self) -> float:
        return float(self.metadata.get("rsseg_input_scale") or 1.0)

    def predictor(self, tta: str = "none") -> Callable[[np.ndarray], np.ndarray]:
        """Batch of raw windows (B, C, w, w) -> probabilities (B, K, w, w) on the CPU."""
        if tta not in TTA_VIEWS:
            raise UserError(f"--tta {tta!r} is not known; use one of {', '.join(TTA_VIEWS)}.")
        views = TTA_VIEWS[tta]
        session, name, output = (
            self.session,
            self.session.get_inputs()[0].name,
            self.session.get_outputs()[0].name,
        )
        fixed = self.fixed_window

        def predict(x: np.ndarray) -> np.ndarray:
            if fixed is not None and x.shape[-1] != fixed:
                raise UserError(
                    f"{self.path} was exported for {fixed} px windows, but --window {x.shape[-1]} was asked. "
                    f"Leave out --window, or export again with --window-size {x.shape[-1]} (or --dynamic)."
                )
            x = np.asarray(x, dtype=np.float32)
            total = None
            for forward, inverse in views:
                view = np.ascontiguousarray(forward(x))
                p = inverse(session.run([output], {name: view})[0])
                total = p if total is None else np.add(total, p, out=total)
            assert total is not None
            return total / len(views) if len(views) > 1 else total

        return predict

    def prepare(self, data: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Raw window (C, h, w) -> the graph's input (raw values / the input scale, float32). Invalid pixels
        are set to the low end of the stretch, as model_input sets them to the band mean: never nodata
        values (e.g. -9999 or 65535) pushing strong values into their neighbours."""
        x = data.astype(np.float32)
        if valid is not None and not valid.all():
            x[:, ~valid] = self._neutral
        if self.input_scale != 1.0:
            x /= self.input_scale
        return x

    @property
    def _neutral(self) -> np.ndarray:
        """Per band, the raw value that standardizes to 0 (the band mean): (C, 1)."""
        n = self.checkpoint.normalization
        low, high = np.asarray(n["low"], np.float32), np.asarray(n["high"], np.float32)
        return (low + np.asarray(n["mean"], np.float32) * (high - low)).reshape(-1, 1)


def load_onnx_model(path: Path, device: Any, student: str | None = None) -> OnnxInferenceModel:
    ort = require("onnxruntime", "Predicting with an .onnx model")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"The model {path} does not exist. Pass the .onnx file `rsseg export --onnx` wrote.")
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        session = ort.InferenceSession(str(path), providers=providers)
    except Exception as exc:  # onnxruntime's own exception types
        raise UserError(f"{path} is not a readable ONNX model ({str(exc).splitlines()[0][:300]}).") from None
    meta = read_metadata(dict(session.get_modelmeta().custom_metadata_map))
    if not isinstance(meta.get(MODEL_KEY), dict):
        raise UserError(
            f"{path} is an ONNX model without rsseg's metadata, so its bands, classes and scaling are "
            "unknown. Pass a model written by `rsseg export --onnx`."
        )
    exported = meta.get("rsseg_student")
    if student is not None and student != exported:
        raise UserError(
            f"{path} holds the {exported or 'single'} prediction only; --student {student} needs an export "
            f"with --student {student} (or pass the .pt checkpoint)."
        )
    ckpt = Checkpoint(**{**meta[MODEL_KEY], "state_dict": {}}, path=path)
    return OnnxInferenceModel(path, session, ckpt, meta, device)
