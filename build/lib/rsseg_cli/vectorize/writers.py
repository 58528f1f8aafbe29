"""Writing polygons: a GeoPackage layer in the raster CRS, or RFC 7946 GeoJSON in EPSG:4326.

Both writers stream: polygons are appended batch by batch as windows finish, so the output never has to be
held in memory. They write to the temporary name they are given (see rsseg_cli.atomic); the caller renames it
when complete. The layer is created with its full schema before the first batch, so a result with no polygon
is still a valid, empty layer with the right fields (GeoJSON has no schema: an empty FeatureCollection).

Given the class table, a GeoPackage also carries its QGIS style (categorized by class_id, the classes'
colours and names) as the layer's default in its `layer_styles` table, written when the layer is complete;
`write_polygons_qml` writes the same style as a .qml beside any polygon file.
"""

from __future__ import annotations

import json
import logging
import math
import re
import warnings
from collections.abc import Collection
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import shapely
from rasterio.crs import CRS

from rsseg_cli.errors import UserError
from rsseg_cli.geo.gpkg_style import write_default_style
from rsseg_cli.geo.qml import polygons_qml, qml_path
from rsseg_cli.vectorize.measure import Polygons

log = logging.getLogger("rsseg")

LAYER = "polygons"
FORMATS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON"}
# Batches are buffered up to this many features or vertices: every GeoPackage append is a transaction with
# its own overhead, and the buffer must stay small next to one window's work.
FLUSH_FEATURES = 20_000
FLUSH_VERTICES = 1_000_000


def vector_format(out: Path) -> str:
    """The output format chosen by the file extension ("GPKG" or "GeoJSON"), or a UserError.

    rsseg's own temporary names (.NAME.gpkg.partial-PID, see rsseg_cli.atomic) count as NAME.gpkg, so a
    caller that manages the atomic rename itself (predict --vector) can pass its temporary path."""
    out = Path(out)
    partial = re.fullmatch(r"\.(.+)\.partial-\d+", out.name)
    suffix = Path(partial.group(1) if partial else out.name).suffix
    fmt = FORMATS.get(suffix.lower())
    if fmt is None:
        raise UserError(
            f"Cannot write polygons to {out}: the extension {suffix or '(none)'} is not a supported vector "
            "format. Use .gpkg (GeoPackage, in the raster's CRS) or .geojson / .json (GeoJSON, EPSG:4326)."
        )
    if out.is_dir():
        raise UserError(
            f"The vector output {out} is a folder; pass a file name such as {out / 'polygons.gpkg'}."
        )
    return fmt


def check_vector_output(out: Path, crs: CRS | None) -> str:
    """vector_format, and refuse GeoJSON for a mask without a CRS (RFC 7946 GeoJSON is EPSG:4326).
    Cheap: `predict --vector` calls it before inference so that a bad name fails at once."""
    fmt = vector_format(out)
    if crs is None and fmt == "GeoJSON":
        raise UserError(
            f"Cannot write {out}: GeoJSON (RFC 7946) is always in longitude/latitude, but the mask has no CRS, "
            "so its polygons cannot be placed on a map. Write a .gpkg instead (pixel coordinates), or assign "
            "a CRS to the mask (gdal_edit.py -a_srs EPSG:xxxx)."
        )
    return fmt


class GpkgWriter:
    """Appends polygons to one GeoPackage layer in the raster's CRS; with `classes`, close() stores the
    layer's QGIS style in the file."""

    def __init__(self, path: Path, crs: CRS | None, with_prob: bool, classes: list[dict] | None = None):
        self.path = path
        self.crs = crs.to_wkt() if crs is not None else None
        self.with_prob = with_prob
        self.classes = classes
        self._pending: list[tuple[Polygons, list[str]]] = []
        self._count = 0
        self._vertices = 0
        self._write(_frame(_empty(with_prob), self.crs, []), append=False)

    def write(self, polygons: Polygons, names: list[str]) -> None:
        if not len(polygons):
            return
        self._pending.append((polygons, names))
        self._count += len(polygons)
        self._vertices += int(shapely.get_num_coordinates(polygons.geoms).sum())
        if self._count >= FLUSH_FEATURES or self._vertices >= FLUSH_VERTICES:
            self.flush()

    def flush(self) -> None:
        for polygons, names in self._pending:
            self._write(_frame(polygons, self.crs, names), append=True)
        self._pending, self._count, self._vertices = [], 0, 0

    def close(self) -> None:
        self.flush()
        if self.classes:
            style_gpkg(self.path, self.classes)

    def abort(self) -> None:
        self._pending = []

    def _write(self, frame: gpd.GeoDataFrame, append: bool) -> None:
        with warnings.catch_warnings():
            # The temporary name (.NAME.gpkg.partial-PID) does not end in .gpkg, which GDAL warns about; the
            # file is a conforming GeoPackage once renamed.
            warnings.filterwarnings("ignore", message=".*(conform|extension).*", category=RuntimeWarning)
            # A mask without CRS gives polygons without CRS on purpose (logged once by vectorize_mask).
            warnings.filterwarnings("ignore", message="'crs' was not provided", category=UserWarning)
            pyogrio.write_dataframe(
                frame,
                self.path,
                layer=LAYER,
                driver="GPKG",
                geometry_type="Polygon",
                promote_to_multi=False,
                append=append,
            )


