"""Scene-level evaluation: a predicted class mask against a label raster or vector file, window by window.

The prediction's grid drives everything: its windows are read one at a time (memory does not grow with the
scene), the labels are read for the same window through the label sources tiling uses (raster labels on the
same grid or reprojected nearest-neighbour, vector labels reprojected and rasterized per window), and one
global confusion matrix is accumulated. The class table is the prediction's own (its RSSEG_CLASSES tag).

Pixels whose label is ignore/unlabeled/nodata are not counted. Pixels with a valid label but no prediction
(the mask's nodata, 255) are not counted in the matrix either, never as class 0: they are reported as
``unpredicted_pixels`` with a warning, because a mask that leaves labeled ground unpredicted scores too
well on the rest otherwise.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from pydantic import ValidationError

from rsseg_cli.config import IGNORE_INDEX, ClassSpec, LabelsConfig
from rsseg_cli.data.classes import ClassTable, check_label_values
from rsseg_cli.data.labels import LabelSource, label_source
from rsseg_cli.errors import UserError
from rsseg_cli.geo.class_raster import MASK_NODATA, read_class_table
from rsseg_cli.geo.grid import window_grid
from rsseg_cli.geo.raster import SceneInfo, describe_scene, open_raster, read_window
from rsseg_cli.geo.vector import read_vector

log = logging.getLogger("rsseg")

# Half of geo.grid.DEFAULT_WINDOW on purpose: a window is held as several full-size arrays at once (the mask,
# its validity, the labels, and the confusion matrix's int64 copies and temporaries: tens of bytes per pixel),
# so 4096 px windows would need about four times that memory.
DEFAULT_WINDOW = 2048

_MASK_HINT = (
    "Pass a class mask written by `rsseg predict`, or a single-band uint8 class raster whose class table is "
    "in the RSSEG_CLASSES tag, e.g. gdal_edit.py -mo "
    'RSSEG_CLASSES=\'[{"id": 0, "name": "water"}, {"id": 1, "name": "forest"}]\' mask.tif '
    "(or a colour table with one entry per class)."
)


REPORT_FILES = ("metrics.json", "confusion_matrix.csv", "confusion_matrix.png")


def _holds_report(folder: Path) -> bool:
    return any((folder / name).exists() for name in REPORT_FILES)


def _report_of(folder: Path) -> tuple[Path, Path] | None:
    """The (prediction, labels) a report folder was written for, resolved; None when unknown."""
    try:
        doc = json.loads((folder / "metrics.json").read_text())
        return Path(doc["pred"]).resolve(), Path(doc["labels"]).resolve()
    except (OSError, ValueError, KeyError, TypeError):
        return None


def default_report_dir(pred: Path, labels: Path) -> Path:
    """``<mask stem>_vs_<labels stem>/`` next to the prediction: one folder per label source. A folder that
    holds the report of other labels (another file with the same stem) is never reused: ``_2``, ``_3``...
    are tried in turn; the folder of the same mask and labels is reused (the report is refreshed)."""
    pred, labels = Path(pred), Path(labels)
    base = pred.with_name(f"{pred.stem}_vs_{labels.stem}")
    same = (pred.resolve(), labels.resolve())
    for n in range(1, 1000):
        folder = base if n == 1 else base.with_name(f"{base.name}_{n}")
        if not folder.exists() or (folder.is_dir() and not _holds_report(folder)):
            return folder
        if folder.is_dir() and _report_of(folder) == same:
            return folder
    raise UserError(f"Too many report folders named {base}_N; pass --out DIR.")


def report_dir(pred: Path, labels: Path, out: Path | None, overwrite: bool) -> Path:
    """Where the report goes: `out` (refused if it holds a report, unless `overwrite`), else the default."""
    if out is None:
        return default_report_dir(pred, labels)
    check_report_out(Path(out), overwrite)
    return Path(out)


def check_report_out(out: Path, overwrite: bool) -> None:
    """An explicit report folder (--out) must not hold a report already, unless ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; the report is a folder. Choose a folder with --out.")
    if out.is_dir() and _holds_report(out) and not overwrite:
        raise UserError(
            f"--out {out} already holds an evaluation report. Pass --overwrite to replace it, or choose "
            "another --out."
        )


