"""The metadata contract of the class rasters rsseg writes (predicted masks, label chips, sample labels) and reads.

A class mask is one uint8 band of class ids with nodata 255, a colormap, the band description "class",
and the class table as JSON in the dataset tag RSSEG_CLASSES: [{"id", "name", "color", "value"?}, ...].
For GIS software, a predicted mask also gets a GDAL PAM sidecar (`<mask>.aux.xml`, `class_sidecar_xml`):
band 1's category names (what QGIS labels a paletted legend with) and a thematic raster attribute table
(value, class, red, green, blue, alpha). GDAL 3.10's GeoTIFF driver keeps both only in such a sidecar.
A probability raster has one uint8 band per class (round(255 p), described by the class name), then a
"confidence" band (the winning class's probability); every band carries the GDAL scale 1/255 and offset 0
(`PROB_SCALE`), so GDAL readers get p = value / 255; invalid pixels are 0 in every band and masked out by
an internal dataset mask.

This module is the one place that knows the tag name, the palette and the colormap, so that every writer
and reader agrees.  It imports nothing from rsseg_cli.data or rsseg_cli.config: the data package builds
on it, not the other way round.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import rasterio

# The value of "no class" in a class raster.  Equal to rsseg_cli.config.IGNORE_INDEX (tests hold them
# equal); defined here so that this module stays free of the configuration and its dependencies.
MASK_NODATA = 255
CONFIDENCE_BAND = "confidence"

# Tag written into every class raster rsseg produces, so a later `tile` can recover names and colours.
CLASS_TAG = "RSSEG_CLASSES"

# GDAL scale of a probability band: p = value * PROB_SCALE (offset 0).  Files of rsseg 0.1.0 carry no scale
# (GDAL reports 1.0); they hold the same round(255 p) values.
PROB_SCALE = 1 / 255

# A qualitative palette (tab10 followed by tab20's light tones) for classes without a colour.
PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
    "#dbdb8d", "#9edae5",
]  # fmt: skip

__all__ = [
    "CLASS_TAG",
    "CONFIDENCE_BAND",
    "MASK_NODATA",
    "PALETTE",
    "PROB_SCALE",
    "category_names",
    "class_colormap",
    "class_sidecar_path",
    "class_sidecar_xml",
    "class_table_from_tag",
    "default_color",
    "fill_colors",
    "hex_to_rgb",
    "read_class_table",
    "read_colormap",
    "rgb_to_hex",
    "write_class_metadata",
    "write_class_sidecar",
]

# Colours of land covers a class name suggests, for classes given without a colour: name prefixes
# (matched against each word of the name) -> shades, the first not yet taken is used.
_COVER_COLORS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("background", "other", "unlabeled", "unlabelled", "unclassified", "nodata", "void"),
     ("#000000", "#252525", "#404040")),
    (("water", "river", "lake", "sea", "ocean", "pond", "reservoir"), ("#1f78b4", "#a6cee3", "#08306b")),
    (("forest", "tree", "wood"), ("#1b7837", "#00441b", "#4d9221")),
    (("grass", "meadow", "pasture", "vegetation", "shrub"), ("#a6d96a", "#b8e186", "#d9f0a3")),
    (("crop", "field", "agricultur", "farmland", "cultivat"), ("#f0e68c", "#e6c229", "#fee391")),
    (("building", "roof", "urban", "built", "house"), ("#e31a1c", "#fb9a99", "#99000d")),
    (("road", "street", "pavement", "impervious", "parking", "railway"), ("#969696", "#636363", "#bdbdbd")),
    (("bare", "soil", "sand", "rock", "desert"), ("#c69c6d", "#8c510a", "#dfc27d")),
    (("snow", "ice", "cloud", "glacier"), ("#ffffff", "#d9d9d9", "#f0f0f0")),
)  # fmt: skip
# Short keys that must be the whole word (or its plural): "sea" is not "season", "ice" not "icelandic".
_WHOLE_WORDS = {"sea", "ice", "other", "void", "pond"}


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def rgb_to_hex(rgb: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb[:3])


def _cover_shades(name: str) -> tuple[str, ...]:
    words = [w for w in re.split(r"[^a-z0-9]+", str(name).lower()) if w]
    for keys, shades in _COVER_COLORS:
        for word in words:
            for key in keys:
                whole = key in _WHOLE_WORDS
                if word in (key, f"{key}s", f"{key}es") or (not whole and word.startswith(key)):
                    return shades
    return ()


def default_color(name: str, used: Collection[str] = ()) -> str:
    """The colour of a class given without one: the colour of the land cover its name suggests (water
    blue, forest dark green, building red, ...), else the first palette colour not in `used` (nor close
    to one of them)."""
    exact = {c.lower() for c in used}

    def free(color: str, among: Collection[str]) -> bool:  # not used, nor hard to tell from one in `among`
        rgb = hex_to_rgb(color)
        near = (sum(abs(a - b) for a, b in zip(rgb, hex_to_rgb(t))) < 48 for t in among)
        return color not in exact and not any(near)

    for color in _cover_shades(name):
        if free(color, exact):
            return color
    # The palette's own colours are told apart by their order, as before; only others (given or land
    # cover colours) are kept at a distance.
    others = [c for c in exact if c not in PALETTE]
    for color in PALETTE:
        if free(color, others):
            return color
    return PALETTE[len(exact) % len(PALETTE)]


def fill_colors(names_and_colors: Sequence[tuple[str, str | None]]) -> list[str]:
    """Colours for classes in table order: given colours kept; the others from `default_color`, first the
    classes whose name suggests a land cover (so they get its colour), then the rest from the palette."""
    out: list[str | None] = [c or None for _, c in names_and_colors]
    used = [c for c in out if c]
    missing = [i for i, c in enumerate(out) if c is None]
    for i in sorted(missing, key=lambda i: not _cover_shades(names_and_colors[i][0])):
        out[i] = default_color(names_and_colors[i][0], used)
        used.append(out[i])
    return [str(c) for c in out]


def class_colormap(classes: list[dict]) -> dict[int, tuple[int, int, int, int]]:
    """Class id -> RGBA; a class without a colour gets `fill_colors`'s, nodata is transparent."""
    colors = fill_colors([(str(c.get("name", "")), c.get("color")) for c in classes])
    cmap = {int(c["id"]): (*hex_to_rgb(color), 255) for c, color in zip(classes, colors)}
    cmap[MASK_NODATA] = (0, 0, 0, 0)
    return cmap


