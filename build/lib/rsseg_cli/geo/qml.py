"""QGIS layer styles (QML) of the files rsseg writes, so that they open in QGIS with the classes' colours
and names rather than as grey bands.

QGIS loads `<file stem>.qml` beside a raster or a file-based vector layer as its default style (and, for a
GeoPackage layer, first the default style stored in the file: rsseg_cli.geo.gpkg_style). The documents follow
what QGIS 3 itself writes (QgsPalettedRasterRenderer::writeXml, QgsSingleBandPseudoColorRenderer /
QgsColorRampShader::writeXml, QgsCategorizedSymbolRenderer::save with SimpleFill symbol layers), reduced
to the renderer: elements a style omits keep QGIS's defaults. Symbol layer properties are written both as
an <Option> map (read by QGIS >= 3.18) and as <prop> pairs (read by older 3.x releases).

- class mask: a paletted renderer on band 1, one entry per class (value = class id, label = class name);
  nodata (255) has no entry and stays transparent.
- polygons: a categorized renderer on the `class_id` field, one category per class, filled with the
  class colour, labelled with the class name.
- probabilities: a pseudocolor ramp (viridis) from 0 to 1 on one band; the bands carry the GDAL scale
  1/255 (PROB_SCALE), which QGIS applies, so the ramp runs over probabilities, not over 0..255.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from rsseg_cli.geo.class_raster import MASK_NODATA, class_colormap, rgb_to_hex

__all__ = [
    "CLASS_FIELD",
    "PROBABILITY_RAMP",
    "mask_qml",
    "polygons_qml",
    "probability_qml",
    "qml_path",
]

# The oldest QGIS these documents are written for; QGIS reads styles of older versions without complaint.
QGIS_VERSION = "3.22.0"
DOCTYPE = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
# The polygon attribute the categorized style keys on (vectorize writers: class_id, class_name, ...): the
# id, not the name, so that renaming a class in the table later does not orphan its polygons' colour.
CLASS_FIELD = "class_id"
# Viridis at five stops: perceptually uniform and readable by colour-blind users, dark = low probability.
PROBABILITY_RAMP = (
    (0.0, "#440154"),
    (0.25, "#3b528b"),
    (0.5, "#21918c"),
    (0.75, "#5ec962"),
    (1.0, "#fde725"),
)
_OUTLINE = "35,35,35,255"  # QGIS's default polygon outline (dark grey, 0.26 mm)


def qml_path(path: Path | str) -> Path:
    """Where QGIS looks for the default style of the file `path`: the same name with the suffix .qml."""
    return Path(path).with_suffix(".qml")


def _document(layer_attrs: dict[str, str] | None = None) -> ET.Element:
    return ET.Element("qgis", {"version": QGIS_VERSION, "styleCategories": "AllStyleCategories",
                               **(layer_attrs or {})})  # fmt: skip


def _serialize(root: ET.Element) -> str:
    ET.indent(root, space="  ")
    return DOCTYPE + ET.tostring(root, encoding="unicode") + "\n"


def _classes_in_order(classes: list[dict]) -> list[tuple[int, str, tuple[int, int, int, int]]]:
    """(id, name, RGBA) per class in id order, nodata left out; colours as every other writer has them."""
    cmap = class_colormap(classes)
    return [
        (int(c["id"]), str(c["name"]), cmap[int(c["id"])])
        for c in sorted(classes, key=lambda c: int(c["id"]))
        if int(c["id"]) != MASK_NODATA
    ]


def _raster_renderer(
    pipe: ET.Element, kind: str, band: int, extra: dict[str, str] | None = None
) -> ET.Element:
    attrs = {"type": kind, "band": str(band), "opacity": "1", "alphaBand": "-1", "nodataColor": ""}
    renderer = ET.SubElement(pipe, "rasterrenderer", {**attrs, **(extra or {})})
    ET.SubElement(renderer, "rasterTransparency")
    return renderer


def _raster_tail(root: ET.Element, pipe: ET.Element) -> None:
    # Classes must never be interpolated between pixels: nearest neighbour in and out.
    ET.SubElement(pipe, "brightnesscontrast", {"brightness": "0", "contrast": "0", "gamma": "1"})
    ET.SubElement(pipe, "rasterresampler", {"maxOversampling": "2"})
    ET.SubElement(root, "blendMode").text = "0"


def mask_qml(classes: list[dict]) -> str:
    """The paletted style of a class mask: band 1, one palette entry per class, nodata transparent."""
    root = _document({"hasScaleBasedVisibilityFlag": "0", "minScale": "1e+08", "maxScale": "0"})
    pipe = ET.SubElement(root, "pipe")
    renderer = _raster_renderer(pipe, "paletted", 1)
    palette = ET.SubElement(renderer, "colorPalette")
    for cid, name, (r, g, b, a) in _classes_in_order(classes):
        ET.SubElement(palette, "paletteEntry",
                      {"value": str(cid), "color": rgb_to_hex((r, g, b)), "alpha": str(a), "label": name})  # fmt: skip
    _raster_tail(root, pipe)
    return _serialize(root)


def probability_qml(band: int, label: str = "probability") -> str:
    """A pseudocolor style of probability band `band` (1-based): viridis from p = 0 to p = 1.

    `label` names the band in the legend's title-less entries (QGIS shows the stop values)."""
    root = _document({"hasScaleBasedVisibilityFlag": "0", "minScale": "1e+08", "maxScale": "0"})
    pipe = ET.SubElement(root, "pipe")
    renderer = _raster_renderer(pipe, "singlebandpseudocolor", band,
                                {"classificationMin": "0", "classificationMax": "1"})  # fmt: skip
    # Fixed limits: QGIS would otherwise stretch the ramp to each view's min..max, and 0.6 would look
    # like certainty in a confident scene.
    origin = ET.SubElement(renderer, "minMaxOrigin")
    ET.SubElement(origin, "limits").text = "None"
    ET.SubElement(origin, "extent").text = "WholeRaster"
    shader = ET.SubElement(ET.SubElement(renderer, "rastershader"), "colorrampshader",
                           {"colorRampType": "INTERPOLATED", "classificationMode": "1", "clip": "0",
                            "minimumValue": "0", "maximumValue": "1", "labelPrecision": "2"})  # fmt: skip
    for value, color in PROBABILITY_RAMP:
        text = f"{label} {value:g}" if value in (0.0, 1.0) else f"{value:g}"
        ET.SubElement(shader, "item", {"value": f"{value:g}", "color": color, "alpha": "255", "label": text})
    _raster_tail(root, pipe)
    return _serialize(root)