def _prediction_classes(pred: Path) -> tuple[list[dict], np.ndarray]:
    """The prediction's class table (sorted by id) and a 256-entry LUT: mask value -> class index.

    Class indices are 0..K-1 in id order; mask values outside the table map to 255.
    """
    with open_raster(pred, "prediction") as src:
        if src.count != 1:
            raise UserError(
                f"The prediction {pred} has {src.count} bands; evaluation needs a class mask with one band of "
                f"class ids (a probability raster from `rsseg predict --probs` is not one). {_MASK_HINT}"
            )
        if src.dtypes[0] != "uint8":
            raise UserError(
                f"The prediction {pred} holds {src.dtypes[0]} values; a class mask holds uint8 class ids with "
                f"nodata 255. Convert it (gdal_translate -ot Byte -a_nodata 255) if it holds class ids. "
                f"{_MASK_HINT}"
            )
        table = read_class_table(src)
    if not table:
        raise UserError(
            f"The prediction {pred} has no class table, so its values cannot be named. {_MASK_HINT}"
        )
    table = sorted(table, key=lambda c: c["id"])
    ids = [c["id"] for c in table]
    if len(set(ids)) != len(ids) or any(not 0 <= i < MASK_NODATA for i in ids):
        raise UserError(
            f"The class table of the prediction {pred} has duplicate or out-of-range ids ({ids}); ids must be "
            f"distinct and within 0..254. {_MASK_HINT}"
        )
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    lut[ids] = np.arange(len(ids), dtype=np.uint8)
    return table, lut


def _class_table(table: list[dict], pred: Path) -> ClassTable:
    """ClassTable with contiguous ids 0..K-1; a class whose id had to change keeps it as its label value."""
    specs = []
    try:
        for index, c in enumerate(table):
            value = c.get("value")
            if value is None and c["id"] != index:
                value = c["id"]
            specs.append(ClassSpec(id=index, name=c["name"], color=c.get("color"), value=value))
    except ValidationError as exc:
        raise UserError(
            f"The class table of the prediction {pred} is not valid ({exc.errors()[0]['msg']}). {_MASK_HINT}"
        ) from None
    return ClassTable.from_specs(specs)


def _open_labels(labels: Path, scene: SceneInfo, cfg: LabelsConfig) -> LabelSource:
    """The label source, with tiling's grid message pointed at this command's --reproject-labels."""
    try:
        return label_source(labels, scene, cfg)
    except UserError as exc:
        text = str(exc)
        if "tile.labels.reproject" not in text:
            raise
        msg = (
            text.replace("with --set tile.labels.reproject=true", "with --reproject-labels")
            .replace("the grid of the scene", "the grid of the prediction")
            .replace("; scene ", "; prediction ")
            .replace("onto the scene grid", "onto the prediction's grid")
        )
        if "--reproject-labels" not in msg:
            msg += " Pass --reproject-labels to resample the labels onto the prediction's grid (nearest)."
        raise UserError(msg) from None


def _check_label_values(source: LabelSource, table: ClassTable, cfg: LabelsConfig, pred: Path) -> None:
    """Every label value must be a class of the prediction's table or an ignore value."""
    if source.kind == "raster":
        try:
            table.raster_values()
        except ValueError as exc:
            raise UserError(
                f"The prediction {pred} has a class table with non-numeric label values ({exc}), so a label "
                f"raster cannot be matched to it. Evaluate against the vector labels it was trained on."
            ) from None
        what = f"the label raster {source.path}"
        fix = (
            "Labels and prediction must use the same classes: recode the labels (e.g. gdal_calc.py), or set "
            "those pixels to the labels' nodata value to ignore them."
        )
    else:
        field = source.field  # type: ignore[attr-defined]
        what = f"field {field!r} of the vector labels {source.path}"
        fix = "Recode the field, or name the field that holds these classes with --label-field."
    check_label_values(
        source.value_counts(),
        table,
        what,
        ignore_values=cfg.ignore_values,
        table_name=f"the class table of the prediction {pred}",
        fix=fix,
    )


