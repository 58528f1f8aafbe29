"""Scene inputs: URLs and object-store URIs reach GDAL as /vsi paths (no network here), local paths are
checked, failed remote opens are explained, --scenes-from lists, and GDAL's cloud defaults."""

from __future__ import annotations

import numpy as np
import pytest

from rsseg_cli.errors import UserError
from rsseg_cli.geo.gdal_env import CLOUD_DEFAULTS, apply_cloud_defaults
from rsseg_cli.geo.raster import describe_scene, open_raster
from rsseg_cli.geo.sources import GdalPath, explain_open_failure, parse_source, read_scene_list
from tests.conftest import write_raster


@pytest.mark.parametrize(
    "given,uri,name",
    [
        ("s3://bucket/tiles/T33/scene_a.tif", "/vsis3/bucket/tiles/T33/scene_a.tif", "scene_a"),
        ("gs://gcp-public/x/y/B04.tif", "/vsigs/gcp-public/x/y/B04.tif", "B04"),
        ("az://container/dir/mosaic.tif", "/vsiaz/container/dir/mosaic.tif", "mosaic"),
        ("https://h.example/a/b/ortho.tif?sig=abc%2F&se=2030", "/vsicurl/https://h.example/a/b/ortho.tif?sig=abc%2F&se=2030", "ortho"),
        ("http://h.example/c.tiff", "/vsicurl/http://h.example/c.tiff", "c"),
        ("/vsizip//data/archive.zip/inner/d.tif", "/vsizip//data/archive.zip/inner/d.tif", "d"),
        ("/vsis3/bucket/k/e.tif", "/vsis3/bucket/k/e.tif", "e"),
    ],
)  # fmt: skip
def test_remote_strings_map_to_gdal_paths_without_network(given, uri, name):
    source = parse_source(given)
    assert (source.uri, source.name, source.remote, source.mtime()) == (uri, name, True, None)
    assert str(source) == given
    assert isinstance(source.path, GdalPath) and str(source.path) == uri  # '//' of the URL kept


def test_local_paths_are_checked_and_named_by_stem(tmp_path):
    scene = write_raster(tmp_path / "field_7.tif", np.ones((1, 8, 8), np.uint16))
    source = parse_source(str(scene))
    assert (source.name, source.local, source.remote) == ("field_7", scene, False)
    assert source.mtime() == scene.stat().st_mtime
    with pytest.raises(UserError, match="does not exist"):
        parse_source(str(tmp_path / "missing.tif"))
    with pytest.raises(UserError, match="is a folder"):
        parse_source(str(tmp_path))


def test_describe_scene_takes_a_source_name(tmp_path):
    scene = write_raster(tmp_path / "a.tif", np.ones((2, 16, 16), np.uint16))
    source = parse_source(str(scene))
    renamed = type(source)(source.given, source.uri, "renamed", source.local)
    info = describe_scene(renamed)
    assert info.name == "renamed" and info.given is None and info.path == scene


@pytest.mark.parametrize(
    "uri,message,needles",
    [
        ("/vsicurl/https://h/a.tif", "HTTP response code: 404", ("not found", "curl -I")),
        ("/vsicurl/https://h/a.tif", "Range downloading not supported by this server!", ("range requests",)),
        ("/vsis3/b/a.tif", "HTTP response code: 403 - AccessDenied", ("AWS_ACCESS_KEY_ID", "AWS_NO_SIGN_REQUEST")),
        ("/vsigs/b/a.tif", "HTTP response code: 401", ("GOOGLE_APPLICATION_CREDENTIALS", "GS_NO_SIGN_REQUEST")),
        ("/vsiaz/c/a.tif", "HTTP response code: 403", ("AZURE_STORAGE_CONNECTION_STRING",)),
        ("/vsicurl/https://h/a.tif", "HTTP response code: 403", ("GDAL_HTTP_HEADERS", "signed URL")),
    ],
)  # fmt: skip
def test_failed_opens_name_the_cause_and_the_fix(uri, message, needles):
    error = explain_open_failure(uri, message)
    text = str(error)
    assert all(n in text for n in needles), text
    assert uri in text


