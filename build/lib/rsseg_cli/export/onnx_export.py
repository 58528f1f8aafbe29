"""A checkpoint -> a self-contained ONNX model (scaling, standardization and softmax inside; Deepness and
rsseg metadata), verified against torch with onnxruntime before it is renamed into place.

The TorchScript exporter (torch.onnx.export(dynamo=False)) is used: it traces the timm / open_clip ViTs of
rsseg in seconds, where the dynamo exporter takes ~10x longer and specializes the window size anyway. An
exported window is fixed (the checkpoint's crop by default: a ViT's position embedding is then a resized
constant); --dynamic traces that resize too (export.onnx_graph.traceable), checks the graph at a larger and a
smaller window, and refuses when it does not run or agree there.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rsseg_cli.atomic import atomic_file
from rsseg_cli.data.normalize import Normalization
from rsseg_cli.engine.checkpoint import Checkpoint
from rsseg_cli.errors import UserError
from rsseg_cli.export import require
from rsseg_cli.export.onnx_graph import RawToProbabilities, traceable
from rsseg_cli.export.onnx_metadata import onnx_metadata, training_resolution_cm
from rsseg_cli.models.patch import patch_size

log = logging.getLogger("rsseg")

OPSET = 17
INPUT, OUTPUT = "raw", "probabilities"
TOLERANCE = 1e-3  # max |p_onnx - p_torch| accepted when verifying (float32 reorderings stay far below)


@dataclass
class ExportResult:
    path: Path
    window: int | None  # None: dynamic
    student: str | None
    max_difference: float  # max |p_onnx - p_torch| on a random raw batch
    resolution_cm: float | None
    bytes: int


def export_onnx(
    checkpoint: Path,
    out: Path,
    *,
    student: str | None = None,
    window: int | None = None,
    dynamic: bool = False,
    deepness_input: bool = False,
    resolution_cm: float | None = None,
    overlap_percent: int = 25,
    overwrite: bool = False,
) -> ExportResult:
    onnx = require("onnx", "rsseg export --onnx")
    out = Path(out)
    if out.exists() and not overwrite:
        raise UserError(
            f"{out} already exists. Pass --overwrite to replace it, or choose another --onnx path."
        )
    ckpt = Checkpoint.read(checkpoint)
    model = ckpt.load_model("cpu", student)
    chosen = getattr(model, "mode", None) if hasattr(model, "variants") else None
    size = int(window or ckpt.crop)
    patch = patch_size(model)
    if patch is not None and size % patch:
        raise UserError(
            f"--window-size {size} is not a multiple of the model's patch size ({patch} px); the exported "
            f"graph would pad every window. Use a multiple of {patch}, e.g. {size - size % patch or patch}."
        )
    # Deepness feeds values / 255: the graph multiplies them back so that the rest is the raw-value graph.
    input_scale = 255.0 if deepness_input else 1.0
    graph = RawToProbabilities(model, Normalization.from_dict(ckpt.normalization), input_scale).eval()
    ckpt.state_dict = {}  # the graph holds the weights now
    resolution = resolution_cm if resolution_cm is not None else training_resolution_cm(checkpoint)
    meta = onnx_metadata(ckpt, student=chosen, window=None if dynamic else size, overlap_percent=overlap_percent,
                         input_scale=input_scale, resolution_cm=resolution, patch_size=patch)  # fmt: skip
    example = _example(ckpt, size, input_scale)
    with atomic_file(out) as tmp:
        _trace(graph, example, tmp, dynamic, ckpt)
        proto = onnx.load(str(tmp))
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(tmp))
        diff = verify(graph, tmp, example, ckpt)
        if dynamic:  # the graph must follow the input: check a larger and a smaller window than traced
            step = (patch or 16) * 2
            for other in (size + step, size - step) if size > step else (size + step,):
                verify(graph, tmp, _example(ckpt, other, input_scale), ckpt, dynamic_check=True)
        nbytes = tmp.stat().st_size
    return ExportResult(out, None if dynamic else size, chosen, diff, resolution, nbytes)


def _example(ckpt: Checkpoint, size: int, input_scale: float) -> torch.Tensor:
    """A random raw batch over the checkpoint's value range (a bit beyond, to exercise the clip)."""
    norm = Normalization.from_dict(ckpt.normalization)
    gen = torch.Generator().manual_seed(0)
    low = torch.tensor(norm.low).view(1, -1, 1, 1)
    high = torch.tensor(norm.high).view(1, -1, 1, 1)
    unit = torch.rand(2, len(ckpt.bands), size, size, generator=gen) * 1.2 - 0.1
    return (low + unit * (high - low)) / input_scale


def _trace(
    graph: torch.nn.Module, example: torch.Tensor, path: Path, dynamic: bool, ckpt: Checkpoint
) -> None:
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic else {0: "batch"}
    try:
        with warnings.catch_warnings(), torch.no_grad(), traceable(dynamic):
            warnings.simplefilter("ignore")  # tracer warnings about Python-side shapes: checked by verify()
            torch.onnx.export(graph, (example,), str(path), input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: axes, OUTPUT: axes}, opset_version=OPSET,
                              dynamo=False, do_constant_folding=True)  # fmt: skip
    except Exception as exc:  # the exporter raises many types; all mean the same to the user
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        raise UserError(
            f"The {ckpt.method} model of {ckpt.path} cannot be exported to ONNX (opset {OPSET}): "
            f"{type(exc).__name__}: {lines[0][:400] if lines else ''}. The part named there has no ONNX "
            "equivalent in this torch version; predict with the .pt checkpoint instead."
        ) from None


def verify(
    graph: torch.nn.Module, path: Path, example: torch.Tensor, ckpt: Checkpoint, dynamic_check: bool = False
) -> float:
    """max |p_onnx - p_torch| on `example`; refuses a graph that does not run or disagrees."""
    ort = require("onnxruntime", "Checking the exported model")
    options = ort.SessionOptions()
    if dynamic_check:
        options.log_severity_level = 3  # a failing size is reported below, not as onnxruntime's own log line
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = graph(example).numpy()
    try:
        got = session.run([OUTPUT], {INPUT: example.numpy()})[0]
        diff: float | str = (
            float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
        )
    except Exception as exc:  # onnxruntime's own exception types
        if not dynamic_check:
            raise
        diff = f"it fails ({str(exc).splitlines()[0][:200]})"
    if dynamic_check and not (isinstance(diff, float) and diff <= TOLERANCE):
        why = diff if isinstance(diff, str) else f"its probabilities differ from torch's by {diff:.2g}"
        raise UserError(
            f"The {ckpt.method} model of {ckpt.path} cannot be exported with a dynamic window: its graph "
            f"fixes a size at trace time (a part of the network computes it in Python), so at "
            f"{example.shape[-1]} px {why}. Leave out --dynamic and export a fixed window with "
            "--window-size N (default: the training crop)."
        )
    assert isinstance(diff, float)
    if not diff <= TOLERANCE:
        raise UserError(
            f"The exported ONNX model of {ckpt.path} disagrees with the torch model (max probability "
            f"difference {diff:.2g} > {TOLERANCE}); an operator is exported wrongly. Predict with the .pt "
            "checkpoint instead."
        )
    return diff
