"""Staging GeoTIFF -> Cloud-Optimized GeoTIFF (tiled 512, compressed with a predictor, overviews).

GDAL's COG driver builds the overviews and the COG layout (IFDs first, then tiles ordered by overview) from
a finished file, reading it block by block within GDAL's cache, so memory does not grow with the scene. It
keeps the colormap, the nodata value, the internal mask, band descriptions, scales/offsets and metadata tags.
A PAM sidecar (.aux.xml) of the staging file, if there were one, would be copied beside `dest` (GDAL 3.10 keeps
category names and attribute tables only there): the class-name sidecar of a mask is written by
`geo.class_raster.write_class_sidecar` for the final name instead.
"""

from __future__ import annotations

from pathlib import Path

import rasterio
import rasterio.shutil

COMPRESSIONS = ("deflate", "zstd", "lzw")


def write_cog(staging: Path, dest: Path, kind: str, compress: str = "deflate") -> None:
    """`kind` "classes" (mode overviews: a coarse pixel shows the most frequent class, never an invented
    mixture) or "continuous" (average overviews for probabilities)."""
    if compress not in COMPRESSIONS:
        raise ValueError(f"compress must be one of {COMPRESSIONS}")
    options = dict(
        driver="COG",
        BLOCKSIZE=512,
        COMPRESS=compress.upper(),
        PREDICTOR="YES",  # horizontal differencing: long runs of one class compress to almost nothing
        OVERVIEW_RESAMPLING="MODE" if kind == "classes" else "AVERAGE",
        BIGTIFF="IF_SAFER",
        NUM_THREADS="ALL_CPUS",
    )
    if compress == "deflate":
        options["LEVEL"] = 6
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        rasterio.shutil.copy(str(staging), str(dest), **options)