def test_an_extension_gdal_will_not_request_is_named(monkeypatch):
    monkeypatch.setenv("CPL_VSIL_CURL_ALLOWED_EXTENSIONS", ".tif,.tiff")
    text = str(explain_open_failure("/vsicurl/https://h/scene.img", "HTTP response code: 404"))
    assert "CPL_VSIL_CURL_ALLOWED_EXTENSIONS=.tif,.tiff,.img" in text


def test_open_raster_on_an_unreachable_url_is_a_user_error():
    # Port 9 on localhost (discard) refuses connections: no network leaves the machine.
    with pytest.raises(UserError, match="could not be opened"):
        open_raster("http://127.0.0.1:9/nothing.tif")


def test_scene_list_text_with_comments_and_relative_paths(tmp_path):
    (tmp_path / "lists").mkdir()
    listing = tmp_path / "lists" / "scenes.txt"
    listing.write_text("# region A\n a.tif \n\n/abs/b.tif\ns3://bucket/c.tif\n  # done\n")
    assert read_scene_list(listing) == [str(tmp_path / "lists" / "a.tif"), "/abs/b.tif", "s3://bucket/c.tif"]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("id,href,cloud\n1,x.tif,3\n2,https://h/y.tif,5\n", ["x.tif", "https://h/y.tif"]),
        ("name,PATH\na,p.tif\n", ["p.tif"]),  # the column name is matched case-insensitively
        ("x.tif,10\ny.tif,20\n", ["x.tif", "y.tif"]),  # no header: the first column, first row included
    ],
)
def test_scene_list_csv(tmp_path, text, expected):
    listing = tmp_path / "scenes.csv"
    listing.write_text(text)
    got = read_scene_list(listing)
    assert got == [e if e.startswith("https") else str(tmp_path / e) for e in expected]


def test_scene_list_vector_file_needs_a_path_column(tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    frame = gpd.GeoDataFrame({"url": ["a.tif", "gs://b/c.tif"]}, geometry=[box(0, 0, 1, 1)] * 2, crs=4326)
    frame.to_file(tmp_path / "footprints.gpkg", driver="GPKG")
    assert read_scene_list(tmp_path / "footprints.gpkg") == [str(tmp_path / "a.tif"), "gs://b/c.tif"]
    frame.rename(columns={"url": "cloud"}).to_file(tmp_path / "bad.geojson", driver="GeoJSON")
    with pytest.raises(UserError, match="no column of scene paths"):
        read_scene_list(tmp_path / "bad.geojson")


def test_empty_or_missing_scene_lists_are_refused(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_scene_list(tmp_path / "none.txt")
    (tmp_path / "empty.txt").write_text("# nothing yet\n")
    with pytest.raises(UserError, match="names no scene"):
        read_scene_list(tmp_path / "empty.txt")


def test_cloud_defaults_never_override_the_user():
    env = {"CPL_VSIL_CURL_CACHE_SIZE": "1000", "PATH": "/bin"}
    applied = apply_cloud_defaults(env)
    assert env["CPL_VSIL_CURL_CACHE_SIZE"] == "1000" and "CPL_VSIL_CURL_CACHE_SIZE" not in applied
    assert env["GDAL_DISABLE_READDIR_ON_OPEN"] == "TRUE"  # sidecars of local files still read
    assert set(applied) == set(CLOUD_DEFAULTS) - {"CPL_VSIL_CURL_CACHE_SIZE"}
    exts = env["CPL_VSIL_CURL_ALLOWED_EXTENSIONS"].split(",")
    assert {".tif", ".tiff", ".vrt", ".jp2", ".json"} <= set(exts)
    assert int(CLOUD_DEFAULTS["CPL_VSIL_CURL_CACHE_SIZE"]) <= 256 * 1024 * 1024  # bounded
    assert "VSI_CACHE" not in CLOUD_DEFAULTS  # a cache per file, local ones too: memory grows with files
