"""STAC Items as scenes: chosen assets (keys or common names) stacked into a VRT on the finest asset's grid,
relative and absolute hrefs, local Items and Items over HTTP, and the errors that name what is available."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from rsseg_cli.errors import UserError
from rsseg_cli.geo.raster import describe_scene
from rsseg_cli.geo.sources import parse_source
from tests.http_range_server import serve, write_item, write_tiled

H = W = 64  # the 10 m bands; nir is 20 m (32 x 32 pixels over the same footprint)


@pytest.fixture
def bands(tmp_path):
    """Four single-band files: blue, green, red at 10 m, nir at 20 m; values differ per band and pixel."""
    rng = np.random.default_rng(3)
    arrays = {k: rng.integers(1, 4000, (1, H, W), dtype=np.uint16) for k in ("B02", "B03", "B04")}
    arrays["B08"] = rng.integers(1, 4000, (1, H // 2, W // 2), dtype=np.uint16)
    (tmp_path / "files").mkdir()
    for key, data in arrays.items():
        write_tiled(tmp_path / "files" / f"{key}.tif", data, res=20.0 if key == "B08" else 10.0, block=16)
    return arrays


def _item(tmp_path, hrefs=None):
    names = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir"}
    hrefs = hrefs or {k: f"files/{k}.tif" for k in names}
    return write_item(tmp_path / "item.json", {k: (hrefs[k], names[k]) for k in names}, item_id="S2_T33_2024")


def _expected(bands, order):
    nir = np.repeat(np.repeat(bands["B08"][0], 2, axis=0), 2, axis=1)  # nearest: each 20 m pixel -> 2 x 2
    full = {"B02": bands["B02"][0], "B03": bands["B03"][0], "B04": bands["B04"][0], "B08": nir}
    return np.stack([full[k] for k in order])


def test_common_names_choose_and_order_the_bands_on_the_finest_grid(tmp_path, bands):
    item = _item(tmp_path)
    source = parse_source(str(item), ["nir", "red", "GREEN"])
    assert source.name == "S2_T33_2024" and source.local == item and source.uri.endswith(".vrt")
    with rasterio.open(source.uri) as src:
        assert (src.count, src.width, src.height, src.res) == (3, W, H, (10.0, 10.0))
        assert src.descriptions == ("nir", "red", "green")
        np.testing.assert_array_equal(src.read(), _expected(bands, ["B08", "B04", "B03"]))
    info = describe_scene(source)
    assert info.name == "S2_T33_2024" and info.band_names == ["nir", "red", "green"]
    assert info.given == str(item)  # what dataset.yaml records, not the temporary VRT


def test_asset_keys_work_too_and_absolute_hrefs(tmp_path, bands):
    hrefs = {k: str(tmp_path / "files" / f"{k}.tif") for k in ("B02", "B03", "B04", "B08")}
    source = parse_source(str(_item(tmp_path, hrefs)), ["b04", "B08"])
    with rasterio.open(source.uri) as src:
        np.testing.assert_array_equal(src.read(), _expected(bands, ["B04", "B08"]))


def test_an_item_over_http_with_relative_and_absolute_hrefs(tmp_path, bands):
    with serve(tmp_path) as server:
        hrefs = {"B02": "files/B02.tif", "B03": server.url("files/B03.tif"), "B04": "./files/B04.tif",
                 "B08": server.url("files/B08.tif")}  # fmt: skip
        _item(tmp_path, hrefs)
        source = parse_source(server.url("item.json"), ["red", "green", "blue", "nir"])
        assert source.remote and source.name == "S2_T33_2024"
        vrt = Path(source.uri).read_text()
        assert vrt.count("/vsicurl/http://127.0.0.1") == 4  # relative hrefs resolved against the Item's URL
        with rasterio.open(source.uri) as src:
            np.testing.assert_array_equal(src.read(), _expected(bands, ["B04", "B03", "B02", "B08"]))
        assert server.traffic.range_requests > 0


def test_unknown_asset_lists_what_is_available(tmp_path, bands):
    with pytest.raises(UserError) as err:
        parse_source(str(_item(tmp_path)), ["red", "swir16"])
    text = str(err.value)
    assert "'swir16'" in text and "B04 (red)" in text and "B08 (nir)" in text and "thumbnail" not in text


def test_several_raster_assets_need_assets(tmp_path, bands):
    with pytest.raises(UserError, match="--assets"):
        parse_source(str(_item(tmp_path)))


def test_a_single_raster_asset_needs_no_choice(tmp_path, bands):
    item = write_item(tmp_path / "one.json", {"visual": ("files/B02.tif", None)}, item_id="one")
    source = parse_source(str(item))
    with rasterio.open(source.uri) as src:
        np.testing.assert_array_equal(src.read(), bands["B02"])
        assert src.descriptions == ("visual",)


def test_assets_on_different_crss_are_refused(tmp_path, bands):
    write_tiled(tmp_path / "files" / "other.tif", bands["B02"], crs="EPSG:32634", block=16)
    item = write_item(
        tmp_path / "mixed.json", {"B02": ("files/B02.tif", "blue"), "X": ("files/other.tif", "red")}
    )
    with pytest.raises(UserError, match="different CRSs"):
        parse_source(str(item), ["blue", "red"])


def test_a_missing_asset_file_names_the_asset(tmp_path, bands):
    item = write_item(
        tmp_path / "gone.json", {"B02": ("files/B02.tif", "blue"), "B05": ("files/nope.tif", "rededge")}
    )
    with pytest.raises(UserError, match="asset B05"):
        parse_source(str(item), ["blue", "rededge"])


def test_json_that_is_not_an_item_is_left_to_gdal(tmp_path):
    (tmp_path / "collection.json").write_text('{"type": "Collection", "id": "c"}')
    source = parse_source(str(tmp_path / "collection.json"))
    assert source.uri == str(tmp_path / "collection.json") and source.name == "collection"
