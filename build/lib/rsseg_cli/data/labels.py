"""Label sources for a scene: a class raster on the scene's grid, or vector polygons rasterized per window.

Both give, for a grid window, a uint8 array of class ids with 255 where a pixel is unlabeled or ignored.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from pathlib import Path
from typing import Protocol

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from rsseg_cli.config import IGNORE_INDEX, ClassSpec, LabelsConfig
from rsseg_cli.data.classes import ClassTable, ValueMap, check_label_values
from rsseg_cli.errors import UserError
from rsseg_cli.geo.class_raster import CLASS_TAG, class_table_from_tag, read_colormap, rgb_to_hex
from rsseg_cli.geo.grid import GridWindow
from rsseg_cli.geo.raster import SceneInfo, as_raster_path, damaged, open_raster, same_grid
from rsseg_cli.geo.sources import GdalPath, explain_open_failure
from rsseg_cli.geo.vector import read_vector

# rasterize() burns polygons into an in-memory dataset of its own, which some GDAL builds report as "not
# georeferenced" from the reader threads: a warning about rasterio's internals, not about the user's files.
warnings.filterwarnings("ignore", category=NotGeoreferencedWarning, module=r"rasterio\.features")

log = logging.getLogger("rsseg")

VECTOR_SUFFIXES = {".gpkg", ".geojson", ".json", ".shp", ".fgb", ".parquet", ".gml", ".kml", ".sqlite"}


class LabelReader(Protocol):
    def read(self, gw: GridWindow) -> np.ndarray: ...
    def close(self) -> None: ...


class LabelSource(Protocol):
    path: Path | GdalPath  # a local file, or a URL / object-store / /vsi path GDAL opens as it is
    kind: str

    def value_counts(self) -> Counter: ...
    def inferred_classes(self, counts: Counter) -> list[ClassSpec]: ...
    def prepare(self, table: ClassTable, cfg: LabelsConfig) -> None: ...
    def reader(self) -> LabelReader: ...


def label_source(path: Path | str, scene: SceneInfo, cfg: LabelsConfig) -> LabelSource:
    from rsseg_cli.data.label_areas import merged_vector_labels, split_label_files

    if len(files := split_label_files(path)) > 1:  # --labels OLD.gpkg+NEW.gpkg
        return merged_vector_labels(files, scene, cfg)
    path = as_raster_path(path)
    if path.suffix.lower() in VECTOR_SUFFIXES:
        return VectorLabels(path, scene, cfg)
    return RasterLabels(path, scene, cfg)


# --------------------------------------------------------------------------------------------------
# Raster labels


class RasterLabels:
    kind = "raster"

    def __init__(self, path: Path | GdalPath, scene: SceneInfo, cfg: LabelsConfig):
        self.path = path
        self.scene = scene
        self.cfg = cfg
        with open_raster(path, "label raster") as src:
            if src.count != 1:
                raise UserError(
                    f"The label raster {path} has {src.count} bands; it must have one band of class values."
                )
            # Float class maps (R, ArcGIS, classifiers) are read as integers if every value is whole.
            self.floating = bool(np.issubdtype(np.dtype(src.dtypes[0]), np.floating))
            self.dtype = src.dtypes[0]
            crs = src.crs if src.crs is not None and scene.crs is not None else None
            self.reproject = not same_grid(scene, crs, src.transform, (src.height, src.width))
            if self.reproject and not cfg.reproject:
                raise UserError(
                    f"The label raster {path} is not on the grid of the scene {scene.path}: "
                    f"labels {src.width}x{src.height} px, CRS {_crs_name(src.crs)}, pixel {_res(src.transform)} "
                    f"at ({src.transform.c:g}, {src.transform.f:g}); scene {scene.width}x{scene.height} px, "
                    f"CRS {_crs_name(scene.crs)}, pixel {_res(scene.transform)} at "
                    f"({scene.transform.c:g}, {scene.transform.f:g}). Resample the labels onto the scene grid, "
                    "or let rsseg do it (nearest neighbour) with --set tile.labels.reproject=true."
                )
            if self.reproject and (src.crs is None or scene.crs is None):
                raise UserError(
                    f"The label raster {path} is on another grid than {scene.path} and one of them has no CRS, "
                    "so it cannot be reprojected. Give both the same grid."
                )
            self.nodata = src.nodata
            self.tag_classes = class_table_from_tag(src.tags().get(CLASS_TAG))
            self.colormap = read_colormap(src)
        self.value_map: ValueMap | None = None

    def value_counts(self) -> Counter:
        """Pixel count per label value over the whole raster, read in strips of about 4 M pixels. Float
        values must be whole numbers (checked per strip); they are counted as integers."""
        counts: Counter = Counter()
        fractional: set[float] = set()
        n_fractional = 0
        with rasterio.open(self.path) as src:
            small = src.dtypes[0] in ("uint8", "uint16")
            totals = np.zeros(256 if src.dtypes[0] == "uint8" else 65536, np.int64) if small else None
            strip = max(1, (4 << 20) // max(1, src.width))
            for row in range(0, src.height, strip):
                win = Window(0, row, src.width, min(strip, src.height - row))
                try:
                    values = src.read(1, window=win)
                    valid = src.read_masks(1, window=win) > 0
                except RasterioIOError as exc:
                    raise damaged(self.path, exc) from None
                if totals is not None:
                    totals += np.bincount(values[valid], minlength=len(totals))
                    continue
                values = values[valid]
                if self.floating:
                    values = values[np.isfinite(values)]  # NaN is no label, like nodata
                    whole = values == np.floor(values)
                    if not whole.all():
                        odd = values[~whole]
                        n_fractional += odd.size
                        if len(fractional) < 5:
                            fractional.update(np.unique(odd)[:5].tolist())
                        values = values[whole]
                    values = values.astype(np.int64)
                vals, n = np.unique(values, return_counts=True)
                counts.update(dict(zip(vals.tolist(), n.tolist())))
            if totals is not None:
                present = np.flatnonzero(totals)
                counts.update(dict(zip(present.tolist(), totals[present].tolist())))
        if n_fractional:
            shown = ", ".join(f"{v:g}" for v in sorted(fractional)[:5])
            raise UserError(
                f"The label raster {self.path} holds {self.dtype} values that are not whole numbers "
                f"({n_fractional:,} pixels, e.g. {shown}); class labels must be integers. A float class map "
                "is accepted when every value is whole; round or reclassify it (e.g. gdal_calc.py), or set "
                "those pixels to its nodata value."
            )
        if self.floating:
            log.info(
                "the label raster %s holds %s values, all whole numbers: read as integer class values.",
                self.path,
                self.dtype,
            )
        return counts

    def inferred_classes(self, counts: Counter) -> list[ClassSpec]:
        ignore = {int(v) for v in self.cfg.ignore_values}
        values = sorted(v for v in counts if v not in ignore)
        named = _classes_by_value(self.tag_classes)
        specs = []
        for i, v in enumerate(values):
            name = named.get(v, {}).get("name") or f"class_{v}"
            color = named.get(v, {}).get("color")
            if color is None and v in self.colormap:
                color = rgb_to_hex(self.colormap[v])
            specs.append(ClassSpec(id=i, name=name, color=color, value=v if v != i else None))
        return specs

    def prepare(self, table: ClassTable, cfg: LabelsConfig) -> None:
        self.value_map = table.lookup(cfg.ignore_values)

    def reader(self) -> _RasterLabelReader:
        assert self.value_map is not None, "prepare() first"
        return _RasterLabelReader(self)


class _RasterLabelReader:
    def __init__(self, source: RasterLabels):
        self.source = source
        self.src = rasterio.open(source.path)
        self.ds = self.src
        if source.reproject:
            scene = source.scene
            self.ds = WarpedVRT(
                self.src,
                crs=scene.crs,
                transform=scene.transform,
                width=scene.width,
                height=scene.height,
                resampling=Resampling.nearest,
            )

    def read(self, gw: GridWindow) -> np.ndarray:
        scene = self.source.scene
        out = np.full((gw.height, gw.width), IGNORE_INDEX, dtype=np.uint8)
        inner = gw.inner(scene.height, scene.width)
        if inner.width <= 0 or inner.height <= 0:
            return out
        try:
            values = self.ds.read(1, window=inner)
            valid = self.ds.read_masks(1, window=inner) > 0
        except RasterioIOError as exc:
            raise damaged(self.source.path, exc) from None
        if self.source.floating:  # whole numbers (checked by value_counts); NaN is no label
            valid &= np.isfinite(values)
            values = np.where(valid, values, 0).astype(np.int64)
        assert self.source.value_map is not None
        ids = self.source.value_map(values)
        ids[~valid] = IGNORE_INDEX
        out[: inner.height, : inner.width] = ids
        return out

    def close(self) -> None:
        if self.ds is not self.src:
            self.ds.close()
        self.src.close()


def _crs_name(crs) -> str:
    if crs is None:
        return "none"
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else (crs.to_string()[:60] or "custom")


def _res(t) -> str:
    return f"{abs(t.a):g}x{abs(t.e):g}"


def _classes_by_value(table: list[dict] | None) -> dict[int, dict]:
    """Entries of a class-raster table keyed by the raster value they name: their `value`, else their id."""
    try:
        return {int(c["id"] if c["value"] is None else c["value"]): c for c in table or []}
    except (ValueError, TypeError):
        return {}


# --------------------------------------------------------------------------------------------------
# Vector labels


class VectorLabels:
    kind = "vector"

    def __init__(self, path: Path | GdalPath, scene: SceneInfo, cfg: LabelsConfig):

        self.path = path
        self.scene = scene
        self.cfg = cfg
        if not path.exists():
            raise UserError(f"The vector labels {path} do not exist. Check the path.")
        try:
            frame = read_vector(path)
        except Exception as exc:  # pyogrio raises several types for unreadable files
            if isinstance(path, GdalPath):
                raise explain_open_failure(str(path), str(exc), "vector labels") from None
            raise UserError(
                f"The vector labels {path} could not be read ({str(exc).strip()}). "
                "Pass a GeoPackage, GeoJSON or Shapefile."
            ) from None
        if scene.crs is None:
            raise UserError(
                f"Vector labels {path} need a georeferenced scene, but {scene.path} has no CRS. "
                "Use a label raster on the scene grid instead."
            )
        if frame.crs is None:
            raise UserError(
                f"The vector labels {path} have no CRS, so they cannot be placed on {scene.path}. "
                "Assign one (ogr2ogr -a_srs EPSG:xxxx)."
            )
        columns = [c for c in frame.columns if c != frame.geometry.name]
        field = cfg.field
        if field is None:
            field = next((c for c in ("class", "class_id", "label", "classname") if c in columns), None)
            if field is None:
                raise UserError(
                    f"The vector labels {path} have no 'class' field and none was named. Name the field that "
                    f"holds the class with --label-field (available: {', '.join(columns) or 'none'})."
                )
        elif field not in columns:
            raise UserError(
                f"The vector labels {path} have no field {field!r}. Available fields: "
                f"{', '.join(columns) or 'none'}. Name the class field with --label-field."
            )
        self.field = field
        frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
        frame = frame[frame[field].notna()]
        source_crs, source_bounds = frame.crs, frame.total_bounds
        frame = frame.to_crs(scene.crs)
        frame["geometry"] = frame.geometry.make_valid()
        if len(frame):
            _check_overlap(path, frame.total_bounds, source_bounds, source_crs, scene)
        self.frame = frame
        self.shapes: list | None = None
        from rsseg_cli.data.label_areas import areas_on_scene

        # --label-areas: squares labeled completely (background inside them), in the scene's CRS
        self.areas, self.area_files = areas_on_scene(cfg.areas, scene) if cfg.areas else (None, set())

    def value_counts(self) -> Counter:
        return Counter(self.frame[self.field].astype(str).tolist())

    def inferred_classes(self, counts: Counter) -> list[ClassSpec]:
        ignore = {str(v) for v in self.cfg.ignore_values}
        values = sorted((v for v in counts if v not in ignore), key=_natural_key)
        specs = []
        for i, v in enumerate(values):
            name = f"class_{v}" if v.lstrip("-").isdigit() else v
            specs.append(ClassSpec(id=i, name=name, value=v if str(i) != v else None))
        return specs

    def prepare(self, table: ClassTable, cfg: LabelsConfig) -> None:
        ignore = {str(v) for v in cfg.ignore_values}
        frame = self.frame
        values = frame[self.field].astype(str)
        check_label_values(
            Counter(values.tolist()),
            table,
            f"field {self.field!r} of the vector labels {self.path}",
            ignore_values=cfg.ignore_values,
        )
        ids = values.map(lambda v: IGNORE_INDEX if v in ignore else table.match_vector_value(v))
        frame = frame.assign(_class=ids.astype(int).to_numpy())
        if cfg.burn_order == "largest-first":
            # Later shapes win when burning: drawing small polygons last keeps them visible inside large ones.
            frame = frame.iloc[np.argsort(-frame.geometry.area.to_numpy(), kind="stable")]
        self.frame = frame.reset_index(drop=True)
        self.tree = self.frame.sindex
        pixel = max(self.scene.res)
        self.edges = None
        if self.areas is not None:
            self.area_tree = self.areas.sindex
        if cfg.ignore_buffer > 0:
            self.edges = self.frame.geometry.boundary.buffer(cfg.ignore_buffer * pixel)
            self.edge_tree = self.edges.sindex

    def reader(self) -> _VectorLabelReader:
        return _VectorLabelReader(self)


class _VectorLabelReader:
    def __init__(self, source: VectorLabels):
        self.source = source

    def read(self, gw: GridWindow) -> np.ndarray:
        from rasterio.features import rasterize
        from shapely.geometry import box

        src = self.source
        scene = src.scene
        tf = window_transform(gw.window, scene.transform)
        fill = IGNORE_INDEX if src.cfg.background is None else src.cfg.background
        shape = (gw.height, gw.width)
        bounds = box(*rasterio.windows.bounds(gw.window, scene.transform))
        if src.cfg.areas:  # background only inside the label areas; polygons are drawn over it
            from rsseg_cli.data.label_areas import area_base

            out = area_base(src, bounds, shape, tf)
        else:
            out = np.full(shape, fill, dtype=np.uint8)
        hits = np.sort(src.tree.query(bounds, predicate="intersects"))
        if len(hits):
            shapes = zip(src.frame.geometry.to_numpy()[hits], src.frame["_class"].to_numpy()[hits])
            out = rasterize(shapes, out=out, transform=tf, all_touched=src.cfg.all_touched, dtype="uint8")
        if src.edges is not None:
            edge_hits = src.edge_tree.query(bounds, predicate="intersects")
            if len(edge_hits):
                edge_shapes = ((g, 1) for g in src.edges.to_numpy()[edge_hits])
                edge = rasterize(edge_shapes, out_shape=shape, transform=tf, fill=0, dtype="uint8")
                out[edge > 0] = IGNORE_INDEX
        # Pixels beyond the scene edge are never labeled.
        inner = gw.inner(scene.height, scene.width)
        out[inner.height :, :] = IGNORE_INDEX
        out[:, inner.width :] = IGNORE_INDEX
        return out

    def close(self) -> None:
        pass


def _bounds_text(bounds) -> str:
    x0, y0, x1, y1 = (float(v) for v in bounds)
    return f"({x0:.6g}, {y0:.6g}) - ({x1:.6g}, {y1:.6g})"


def _check_overlap(path: Path, bounds, source_bounds, source_crs, scene: SceneInfo) -> None:
    """Vector labels whose extent (in the scene CRS) misses the scene's extent would label nothing."""
    from rasterio.transform import array_bounds

    west, south, east, north = array_bounds(scene.height, scene.width, scene.transform)
    x0, y0, x1, y1 = (float(v) for v in bounds)
    finite = all(np.isfinite(v) for v in (x0, y0, x1, y1))
    if finite and x0 < east and x1 > west and y0 < north and y1 > south:
        return
    in_scene_crs = (
        f"{_bounds_text(bounds)} in the scene's CRS" if finite else "outside the area the scene's CRS covers"
    )
    raise UserError(
        f"The vector labels {path} do not overlap {scene.path}, so they would label nothing: labels extent "
        f"{_bounds_text(source_bounds)} in {_crs_name(source_crs)} ({in_scene_crs}); scene extent "
        f"{_bounds_text((west, south, east, north))} in {_crs_name(scene.crs)}. Check that the labels belong "
        "to this scene and that both files declare the right CRS (a wrong CRS shifts the labels away)."
    )


def _natural_key(v: str) -> tuple:
    return (0, int(v), "") if v.lstrip("-").isdigit() else (1, 0, v)
