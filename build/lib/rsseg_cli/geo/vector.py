"""Reading the analyst's vector files: the feature layer of a GeoPackage, whatever else it holds.

GeoPackages saved by QGIS (and by rsseg: polygons, suggestions) carry a `layer_styles` table beside the
features; geopandas would read "the first layer" and warn. `read_vector` reads the one layer with geometry,
and names the one it reads when there are several.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("rsseg")

STYLE_TABLE = "layer_styles"


def feature_layer(path: Path | str) -> str | None:
    """The layer to read: the only (or first) layer with geometry other than QGIS's style table; None for
    formats with one layer."""
    import pyogrio

    try:
        layers = pyogrio.list_layers(str(path))
    except Exception:  # not a multi-layer source pyogrio can list: let the reader report it
        return None
    spatial = [str(name) for name, geometry in layers if geometry is not None and name != STYLE_TABLE]
    if len(layers) <= 1 or not spatial:
        return None
    if len(spatial) > 1:
        log.warning("%s holds %d layers (%s): reading %s", path, len(spatial), ", ".join(spatial), spatial[0])
    return spatial[0]


def read_vector(path: Path | str, **kwargs):
    """gpd.read_file of the feature layer of `path`."""
    import geopandas as gpd

    layer = feature_layer(path)
    return gpd.read_file(path, **({"layer": layer} if layer else {}), **kwargs)
