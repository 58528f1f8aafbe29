"""The metadata an exported ONNX model carries: the keys the Deepness QGIS plugin reads, and rsseg's own.

Deepness (PUTvision/qgis-plugin-deepness, processing/models/model_base.py) reads each value with json.loads:
model_type, class_names ({id: name}), resolution (cm/px), tile_size (its code) and tiles_size (its docs),
tiles_overlap (percent), standardization_mean/std. It always divides a layer's values by 255 and then
standardizes with those statistics: rsseg's scaling lives inside the graph, so the statistics written are the
identity (mean 0, std 1) and Deepness must not normalize again. rsseg_* keys hold what `rsseg predict` needs:
the checkpoint's description without its weights (classes with colours, bands, dtype, normalization, crop),
the student, the window, the patch size and the input scale.
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from rsseg_cli import __version__
from rsseg_cli.engine.checkpoint import Checkpoint

log = logging.getLogger("rsseg")

MODEL_KEY = "rsseg_checkpoint"  # the checkpoint minus weights and training state, as JSON


def checkpoint_description(ckpt: Checkpoint) -> dict[str, Any]:
    skip = {"state_dict", "train_state", "path"}
    return {f.name: getattr(ckpt, f.name) for f in fields(ckpt) if f.name not in skip}


def training_resolution_cm(ckpt_path: Path) -> float | None:
    """The training scenes' pixel size in cm, from the run folder the checkpoint sits in (runs/<name>/
    checkpoints/best.pt -> run.json's dataset -> dataset.yaml's scene transforms); None when unknown
    (a checkpoint moved out of its run, scenes without a CRS or in degrees)."""
    try:
        run_dir = Path(ckpt_path).resolve().parent.parent
        data = json.loads((run_dir / "run.json").read_text()).get("data")
        dataset = yaml.safe_load((Path(data) / "dataset.yaml").read_text())
    except (OSError, ValueError, TypeError, AttributeError, yaml.YAMLError):
        return None
    sizes = []
    for scene in (dataset.get("scenes") or {}).values():
        metres = _metres_per_unit(scene.get("crs"))
        transform = scene.get("transform") or []
        if metres is None or len(transform) < 6:
            continue
        sizes.append(max(abs(transform[0]), abs(transform[4])) * metres * 100.0)
    return round(statistics.median(sizes), 4) if sizes else None


def _metres_per_unit(wkt: str | None) -> float | None:
    if not wkt:
        return None
    from rasterio.crs import CRS

    try:
        crs = CRS.from_wkt(wkt)
        if not crs.is_projected:
            return None  # degrees: no single cm/px
        return float(crs.linear_units_factor[1])
    except Exception:  # an unparsable CRS leaves the resolution unknown, as none would
        return None


def onnx_metadata(
    ckpt: Checkpoint,
    *,
    student: str | None,
    window: int | None,
    overlap_percent: int,
    input_scale: float,
    resolution_cm: float | None,
    patch_size: int | None = None,
) -> dict[str, str]:
    """key -> JSON text, for onnx's metadata_props."""
    names = {str(i): c["name"] for i, c in enumerate(ckpt.classes)}
    meta: dict[str, Any] = {
        "model_type": "Segmentor",
        "class_names": names,
        "tiles_overlap": int(overlap_percent),
        # The graph standardizes itself: Deepness's own standardization must be the identity.
        "standardization_mean": [0.0] * len(ckpt.bands),
        "standardization_std": [1.0] * len(ckpt.bands),
        "rsseg_version": __version__,
        "rsseg_checkpoint_path": str(ckpt.path) if ckpt.path else None,
        "rsseg_student": student,
        "rsseg_window": window,  # None: any window (a dynamic export)
        "rsseg_input_scale": input_scale,
        "rsseg_patch_size": patch_size,
        "rsseg_bands": ckpt.bands,
        "rsseg_dtype": ckpt.dtype,
        "rsseg_classes": ckpt.classes,
        "rsseg_palette": ckpt.palette,
        MODEL_KEY: checkpoint_description(ckpt),
    }
    if window is not None:
        meta["tile_size"] = meta["tiles_size"] = int(window)  # the plugin's code and docs spell it both ways
    if resolution_cm is not None:
        meta["resolution"] = float(resolution_cm)
    else:
        log.warning(
            "the training data's pixel size is unknown (the checkpoint is outside its run folder, or the "
            "scenes have no projected CRS): the ONNX model carries no resolution; give --resolution CM"
        )
    return {k: json.dumps(v) for k, v in meta.items()}


def read_metadata(props: dict[str, str]) -> dict[str, Any]:
    """onnxruntime's custom_metadata_map -> parsed values (non-JSON values kept as text)."""
    out: dict[str, Any] = {}
    for key, text in props.items():
        try:
            out[key] = json.loads(text)
        except ValueError:
            out[key] = text
    return out
