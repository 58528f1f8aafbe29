"""Scenes: opening and checking rasters, band selection, and windowed reads with a validity mask.

Validity never comes from "0 means nodata": it comes from GDAL's mask of each selected band (per-band
nodata, an alpha band, or an internal/external mask), non-finite values of float rasters, and a nodata the
user declares (--nodata) for scenes whose file does not say. A scene that declares nothing but has a likely
fill collar gets a warning (geo/collar.py).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.transform import Affine
from rasterio.windows import Window

from rsseg_cli.errors import UserError
from rsseg_cli.geo.nodata import check_declared, format_nodata
from rsseg_cli.geo.sources import GdalPath, SceneSource, check_range_support, explain_open_failure, is_remote

log = logging.getLogger("rsseg")

SUPPORTED_DTYPES = ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64")


@dataclass
class SceneInfo:
    """What tiling and inference need to know about one scene; cheap to pass to worker threads."""

    path: Path | GdalPath  # what rasterio opens: a local file, or a /vsi path / STAC VRT of a remote scene
    name: str
    height: int
    width: int
    count: int
    dtype: str
    crs: CRS | None
    transform: Affine
    band_indexes: list[int]  # 1-based, in model order
    band_names: list[str]
    nodata: list[float | None]  # per selected band
    mask_kind: str  # "all_valid" | "nodata" | "mask": how validity is derived
    res: tuple[float, float] = field(default=(1.0, 1.0))
    nodata_source: str = "file"  # "file": the file's tags/mask; "declared": --nodata (on top of a mask)
    given: str | None = (
        None  # what the user wrote, for a URL, /vsi path or STAC Item (dataset.yaml records it)
    )

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def crs_wkt(self) -> str | None:
        return self.crs.to_wkt() if self.crs else None

    @property
    def epsg(self) -> int | None:
        return self.crs.to_epsg() if self.crs else None


def as_raster_path(path: Path | str) -> Path | GdalPath:
    """A local path as a Path; a URL, object-store or /vsi path as a GdalPath (pathlib would fold '//')."""
    text = str(path)
    if is_remote(text):
        from rsseg_cli.geo.sources import gdal_uri

        return GdalPath(gdal_uri(text))
    return Path(path)


def open_raster(path: Path | str, what: str = "scene") -> rasterio.DatasetReader:
    """Open a raster or explain why it cannot be one. Remote paths are not checked locally: GDAL's error on
    opening them is explained (not found, no range requests, credentials)."""
    path = as_raster_path(path)
    remote = isinstance(path, GdalPath)
    if not remote and not path.exists():
        raise UserError(f"The {what} {path} does not exist. Check the path.")
    if not remote and path.is_dir():
        raise UserError(f"The {what} {path} is a folder; pass a raster file such as a GeoTIFF.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(path)
    except RasterioIOError as exc:
        if remote:
            raise explain_open_failure(str(path), str(exc), what) from None
        raise UserError(
            f"The {what} {path} is not a raster GDAL can read ({str(exc).strip()}). "
            "Pass a GeoTIFF or another GDAL raster format."
        ) from None
    if remote:
        try:
            check_range_support(str(path), what)
        except UserError:
            src.close()
            raise
    return src


# GDAL colour interpretation names a band when it has no description (an RGB GeoTIFF, a JPEG). Only these
# three: names such as "B4" mean red on Landsat 8 but green on Sentinel-2, so sensors are never guessed.
_COLOR_NAMES = {ColorInterp.red: "red", ColorInterp.green: "green", ColorInterp.blue: "blue"}


def _band_names(src: rasterio.DatasetReader) -> list[str]:
    """Band descriptions, else red/green/blue from the colour interpretation, else b1, b2 ..."""
    names = [
        d or _COLOR_NAMES.get(ci) or f"b{i}"
        for i, (d, ci) in enumerate(zip(src.descriptions, src.colorinterp), start=1)
    ]
    # A described band named like an interpreted one ("red" twice) keeps colorinterp from naming a second.
    lowered = [n.lower() for n in names]
    return [
        n if d or lowered.count(n) == 1 else f"b{i}"
        for i, (n, d) in enumerate(zip(names, src.descriptions), start=1)
    ]


def select_bands(
    src: rasterio.DatasetReader,
    bands: list[int | str] | None,
    path: Path | str,
    setting: str = "tile.bands or --bands",
) -> list[int]:
    """Resolve a band selection (1-based indices or names) to 1-based indices; `setting` names where the
    selection came from, for the messages."""
    names = _band_names(src)
    if bands is None:
        # An alpha band is a mask, not data.
        chosen = [i for i, ci in enumerate(src.colorinterp, start=1) if ci != ColorInterp.alpha]
        return chosen or list(range(1, src.count + 1))
    chosen = []
    lowered = [n.lower() for n in names]
    for b in bands:
        if isinstance(b, int) or (isinstance(b, str) and b.isdigit()):
            idx = int(b)
            if not 1 <= idx <= src.count:
                raise UserError(
                    f"Band {idx} was selected but {path} has bands 1..{src.count} ({', '.join(names)}). "
                    f"Fix the band selection ({setting}: 1-based indices or band names)."
                )
        else:
            # b1, b2 ... stay valid for bands that colour interpretation has since named red, green, blue.
            alias = b.lower()[1:] if b.lower().startswith("b") and b[1:].isdigit() else None
            if b.lower() not in lowered and alias and 1 <= int(alias) <= src.count:
                chosen.append(int(alias))
                continue
            if b.lower() not in lowered:
                raise UserError(
                    f"Band {b!r} was selected but {path} has the bands {', '.join(names)}. "
                    f"Fix the band selection ({setting}: 1-based indices or band names)."
                )
            idx = lowered.index(b.lower()) + 1
        chosen.append(idx)
    if len(set(chosen)) != len(chosen):
        raise UserError(f"The band selection {bands} names a band twice; list each band once.")
    return chosen


def gdal_type(dtype: str) -> str:
    """numpy's name of a pixel type -> GDAL's (for gdal_translate -ot, VRT dataType): uint16 -> UInt16."""
    if dtype == "uint8":
        return "Byte"
    return dtype.replace("uint", "UInt").replace("int", "Int").replace("float", "Float")


def mixed_dtypes_message(
    names: list[str], dtypes: list[str], paths: list[Path] | None = None, scene: Path | GdalPath | None = None
) -> str:
    """Why bands of several pixel types are refused and how to convert them: the odd bands against the type
    most bands have (GDAL, a VRT in particular, allows a type per band; rsseg reads one per scene)."""
    counts = {d: dtypes.count(d) for d in dtypes}
    usual = max(counts, key=lambda d: (counts[d], -dtypes.index(d)))
    odd = [i for i, d in enumerate(dtypes) if d != usual]
    what = " and ".join(f"band {names[i]}" for i in odd[:3]) + (" ..." if len(odd) > 3 else "")
    types = sorted({dtypes[i] for i in odd})
    verb = "is" if len(odd) == 1 else "are"
    text = (
        f"{what} {verb} {'/'.join(types)} while the others are {usual}: rsseg reads scenes of one pixel type"
    )
    try:
        wide = str(np.result_type(*dtypes))
    except TypeError:
        wide = "float64"
    wide = wide if wide in SUPPORTED_DTYPES else "float64"
    if paths is not None:  # separate files (rsseg stack): convert the odd ones
        src = paths[odd[0]]
        return (
            f"{text}; convert with gdal_translate -ot {gdal_type(usual)} {src} {src.stem}_{usual}.tif "
            f"(add -scale if its values exceed {usual}), then stack the converted file."
        )
    out = f"{scene.stem}_{wide}.tif" if scene is not None else f"scene_{wide}.tif"
    return (
        f"{text}; convert the scene to one type, e.g. gdal_translate -ot {gdal_type(wide)} {scene or 'SCENE'} "
        f"{out} (keeps every value); for a VRT of band files, you can instead convert the file of {what} to "
        f"{usual} (gdal_translate -ot {gdal_type(usual)}, with -scale if its values exceed {usual}) and "
        "stack again (rsseg stack)."
    )


def _mask_kind(src: rasterio.DatasetReader, indexes: list[int], declared: bool = False) -> str:
    flags = [src.mask_flag_enums[i - 1] for i in indexes]
    if declared and all(set(f) <= {MaskFlags.all_valid, MaskFlags.nodata} for f in flags):
        return "nodata"  # the declared values replace the file's nodata tags
    if all(f == [MaskFlags.all_valid] for f in flags):
        return "all_valid"
    if all(MaskFlags.nodata in f for f in flags):
        return "nodata"  # computed from the pixel values in numpy: no second read through GDAL
    return "mask"


def _declare(
    src: rasterio.DatasetReader, path: Path, indexes: list[int], file_kind: str, declared: list[float]
) -> list[float]:
    """Check a declared nodata against the scene and say which validity is used instead of the file's."""
    names = [_band_names(src)[i - 1] for i in indexes]
    values = check_declared(declared, src.dtypes[0], names, path)
    file_nodata = [src.nodatavals[i - 1] for i in indexes]
    shown = format_nodata(values)
    if file_kind == "all_valid":
        log.info("%s: nodata %s (declared with --nodata; the file has no nodata value)", path, shown)
    elif file_kind == "mask":
        log.info("%s: nodata %s (declared) is used in addition to the file's mask or alpha band", path, shown)
    else:
        before = format_nodata([None if v is None else float(v) for v in file_nodata])
        log.info("%s: nodata %s (declared) is used instead of the file's nodata %s", path, shown, before)
    return values


