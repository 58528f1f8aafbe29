"""The mosaic of a batch: a VRT (and a COG on request) over every mask with the class colours and names, one
VRT per CRS, and footprints.gpkg with one row per scene and its status."""

from __future__ import annotations

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.transform import from_origin
from rasterio.windows import from_bounds

from rsseg_cli.geo.class_raster import MASK_NODATA, class_sidecar_path, write_class_metadata
from rsseg_cli.predict.mosaic import write_mosaic
from tests.conftest import write_raster
from tests.predict.conftest import CLASSES
from tests.predict.test_class_names import parse_sidecar
from tests.predict.test_predict_cmd import scene_data


def assert_mosaic_equals_masks(vrt, masks) -> None:
    """Each mask's pixels are the mosaic's pixels at the mask's place (nodata aside)."""
    with rasterio.open(vrt) as mosaic:
        whole = mosaic.read(1)
        for path in masks:
            with rasterio.open(path) as m:
                w = from_bounds(*m.bounds, transform=mosaic.transform).round_offsets().round_lengths()
                mine = m.read(1)
                there = whole[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width]
                valid = mine != MASK_NODATA
                assert there.shape == mine.shape and (there[valid] == mine[valid]).all()


def test_a_batch_gets_a_mosaic_and_footprints(tmp_path, cli, checkpoint):
    import geopandas as gpd

    (tmp_path / "in").mkdir()
    # Three scenes side by side (40 m apart, 1 m pixels), the middle one broken (4 bands).
    for i, name in enumerate("abc"):
        data = scene_data(40, 40, bands=4 if name == "b" else 3, seed=i)
        write_raster(
            tmp_path / "in" / f"{name}.tif", data, transform=from_origin(500000 + 40 * i, 5500000, 1, 1)
        )
    out = tmp_path / "preds"
    r = cli(
        "predict", str(tmp_path / "in" / "*.tif"), "--out", out, "--checkpoint", checkpoint, "--mosaic-cog"
    )
    assert r.code == 2, r.err
    masks = [out / "a.tif", out / "c.tif"]
    with rasterio.open(out / "mosaic.vrt") as src:
        assert src.bounds == (500000, 5500000 - 40, 500000 + 120, 5500000)
        assert src.nodata == MASK_NODATA and src.crs.to_epsg() == 32633
        assert src.colormap(1)[2][:3] == (0xD6, 0x27, 0x28) and src.colormap(1)[MASK_NODATA][3] == 0
        assert "water" in src.tags()["RSSEG_CLASSES"]
        assert (src.read(1)[:, 40:80] == MASK_NODATA).all()  # the failed scene's place is empty
    assert_mosaic_equals_masks(out / "mosaic.vrt", masks)
    assert "a.tif" in (out / "mosaic.vrt").read_text() and str(out) not in (out / "mosaic.vrt").read_text()
    # GDAL reads the category names of the VRT: a copy carries them into its own sidecar.
    rasterio.shutil.copy(str(out / "mosaic.vrt"), str(tmp_path / "copy.tif"), driver="GTiff")
    cats, _, _ = parse_sidecar(class_sidecar_path(tmp_path / "copy.tif").read_text())
    assert cats == [c["name"] for c in CLASSES]
    # The COG: the same pixels, the colour table, and the class-name sidecar.
    with rasterio.open(out / "mosaic.tif") as cog, rasterio.open(out / "mosaic.vrt") as vrt:
        assert (cog.read(1) == vrt.read(1)).all() and cog.colormap(1)[0] == vrt.colormap(1)[0]
        assert cog.overviews(1) == [] or cog.profile["tiled"]
    assert parse_sidecar(class_sidecar_path(out / "mosaic.tif").read_text())[0] == [
        c["name"] for c in CLASSES
    ]

    rows = gpd.read_file(out / "footprints.gpkg").set_index("scene")
    assert len(rows) == 3 and rows.crs.to_epsg() == 32633
    names = {n: str(tmp_path / "in" / f"{n}.tif") for n in "abc"}
    assert [rows.loc[names[n], "status"] for n in "abc"] == ["done", "failed", "done"]
    assert "trained on 3 bands" in rows.loc[names["b"], "error"] and not isinstance(
        rows.loc[names["b"], "mask"], str
    )
    assert rows.loc[names["c"], "geometry"].bounds == (500080, 5500000 - 40, 500120, 5500000)
    with rasterio.open(out / "a.tif") as m:
        water = (m.read(1) == 0).mean()
    assert abs(rows.loc[names["a"], "share_water"] - water) < 1e-9

    # Fixed and rerun: the skipped scenes stay in the mosaic and the footprints, with their shares.
    write_raster(
        tmp_path / "in" / "b.tif", scene_data(40, 40, seed=1), transform=from_origin(500040, 5500000, 1, 1)
    )
    r = cli("predict", str(tmp_path / "in" / "*.tif"), "--out", out, "--checkpoint", checkpoint)
    assert r.code == 0, r.err
    rows = gpd.read_file(out / "footprints.gpkg").set_index("scene")
    assert [rows.loc[names[n], "status"] for n in "abc"] == ["skipped", "done", "skipped"]
    assert abs(rows.loc[names["a"], "share_water"] - water) < 1e-9
    assert_mosaic_equals_masks(out / "mosaic.vrt", [*masks, out / "b.tif"])


def class_mask(path, value: int, crs: str, origin: tuple[float, float], size: int = 8, res: float = 1.0):
    data = np.full((size, size), value, np.uint8)
    data[0, 0] = MASK_NODATA
    profile = dict(driver="GTiff", width=size, height=size, count=1, dtype="uint8", nodata=MASK_NODATA, crs=crs,
                   transform=from_origin(*origin, res, res))  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
        write_class_metadata(dst, CLASSES)
    return path


def test_one_vrt_per_crs_and_finer_pixels_win(tmp_path):
    a = class_mask(tmp_path / "a.tif", 0, "EPSG:32633", (500000, 5500000))
    b = class_mask(tmp_path / "b.tif", 1, "EPSG:32633", (500004, 5500000), size=4, res=2.0)  # overlaps a
    c = class_mask(tmp_path / "c.tif", 2, "EPSG:32634", (300000, 5500000))
    written = write_mosaic(tmp_path, [a, b, c])
    assert sorted(p.name for p in written) == ["mosaic_EPSG_32633.vrt", "mosaic_EPSG_32634.vrt"]
    with rasterio.open(tmp_path / "mosaic_EPSG_32633.vrt") as src:
        assert src.res == (1.0, 1.0) and (src.width, src.height) == (12, 8)
        pixels = src.read(1)
    assert pixels[0, 0] == MASK_NODATA and (pixels[1:, :4] == 0).all()
    # b is drawn over a where they overlap, except at b's nodata pixel (2 x 2 at this finer grid), where a shows.
    assert (pixels[:2, 4:6] == 0).all() and (pixels[2:, 4:12] == 1).all() and (pixels[:2, 6:12] == 1).all()
    with rasterio.open(tmp_path / "mosaic_EPSG_32634.vrt") as src:
        assert src.crs.to_epsg() == 32634 and (src.read(1)[1:] == 2).all()
    assert write_mosaic(tmp_path, [a]) == []  # one mask is no mosaic
