"""QGIS styles: the QML documents (parsed back as XML) and the GeoPackage `layer_styles` table (read back
with sqlite3 and GDAL). Whether QGIS itself reads them is tests/qgis' job."""

from __future__ import annotations

import sqlite3
import xml.etree.ElementTree as ET

import numpy as np
import pyogrio
import pytest
import shapely
from rasterio.crs import CRS

from rsseg_cli.errors import UserError
from rsseg_cli.geo.gpkg_style import STYLE_TABLE, read_default_style, write_default_style
from rsseg_cli.geo.qml import CLASS_FIELD, mask_qml, polygons_qml, probability_qml, qml_path
from rsseg_cli.vectorize.measure import Polygons
from rsseg_cli.vectorize.writers import LAYER, GpkgWriter, open_writer

# Ids with a gap, a class without a colour and a name XML must escape.
CLASSES = [
    {"id": 0, "name": "water", "color": "#1f77b4"},
    {"id": 2, "name": 'roads & "rails" <paved>', "color": "#969696"},
    {"id": 3, "name": "forest", "color": None},
]
# The columns QGIS 3.22 creates (sqlite_master of a GeoPackage QGIS saved a style into).
QGIS_COLUMNS = [
    ("id", "INTEGER"), ("f_table_catalog", "TEXT(256)"), ("f_table_schema", "TEXT(256)"),
    ("f_table_name", "TEXT(256)"), ("f_geometry_column", "TEXT(256)"), ("styleName", "TEXT(30)"),
    ("styleQML", "TEXT"), ("styleSLD", "TEXT"), ("useAsDefault", "BOOLEAN"), ("description", "TEXT"),
    ("owner", "TEXT(30)"), ("ui", "TEXT(30)"), ("update_time", "DATETIME"),
]  # fmt: skip


def parse(document: str) -> ET.Element:
    assert document.startswith("<!DOCTYPE qgis")
    root = ET.fromstring(document)
    assert root.tag == "qgis" and root.get("version", "").startswith("3.")
    return root


def test_mask_style_is_a_paletted_renderer_with_every_class_and_no_nodata_entry():
    root = parse(mask_qml(CLASSES))
    renderer = root.find("pipe/rasterrenderer")
    assert renderer.get("type") == "paletted" and renderer.get("band") == "1"
    assert renderer.get("nodataColor") == ""  # transparent nodata
    entries = [e.attrib for e in renderer.findall("colorPalette/paletteEntry")]
    assert [e["value"] for e in entries] == ["0", "2", "3"]  # no entry for 255
    assert [e["label"] for e in entries] == [c["name"] for c in CLASSES]  # the escaped name round-trips
    assert entries[0]["color"] == "#1f77b4" and entries[1]["color"] == "#969696"
    # The class without a colour gets the one the mask's colormap gives it (forest: dark green).
    assert entries[2]["color"] == "#1b7837"
    assert all(e["alpha"] == "255" for e in entries)


def test_polygon_style_is_categorized_on_the_class_id_with_class_colours_and_names():
    root = parse(polygons_qml(CLASSES))
    renderer = root.find("renderer-v2")
    assert renderer.get("type") == "categorizedSymbol" and renderer.get("attr") == CLASS_FIELD == "class_id"
    categories = renderer.findall("categories/category")
    assert [c.get("value") for c in categories] == ["0", "2", "3"]
    assert [c.get("label") for c in categories] == [c["name"] for c in CLASSES]
    symbols = {s.get("name"): s for s in renderer.findall("symbols/symbol")}
    fills = []
    for category in categories:
        layer = symbols[category.get("symbol")].find("layer")
        assert layer.get("class") == "SimpleFill"
        options = {o.get("name"): o.get("value") for o in layer.findall("Option/Option")}
        props = {p.get("k"): p.get("v") for p in layer.findall("prop")}
        assert options == props  # both spellings, for old and new QGIS
        fills.append(options["color"])
    assert fills == ["31,119,180,255", "150,150,150,255", "27,120,55,255"]


def test_probability_style_ramps_over_zero_to_one_on_the_given_band():
    renderer = parse(probability_qml(4, "confidence")).find("pipe/rasterrenderer")
    assert renderer.get("type") == "singlebandpseudocolor" and renderer.get("band") == "4"
    assert (renderer.get("classificationMin"), renderer.get("classificationMax")) == ("0", "1")
    shader = renderer.find("rastershader/colorrampshader")
    assert shader.get("colorRampType") == "INTERPOLATED"
    values = [float(i.get("value")) for i in shader.findall("item")]
    assert values[0] == 0.0 and values[-1] == 1.0 and values == sorted(values)
    assert renderer.find("minMaxOrigin/limits").text == "None"  # fixed 0..1, not stretched per view


