"""The outputs of `rsseg predict` opened by real QGIS: the mask, the probabilities and the GeoPackage polygons
load with their default styles (the .qml beside, the style stored in the GeoPackage), with the classes'
renderers, colours and labels, and render to PNGs whose pixels show the class colours.

PyQGIS lives in the system Python (Debian's python3-qgis), not in rsseg's environment, so QGIS runs in a
subprocess of a Python that can import it (RSSEG_QGIS_PYTHON, else /usr/bin/python3); the test is skipped
where none can (CI).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin

from rsseg_cli.geo.class_raster import read_class_table, rgb_to_hex
from tests.conftest import stripes, write_raster
from tests.predict.conftest import save_checkpoint
from tests.predict.test_predict_cmd import UTM, scene_data

QGIS_PYTHON = os.environ.get("RSSEG_QGIS_PYTHON", "/usr/bin/python3")
SCALE = 4  # rendered pixels per raster pixel for the polygons: their 1-pixel outlines are a small share


def qgis_env(runtime: Path | None = None) -> dict[str, str]:
    """The environment of QGIS's Python: none of the venv's variables, no display, a private runtime dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["QT_QPA_PLATFORM"] = "offscreen"
    if runtime is not None:
        runtime.mkdir(mode=0o700, exist_ok=True)
        env["XDG_RUNTIME_DIR"] = str(runtime)
    return env


def _qgis_available() -> bool:
    if not Path(QGIS_PYTHON).exists():
        return False
    probe = subprocess.run([QGIS_PYTHON, "-c", "import qgis.core"], env=qgis_env(), capture_output=True)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _qgis_available(), reason=f"{QGIS_PYTHON} cannot import qgis.core")

# Run by QGIS's Python: argv = mask, probs, gpkg, out folder. Prints what QGIS made of the layers as JSON.
SCRIPT = r"""
import json, os, sys
from qgis.core import (QgsApplication, QgsMapRendererSequentialJob, QgsMapSettings, QgsPointXY,
                       QgsRasterLayer, QgsVectorLayer)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor

mask_path, probs_path, gpkg_path, out = sys.argv[1:5]
app = QgsApplication([], False)
app.initQgis()

def render(layer, width, height, png):
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(layer.extent())
    settings.setOutputSize(QSize(width, height))
    settings.setOutputDpi(96)
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    job.renderedImage().save(png, "PNG")

report = {}
mask = QgsRasterLayer(mask_path, "mask")  # loads mask.qml beside it as the default style
renderer = mask.renderer()
report["mask"] = {"valid": mask.isValid(), "renderer": renderer.type(),
                  "classes": [[int(c.value), c.color.name(), c.color.alpha(), c.label] for c in renderer.classes()]
                  if renderer.type() == "paletted" else []}
render(mask, mask.width(), mask.height(), out + "/mask.png")

probs = QgsRasterLayer(probs_path, "probs")
renderer = probs.renderer()
center = probs.extent().center()
band = renderer.band() if hasattr(renderer, "band") else -1
value, ok = probs.dataProvider().sample(QgsPointXY(center), band)
report["probs"] = {"valid": probs.isValid(), "renderer": renderer.type(), "band": band,
                   "min": getattr(renderer, "classificationMin", lambda: None)(),
                   "max": getattr(renderer, "classificationMax", lambda: None)(),
                   "center": [center.x(), center.y()], "center_value": value if ok else None}

polygons = QgsVectorLayer(gpkg_path + "|layername=polygons", "polygons", "ogr")
renderer = polygons.renderer()
report["polygons"] = {"valid": polygons.isValid(), "features": polygons.featureCount(), "renderer": renderer.type(),
                      "attr": renderer.classAttribute() if renderer.type() == "categorizedSymbol" else None,
                      "categories": [[str(c.value()), c.label(), c.symbol().color().name()]
                                     for c in renderer.categories()] if renderer.type() == "categorizedSymbol" else []}
scale = int(sys.argv[5])
render(polygons, mask.width() * scale, mask.height() * scale, out + "/polygons.png")
print(json.dumps(report))
sys.stdout.flush()
# PyQGIS 3.22 may crash while tearing down its layers at exit; what was asked is printed and saved.
os._exit(0)
"""


