"""The metadata contract of the class rasters rsseg writes (predicted masks, label chips, sample labels) and reads.

A class mask is one uint8 band of class ids with nodata 255, a colormap, the band description "class",
and the class table as JSON in the dataset tag RSSEG_CLASSES: [{"id", "name", "color", "value"?}, ...].
A probability raster has one uint8 band per class (round(255 p), described by the class name), then a
"confidence" band (the winning class's probability); invalid pixels are 0 in every band and masked out by
an internal dataset mask.

This module is the one place that knows the tag name, the palette and the colormap, so that every writer
and reader agrees.  It imports nothing from rsseg_cli.data or rsseg_cli.config: the data package builds
on it, not the other way round.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import rasterio

# The value of "no class" in a class raster.  Equal to rsseg_cli.config.IGNORE_INDEX (tests hold them
# equal); defined here so that this module stays free of the configuration and its dependencies.
MASK_NODATA = 255
CONFIDENCE_BAND = "confidence"

# Tag written into every class raster rsseg produces, so a later `tile` can recover names and colours.
CLASS_TAG = "RSSEG_CLASSES"

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
    "class_colormap",
    "class_table_from_tag",
    "hex_to_rgb",
    "read_class_table",
    "read_colormap",
    "rgb_to_hex",
    "write_class_metadata",
]


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def rgb_to_hex(rgb: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb[:3])


def class_colormap(classes: list[dict]) -> dict[int, tuple[int, int, int, int]]:
    """Class id -> RGBA; a class without a colour gets the palette colour of its id, nodata is transparent."""
    cmap = {
        int(c["id"]): (*hex_to_rgb(c.get("color") or PALETTE[int(c["id"]) % len(PALETTE)]), 255)
        for c in classes
    }
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
