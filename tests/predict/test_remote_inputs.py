"""`rsseg predict` on remote scenes: a tiled GeoTIFF over HTTP (range requests from a server started by the
test on 127.0.0.1) predicts exactly what the same file predicts from disk; a STAC Item of four single-band
assets at two resolutions; --scenes-from lists; and the failures users meet, each named with its fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from rsseg_cli.geo.gdal_env import CLOUD_DEFAULTS
from rsseg_cli.predict.inputs import expand_scenes, plan_jobs
from tests.http_range_server import serve, write_item, write_tiled
from tests.predict.conftest import save_checkpoint


@pytest.fixture(autouse=True)
def cloud_defaults(monkeypatch):
    """GDAL configured as `rsseg` configures it at start (rsseg_cli.geo.gdal_env)."""
    for key, value in CLOUD_DEFAULTS.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def served(tmp_path):
    """A 96 x 80 three-band uint16 scene, tiled 16 x 16 so a window is several range requests."""
    root = tmp_path / "srv"
    root.mkdir()
    rng = np.random.default_rng(7)
    write_tiled(root / "field.tif", rng.integers(1, 1000, (3, 80, 96), dtype=np.uint16), block=16)
    return root


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def test_a_scene_over_http_predicts_what_it_predicts_from_disk(tmp_path, cli, checkpoint, served):
    r = cli("predict", served / "field.tif", "--out", tmp_path / "disk", "--checkpoint", checkpoint,
            "--probs", tmp_path / "disk")  # fmt: skip
    assert r.code == 0, r.err
    with serve(served) as server:
        r = cli("predict", server.url("field.tif?token=abc"), "--out", tmp_path / "http",
                "--checkpoint", checkpoint, "--probs", tmp_path / "http")  # fmt: skip
        assert r.code == 0, r.err
        assert server.traffic.range_requests >= 2  # read window by window, not downloaded whole
    for name in ("field.tif", "field_probs.tif"):  # named by the URL's stem, query string dropped
        disk, http = tmp_path / "disk" / name, tmp_path / "http" / name
        np.testing.assert_array_equal(_read(http), _read(disk))
        assert http.read_bytes() == disk.read_bytes()
        with rasterio.open(disk) as a, rasterio.open(http) as b:
            assert (a.crs, a.transform) == (b.crs, b.transform)


def _stac(root: Path, red_href: str | None = None) -> Path:
    """Blue, green, red at 10 m (64 x 64), nir at 20 m (32 x 32): relative and absolute hrefs."""
    rng = np.random.default_rng(11)
    for key in ("B02", "B03", "B04"):
        write_tiled(root / f"{key}.tif", rng.integers(1, 1000, (1, 64, 64), dtype=np.uint16), block=16)
    write_tiled(root / "B08.tif", rng.integers(1, 1000, (1, 32, 32), dtype=np.uint16), res=20.0, block=16)
    assets = {"B02": ("B02.tif", "blue"), "B03": ("./B03.tif", "green"), "B04": (red_href or str(root / "B04.tif"), "red"),
              "B08": ("B08.tif", "nir")}  # fmt: skip
    return write_item(root / "item.json", assets, item_id="S2B_33UUP_20240601")


def test_a_stac_item_predicts_on_the_finest_grid(tmp_path, cli):
    ck = save_checkpoint(tmp_path / "best4.pt", bands=4)
    item = _stac(tmp_path)
    r = cli("predict", item, "--assets", "red,green,blue,nir", "--out", tmp_path / "out", "--checkpoint", ck)
    assert r.code == 0, r.err
    mask = tmp_path / "out" / "S2B_33UUP_20240601.tif"  # named by the Item id
    with rasterio.open(mask) as src, rasterio.open(tmp_path / "B04.tif") as red:
        assert (src.width, src.height, src.transform) == (64, 64, red.transform)
    # The same bands stacked by hand (nir repeated onto the 10 m grid) predict the same mask.
    stack = np.concatenate([_read(tmp_path / f"{k}.tif") for k in ("B04", "B03", "B02")])
    nir = np.repeat(np.repeat(_read(tmp_path / "B08.tif"), 2, axis=1), 2, axis=2)
    write_tiled(tmp_path / "by_hand.tif", np.concatenate([stack, nir]), block=16)
    r = cli("predict", tmp_path / "by_hand.tif", "--out", tmp_path / "ref.tif", "--checkpoint", ck)
    assert r.code == 0, r.err
    np.testing.assert_array_equal(_read(mask), _read(tmp_path / "ref.tif"))


def test_a_stac_item_over_http(tmp_path, cli):
    ck = save_checkpoint(tmp_path / "best4.pt", bands=4)
    root = tmp_path / "srv"
    root.mkdir()
    with serve(root) as server:
        _stac(root, red_href=server.url("B04.tif"))  # an absolute URL among relative hrefs
        r = cli("predict", server.url("item.json"), "--assets", "red,green,blue,nir", "--out", tmp_path / "o",
                "--checkpoint", ck)  # fmt: skip
    assert r.code == 0, r.err
    assert (tmp_path / "o" / "S2B_33UUP_20240601.tif").is_file()


@pytest.mark.parametrize("kind", ["txt", "csv", "gpkg"])
def test_scenes_from_lists(tmp_path, served, kind):
    shutil.copy(served / "field.tif", tmp_path / "second.tif")
    with serve(served) as server:
        url = server.url("field.tif")
        listing = tmp_path / f"scenes.{kind}"
        if kind == "txt":
            listing.write_text(f"# two scenes\n{url}\nsecond.tif\n")
        elif kind == "csv":
            listing.write_text(f"id,cloud,href\n1,3,{url}\n2,0,second.tif\n")
        else:
            import geopandas as gpd
            from shapely.geometry import box

            gpd.GeoDataFrame(
                {"path": [url, "second.tif"]}, geometry=[box(0, 0, 1, 1)] * 2, crs=32633
            ).to_file(listing, driver="GPKG")
        sources = expand_scenes([], scenes_from=listing)
    assert [s.name for s in sources] == ["field", "second"]
    assert sources[0].uri == f"/vsicurl/{url}" and sources[1].local == tmp_path / "second.tif"
    jobs = plan_jobs(sources, tmp_path / "out", None, None)
    assert [j.mask for j in jobs] == [tmp_path / "out" / "field.tif", tmp_path / "out" / "second.tif"]


def test_scenes_from_through_the_cli(tmp_path, cli, checkpoint, served):
    with serve(served) as server:
        (tmp_path / "list.txt").write_text(server.url("field.tif") + "\n")
        r = cli(
            "predict",
            "--scenes-from",
            tmp_path / "list.txt",
            "--out",
            tmp_path / "out",
            "--checkpoint",
            checkpoint,
        )
    assert r.code == 0, r.err
    assert (tmp_path / "out" / "field.tif").is_file()


@pytest.mark.parametrize(
    "options,path,needles",
    [
        ({}, "missing.tif", ("not found", "404")),
        ({"ranges": False}, "field.tif", ("range requests", "download it")),
        ({"require_header": ("Authorization", "Bearer secret")}, "field.tif", ("403", "GDAL_HTTP_HEADERS")),
    ],
    ids=["404", "no-ranges", "403"],
)
def test_remote_failures_name_the_cause(tmp_path, cli, checkpoint, served, options, path, needles):
    with serve(served, **options) as server:
        url = server.url(path)
        r = cli("predict", url, "--out", tmp_path / "m.tif", "--checkpoint", checkpoint)
    assert r.code == 2, r.err
    text = " ".join(r.err.split())
    assert all(n in text for n in needles), text
    assert url in text and "Traceback" not in r.err
    assert not (tmp_path / "m.tif").exists()


def test_credentials_in_a_header_open_the_scene(tmp_path, cli, checkpoint, served, monkeypatch):
    """The fix the 403 message gives works: GDAL_HTTP_HEADERS carries the credentials."""
    monkeypatch.setenv("GDAL_HTTP_HEADERS", "Authorization: Bearer secret")
    with serve(served, require_header=("Authorization", "Bearer secret")) as server:
        r = cli("predict", server.url("field.tif"), "--out", tmp_path / "m.tif", "--checkpoint", checkpoint)
    assert r.code == 0, r.err
