"""`rsseg export [CHECKPOINT] --onnx model.onnx`: a checkpoint as a self-contained ONNX model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rsseg_cli.errors import UserError

STUDENTS = ("clip", "dinov3", "ensemble")


@dataclass
class ExportOptions:
    onnx: Path
    checkpoint: Path | None = None  # default: the latest run's best.pt
    student: str | None = None  # Co2S: default the checkpoint's best validated prediction
    window_size: int | None = None  # default: the checkpoint's crop
    dynamic: bool = False
    deepness_input: bool = False
    resolution: float | None = None  # cm/px; default the training data's
    overlap: int = 25  # percent, Deepness's tiles_overlap
    overwrite: bool = False

    def __post_init__(self) -> None:
        if Path(self.onnx).suffix.lower() != ".onnx":
            raise UserError(f"--onnx {self.onnx} must name a .onnx file, e.g. --onnx model.onnx.")
        if self.student is not None and self.student not in STUDENTS:
            raise UserError(f"--student {self.student!r} is not known; use one of {', '.join(STUDENTS)}.")
        if self.window_size is not None and self.window_size < 1:
            raise UserError(f"--window-size {self.window_size} must be a positive number of pixels.")
        if self.dynamic and self.window_size is not None:
            raise UserError(
                "--dynamic and --window-size exclude each other: a dynamic model takes any window."
            )
        if self.resolution is not None and not self.resolution > 0:
            raise UserError(f"--resolution {self.resolution} must be a positive number of cm per pixel.")
        if not 0 <= self.overlap < 100:
            raise UserError(f"--overlap {self.overlap} is a percentage of the window: use 0 to 99.")


def run(options: ExportOptions) -> dict:
    from rsseg_cli.export.onnx_export import export_onnx
    from rsseg_cli.progress import console
    from rsseg_cli.runs import default_checkpoint

    checkpoint = default_checkpoint(options.checkpoint)
    result = export_onnx(
        checkpoint,
        options.onnx,
        student=options.student,
        window=options.window_size,
        dynamic=options.dynamic,
        deepness_input=options.deepness_input,
        resolution_cm=options.resolution,
        overlap_percent=options.overlap,
        overwrite=options.overwrite,
    )
    window = "any window" if result.window is None else f"{result.window} px windows"
    student = f", student {result.student}" if result.student else ""
    resolution = (
        f"{result.resolution_cm:g} cm/px" if result.resolution_cm is not None else "resolution unknown"
    )
    console.print(
        f"{checkpoint} -> {result.path} ({result.bytes / 2**20:.1f} MiB, {window}{student}, {resolution}); "
        f"onnxruntime agrees with torch to {result.max_difference:.1g}. Predict with "
        f"`rsseg predict SCENE --checkpoint {result.path}`, or load it in QGIS's Deepness plugin"
        + ("." if options.deepness_input else " after exporting with --deepness (it feeds values / 255).")
    )
    return {"path": str(result.path), "window": result.window, "student": result.student,
            "max_difference": result.max_difference, "resolution_cm": result.resolution_cm}  # fmt: skip
