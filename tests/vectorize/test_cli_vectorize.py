"""`rsseg vectorize` end to end through the CLI."""

from __future__ import annotations

import numpy as np
import pyogrio

from tests.vectorize.helpers import CLASSES, read, write_mask, write_probs
from tests.vectorize.test_vectorize import snake


def test_vectorize_command_end_to_end(tmp_path, cli):
    m = snake()
    mask = write_mask(tmp_path / "mask.tif", m)
    probs = write_probs(tmp_path / "probs.tif", np.full(m.shape, 255, np.uint8))
    out = tmp_path / "polys.gpkg"
    args = ["--out", out, "--probs", probs, "--classes", "water,building", "--window", "64"]
    result = cli("vectorize", mask, *args, "--min-area", "8", "--simplify", "0.5", "--fill-holes", "10")
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    assert "2 polygons" in result.err and "water 1, building 1" in result.err
    assert str(out) in result.err and "layer polygons" in result.err
    df = read(out)
    assert sorted(df.class_name) == ["building", "water"]
    assert np.allclose(df.mean_prob, 1.0)
    assert result.out == ""  # stdout stays clean


def test_vectorize_command_defaults_to_a_gpkg_beside_the_mask(tmp_path, cli):
    mask = write_mask(tmp_path / "mask.tif", snake())
    result = cli("vectorize", mask)
    assert result.code == 0, result.err
    assert pyogrio.read_info(tmp_path / "mask.gpkg", layer="polygons")["features"] == 3


def test_vectorize_command_user_errors_exit_2_with_one_message(tmp_path, cli):
    mask = write_mask(tmp_path / "mask.tif", snake())
    result = cli("vectorize", mask, "--classes", "water,lake")
    assert result.code == 2
    assert "Unknown class 'lake'" in result.err and "water (1)" in result.err
    assert "Traceback" not in result.err
    result = cli("vectorize", mask, "--out", tmp_path / "x.shp")
    assert result.code == 2 and "not a supported vector format" in result.err
    assert not list(tmp_path.glob("*.gpkg")) and not list(tmp_path.glob(".*partial*"))


def test_vectorize_help_documents_the_defaults(cli):
    result = cli("vectorize", "--help")
    assert result.code == 0
    text = " ".join(result.out.split())
    for option in ("--out", "--probs", "--classes", "--sieve", "--min-area", "--simplify", "--fill-holes"):
        assert option in text
    assert "[default: 8]" in text and "[default: 4096]" in text


def test_vectorize_writes_the_polygons_style_beside_and_inside_the_geopackage(tmp_path, cli):
    from xml.etree import ElementTree as ET

    from rsseg_cli.geo.class_raster import class_colormap
    from rsseg_cli.geo.gpkg_style import read_default_style

    mask = write_mask(tmp_path / "mask.tif", snake())
    out = tmp_path / "polys.gpkg"
    r = cli("vectorize", mask, "--out", out)
    assert r.code == 0, r.err
    beside = ET.fromstring((tmp_path / "polys.qml").read_text())
    inside = ET.fromstring(read_default_style(out, "polygons"))
    for style in (beside, inside):
        renderer = style.find(".//renderer-v2")
        assert renderer.get("type") == "categorizedSymbol" and renderer.get("attr") == "class_id"
        labels = {c.get("value"): c.get("label") for c in renderer.iter("category")}
        assert labels == {str(c["id"]): c["name"] for c in CLASSES}
    # Each category's fill is its class's colour in the mask.
    colours = class_colormap(CLASSES)
    symbols = {s.get("name"): s for s in beside.iter("symbol")}
    for category in beside.iter("category"):
        fill = next(o for o in symbols[category.get("symbol")].iter("Option") if o.get("name") == "color")
        assert tuple(int(v) for v in fill.get("value").split(",")) == colours[int(category.get("value"))]
