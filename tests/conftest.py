"""Shared fixtures: a synthetic GeoTIFF factory and an in-process CLI runner."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

os.environ.setdefault("HF_HUB_OFFLINE", "1")

UTM = "EPSG:32633"


def write_raster(
    path: Path,
    data: np.ndarray,
    *,
    crs: str | None = UTM,
    transform=None,
    nodata: float | None = None,
    mask: np.ndarray | None = None,
    descriptions: list[str] | None = None,
    alpha: np.ndarray | None = None,
) -> Path:
    """Write (bands, h, w) `data` as a GeoTIFF; optional nodata, internal mask or alpha band."""
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    count = data.shape[0] + (1 if alpha is not None else 0)
    if transform is None and crs is not None:
        transform = from_origin(500000.0, 5500000.0, 1.0, 1.0)
    profile = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=count, dtype=data.dtype)
    if crs is not None:
        profile["crs"] = crs
    if transform is not None:
        profile["transform"] = transform
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(data, indexes=list(range(1, data.shape[0] + 1)))
        if alpha is not None:
            dst.write(alpha.astype(data.dtype), count)
            from rasterio.enums import ColorInterp

            dst.colorinterp = [ColorInterp.gray] * (count - 1) + [ColorInterp.alpha]
        if mask is not None:
            dst.write_mask(mask.astype(np.uint8) * 255)
        if descriptions:
            for i, d in enumerate(descriptions, start=1):
                dst.set_band_description(i, d)
    return path


@dataclass
class Scene:
    image: Path
    labels: Path
    data: np.ndarray
    classes: np.ndarray


def stripes(h: int, w: int, k: int = 4, period: int = 40) -> np.ndarray:
    """Class map of diagonal stripes so every block of a scene holds several classes."""
    rows, cols = np.mgrid[0:h, 0:w]
    return (((rows + cols) // period) % k).astype(np.uint8)


@pytest.fixture
def make_scene(tmp_path):
    """Factory: a labeled scene whose pixel values encode their position (to check chip placement)."""

    def _make(h=300, w=400, bands=3, dtype="uint16", name="scene", k=4, crs=UTM, transform=None, nodata=None):
        rows, cols = np.mgrid[0:h, 0:w]
        data = np.stack([(rows * 7 + cols * 3 + b * 1000) % 5000 + 1 for b in range(bands)]).astype(dtype)
        classes = stripes(h, w, k)
        image = write_raster(tmp_path / f"{name}.tif", data, crs=crs, transform=transform, nodata=nodata)
        labels = write_raster(
            tmp_path / f"{name}_labels.tif", classes, crs=crs, transform=transform, nodata=255
        )
        return Scene(image, labels, data, classes)

    return _make


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `rsseg ARGS` in-process, returning exit code, stdout and stderr."""
    from rsseg_cli.cli import main

    monkeypatch.setenv("COLUMNS", "200")

    def _run(*args: str | Path) -> CliResult:
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return _run


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    """A small tiled sample scene (7 classes, 4 bands, 64 px chips) shared by the training tests."""
    from rsseg_cli.config import load_config
    from rsseg_cli.data.tiling import tile_scenes
    from rsseg_cli.synthetic import generate_sample

    root = tmp_path_factory.mktemp("train")
    sample = generate_sample(root / "sample", height=384, width=384, seed=1)
    cfg = load_config(overrides=["tile.chip_size=64", "tile.split.block_size=2"])
    tile_scenes([sample.scene], [sample.labels], root / "data", cfg)
    return root / "data"


@pytest.fixture
def no_plots(monkeypatch):
    """Training without its matplotlib pictures (the validation confusion-matrix PNG, a placeholder file
    instead, and plots/training_curves.png), ~1-2 s per validation on a CPU: for tests that check steps,
    weights, splits or scores; metrics.jsonl, validation/metrics.json and the checkpoints are still written."""
    from rsseg_cli import plots
    from rsseg_cli.evaluation import report

    monkeypatch.setattr(report, "_write_png", lambda path, *a, **k: Path(path).write_bytes(b""))
    monkeypatch.setattr(plots, "training_curves", lambda run_dir: None)