def write_class_metadata(dst: rasterio.io.DatasetWriter, classes: list[dict]) -> None:
    """Colormap, band description and class table tag on band 1 of an open class raster."""
    dst.write_colormap(1, class_colormap(classes))
    dst.set_band_description(1, "class")
    table = [{k: c[k] for k in ("id", "name", "color", "value") if c.get(k) is not None} for c in classes]
    dst.update_tags(**{CLASS_TAG: json.dumps(table)})
    # Also as plain per-class tags, which gdalinfo and QGIS's metadata panel show readably.
    dst.update_tags(1, **{f"CLASS_{int(c['id'])}": str(c["name"]) for c in classes})


def category_names(classes: list[dict]) -> list[str]:
    """GDAL category names of a class raster: entry i names pixel value i, "" for ids without a class;
    up to the largest class id only, so nodata (255) has no name."""
    by_id = {int(c["id"]): str(c["name"]) for c in classes}
    return [by_id.get(i, "") for i in range(max(by_id, default=-1) + 1)]


def class_sidecar_path(raster: Path | str) -> Path:
    """Where GDAL looks for the PAM metadata of `raster`."""
    return Path(f"{raster}.aux.xml")


def class_sidecar_xml(classes: list[dict]) -> str:
    """The PAM document of a class raster: band 1's category names and a thematic raster attribute table
    (Value: MinMax, Class: Name, Red/Green/Blue/Alpha), one row per class in id order, none for nodata."""
    cmap = class_colormap(classes)
    cats = "".join(f"      <Category>{escape(n)}</Category>\n" for n in category_names(classes))
    fields = [
        ("Value", 0, 5),
        ("Class", 2, 2),
        ("Red", 0, 6),
        ("Green", 0, 7),
        ("Blue", 0, 8),
        ("Alpha", 0, 9),
    ]
    defs = "".join(
        f'      <FieldDefn index="{i}"><Name>{n}</Name><Type>{t}</Type><Usage>{u}</Usage></FieldDefn>\n'
        for i, (n, t, u) in enumerate(fields)
    )
    rows = []
    for r, c in enumerate(sorted(classes, key=lambda c: int(c["id"]))):
        cid = int(c["id"])
        values = [str(cid), escape(str(c["name"])), *(str(v) for v in cmap[cid])]
        rows.append(f'      <Row index="{r}">' + "".join(f"<F>{v}</F>" for v in values) + "</Row>\n")
    return (
        "<PAMDataset>\n"
        '  <PAMRasterBand band="1">\n'
        f"    <CategoryNames>\n{cats}    </CategoryNames>\n"
        f'    <GDALRasterAttributeTable tableType="thematic">\n{defs}{"".join(rows)}'
        "    </GDALRasterAttributeTable>\n"
        "  </PAMRasterBand>\n"
        "</PAMDataset>\n"
    )


def write_class_sidecar(sidecar: Path | str, classes: list[dict]) -> Path:
    """Write `class_sidecar_xml` to `sidecar` (normally `class_sidecar_path(raster)`, or a temporary name
    renamed there with the raster). GDAL, and through it QGIS, reads it when it opens the raster."""
    sidecar = Path(sidecar)
    sidecar.write_text(class_sidecar_xml(classes), encoding="utf-8")
    return sidecar


def class_table_from_tag(tag: str | None) -> list[dict] | None:
    """The class table in an RSSEG_CLASSES tag value, normalised; None when the tag is absent or malformed."""
    if not tag:
        return None
    try:
        table = json.loads(tag)
        return [
            {"id": int(c["id"]), "name": str(c["name"]), "color": c.get("color"), "value": c.get("value")}
            for c in table
        ]
    except (ValueError, KeyError, TypeError):
        # A hand-edited or foreign tag: callers fall back to the colormap rather than failing.
        return None


def read_colormap(src: rasterio.io.DatasetReader) -> dict[int, tuple[int, int, int, int]]:
    """The colormap of band 1, or {} when the raster has none."""
    try:
        return src.colormap(1)
    except ValueError:
        return {}


def read_class_table(src: rasterio.io.DatasetReader) -> list[dict] | None:
    """The class table of a class raster: from the RSSEG_CLASSES tag, else from its colormap, else None."""
    table = class_table_from_tag(src.tags().get(CLASS_TAG))
    if table is not None:
        return table
    cmap = read_colormap(src)
    ids = [v for v, rgba in cmap.items() if v != MASK_NODATA and rgba != (0, 0, 0, 0)]
    if not ids:
        return None
    return [{"id": v, "name": f"class_{v}", "color": rgb_to_hex(cmap[v]), "value": None} for v in sorted(ids)]
