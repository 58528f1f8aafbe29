"""Writing the sample scene: argument checks, output types and nodata, georeferencing, the two GeoTIFFs.

The scene is rendered and written in BLOCK x BLOCK blocks on a fixed grid anchored at (0, 0), so nothing
of full-scene size is ever allocated (the benchmark scene is 20000 x 20000 x 4 uint16 = 3.2 GB).  Both
files are written under temporary names and renamed into place only when both are complete
(rsseg_cli.atomic), so an interrupted run leaves no half-written scene and keeps a previous complete one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from rasterio.transform import Affine, from_origin
from rasterio.windows import Window

from rsseg_cli.atomic import atomic_file, remove_stale_partials
from rsseg_cli.errors import UserError
from rsseg_cli.geo.class_raster import write_class_metadata
from rsseg_cli.synthetic.classes import LABEL_NODATA, SAMPLE_CLASSES
from rsseg_cli.synthetic.layout import build_layout
from rsseg_cli.synthetic.render import render_block
from rsseg_cli.synthetic.spectra import band_names

__all__ = ["BLOCK", "SampleScene", "generate_sample", "sample_total_blocks", "to_dtype"]

BLOCK = 512  # render/write block and GeoTIFF tile size; blocks sit on a fixed grid anchored at (0, 0)
_DTYPES = {"uint8", "uint16", "int16", "float32"}


@dataclass(frozen=True)
class SampleScene:
    scene: Path  # the image GeoTIFF
    labels: Path  # the label GeoTIFF (uint8 class ids, nodata 255)


def sample_total_blocks(height: int, width: int) -> int:
    """Number of blocks (and on_block calls) generate_sample uses for a scene of this size."""
    return math.ceil(height / BLOCK) * math.ceil(width / BLOCK)


def _default_nodata(dtype: str) -> float:
    return {"uint8": 0, "uint16": 0, "int16": -32768, "float32": float("nan")}[dtype]


def _check_nodata(dtype: str, nodata: float) -> float:
    if dtype == "float32":
        return float(nodata)
    info = np.iinfo(dtype)
    if not math.isfinite(nodata) or nodata != int(nodata) or not info.min <= nodata <= info.max:
        raise UserError(
            f"nodata {nodata!r} is not a valid {dtype} value; use an integer in [{info.min}, {info.max}]."
        )
    return int(nodata)


def to_dtype(refl: np.ndarray, nodata_mask: np.ndarray, dtype: str, nodata: float) -> np.ndarray:
    """Scale reflectance to the output type; valid pixels are kept away from the nodata value."""
    if dtype == "float32":
        out = np.clip(refl, 0.0, 1.0).astype(np.float32)
        if not math.isnan(nodata):
            hit = out == np.float32(nodata)
            out[hit] = np.nextafter(np.float32(nodata), np.float32(2.0 if nodata < 1.0 else -1.0))
        out[:, nodata_mask] = np.float32(nodata)
        return out
    scale = {"uint8": 255.0 * 2.0, "uint16": 10000.0, "int16": 10000.0}[dtype]  # uint8: display gain
    info = np.iinfo(dtype)
    out = np.rint(refl * np.float32(scale))
    np.clip(out, max(info.min, 0), info.max, out=out)  # reflectance is never negative
    out = out.astype(dtype)
    hit = out == nodata
    if hit.any():
        out[hit] = nodata + 1 if nodata < info.max else nodata - 1
    out[:, nodata_mask] = nodata
    return out


def _transform(crs: CRS, resolution: float | None) -> Affine:
    # A plausible place on Earth (central Europe, UTM 33N by default) so that other GIS tools behave.
    if crs.is_geographic:
        res = 1e-5 if resolution is None else resolution
        return from_origin(15.0, 47.0, res, res)
    res = 1.0 if resolution is None else resolution
    return from_origin(500000.0, 5500000.0, res, res)


def _check_arguments(
    height: int, width: int, bands: int, dtype: str, crs: str, resolution: float | None, seed: int, name: str
) -> CRS:
    """Check the arguments before anything is written; returns the parsed CRS."""
    if height < 1 or width < 1:
        raise UserError(f"Scene size must be at least 1 x 1 pixels, got {height} x {width}.")
    if bands < 1:
        raise UserError(f"bands must be at least 1, got {bands}.")
    if dtype not in _DTYPES:
        raise UserError(f"dtype {dtype!r} is not supported; use one of {', '.join(sorted(_DTYPES))}.")
    if seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed}.")
    if not name or Path(name).name != name or name.startswith("."):
        raise UserError(f"name {name!r} must be a plain file name without a folder.")
    if resolution is not None and not (math.isfinite(resolution) and resolution > 0):
        raise UserError(f"resolution must be a positive number, got {resolution}.")
    try:
        return CRS.from_user_input(crs)
    except Exception as exc:  # rasterio raises CRSError, pyproj-style inputs may raise others
        raise UserError(
            f"Cannot parse CRS {crs!r}: {exc}. Use e.g. EPSG:32633, a WKT or a PROJ string."
        ) from exc


def generate_sample(
    out_dir: Path,
    *,
    height: int = 4096,
    width: int = 4096,
    bands: int = 4,
    dtype: str = "uint16",
    crs: str = "EPSG:32633",
    resolution: float | None = None,
    nodata: float | None = None,
    seed: int = 0,
    name: str = "scene",
    on_block: Callable[[int], None] | None = None,
) -> SampleScene:
    """Write ``out_dir/{name}.tif`` (image) and ``out_dir/{name}_labels.tif`` (uint8 classes, nodata 255).

    Deterministic in its arguments; rendered and written block by block (see the module docstring).
    Each file is written under a hidden temporary name and renamed into place only when both are complete.
    """
    crs_obj = _check_arguments(height, width, bands, dtype, crs, resolution, seed, name)
    nd = _check_nodata(dtype, _default_nodata(dtype) if nodata is None else nodata)

    out_dir = Path(out_dir)
    final_img, final_lab = out_dir / f"{name}.tif", out_dir / f"{name}_labels.tif"

    lay = build_layout(height, width, bands, seed)
    common = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "crs": crs_obj,
        "transform": _transform(crs_obj, resolution),
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "deflate",
        "bigtiff": "IF_SAFER",
    }
    img_profile = {
        **common,
        "count": bands,
        "dtype": dtype,
        "nodata": nd,
        "predictor": 3 if dtype == "float32" else 2,
        "interleave": "pixel",
        # RGB photometric stores the colour interpretation in the TIFF itself (no .aux.xml side file).
        "photometric": "RGB" if bands >= 3 else "MINISBLACK",
    }
    lab_profile = {**common, "count": 1, "dtype": "uint8", "nodata": LABEL_NODATA, "predictor": 2}

    for final in (final_img, final_lab):
        remove_stale_partials(final)  # left by a killed run (no chance to clean up); nobody else removes them
    # Contexts exit in reverse: both files are closed, then the labels and then the image are renamed into
    # place; on any error both temporaries are removed and earlier outputs stay as they were.
    with (
        atomic_file(final_img) as tmp_img,
        atomic_file(final_lab) as tmp_lab,
        # PAM off: everything must live inside the TIFFs, so a rename moves the whole result.
        rasterio.Env(GDAL_PAM_ENABLED="NO"),
        rasterio.open(tmp_img, "w", **img_profile) as dst,
        rasterio.open(tmp_lab, "w", **lab_profile) as dlab,
    ):
        dst.descriptions = tuple(band_names(bands))
        if bands >= 3:
            dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue] + [
                ColorInterp.undefined
            ] * (bands - 3)
        # Names and colours travel with the labels, so `rsseg tile` needs no class table for the sample.
        write_class_metadata(dlab, SAMPLE_CLASSES)
        for by in range(math.ceil(height / BLOCK)):
            for bx in range(math.ceil(width / BLOCK)):
                y0, x0 = by * BLOCK, bx * BLOCK
                h, w = min(BLOCK, height - y0), min(BLOCK, width - x0)
                # Sensor noise seeded per block, so the result does not depend on block order.
                rng = np.random.default_rng([seed, by, bx])
                refl, lab, nd_mask = render_block(lay, y0, x0, h, w, rng)
                window = Window(x0, y0, w, h)
                dst.write(to_dtype(refl, nd_mask, dtype, nd), window=window)
                dlab.write(lab, 1, window=window)
                if on_block is not None:
                    on_block(1)
    return SampleScene(scene=final_img, labels=final_lab)