def describe_scene(
    path: Path | str | SceneSource,
    bands: list[int | str] | None = None,
    pixel_space: bool = False,
    what: str = "scene",
    nodata: list[float] | None = None,
) -> SceneInfo:
    """Open, check and describe a scene; raises UserError with a fix for anything unusable. `nodata`: values
    declared by the user (one, or one per selected band) that replace the file's nodata tags or add to its
    mask. A scene (not a prediction) without any, whose edge looks like a fill collar, gets a warning.
    A SceneSource names the scene (a URL's stem, a STAC Item's id); a path is named by its stem."""
    source = path if isinstance(path, SceneSource) else None
    path = source.path if source is not None else as_raster_path(path)
    given = source.given if source is not None and source.uri != str(source.local) else None
    with open_raster(path, what) as src:
        if len(set(src.dtypes)) > 1:
            detail = mixed_dtypes_message(_band_names(src), list(src.dtypes), scene=path)
            raise UserError(f"The {what} {path} mixes pixel types: {detail}")
        if src.dtypes[0] not in SUPPORTED_DTYPES:
            raise UserError(
                f"The {what} {path} is {src.dtypes[0]}; rsseg reads {', '.join(SUPPORTED_DTYPES)}. Convert "
                f"it, e.g. gdal_translate -ot Float32 {path} {path.stem}_float32.tif."
            )
        georeferenced = src.crs is not None and src.transform != Affine.identity()
        if not georeferenced and not pixel_space:
            raise UserError(
                f"The {what} {path} has no coordinate reference system, so chips and predictions could not "
                "be placed on a map. Assign one (gdal_edit.py -a_srs EPSG:xxxx) or, if this is pixel-space "
                "data such as a photo tile, pass --pixel-space."
            )
        indexes = select_bands(src, bands, path)
        kind = _mask_kind(src, indexes)
        if nodata is not None:
            values: list[float | None] = list(_declare(src, path, indexes, kind, nodata))
            kind = _mask_kind(src, indexes, declared=True)
        else:
            values = [None if v is None else float(v) for v in (src.nodatavals[i - 1] for i in indexes)]
            if kind == "all_valid" and what == "scene":
                from rsseg_cli.geo.collar import warn_collar

                warn_collar(src, indexes, path)
        return SceneInfo(
            path=path,
            name=source.name if source is not None else path.stem,
            height=src.height,
            width=src.width,
            count=src.count,
            dtype=src.dtypes[0],
            crs=src.crs if georeferenced else None,
            transform=src.transform,
            band_indexes=indexes,
            band_names=[_band_names(src)[i - 1] for i in indexes],
            nodata=values,
            mask_kind=kind,
            res=(abs(src.res[0]), abs(src.res[1])),
            nodata_source="file" if nodata is None else "declared",
            given=given if given is not None or not isinstance(path, GdalPath) else str(path),
        )


