"""What GIS software sees of a predicted mask and probabilities: category names and attribute table (PAM
sidecar) of the mask COG, GDAL scale/offset of the probability COG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.transform import from_origin

from rsseg_cli.geo.class_raster import class_sidecar_path, write_class_sidecar
from rsseg_cli.geo.raster import SceneInfo
from rsseg_cli.predict.cog import write_cog
from rsseg_cli.predict.writer import OutputPaths, PredictionWriter
from tests.geo.test_class_raster import parse_sidecar

CLASSES = [
    {"id": 0, "name": "water", "color": "#1f78b4"},
    {"id": 1, "name": "forest", "color": "#1b7837"},
    {"id": 2, "name": "building", "color": "#e31a1c"},
]


def predicted(tmp_path: Path, h: int = 96, w: int = 80) -> tuple[Path, Path, np.ndarray]:
    """A mask COG and a probability COG written by the prediction writer; pixels of the last 8 rows are
    invalid. Returns (mask, probs, the probabilities handed to the writer)."""
    scene = SceneInfo(
        path=tmp_path / "scene.tif", name="scene", height=h, width=w, count=3, dtype="uint16",
        crs=rasterio.crs.CRS.from_epsg(32633), transform=from_origin(500000, 5500000, 2, 2),
        band_indexes=[1, 2, 3], band_names=["b1", "b2", "b3"], nodata=[None] * 3, mask_kind="all_valid",
    )  # fmt: skip
    rng = np.random.default_rng(0)
    probs = rng.random((3, h, w)).astype(np.float32)
    probs /= probs.sum(0)
    valid = np.ones((h, w), bool)
    valid[-8:] = False
    staging = OutputPaths(mask=tmp_path / "mask.staging.tif", probs=tmp_path / "probs.staging.tif")
    writer = PredictionWriter(scene, CLASSES, staging)
    writer(0, h, 0, w, probs, valid)
    writer.close()
    write_cog(staging.mask, tmp_path / "mask.tif", "classes")
    write_cog(staging.probs, tmp_path / "probs.tif", "continuous")
    return tmp_path / "mask.tif", tmp_path / "probs.tif", probs


def test_mask_cog_with_its_sidecar_shows_class_names_to_gdal(tmp_path):
    mask, _, _ = predicted(tmp_path)
    assert not class_sidecar_path(mask).exists()  # the COG itself needs no sidecar to be read
    write_class_sidecar(class_sidecar_path(mask), CLASSES)
    cats, _, rows = parse_sidecar(class_sidecar_path(mask).read_text())
    assert cats == ["water", "forest", "building"]
    assert [r[:2] for r in rows] == [["0", "water"], ["1", "forest"], ["2", "building"]]
    with rasterio.open(mask) as src:  # the sidecar changes nothing rsseg reads
        assert src.nodata == 255 and src.colormap(1)[2][:3] == (0xE3, 0x1A, 0x1C)
        assert src.tags(1)["CLASS_2"] == "building"
    # GDAL itself parses the sidecar: a copy carries category names and RAT over (into its own sidecar).
    rasterio.shutil.copy(str(mask), str(tmp_path / "copy.tif"), driver="GTiff")
    cats, columns, rows = parse_sidecar(class_sidecar_path(tmp_path / "copy.tif").read_text())
    assert cats == ["water", "forest", "building"]
    assert columns == ["Value", "Class", "Red", "Green", "Blue", "Alpha"]
    assert rows == [
        ["0", "water", "31", "120", "180", "255"],
        ["1", "forest", "27", "120", "55", "255"],
        ["2", "building", "227", "26", "28", "255"],
    ]  # in id order, and no row for nodata (255)


def test_probabilities_carry_gdal_scale_and_offset(tmp_path):
    _, probs_path, probs = predicted(tmp_path)
    assert not class_sidecar_path(probs_path).exists()  # scale and offset are inside the COG
    with rasterio.open(probs_path) as src:
        assert src.scales == (1 / 255,) * 4 and src.offsets == (0.0,) * 4
        assert src.descriptions == ("water", "forest", "building", "confidence")
        assert "scale" not in src.tags()
        values = src.read()
    scaled = values[:3, :-8].astype(np.float64) * src.scales[0] + src.offsets[0]
    assert np.abs(scaled - probs[:, :-8]).max() <= 0.5 / 255 + 1e-6
    assert (values[:, -8:] == 0).all()
