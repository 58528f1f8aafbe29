"""The flags of `rsseg export` (registered on the app in cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rsseg_cli.cli_options import OverwriteOpt, StudentOpt


def export(
    checkpoint: Annotated[
        Path | None, typer.Argument(help="best.pt to export. [default: the latest run's best]")
    ] = None,
    onnx: Annotated[Path, typer.Option("--onnx", help="The ONNX model to write (model.onnx).")] = Path(
        "model.onnx"
    ),
    student: StudentOpt = None,
    window_size: Annotated[
        int | None, typer.Option(help="Window the model takes, in px. [default: the training crop]")
    ] = None,
    dynamic: Annotated[
        bool,
        typer.Option(
            help="Any window size (refused for models that fix it when traced, such as CLIP students)."
        ),
    ] = False,
    deepness: Annotated[
        bool,
        typer.Option(
            help="For QGIS's Deepness plugin: the graph takes values / 255, as Deepness feeds them."
        ),
    ] = False,
    resolution: Annotated[
        float | None, typer.Option(help="Pixel size in cm for Deepness. [default: the training data's]")
    ] = None,
    overlap: Annotated[int, typer.Option(help="Tile overlap in percent, for Deepness.")] = 25,
    overwrite: OverwriteOpt = False,
) -> None:
    """The checkpoint as one ONNX model: raw band values in (the training dtype's, as float32; N x bands x
    window x window), the checkpoint's scaling and the softmax inside, class probabilities out; with the
    metadata the Deepness QGIS plugin reads. `rsseg predict --checkpoint model.onnx` runs it (onnxruntime)."""
    from rsseg_cli.commands import export as command

    command.run(
        command.ExportOptions(
            onnx=onnx,
            checkpoint=checkpoint,
            student=student,
            window_size=window_size,
            dynamic=dynamic,
            deepness_input=deepness,
            resolution=resolution,
            overlap=overlap,
            overwrite=overwrite,
        )
    )