def _option_map(parent: ET.Element, props: dict[str, str]) -> None:
    options = ET.SubElement(parent, "Option", {"type": "Map"})
    for key, value in props.items():
        ET.SubElement(options, "Option", {"name": key, "type": "QString", "value": value})
    for key, value in props.items():
        ET.SubElement(parent, "prop", {"k": key, "v": value})


def _fill_symbol(symbols: ET.Element, name: str, rgba: tuple[int, int, int, int]) -> None:
    symbol = ET.SubElement(symbols, "symbol", {"type": "fill", "name": name, "alpha": "1",
                                               "clip_to_extent": "1", "force_rhr": "0"})  # fmt: skip
    layer = ET.SubElement(
        symbol, "layer", {"class": "SimpleFill", "enabled": "1", "locked": "0", "pass": "0"}
    )
    _option_map(layer, {
        "color": ",".join(str(v) for v in rgba),
        "style": "solid",
        "outline_color": _OUTLINE,
        "outline_style": "solid",
        "outline_width": "0.26",
        "outline_width_unit": "MM",
        "joinstyle": "bevel",
        "offset": "0,0",
        "offset_unit": "MM",
    })  # fmt: skip


def polygons_qml(classes: list[dict], field: str = CLASS_FIELD) -> str:
    """The categorized style of the polygons: one category per class on `field` (class ids), filled with
    the class colour, labelled with the class name."""
    root = _document({"hasScaleBasedVisibilityFlag": "0", "minScale": "100000000", "maxScale": "0",
                      "labelsEnabled": "0", "readOnly": "0"})  # fmt: skip
    renderer = ET.SubElement(root, "renderer-v2", {"type": "categorizedSymbol", "attr": field,
                                                   "symbollevels": "0", "enableorderby": "0",
                                                   "forceraster": "0", "referencescale": "-1"})  # fmt: skip
    categories = ET.SubElement(renderer, "categories")
    symbols = ET.SubElement(renderer, "symbols")
    for i, (cid, name, rgba) in enumerate(_classes_in_order(classes)):
        ET.SubElement(categories, "category", {"value": str(cid), "label": name, "symbol": str(i),
                                               "render": "true"})  # fmt: skip
        _fill_symbol(symbols, str(i), rgba)
    ET.SubElement(renderer, "rotation")
    ET.SubElement(renderer, "sizescale")
    ET.SubElement(root, "blendMode").text = "0"
    ET.SubElement(root, "featureBlendMode").text = "0"
    ET.SubElement(root, "layerOpacity").text = "1"
    ET.SubElement(root, "legend", {"type": "default-vector", "showLabelLegend": "0"})
    return _serialize(root)
