"""A likely fill collar in a scene that declares no nodata: the zero (or -9999, 65535 ...) border of a clipped
or reprojected scene that GDAL reads as ordinary pixels. Left as data, it drags the 2nd percentile to the fill
value (washing out every chip's contrast) and is predicted as a class. Only detected, never masked on a
guess: the warning tells the user to declare it (--nodata).

The check reads one decimated copy of the scene (at most MAX_SIDE px a side; GDAL uses overviews when the
file has them), so it costs little even for a large scene.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError

from rsseg_cli.geo.nodata import format_nodata
from rsseg_cli.geo.raster import damaged

log = logging.getLogger("rsseg")

MAX_SIDE = 512
MIN_SHARE = 0.01  # a smaller constant border is not worth a warning


@dataclass(frozen=True)
class Collar:
    value: float
    share: float  # of the scene's pixels (on the decimated copy)


def _touching_border(region: np.ndarray) -> np.ndarray:
    """The part of `region` connected (4-neighbours) to the image border: grown from the border pixels one
    step per pass, whole-array operations only (the decimated image is small). The passes are capped: a
    collar is reached from the edge in far fewer; only a maze-like region would be underestimated."""
    reach = np.zeros_like(region)
    reach[0], reach[-1], reach[:, 0], reach[:, -1] = region[0], region[-1], region[:, 0], region[:, -1]
    for _ in range(2 * sum(region.shape)):
        grown = reach.copy()
        grown[1:] |= reach[:-1]
        grown[:-1] |= reach[1:]
        grown[:, 1:] |= reach[:, :-1]
        grown[:, :-1] |= reach[:, 1:]
        grown &= region
        if np.array_equal(grown, reach):
            break
        reach = grown
    return reach


def collar_of(data: np.ndarray) -> Collar | None:
    """A constant value held by every band, connected to the border, over >= MIN_SHARE of (bands, h, w)
    `data`; None when there is none."""
    lows, highs = data.min(axis=(1, 2)), data.max(axis=(1, 2))
    if (lows == highs).all():
        return None  # a blank scene: no collar around anything
    first = data[0]
    same = (data == first).all(axis=0)
    if np.issubdtype(data.dtype, np.floating):
        same &= np.isfinite(first)  # NaN and inf are invalid already
    # A fill value is an extreme shared by every band (0, -9999, 65535); a mid-range constant is a surface.
    candidates = {v for v in (lows[0], highs[0]) if (lows == v).all() or (highs == v).all()}
    best: Collar | None = None
    for value in candidates:
        share = float(_touching_border(same & (first == value)).mean())
        if share >= MIN_SHARE and (best is None or share > best.share):
            best = Collar(float(value), share)
    return best


def find_collar(src: rasterio.DatasetReader, indexes: list[int]) -> Collar | None:
    scale = min(1.0, MAX_SIDE / max(src.height, src.width))
    h, w = max(1, round(src.height * scale)), max(1, round(src.width * scale))
    try:
        data = src.read(indexes, out_shape=(len(indexes), h, w), resampling=Resampling.nearest)
    except RasterioIOError as exc:
        raise damaged(src.name, exc) from None
    return collar_of(data)


def warn_collar(src: rasterio.DatasetReader, indexes: list[int], path: object) -> Collar | None:
    """Log a warning naming the scene, the fill value, its share and the fix when a collar is likely."""
    collar = find_collar(src, indexes)
    if collar is not None:
        value = format_nodata([collar.value])
        log.warning(
            "%s has no nodata value or mask, but %.1f %% of it is a constant %s in every band along the scene "
            "edge: a fill collar, which would be read as image (skewing the band statistics and predicted "
            "as a class). If these pixels are not data, pass --nodata %s (or set tile.nodata / "
            "predict.nodata), or tag the file: gdal_edit.py -a_nodata %s %s",
            path,
            100 * collar.share,
            value,
            value,
            value,
            path,
        )
    return collar
