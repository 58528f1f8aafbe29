"""`rsseg tile` on remote inputs: a scene and its labels over HTTP (a range server on 127.0.0.1 started by the
test) give the chips the same files give from disk; vector labels over HTTP; a STAC Item with assets at two
resolutions; --scenes-from; and a missing remote label file named as such."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml

from rsseg_cli.commands.tile import TileOptions, run
from rsseg_cli.errors import UserError
from rsseg_cli.geo.gdal_env import CLOUD_DEFAULTS
from tests.conftest import stripes
from tests.http_range_server import serve, write_item, write_tiled

# Through TileOptions (the command's API) where labels are URLs: cli_tile.py still types --labels as Path.
OPTIONS = {
    "chip_size": 32,
    "overlap_px": 0,
    "overrides": ["tile.split.fractions={train: 1.0}", "tile.max_nodata=1.0"],
}
TILE = (
    "--chip-size",
    "32",
    "--overlap-px",
    "0",
    "--set",
    "tile.split.fractions={train: 1.0}",
    "--set",
    "tile.max_nodata=1.0",
)


@pytest.fixture(autouse=True)
def cloud_defaults(monkeypatch):
    for key, value in CLOUD_DEFAULTS.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def root(tmp_path):
    """A 96 x 128 three-band scene and its class raster, tiled like COGs."""
    folder = tmp_path / "srv"
    folder.mkdir()
    rng = np.random.default_rng(5)
    write_tiled(folder / "field.tif", rng.integers(1, 3000, (3, 96, 128), dtype=np.uint16), block=32)
    write_tiled(folder / "field_labels.tif", stripes(96, 128, k=3)[None], block=32, nodata=255)
    return folder


def _chips(dataset: Path) -> dict[str, np.ndarray]:
    out = {}
    for path in sorted(dataset.glob("*/*/*.tif")):
        with rasterio.open(path) as src:
            out[str(path.relative_to(dataset))] = src.read()
    return out


def test_http_scene_and_labels_tile_like_the_files_on_disk(tmp_path, cli, root):
    r = cli(
        "tile", root / "field.tif", "--labels", root / "field_labels.tif", "--out", tmp_path / "disk", *TILE
    )
    assert r.code == 0, r.err
    with serve(root) as server:
        url = server.url("field.tif")
        run(TileOptions([url], labels=[server.url("field_labels.tif")], out=tmp_path / "http", **OPTIONS))
        assert server.traffic.range_requests > 0
    disk, http = _chips(tmp_path / "disk"), _chips(tmp_path / "http")
    assert disk and sorted(disk) == sorted(http)
    assert any(k.startswith("labels/field/") for k in http)
    for key in disk:
        np.testing.assert_array_equal(http[key], disk[key])
    meta = yaml.safe_load((tmp_path / "http" / "dataset.yaml").read_text())
    assert url in meta["scenes"]["field"]["path"]


def test_vector_labels_over_http(tmp_path, root):
    # One polygon over the left half of the scene (UTM 33N, 10 m pixels from (500000, 5500000)).
    square = [[500000, 5500000], [500640, 5500000], [500640, 5499040], [500000, 5499040], [500000, 5500000]]
    feature = {
        "type": "Feature",
        "properties": {"class": "crop"},
        "geometry": {"type": "Polygon", "coordinates": [square]},
    }
    collection = {"type": "FeatureCollection", "features": [feature],
                  "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}}}  # fmt: skip
    (root / "fields.geojson").write_text(json.dumps(collection))
    with serve(root) as server:
        run(
            TileOptions(
                [server.url("field.tif")],
                labels=[server.url("fields.geojson")],
                out=tmp_path / "d",
                **OPTIONS,
            )
        )
    labels = _chips(tmp_path / "d")
    labeled = [k for k in labels if k.startswith("labels/")]
    assert labeled and all(k.split("_c")[-1] < "000064" for k in labeled)  # only the left half is labeled


def test_a_stac_item_tiles_with_bands_named_by_common_name(tmp_path, cli):
    rng = np.random.default_rng(2)
    for key in ("B02", "B03", "B04"):
        write_tiled(tmp_path / f"{key}.tif", rng.integers(1, 3000, (1, 64, 64), dtype=np.uint16), block=16)
    write_tiled(tmp_path / "B08.tif", rng.integers(1, 3000, (1, 32, 32), dtype=np.uint16), res=20.0, block=16)
    assets = {
        k: (f"{k}.tif", n) for k, n in zip(("B02", "B03", "B04", "B08"), ("blue", "green", "red", "nir"))
    }
    item = write_item(tmp_path / "item.json", assets, item_id="S2_tile")
    r = cli("tile", item, "--assets", "nir,red,green", "--out", tmp_path / "d", *TILE)
    assert r.code == 0, r.err
    meta = yaml.safe_load((tmp_path / "d" / "dataset.yaml").read_text())
    assert [b["name"] for b in meta["bands"]] == ["nir", "red", "green"]
    assert meta["scenes"]["S2_tile"]["width"] == 64
    chip = tmp_path / "d" / "images" / "S2_tile" / "S2_tile_r000000_c000000.tif"
    with rasterio.open(chip) as src, rasterio.open(tmp_path / "B08.tif") as nir:
        assert src.res == (10.0, 10.0)
        np.testing.assert_array_equal(src.read(1), np.repeat(np.repeat(nir.read(1)[:16, :16], 2, 0), 2, 1))


def test_scenes_from_a_list_for_tile(tmp_path, cli, root):
    with serve(root) as server:
        (tmp_path / "scenes.txt").write_text(f"# unlabeled pool\n{server.url('field.tif')}\n")
        r = cli("tile", "--scenes-from", tmp_path / "scenes.txt", "--out", tmp_path / "d", *TILE)
    assert r.code == 0, r.err
    assert (tmp_path / "d" / "images" / "field").is_dir()


def test_missing_remote_labels_are_named(tmp_path, root):
    with serve(root) as server, pytest.raises(UserError) as err:
        missing = server.url("nope_labels.tif")
        run(TileOptions([server.url("field.tif")], labels=[missing], out=tmp_path / "d", **OPTIONS))
    text = str(err.value)
    assert "label raster" in text and "not found" in text and missing in text
    assert not (tmp_path / "d").exists()


def test_dataset_yaml_records_what_the_user_wrote(tmp_path, root):
    with serve(root) as server:
        url = server.url("field.tif")
        run(TileOptions([url], out=tmp_path / "d", **OPTIONS))
    meta = yaml.safe_load((tmp_path / "d" / "dataset.yaml").read_text())
    assert (
        meta["scenes"]["field"]["path"] == url
    )  # not /vsicurl/..., and for a STAC Item not its temporary VRT
