"""Small class masks and probability rasters for the vectorize tests, and whole-scene references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import rasterio
import shapely
from rasterio import features
from rasterio.transform import Affine, from_origin

from rsseg_cli.geo.class_raster import CONFIDENCE_BAND, write_class_metadata
from tests.conftest import write_raster

CLASSES = [
    {"id": 0, "name": "background"},
    {"id": 1, "name": "water"},
    {"id": 2, "name": "building"},
    {"id": 3, "name": "forest"},
]
UTM_2M = from_origin(500000.0, 5500000.0, 2.0, 2.0)


def write_mask(
    path: Path,
    classes: np.ndarray,
    *,
    crs: str | None = "EPSG:32633",
    transform: Affine = UTM_2M,
    table=CLASSES,
) -> Path:
    write_raster(path, classes.astype(np.uint8), crs=crs, transform=transform, nodata=255)
    if table is not None:
        with rasterio.open(path, "r+") as dst:
            write_class_metadata(dst, table)
    return path


def write_probs(path: Path, confidence: np.ndarray, n_classes: int = len(CLASSES), **kwargs) -> Path:
    bands = np.zeros((n_classes + 1, *confidence.shape), np.uint8)
    bands[-1] = confidence
    names = [*(c["name"] for c in CLASSES[:n_classes]), CONFIDENCE_BAND]
    kwargs.setdefault("crs", "EPSG:32633")
    kwargs.setdefault("transform", UTM_2M)
    return write_raster(path, bands, descriptions=names, **kwargs)


def blobby(rng: np.random.Generator, h: int, w: int, k: int = 4, cell: int = 12, speckle: float = 0.0):
    """Blocky random classes (coarse cells upsampled) with some random pixels: regions of every size that
    cross seams, touch diagonally, and enclose each other."""
    coarse = rng.integers(0, k, (h // cell + 1, w // cell + 1))
    out = np.kron(coarse, np.ones((cell, cell), np.int64))[:h, :w]
    # Shift rows so that region edges do not line up with the windows.
    out = np.roll(out, (cell // 3, cell // 2), axis=(0, 1))
    noise = rng.random((h, w)) < speckle
    out[noise] = rng.integers(0, k, int(noise.sum()))
    return out.astype(np.uint8)


def read(path: Path):
    return pyogrio.read_dataframe(path)


def whole_scene_polygons(
    classes: np.ndarray, valid: np.ndarray, transform: Affine
) -> list[tuple[int, object]]:
    """(class, polygon) of the whole mask polygonized at once, the reference for the windowed result."""
    return [
        (int(v), shapely.geometry.shape(g))
        for g, v in features.shapes(classes, mask=valid, connectivity=4, transform=transform)
    ]


def same_polygons(got: list[tuple[int, object]], expected: list[tuple[int, object]]) -> bool:
    """Equal as sets of (class, polygon), polygons compared topologically (vertex order may differ)."""
    if len(got) != len(expected):
        return False
    index: dict[tuple, list] = {}
    for c, g in expected:
        index.setdefault((c, round(g.area, 6), *np.round(g.bounds, 6)), []).append(g)
    for c, g in got:
        candidates = index.get((c, round(g.area, 6), *np.round(g.bounds, 6)), [])
        match = next((i for i, e in enumerate(candidates) if shapely.equals(e, g)), None)
        if match is None:
            return False
        candidates.pop(match)
    return True