class GeoJsonWriter:
    """Streams an RFC 7946 FeatureCollection: EPSG:4326 longitude/latitude, exterior rings counterclockwise,
    no "crs" member. GDAL's GeoJSON driver cannot append without rewriting the file, hence this writer."""

    def __init__(self, path: Path, crs: CRS | None, with_prob: bool, classes: list[dict] | None = None):
        # `classes` is accepted for symmetry with GpkgWriter: GeoJSON cannot hold a style (see
        # write_polygons_qml for the .qml beside it).
        self.path = path
        self.with_prob = with_prob
        self._to_lonlat = (
            pyproj.Transformer.from_crs(pyproj.CRS.from_wkt(crs.to_wkt()), "EPSG:4326", always_xy=True)
            if crs is not None
            else None
        )
        self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._file.write(f'{{"type": "FeatureCollection", "name": "{LAYER}", "features": [\n')
        self._first = True

    def write(self, polygons: Polygons, names: list[str]) -> None:
        if not len(polygons):
            return
        geoms = polygons.geoms
        if self._to_lonlat is not None:
            tr = self._to_lonlat

            def to_lonlat(c: np.ndarray) -> np.ndarray:
                return np.column_stack(tr.transform(c[:, 0], c[:, 1]))

            geoms = shapely.transform(geoms, to_lonlat)
        geoms = shapely.orient_polygons(geoms, exterior_cw=False)
        texts = shapely.to_geojson(geoms)
        name_json = {n: json.dumps(n) for n in set(names)}
        lines = []
        for i, geom in enumerate(texts):
            props = (
                f'"class_id": {int(polygons.class_id[i])}, "class_name": {name_json[names[i]]}, '
                f'"area_m2": {_num(polygons.area_m2[i])}, "perimeter_m": {_num(polygons.perimeter_m[i])}'
            )
            if polygons.mean_prob is not None:
                props += f', "mean_prob": {_num(polygons.mean_prob[i])}'
            lines.append(f'{{"type": "Feature", "properties": {{{props}}}, "geometry": {geom}}}')
        self._file.write(("" if self._first else ",\n") + ",\n".join(lines))
        self._first = False

    def close(self) -> None:
        self._file.write("\n]}\n")
        self._file.close()

    def abort(self) -> None:
        self._file.close()


def open_writer(
    fmt: str, path: Path, crs: CRS | None, with_prob: bool, classes: list[dict] | None = None
) -> GpkgWriter | GeoJsonWriter:
    return (GpkgWriter if fmt == "GPKG" else GeoJsonWriter)(path, crs, with_prob, classes)


def style_gpkg(path: Path, classes: list[dict]) -> None:
    """Store the polygons' QGIS style as the default of the layer in the GeoPackage `path` (complete, not
    yet renamed: the style is part of the atomic output). Idempotent."""
    write_default_style(path, LAYER, polygons_qml(classes), name=f"rsseg {LAYER}",
                        description="rsseg classes: categorized by class_id, class colours and names")  # fmt: skip


def polygons_qml_path(out: Path, taken: Collection[Path] = ()) -> Path | None:
    """Where the .qml of the polygon file `out` goes: beside it (geo.qml.qml_path), or None when that name is
    in `taken`, the styles of other outputs (scene.tif and scene.gpkg would share scene.qml, and the mask's
    paletted style must stay). A GeoPackage then still has its style inside; a GeoJSON opens unstyled."""
    path = qml_path(out)
    if path in {Path(t) for t in taken}:
        log.info("%s: no %s beside it (the style of another output has that name)", out, path.name)
        return None
    return path


def write_polygons_qml(path: Path, classes: list[dict]) -> Path:
    """The polygons' QGIS style as a QML document at `path` (normally a temporary name renamed to
    geo.qml.qml_path(polygon file)); QGIS loads it as the default style of a file-based layer."""
    Path(path).write_text(polygons_qml(classes), encoding="utf-8")
    return Path(path)


def _num(value: float) -> str:
    return repr(float(value)) if math.isfinite(value) else "null"


def _empty(with_prob: bool) -> Polygons:
    return Polygons(
        geoms=np.empty(0, dtype=object),
        class_id=np.empty(0, np.int32),
        area_m2=np.empty(0),
        perimeter_m=np.empty(0),
        mean_prob=np.empty(0) if with_prob else None,
    )


def _frame(polygons: Polygons, crs: str | None, names: list[str]) -> gpd.GeoDataFrame:
    columns = {
        "class_id": polygons.class_id.astype(np.int32),
        "class_name": pd.Series(names, dtype=object),
        "area_m2": polygons.area_m2.astype(np.float64),
        "perimeter_m": polygons.perimeter_m.astype(np.float64),
    }
    if polygons.mean_prob is not None:
        columns["mean_prob"] = polygons.mean_prob.astype(np.float64)
    return gpd.GeoDataFrame(columns, geometry=gpd.GeoSeries(polygons.geoms, crs=crs), crs=crs)