def run_qgis(mask: Path, probs: Path, gpkg: Path, out: Path) -> dict:
    script = out / "qgis_check.py"
    script.write_text(SCRIPT)
    done = subprocess.run([QGIS_PYTHON, str(script), str(mask), str(probs), str(gpkg), str(out), str(SCALE)],
                          env=qgis_env(out / "runtime"), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_qgis_loads_the_styles_and_renders_the_class_colours(tmp_path, cli):
    checkpoint = save_checkpoint(tmp_path / "best.pt")
    transform = from_origin(500000.0, 5400000.0, 2.0, 2.0)
    data = scene_data(96, 80)
    data[:, :12, :20] = 0  # a nodata corner: transparent in QGIS, white on the white background
    image = write_raster(tmp_path / "scene.tif", data, crs=UTM, transform=transform, nodata=0)
    out = tmp_path / "out"
    r = cli("predict", image, "--out", out / "mask.tif", "--checkpoint", checkpoint,
            "--probs", out / "probs.tif", "--vector", out / "polygons.gpkg", "--set", "predict.vector.sieve=0")  # fmt: skip
    assert r.code == 0, r.err
    # A random-init model predicts about one class: give the mask stripes of every class (its metadata, the
    # style's source, stays) so that the rendering shows each colour.
    with rasterio.open(out / "mask.tif", "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst:
        predicted = dst.read(1)
        dst.write(np.where(predicted == 255, 255, stripes(*predicted.shape, k=3, period=16)), 1)
    (out / "polygons.qml").unlink()  # so that QGIS can only have the polygons' style from the GeoPackage
    report = run_qgis(out / "mask.tif", out / "probs.tif", out / "polygons.gpkg", out)

    with rasterio.open(out / "mask.tif") as src:
        mask, cmap, table = src.read(1), src.colormap(1), read_class_table(src)
    with rasterio.open(out / "probs.tif") as src:
        row, col = src.index(*report["probs"]["center"])
        confidence = src.read(src.count)[row, col] / 255

    # The mask: paletted, one entry per class with the colormap's colour and the class name.
    assert report["mask"]["valid"] and report["mask"]["renderer"] == "paletted"
    expected = [[c["id"], rgb_to_hex(cmap[c["id"]]), 255, c["name"]] for c in table]
    assert report["mask"]["classes"] == expected
    png = np.asarray(Image.open(out / "mask.png").convert("RGB"))
    assert png.shape[:2] == mask.shape
    lut = np.full((256, 3), 255, np.uint8)  # nodata: transparent over the white background
    for c in table:
        lut[c["id"]] = cmap[c["id"]][:3]
    match = np.all(png == lut[mask], axis=-1)
    assert match.mean() > 0.99, f"only {match.mean():.1%} of the rendered pixels have their class colour"
    assert (mask == 255).any() and np.all(png[mask == 255] == 255)  # nodata is transparent
    assert set(np.unique(mask)) == {0, 1, 2, 255}

    # The probabilities: the confidence band on a fixed 0..1 ramp, read by QGIS as probabilities.
    probs = report["probs"]
    assert probs["valid"] and probs["renderer"] == "singlebandpseudocolor"
    assert (probs["band"], probs["min"], probs["max"]) == (len(table) + 1, 0.0, 1.0)
    assert probs["center_value"] == pytest.approx(confidence, abs=1e-6)  # GDAL's scale 1/255 applied

    # The polygons: their style from the GeoPackage, categorized on class_id, class colours and names.
    polygons = report["polygons"]
    assert polygons["valid"] and polygons["features"] > 0
    assert (polygons["renderer"], polygons["attr"]) == ("categorizedSymbol", "class_id")
    assert polygons["categories"] == [[str(c["id"]), c["name"], rgb_to_hex(cmap[c["id"]])] for c in table]
    png = np.asarray(Image.open(out / "polygons.png").convert("RGB"))
    big = np.kron(predicted, np.ones((SCALE, SCALE), np.uint8))  # the polygons are the predicted classes
    assert png.shape[:2] == big.shape
    lut = np.zeros((256, 3), np.uint8)
    for c in table:
        lut[c["id"]] = cmap[c["id"]][:3]
    valid = big != 255
    fill = np.all(png == lut[big], axis=-1)[valid]
    assert fill.mean() > 0.6, f"only {fill.mean():.1%} of the polygon pixels show their class colour"
