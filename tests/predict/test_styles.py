"""`rsseg predict` writes QGIS styles beside its outputs: the mask's colours and names come from the mask
itself (its colormap and class table, read with rasterio), so the style cannot disagree with the raster."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pyogrio
import rasterio
from rasterio.transform import from_origin

from rsseg_cli.geo.class_raster import read_class_table, rgb_to_hex
from rsseg_cli.geo.gpkg_style import read_default_style
from rsseg_cli.vectorize.writers import LAYER
from tests.conftest import write_raster
from tests.predict.test_predict_cmd import UTM, scene_data


def palette(qml: Path) -> dict[int, tuple[str, str]]:
    renderer = ET.parse(qml).getroot().find("pipe/rasterrenderer")
    assert renderer.get("type") == "paletted"
    return {int(e.get("value")): (e.get("color"), e.get("label")) for e in renderer.iter("paletteEntry")}


def categories(document: str) -> dict[int, str]:
    renderer = ET.fromstring(document).find("renderer-v2")
    assert renderer.get("type") == "categorizedSymbol"
    return {int(c.get("value")): c.get("label") for c in renderer.iter("category")}


def scene(tmp_path: Path) -> Path:
    transform = from_origin(500000.0, 5400000.0, 1.0, 1.0)
    return write_raster(tmp_path / "scene.tif", scene_data(96, 80), crs=UTM, transform=transform)


def test_predict_writes_styles_beside_mask_probs_and_polygons(tmp_path, cli, checkpoint):
    out = tmp_path / "out"
    r = cli("predict", scene(tmp_path), "--out", out / "mask.tif", "--checkpoint", checkpoint,
            "--probs", out / "probs.tif", "--vector", out / "polygons.gpkg")  # fmt: skip
    assert r.code == 0, r.err
    with rasterio.open(out / "mask.tif") as src:
        cmap, table, probs_count = src.colormap(1), read_class_table(src), None
    with rasterio.open(out / "probs.tif") as src:
        probs_count, conf_description = src.count, src.descriptions[-1]

    expected = {c["id"]: (rgb_to_hex(cmap[c["id"]]), c["name"]) for c in table}
    assert palette(out / "mask.qml") == expected

    renderer = ET.parse(out / "probs.qml").getroot().find("pipe/rasterrenderer")
    assert renderer.get("type") == "singlebandpseudocolor"
    assert int(renderer.get("band")) == probs_count and conf_description == "confidence"

    names = {c["id"]: c["name"] for c in table}
    assert categories((out / "polygons.qml").read_text()) == names
    assert categories(read_default_style(out / "polygons.gpkg", LAYER)) == names
    # The polygons the style keys on carry the same ids.
    assert set(pyogrio.read_dataframe(out / "polygons.gpkg", layer=LAYER)["class_id"]) <= set(names)
    assert not list(out.glob(".*partial*"))


def test_outputs_sharing_a_stem_keep_the_mask_style_and_the_gpkg_its_own(tmp_path, cli, checkpoint):
    out = tmp_path / "out"
    r = cli("predict", scene(tmp_path), "--out", out / "scene.tif", "--checkpoint", checkpoint,
            "--vector", out / "scene.gpkg")  # fmt: skip
    assert r.code == 0, r.err
    assert set(palette(out / "scene.qml")) == {0, 1, 2}  # the mask's, not overwritten by the polygons'
    assert set(categories(read_default_style(out / "scene.gpkg", LAYER))) == {0, 1, 2}
    # A GeoJSON cannot hold a style: its .qml goes beside it.
    r = cli("predict", scene(tmp_path), "--out", out / "other.tif", "--checkpoint", checkpoint,
            "--vector", out / "polygons.geojson")  # fmt: skip
    assert r.code == 0, r.err
    assert set(categories((out / "polygons.qml").read_text())) == {0, 1, 2}


def test_a_failed_predict_leaves_no_style(tmp_path, cli, checkpoint):
    # A band count the checkpoint refuses: nothing is written, styles included.
    bad = write_raster(tmp_path / "two_bands.tif", scene_data(64, 64, bands=2), crs=UTM)
    r = cli("predict", bad, "--out", tmp_path / "out" / "mask.tif", "--checkpoint", checkpoint)
    assert r.code == 2
    assert not list(tmp_path.glob("out/*.qml"))