def damaged(path: str | Path, exc: Exception) -> UserError:
    """A raster that opens but whose pixels cannot be read: truncated by an interrupted copy, or corrupt."""
    detail = str(exc.__cause__ or exc.__context__ or exc).strip()
    return UserError(
        f"{path} is damaged: its header opens but its pixels cannot be read (GDAL: {detail}). The "
        "file is probably truncated (an interrupted download or copy) or corrupt. Copy or export it again; "
        "`gdalinfo -checksum` on it shows whether every block reads."
    )


def read_window(
    src: rasterio.DatasetReader, scene: SceneInfo, window: Window
) -> tuple[np.ndarray, np.ndarray]:
    """Read `window` (which may hang over the scene edge) as (bands, h, w) data and an (h, w) validity mask.

    Pixels outside the scene are zero and invalid. Only the part inside the scene is read, which is much
    faster than GDAL's boundless reads through a virtual warped dataset.
    """
    h, w = int(window.height), int(window.width)
    r0, c0 = int(window.row_off), int(window.col_off)
    ih = max(0, min(h, scene.height - r0))
    iw = max(0, min(w, scene.width - c0))
    data = np.zeros((len(scene.band_indexes), h, w), dtype=scene.dtype)
    valid = np.zeros((h, w), dtype=bool)
    if ih == 0 or iw == 0:
        return data, valid
    inner = Window(c0, r0, iw, ih)
    try:
        block = src.read(scene.band_indexes, window=inner)
    except RasterioIOError as exc:
        raise damaged(src.name, exc) from None
    data[:, :ih, :iw] = block
    if scene.mask_kind == "all_valid":
        v = np.ones((ih, iw), dtype=bool)
    elif scene.mask_kind == "nodata":
        v = _not_nodata(block, scene.nodata)
    else:
        try:
            v = (src.read_masks(scene.band_indexes, window=inner) > 0).all(axis=0)
        except RasterioIOError as exc:
            raise damaged(src.name, exc) from None
        if scene.nodata_source == "declared":
            v &= _not_nodata(block, scene.nodata)
    if np.issubdtype(block.dtype, np.floating):
        v &= np.isfinite(block).all(axis=0)
    valid[:ih, :iw] = v
    return data, valid


