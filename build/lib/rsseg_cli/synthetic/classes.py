"""The sample scene's class table and class ids.

The ids are the label raster's pixel values; the names, colours and concepts travel with the label raster
(geo.class_raster) and feed the text-guided methods, so that `rsseg tile` needs no class table for the sample.
"""

from __future__ import annotations

from rsseg_cli.geo.class_raster import MASK_NODATA

__all__ = ["BARE", "BUILDING", "CROP", "FOREST", "GRASS", "LABEL_NODATA", "ROAD", "SAMPLE_CLASSES", "WATER"]

SAMPLE_CLASSES: list[dict] = [
    {
        "id": 0,
        "name": "water",
        "color": "#1f78b4",
        "concepts": ["water", "lake", "river", "pond", "reservoir"],
    },
    {
        "id": 1,
        "name": "forest",
        "color": "#1b5e20",
        "concepts": ["forest", "woodland", "trees", "tree canopy", "woods"],
    },
    {
        "id": 2,
        "name": "grassland",
        "color": "#9ccc65",
        "concepts": ["grassland", "meadow", "pasture", "lawn", "grass"],
    },
    {
        "id": 3,
        "name": "cropland",
        "color": "#ffd54f",
        "concepts": ["cropland", "farmland", "agricultural field", "crop field", "arable land"],
    },
    {
        "id": 4,
        "name": "bare_soil",
        "color": "#a1887f",
        "concepts": ["bare soil", "bare ground", "exposed earth", "sand", "fallow field"],
    },
    {
        "id": 5,
        "name": "building",
        "color": "#e53935",
        "concepts": ["building", "house", "roof", "rooftop", "built-up area"],
    },
    {
        "id": 6,
        "name": "road",
        "color": "#616161",
        "concepts": ["road", "street", "highway", "asphalt", "paved road"],
    },
]

WATER, FOREST, GRASS, CROP, BARE, BUILDING, ROAD = range(7)
# Outside the swath (the nodata corner) the label raster holds the class-raster contract's "no class".
LABEL_NODATA = MASK_NODATA
