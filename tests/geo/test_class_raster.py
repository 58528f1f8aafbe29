"""The class-raster contract: category names and attribute table for GIS, default colours of classes."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from rsseg_cli.config import ClassSpec
from rsseg_cli.data.classes import ClassTable
from rsseg_cli.geo.class_raster import (
    MASK_NODATA,
    PALETTE,
    category_names,
    class_colormap,
    class_sidecar_path,
    class_sidecar_xml,
    default_color,
    fill_colors,
    hex_to_rgb,
    write_class_sidecar,
)

TABLE = [
    {"id": 0, "name": "water", "color": "#0000ff"},
    {"id": 2, "name": "roads & <paths>", "color": "#808080"},
    {"id": 1, "name": "forest", "color": "#006400"},
]


def parse_sidecar(text: str) -> tuple[list[str], list[str], list[list[str]]]:
    """(category names, RAT column names, RAT rows) of band 1, read independently of rsseg."""
    band = ET.fromstring(text).find("PAMRasterBand[@band='1']")
    cats = [c.text or "" for c in band.find("CategoryNames")]
    rat = band.find("GDALRasterAttributeTable")
    assert rat.get("tableType") == "thematic"
    columns = [f.findtext("Name") for f in rat.findall("FieldDefn")]
    rows = [[f.text or "" for f in row.findall("F")] for row in rat.findall("Row")]
    return cats, columns, rows


def test_category_names_are_in_id_order_with_gaps_and_no_name_for_nodata():
    assert category_names(TABLE) == ["water", "forest", "roads & <paths>"]
    assert category_names([{"id": 1, "name": "a"}, {"id": 3, "name": "b"}]) == ["", "a", "", "b"]
    assert len(category_names(TABLE)) < MASK_NODATA
    assert category_names([]) == []


def test_sidecar_holds_category_names_and_a_thematic_rat(tmp_path):
    path = write_class_sidecar(class_sidecar_path(tmp_path / "mask.tif"), TABLE)
    assert path == tmp_path / "mask.tif.aux.xml"
    cats, columns, rows = parse_sidecar(path.read_text())
    assert cats == ["water", "forest", "roads & <paths>"]  # escaped in the XML, names intact
    assert columns == ["Value", "Class", "Red", "Green", "Blue", "Alpha"]
    assert rows == [
        ["0", "water", "0", "0", "255", "255"],
        ["1", "forest", "0", "100", "0", "255"],
        ["2", "roads & <paths>", "128", "128", "128", "255"],
    ]
    assert str(MASK_NODATA) not in [r[0] for r in rows]
    # the usages GDAL and QGIS key on: MinMax, Name, Red, Green, Blue, Alpha
    root = ET.fromstring(class_sidecar_xml(TABLE))
    usages = [f.findtext("Usage") for f in root.iter("FieldDefn")]
    assert usages == ["5", "2", "6", "7", "8", "9"]


@pytest.mark.parametrize(
    ("name", "color"),
    [
        ("water", "#1f78b4"), ("River", "#1f78b4"), ("lakes", "#1f78b4"), ("sea", "#1f78b4"),
        ("forest", "#1b7837"), ("trees", "#1b7837"), ("woodland", "#1b7837"),
        ("grass", "#a6d96a"), ("meadow", "#a6d96a"), ("low_vegetation", "#a6d96a"),
        ("cropland", "#f0e68c"), ("agriculture", "#f0e68c"), ("Fields", "#f0e68c"),
        ("buildings", "#e31a1c"), ("built-up", "#e31a1c"), ("urban", "#e31a1c"),
        ("road", "#969696"), ("street", "#969696"), ("pavement", "#969696"),
        ("bare soil", "#c69c6d"), ("sand", "#c69c6d"),
        ("snow", "#ffffff"), ("ice", "#ffffff"), ("clouds", "#ffffff"),
        ("background", "#000000"), ("other", "#000000"), ("unlabeled", "#000000"),
        ("class_3", PALETTE[0]), ("season", PALETTE[0]), ("rice", PALETTE[0]),
    ],
)  # fmt: skip
def test_default_colour_follows_the_land_cover_a_name_suggests(name, color):
    assert default_color(name) == color


def test_default_colours_avoid_colours_in_use():
    assert default_color("class_1", [PALETTE[0]]) == PALETTE[1]
    assert default_color("lake", ["#1f78b4"]) not in ("#1f78b4", PALETTE[0])  # another shade of blue
    assert default_color("water", ["#1f77b4"]) != "#1f78b4"  # too close to a blue in use
    # two water classes get two blues; classes named by land cover get their colour before the palette,
    # which then skips its own blue (too close to water's) for class_0
    assert fill_colors([("class_0", None), ("river", None), ("lake", None)]) == [
        "#ff7f0e",
        "#1f78b4",
        "#a6cee3",
    ]
    many = fill_colors([(f"class_{i}", None) for i in range(len(PALETTE))])
    assert many == PALETTE  # unnamed classes: the palette in order, as before


def test_explicit_colours_always_win():
    out = fill_colors([("water", "#ff0000"), ("forest", None), ("x", "#1b7837")])
    assert out[0] == "#ff0000" and out[2] == "#1b7837"
    assert out[1] not in ("#ff0000", "#1b7837")  # forest's first shade is taken: its next one
    assert out[1] == "#00441b"


def test_class_table_colours_inferred_and_given():
    table = ClassTable.from_specs(
        [
            ClassSpec(id=2, name="building"),
            ClassSpec(id=0, name="water"),
            ClassSpec(id=1, name="forest", color="#123456"),
            ClassSpec(id=3, name="class_3"),
        ]
    )
    assert [(c.name, c.color) for c in table.classes] == [
        ("water", "#1f78b4"),
        ("forest", "#123456"),
        ("building", "#e31a1c"),
        ("class_3", PALETTE[1]),  # the palette's first blue is too close to water's
    ]
    cmap = class_colormap(table.raster_classes())
    assert cmap[0][:3] == hex_to_rgb("#1f78b4") and cmap[MASK_NODATA] == (0, 0, 0, 0)