def _not_nodata(block: np.ndarray, nodata: list[float | None]) -> np.ndarray:
    """Pixels that hold no band's nodata value, for (bands, h, w) `block`."""
    v = np.ones(block.shape[1:], dtype=bool)
    for band, nd in zip(block, nodata):
        if nd is None:
            continue
        v &= ~np.isnan(band) if math.isnan(nd) else band != nd
    return v


def same_crs(a: CRS | None, b: CRS | None) -> bool:
    """Whether two CRSs are the same coordinate system however they are written (an EPSG code, its WKT
    without the code, a PROJ string; axis order aside). Two missing CRSs are the same (pixel space)."""
    if a is None or b is None:
        return a is None and b is None
    if a == b:
        return True
    try:
        from pyproj import CRS as ProjCRS

        return ProjCRS.from_wkt(a.to_wkt()).equals(ProjCRS.from_wkt(b.to_wkt()), ignore_axis_order=True)
    except Exception:  # a CRS pyproj cannot parse is not provably the same
        return False


GRID_TOLERANCE_PX = 1e-3  # corners closer than this share of a pixel are the same place


def same_grid(a: SceneInfo, b_crs: CRS | None, b_transform: Affine, b_shape: tuple[int, int]) -> bool:
    """Whether a raster of shape `b_shape` on (`b_crs`, `b_transform`) has the pixels of scene `a`: the same
    CRS (compared semantically) and every corner within GRID_TOLERANCE_PX of a pixel."""
    if (a.height, a.width) != tuple(b_shape):
        return False
    if not same_crs(a.crs, b_crs):
        return False
    tol = GRID_TOLERANCE_PX * min(abs(r) for r in a.res)
    full = Window(0, 0, a.width, a.height)
    corners = zip(window_footprint(a.transform, full), window_footprint(b_transform, full))
    return all(math.hypot(xa - xb, ya - yb) <= tol for (xa, ya), (xb, yb) in corners)


def window_footprint(transform: Affine, window: Window) -> list[tuple[float, float]]:
    """The four corners of a window in map coordinates (works for rotated transforms too)."""
    r0, c0 = window.row_off, window.col_off
    r1, c1 = r0 + window.height, c0 + window.width
    t = transform
    return [
        (t.a * c + t.b * r + t.c, t.d * c + t.e * r + t.f)
        for c, r in ((c0, r0), (c1, r0), (c1, r1), (c0, r1))
    ]