def evaluate_scene(
    pred: Path,
    labels: Path,
    *,
    label_field: str | None = None,
    reproject: bool = False,
    all_touched: bool = False,
    out: Path | None = None,
    as_json: bool = False,
    window: int = DEFAULT_WINDOW,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Metrics of a predicted class mask against labels over the whole scene; writes the report into ``out``
    (refused if it holds a report, unless ``overwrite``; default ``<mask stem>_vs_<labels stem>/`` next to
    the mask), prints the table (and the JSON with ``as_json``)."""
    from rsseg_cli.evaluation.confusion import ConfusionMatrix
    from rsseg_cli.evaluation.metrics import compute_metrics
    from rsseg_cli.evaluation.report import print_metrics, write_report
    from rsseg_cli.progress import progress

    pred, labels = Path(pred), Path(labels)
    if window < 1:
        raise ValueError(f"window must be positive, got {window}")
    raw_table, lut = _prediction_classes(pred)
    out = report_dir(pred, labels, out, overwrite)
    table = _class_table(raw_table, pred)
    names = table.names
    k = len(names)
    scene = describe_scene(pred, pixel_space=True, what="prediction")

    # 255 is the ignore index of every rsseg label raster; unless a class really uses it, it means unlabeled.
    ignore_values = [] if IGNORE_INDEX in _safe_raster_values(table) else [IGNORE_INDEX]
    cfg = LabelsConfig(
        field=label_field, all_touched=all_touched, reproject=reproject, ignore_values=ignore_values
    )
    source = _open_labels(labels, scene, cfg)
    _check_label_values(source, table, cfg, pred)
    source.prepare(table, cfg)

    grid = window_grid(scene.height, scene.width, window, window, "pad")
    cm = ConfusionMatrix(k)
    unpredicted = 0
    invalid_pred = 0
    labeled = 0
    reader = source.reader()
    try:
        with rasterio.open(pred) as src, progress("evaluate", len(grid), "windows") as bar:
            for gw in grid:
                inner = gw.inner(scene.height, scene.width)
                h, w = int(inner.height), int(inner.width)
                data, valid = read_window(src, scene, inner)
                raw = data[0]
                target = reader.read(gw)[:h, :w]
                has_label = target != IGNORE_INDEX
                no_pred = ~valid | (raw == MASK_NODATA)
                p = lut[raw]
                p[no_pred] = IGNORE_INDEX
                unknown_pred = (p == IGNORE_INDEX) & ~no_pred
                labeled += int(has_label.sum())
                unpredicted += int((has_label & no_pred).sum())
                invalid_pred += int((has_label & unknown_pred).sum())
                # Unpredicted and unknown predictions are >= K: the matrix leaves them out (never class 0).
                cm.update(p, target)
                bar.advance(1)
    finally:
        reader.close()

    metrics = compute_metrics(cm.matrix, names)
    metrics.update(
        {
            "pred": str(pred),
            "labels": str(labels),
            "labels_kind": source.kind,
            "labels_resampled": bool(source.kind == "raster" and getattr(source, "reproject", False)),
            "scene_pixels": scene.height * scene.width,
            "labeled_pixels": labeled,
            "ignored_pixels": cm.ignored,
            "unpredicted_pixels": unpredicted,
            "invalid_prediction_pixels": invalid_pred,
            "windows": len(grid),
            "window": window,
        }
    )
    if unpredicted:
        log.warning(
            "%d labeled pixels (%.2f%% of the labeled pixels) have no prediction (mask nodata) and are left "
            "out of the metrics; they are reported as unpredicted_pixels.",
            unpredicted,
            100.0 * unpredicted / max(labeled, 1),
        )
    if invalid_pred:
        log.warning(
            "%d labeled pixels hold mask values that are not in the prediction's class table; they are left "
            "out of the metrics and reported as invalid_prediction_pixels.",
            invalid_pred,
        )
    if metrics["pixels"] == 0:
        _no_common_pixel(pred, labels, scene, labeled)

    colors = [c.color for c in table.classes]
    paths = write_report(out, metrics, cm.matrix, names, colors, title=f"{pred.name} vs {labels.name}")
    print_metrics(metrics, title=f"{pred} vs {labels} ({metrics['pixels']:,} px)")
    log.info("report written to %s", paths["metrics"].parent)
    if as_json:
        print(json.dumps(metrics, indent=2))
    return metrics


def _no_common_pixel(pred: Path, labels: Path, scene: SceneInfo, labeled: int) -> None:
    """No pixel has both a label and a prediction: every metric would be undefined, so this is an error
    that names both extents (nothing is written)."""
    from rasterio.transform import array_bounds

    from rsseg_cli.data.labels import _bounds_text, _crs_name

    pred_extent = _bounds_text(array_bounds(scene.height, scene.width, scene.transform))
    try:
        with rasterio.open(labels) as src:
            bounds, crs = tuple(src.bounds), src.crs
    except rasterio.errors.RasterioIOError:
        frame = read_vector(labels)
        bounds, crs = tuple(frame.total_bounds), frame.crs
    why = (
        "the labels have no labeled pixel where the prediction lies"
        if labeled == 0
        else f"all {labeled:,} labeled pixels fall where the mask has no prediction (nodata)"
    )
    raise UserError(
        f"No pixel has both a prediction in {pred} and a label in {labels}, so every metric would be "
        f"undefined: {why}. Prediction extent {pred_extent} in {_crs_name(scene.crs)}; labels extent "
        f"{_bounds_text(bounds)} in {_crs_name(crs)}. Check that the labels belong to this scene (and declare "
        "the right CRS), or evaluate the mask predicted for the labels' area."
    )


def _safe_raster_values(table: ClassTable) -> list[int]:
    try:
        return table.raster_values()
    except ValueError:
        return []
