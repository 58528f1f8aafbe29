"""The metadata contract of the class rasters rsseg writes (predicted masks, label chips) and reads back.

A class mask is one uint8 band of class ids with nodata 255, a colormap, the band description "class",
and the class table as JSON in the dataset tag RSSEG_CLASSES: [{"id", "name", "color", "value"?}, ...].
A probability raster has one uint8 band per class (round(255 p), described by the class name), then a
"confidence" band (the winning class's probability); invalid pixels are 0 in every band and masked out by
an internal dataset mask.
"""

from __future__ import annotations

import json

import rasterio

from rsseg_cli.config import IGNORE_INDEX
from rsseg_cli.data.classes import CLASS_TAG, PALETTE, hex_to_rgb, rgb_to_hex

MASK_NODATA = IGNORE_INDEX
CONFIDENCE_BAND = "confidence"


def class_colormap(classes: list[dict]) -> dict[int, tuple[int, int, int, int]]:
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


def read_class_table(src: rasterio.io.DatasetReader) -> list[dict] | None:
    """The class table of a class raster: from the RSSEG_CLASSES tag, else from its colormap, else None."""
    tag = src.tags().get(CLASS_TAG)
    if tag:
        try:
            table = json.loads(tag)
            return [
                {"id": int(c["id"]), "name": str(c["name"]), "color": c.get("color"), "value": c.get("value")}
                for c in table
            ]
        except (ValueError, KeyError, TypeError):
            pass
    try:
        cmap = src.colormap(1)
    except ValueError:
        return None
    ids = [v for v, rgba in cmap.items() if v != MASK_NODATA and rgba != (0, 0, 0, 0)]
    if not ids:
        return None
    return [{"id": v, "name": f"class_{v}", "color": rgb_to_hex(cmap[v]), "value": None} for v in sorted(ids)]
