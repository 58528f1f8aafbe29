"""The feature layer of a GeoPackage that also holds QGIS's layer_styles table is read without a warning."""

from __future__ import annotations

import warnings

import geopandas as gpd
from shapely.geometry import box

from rsseg_cli.geo.gpkg_style import write_default_style
from rsseg_cli.geo.vector import feature_layer, read_vector


def test_styled_geopackage_reads_its_features(tmp_path):
    path = tmp_path / "areas.gpkg"
    gpd.GeoDataFrame({"class": ["water"]}, geometry=[box(0, 0, 1, 1)], crs="EPSG:32633").to_file(
        path, layer="areas"
    )
    write_default_style(path, "areas", "<qgis/>")
    assert feature_layer(path) == "areas"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = read_vector(path)
    assert list(frame["class"]) == ["water"] and frame.crs.to_epsg() == 32633


def test_single_layer_files_read_as_before(tmp_path):
    path = tmp_path / "one.geojson"
    gpd.GeoDataFrame({"v": [1]}, geometry=[box(0, 0, 1, 1)], crs="EPSG:4326").to_file(path)
    assert feature_layer(path) is None and len(read_vector(path)) == 1