def test_qml_path_is_where_qgis_looks():
    assert qml_path("/out/scene_probs.tif").as_posix() == "/out/scene_probs.qml"
    assert qml_path("polygons.geojson").name == "polygons.qml"


def square(x: float, y: float) -> shapely.Polygon:
    return shapely.box(x, y, x + 10, y + 10)


def write_gpkg(path, classes=None, n: int = 3) -> None:
    writer = GpkgWriter(path, CRS.from_epsg(32633), with_prob=False, classes=classes)
    ids = np.array([0, 2, 3][:n], np.int32)
    polygons = Polygons(
        geoms=np.array([square(10 * i, 0) for i in range(n)], dtype=object),
        class_id=ids,
        area_m2=np.full(n, 100.0),
        perimeter_m=np.full(n, 40.0),
        mean_prob=None,
    )
    writer.write(polygons, [next(c["name"] for c in CLASSES if c["id"] == i) for i in ids])
    writer.close()


def test_gpkg_default_style_has_qgis_schema_and_registration(tmp_path):
    gpkg = tmp_path / "polygons.gpkg"
    write_gpkg(gpkg, classes=CLASSES)
    with sqlite3.connect(gpkg) as db:
        columns = [(r[1], r[2]) for r in db.execute(f"PRAGMA table_info({STYLE_TABLE})")]
        assert columns == QGIS_COLUMNS
        rows = db.execute(
            f"SELECT f_table_catalog, f_table_schema, f_table_name, f_geometry_column, useAsDefault, "
            f"update_time FROM {STYLE_TABLE}"
        ).fetchall()
        contents = db.execute(
            "SELECT data_type, identifier, srs_id FROM gpkg_contents WHERE table_name = ?", (STYLE_TABLE,)
        ).fetchall()
    assert len(rows) == 1
    assert rows[0][:5] == ("", "", LAYER, "geom", 1)
    assert rows[0][5].endswith("Z")  # QGIS orders by update_time: it must be filled
    assert contents == [("attributes", STYLE_TABLE, 0)]
    assert read_default_style(gpkg, LAYER) == polygons_qml(CLASSES)
    # GDAL still reads the file: the polygons as before, the styles as a plain attributes table.
    assert {name for name, _ in pyogrio.list_layers(gpkg)} == {LAYER, STYLE_TABLE}
    frame = pyogrio.read_dataframe(gpkg, layer=LAYER)
    assert frame["class_id"].tolist() == [0, 2, 3]
    styles = pyogrio.read_dataframe(gpkg, layer=STYLE_TABLE, read_geometry=False)
    assert styles["styleName"].tolist() == [f"rsseg {LAYER}"]


def test_writing_the_style_twice_leaves_one_default(tmp_path):
    gpkg = tmp_path / "polygons.gpkg"
    write_gpkg(gpkg, classes=CLASSES)
    write_default_style(gpkg, LAYER, "<qgis>other</qgis>", name="mine")
    write_default_style(gpkg, LAYER, polygons_qml(CLASSES[:1]), name=f"rsseg {LAYER}")
    with sqlite3.connect(gpkg) as db:
        rows = db.execute(f"SELECT styleName, useAsDefault FROM {STYLE_TABLE} ORDER BY id").fetchall()
    assert rows == [("mine", 0), (f"rsseg {LAYER}", 1)]
    assert read_default_style(gpkg, LAYER) == polygons_qml(CLASSES[:1])


def test_without_classes_no_style_table_is_written(tmp_path):
    gpkg = tmp_path / "polygons.gpkg"
    write_gpkg(gpkg, classes=None)
    assert read_default_style(gpkg, LAYER) is None
    geojson = open_writer("GeoJSON", tmp_path / "p.geojson", None, False, classes=CLASSES)
    geojson.close()
    assert not (tmp_path / "p.qml").exists()  # the .qml beside is the caller's, not the writer's


def test_style_into_a_file_that_is_not_a_geopackage_is_a_user_error(tmp_path):
    plain = tmp_path / "plain.sqlite"
    sqlite3.connect(plain).close()
    with pytest.raises(UserError, match="not a GeoPackage"):
        write_default_style(plain, LAYER, "<qgis/>")
    gpkg = tmp_path / "polygons.gpkg"
    write_gpkg(gpkg)
    with pytest.raises(UserError, match="no geometry layer named 'roads'"):
        write_default_style(gpkg, "roads", "<qgis/>")


def test_polygon_style_goes_beside_unless_another_output_holds_that_name(tmp_path):
    from rsseg_cli.vectorize.writers import polygons_qml_path

    assert polygons_qml_path(tmp_path / "polygons.geojson") == tmp_path / "polygons.qml"
    assert polygons_qml_path(tmp_path / "scene.gpkg", taken=[tmp_path / "scene.qml"]) is None
    assert (
        polygons_qml_path(tmp_path / "scene.gpkg", taken=[tmp_path / "other.qml"]) == tmp_path / "scene.qml"
    )
