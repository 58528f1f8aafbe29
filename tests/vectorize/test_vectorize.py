"""vectorize_mask: seams, areas in metres, sieve, filters, classes, formats, mean_prob, nodata, errors."""

from __future__ import annotations

import json
import logging

import numpy as np
import pyogrio
import pyproj
import pytest
import rasterio
import shapely
from rasterio import features
from rasterio.crs import CRS
from rasterio.transform import from_origin

from rsseg_cli.errors import UserError
from rsseg_cli.vectorize import check_vectorize_options, vectorize_mask
from tests.conftest import write_raster
from tests.vectorize.helpers import (
    UTM_2M,
    blobby,
    read,
    same_polygons,
    whole_scene_polygons,
    write_mask,
    write_probs,
)


def quiet(*_):
    """on_progress callback: no progress bar in tests."""


def run(mask, out, **kwargs):
    return vectorize_mask(mask, out, on_progress=quiet, **kwargs)


def pairs(df) -> list[tuple[int, object]]:
    return list(zip(df["class_id"].astype(int), df.geometry))


def snake(h: int = 200, w: int = 300) -> np.ndarray:
    """One class-1 region winding through many 64 px windows, with a class-2 hole on a seam."""
    m = np.zeros((h, w), np.uint8)
    m[20:40, 10:290] = 1
    m[20:180, 270:290] = 1
    m[160:180, 10:290] = 1
    m[60:180, 10:30] = 1
    m[124:131, 275:283] = 2  # a hole straddling the row seam at 128
    return m


# -- seams ---------------------------------------------------------------------------------------------


def test_region_crossing_seams_is_one_polygon_equal_to_whole_scene(tmp_path):
    m = snake()
    mask = write_mask(tmp_path / "mask.tif", m)
    summary = run(mask, tmp_path / "out.gpkg", window=64)
    assert summary.windows == 4 * 5
    df = read(tmp_path / "out.gpkg")
    water = df[df.class_id == 1]
    assert len(water) == 1  # crosses 9 seams, comes out as one polygon
    poly = water.geometry.iloc[0]
    assert poly.is_valid and poly.geom_type == "Polygon"
    assert len(poly.interiors) == 1  # the class-2 hole
    assert water.area_m2.iloc[0] == (m == 1).sum() * 4.0  # 2 m pixels
    assert poly.area == (m == 1).sum() * 4.0
    expected = whole_scene_polygons(m, np.ones_like(m, bool), UTM_2M)
    assert same_polygons(pairs(df), expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_windowed_equals_whole_scene_on_regions_touching_diagonally(tmp_path, seed):
    rng = np.random.default_rng(seed)
    m = blobby(rng, 150, 170, k=3, cell=5, speckle=0.3)  # many diagonal contacts across seams
    m[rng.random(m.shape) < 0.02] = 255
    mask = write_mask(tmp_path / "mask.tif", m)
    run(mask, tmp_path / "out.gpkg", window=32, sieve=0)
    df = read(tmp_path / "out.gpkg")
    assert shapely.is_valid(df.geometry.values).all()
    assert (shapely.get_type_id(df.geometry.values) == 3).all()  # Polygon, never MultiPolygon
    assert same_polygons(pairs(df), whole_scene_polygons(m, m != 255, UTM_2M))


def test_windowed_sieve_removes_exactly_the_blobs_a_whole_scene_sieve_removes(tmp_path):
    rng = np.random.default_rng(3)
    m = blobby(rng, 200, 300, k=4, cell=20, speckle=0.03)
    m[150:, :40] = 255
    mask = write_mask(tmp_path / "mask.tif", m)
    run(mask, tmp_path / "out.gpkg", window=64, sieve=6)
    df = read(tmp_path / "out.gpkg")
    got = features.rasterize(zip(df.geometry, df.class_id), out_shape=m.shape, transform=UTM_2M, fill=255)
    valid = m != 255
    whole = features.sieve(m, 6, mask=valid, connectivity=4)
    assert (got == 255).sum() == (~valid).sum() and (got[~valid] == 255).all()
    np.testing.assert_array_equal(got != m, whole != m)  # the same pixels are sieved
    assert (whole != m).sum() > 500
    # The class a sieved blob takes may differ where two of its neighbours both extend far beyond the
    # window (GDAL compares neighbour sizes); see rsseg_cli.vectorize.windows.
    assert (got != whole).sum() <= 3


def test_geos_fallback_gives_the_same_polygons(tmp_path, monkeypatch):
    import rsseg_cli.vectorize.merge as merge

    # Force every group through shapely.union_all, the path taken when ring tracing refuses a group.
    monkeypatch.setattr(merge, "union_pixel_groups", lambda geoms, group, n, *a: np.full(n, None, object))
    rng = np.random.default_rng(4)
    m = blobby(rng, 120, 130, k=3, cell=6, speckle=0.2)
    mask = write_mask(tmp_path / "mask.tif", m)
    run(mask, tmp_path / "out.gpkg", window=32, sieve=0)
    df = read(tmp_path / "out.gpkg")
    assert shapely.is_valid(df.geometry.values).all()
    assert same_polygons(pairs(df), whole_scene_polygons(m, np.ones_like(m, bool), UTM_2M))


# -- areas and perimeters in metres --------------------------------------------------------------------


def test_areas_and_perimeters_in_metres_projected(tmp_path):
    m = np.zeros((60, 80), np.uint8)
    m[10:20, 10:40] = 1  # 10 x 30 px of 2 m: 20 m x 60 m
    m[30:33, 50:57] = 2
    mask = write_mask(tmp_path / "mask.tif", m)
    run(mask, tmp_path / "out.gpkg")
    df = read(tmp_path / "out.gpkg")
    by_class = {int(r.class_id): r for r in df.itertuples()}
    assert by_class[1].area_m2 == 20 * 60
    assert by_class[1].perimeter_m == 2 * (20 + 60)
    assert by_class[2].area_m2 == 3 * 7 * 4
    # the background polygon has two holes; its perimeter counts them
    assert by_class[0].area_m2 == ((m == 0).sum()) * 4
    assert by_class[0].perimeter_m == 2 * (120 + 160) + 2 * (20 + 60) + 2 * (6 + 14)


def test_areas_in_square_metres_for_a_crs_in_feet(tmp_path):
    m = np.zeros((40, 50), np.uint8)
    m[5:15, 5:25] = 1
    transform = from_origin(980000.0, 200000.0, 10.0, 10.0)  # NY Long Island, US survey feet
    mask = write_mask(tmp_path / "mask.tif", m, crs="EPSG:2263", transform=transform)
    run(mask, tmp_path / "out.gpkg", sieve=0)
    df = read(tmp_path / "out.gpkg")
    foot = 1200 / 3937
    water = df[df.class_id == 1].iloc[0]
    assert water.area_m2 == pytest.approx(200 * (10 * foot) ** 2, rel=1e-9)
    assert water.perimeter_m == pytest.approx(2 * (100 + 200) * foot, rel=1e-9)
    assert df.crs.equals(pyproj.CRS("EPSG:2263"))


def test_geographic_areas_match_geodesic_areas(tmp_path):
    m = np.zeros((120, 160), np.uint8)
    m[10:100, 20:150] = 1
    m[30:50, 40:60] = 2
    transform = from_origin(10.0, 60.5, 0.0005, 0.0005)  # ~28 x 55 m pixels at 60.5 N
    mask = write_mask(tmp_path / "mask.tif", m, crs="EPSG:4326", transform=transform)
    run(mask, tmp_path / "out.gpkg", sieve=0)
    df = read(tmp_path / "out.gpkg")
    geod = pyproj.Geod(ellps="WGS84")
    for row in df.itertuples():
        area, _ = geod.geometry_area_perimeter(row.geometry)
        assert row.area_m2 == pytest.approx(abs(area), rel=0.005)
    # and against a hand computation: the class-2 block is a quadrangle between two meridians and two
    # parallels, whose area on the ellipsoid has a closed form
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    e = np.sqrt(e2)

    def q(lat):
        s = np.sin(np.radians(lat))
        return s / (1 - e2 * s * s) + np.log((1 + e * s) / (1 - e * s)) / (2 * e)

    north, south = 60.5 - 30 * 0.0005, 60.5 - 50 * 0.0005
    expected = np.radians(20 * 0.0005) * a * a * (1 - e2) / 2 * (q(north) - q(south))
    assert df[df.class_id == 2].area_m2.iloc[0] == pytest.approx(expected, rel=1e-4)


def test_crs_without_epsg_code(tmp_path):
    crs = "+proj=laea +lat_0=52 +lon_0=10.3 +x_0=4321000 +y_0=3210000 +ellps=GRS80 +units=m +no_defs"
    assert CRS.from_string(crs).to_epsg() is None
    m = np.zeros((50, 60), np.uint8)
    m[10:30, 15:45] = 3
    transform = from_origin(4321000.0, 3210000.0, 2.0, 2.0)
    mask = write_mask(tmp_path / "mask.tif", m, crs=crs, transform=transform)
    summary = run(mask, tmp_path / "out.gpkg", sieve=0)
    assert summary.crs.startswith("custom")
    df = read(tmp_path / "out.gpkg")
    assert pyproj.CRS(df.crs).equals(pyproj.CRS(crs))
    assert df[df.class_id == 3].area_m2.iloc[0] == 20 * 30 * 4
    # GeoJSON from it is reprojected to EPSG:4326
    run(mask, tmp_path / "out.geojson", sieve=0)
    lon, lat = read(tmp_path / "out.geojson").geometry.iloc[0].exterior.coords[0]
    assert 9 < lon < 12 and 51 < lat < 53


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_pixel_space_mask_measures_in_pixels(tmp_path, caplog_rsseg):
    m = np.zeros((30, 40), np.uint8)
    m[5:10, 5:25] = 1
    mask = write_mask(tmp_path / "mask.tif", m, crs=None, transform=None)
    summary = run(mask, tmp_path / "out.gpkg", sieve=0)
    assert summary.area_unit == "pixels"
    assert "pixel units" in caplog_rsseg.text
    df = read(tmp_path / "out.gpkg")
    assert df.crs is None
    assert df[df.class_id == 1].area_m2.iloc[0] == 100
    with pytest.raises(UserError, match="no CRS"):
        run(mask, tmp_path / "out.geojson")


# -- sieve, filters, classes ---------------------------------------------------------------------------


def test_sieve_removes_blobs_below_n_pixels_even_across_seams(tmp_path):
    m = np.zeros((64, 64), np.uint8)
    m[3, 3:6] = 1  # 3 px
    m[20:23, 20:24] = 1  # 12 px
    m[40:43, 14:18] = 2  # 12 px split 6 / 6 by the column seam at 16: kept, as in the whole scene
    m[50, 30:34] = 2  # 4 px split 2 / 2 by the seam at 32: removed
    mask = write_mask(tmp_path / "mask.tif", m)
    run(mask, tmp_path / "out.gpkg", sieve=8, window=16)
    df = read(tmp_path / "out.gpkg")
    assert sorted(df[df.class_id > 0].area_m2 / 4) == [12, 12]
    assert len(df[df.class_id == 2]) == 1  # the split blob came out whole
    run(mask, tmp_path / "off.gpkg", sieve=0, window=16)
    assert sorted(read(tmp_path / "off.gpkg").query("class_id > 0").area_m2 / 4) == [3, 4, 12, 12]


def test_sieve_never_spreads_classes_over_nodata(tmp_path):
    m = np.zeros((40, 40), np.uint8)
    m[:, 20:] = 255
    m[10, 18:20] = 1  # 2 px blob against the nodata edge: merged into the background, not into nodata
    m[30:32, 30:32] = 1  # 4 px blob inside nodata: no valid neighbour, left as it is
    mask = write_mask(tmp_path / "mask.tif", m)
    run(mask, tmp_path / "out.gpkg", sieve=8, window=16)
    df = read(tmp_path / "out.gpkg")
    assert df.area_m2.sum() == (m != 255).sum() * 4
    nodata = shapely.box(500040.0, 5499920.0, 500080.0, 5500000.0)
    inside = df[df.intersects(nodata)]
    assert (inside.intersection(nodata).area <= 16 + 1e-9).all()  # only the isolated 4 px blob
    assert set(df.class_id) == {0, 1}
    assert df[df.class_id == 1].area_m2.tolist() == [16.0]


def test_min_area_drops_small_polygons(tmp_path):
    m = np.zeros((50, 50), np.uint8)
    m[5:7, 5:10] = 1  # 10 px = 40 m2
    m[20:30, 20:25] = 1  # 50 px = 200 m2
    mask = write_mask(tmp_path / "mask.tif", m)
    run(mask, tmp_path / "out.gpkg", sieve=0, min_area_m2=100)
    water = read(tmp_path / "out.gpkg").query("class_id == 1")
    assert water.area_m2.tolist() == [200.0]
    assert (read(tmp_path / "out.gpkg").area_m2 >= 100).all()


def test_fill_holes_below_an_area(tmp_path):
    m = np.zeros((60, 60), np.uint8)
    m[10:50, 10:50] = 1
    m[15:17, 15:17] = 2  # 4 px = 16 m2 hole
    m[30:36, 30:36] = 0  # 36 px = 144 m2 hole
    mask = write_mask(tmp_path / "mask.tif", m)
    run(mask, tmp_path / "out.gpkg", sieve=0, fill_holes_m2=20)
    df = read(tmp_path / "out.gpkg")
    water = df[df.class_id == 1].iloc[0]
    assert len(water.geometry.interiors) == 1
    assert water.area_m2 == ((m == 1).sum() + 4) * 4
    assert len(df[df.class_id == 2]) == 1  # the polygon inside the filled hole is still written


def test_simplify_keeps_valid_polygons_close_to_the_original(tmp_path):
    rows, cols = np.mgrid[0:80, 0:80]
    m = ((rows - 40) ** 2 + (cols - 40) ** 2 < 30**2).astype(np.uint8)  # a staircase circle
    mask = write_mask(tmp_path / "mask.tif", m)
    run(mask, tmp_path / "exact.gpkg", sieve=0)
    run(mask, tmp_path / "simple.gpkg", sieve=0, simplify=3.0)
    exact = read(tmp_path / "exact.gpkg").query("class_id == 1").geometry.iloc[0]
    simple = read(tmp_path / "simple.gpkg").query("class_id == 1")
    geom = simple.geometry.iloc[0]
    assert geom.is_valid and geom.geom_type == "Polygon"
    assert shapely.get_num_coordinates(geom) < shapely.get_num_coordinates(exact) / 3
    assert geom.area == pytest.approx(exact.area, rel=0.03)
    assert simple.area_m2.iloc[0] == pytest.approx(geom.area)
    assert exact.hausdorff_distance(geom) <= 3.0 + 1e-9


def test_class_selection_by_name_and_id(tmp_path):
    m = snake()
    mask = write_mask(tmp_path / "mask.tif", m)
    run(mask, tmp_path / "all.gpkg")
    run(mask, tmp_path / "water.gpkg", classes=["Water"])
    run(mask, tmp_path / "ids.gpkg", classes=[2, "0"])
    everything = read(tmp_path / "all.gpkg")
    assert set(read(tmp_path / "water.gpkg").class_id) == {1}
    assert set(read(tmp_path / "ids.gpkg").class_id) == {0, 2}
    # the selection does not change the selected polygons (the sieve runs before it)
    water = read(tmp_path / "water.gpkg")
    assert same_polygons(pairs(water), pairs(everything[everything.class_id == 1]))
    assert set(water.class_name) == {"water"}


def test_unknown_class_is_a_user_error_listing_the_classes(tmp_path):
    mask = write_mask(tmp_path / "mask.tif", snake())
    with pytest.raises(UserError, match=r"Unknown class 'lake'.*background \(0\), water \(1\)"):
        run(mask, tmp_path / "out.gpkg", classes=["water", "lake"])
    with pytest.raises(UserError, match="Class id 9 is not in the class table"):
        run(mask, tmp_path / "out.gpkg", classes=["9"])
    assert not (tmp_path / "out.gpkg").exists()


# -- formats -------------------------------------------------------------------------------------------


def test_geojson_is_rfc7946_in_epsg4326_and_gpkg_in_the_raster_crs(tmp_path):
    m = snake()
    mask = write_mask(tmp_path / "mask.tif", m)
    run(mask, tmp_path / "out.gpkg")
    summary = run(mask, tmp_path / "out.geojson")
    assert summary.crs == "EPSG:4326" and summary.format == "GeoJSON"
    gpkg = read(tmp_path / "out.gpkg")
    assert gpkg.crs.to_epsg() == 32633
    assert pyogrio.read_info(tmp_path / "out.gpkg")["layer_name"] == "polygons"
    doc = json.loads((tmp_path / "out.geojson").read_text())
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    geo = read(tmp_path / "out.geojson")
    assert geo.crs.to_epsg() == 4326
    assert len(geo) == len(gpkg)
    lon, lat = geo.geometry.iloc[0].exterior.coords[0]
    assert 14 < lon < 16 and 49 < lat < 50  # lon/lat order
    assert all(g.exterior.is_ccw for g in geo.geometry)  # RFC 7946 right-hand rule
    assert all(not ring.is_ccw for g in geo.geometry for ring in g.interiors)
    back = geo.to_crs(32633).sort_values(["class_id", "area_m2"]).reset_index(drop=True)
    ref = gpkg.sort_values(["class_id", "area_m2"]).reset_index(drop=True)
    assert (back.symmetric_difference(ref).area < 1e-3).all()
    assert back.area_m2.tolist() == ref.area_m2.tolist()
    run(mask, tmp_path / "out.json")
    assert len(read(tmp_path / "out.json")) == len(gpkg)


def test_unsupported_extension_is_a_user_error(tmp_path):
    mask = write_mask(tmp_path / "mask.tif", snake())
    with pytest.raises(UserError, match=r"\.shp is not a supported vector format.*\.gpkg"):
        run(mask, tmp_path / "out.shp")


def test_existing_output_is_replaced_atomically(tmp_path):
    mask = write_mask(tmp_path / "mask.tif", snake())
    out = tmp_path / "out.gpkg"
    run(mask, out)
    run(mask, out, classes=["building"])
    assert set(read(out).class_id) == {2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.tif", "out.gpkg", "out.qml"]


def test_rsseg_temporary_names_keep_their_format(tmp_path):
    # predict --vector hands its own atomic temporary name (.NAME.gpkg.partial-PID)
    mask = write_mask(tmp_path / "mask.tif", snake())
    tmp = tmp_path / ".polys.geojson.partial-123"
    summary = run(mask, tmp)
    assert summary.format == "GeoJSON"
    assert json.loads(tmp.read_text())["type"] == "FeatureCollection"


# -- mean probability ----------------------------------------------------------------------------------


def test_mean_prob_matches_a_hand_computation_across_seams(tmp_path):
    rng = np.random.default_rng(5)
    m = snake()
    m[rng.random(m.shape) < 0.01] = 3  # one-pixel polygons, and holes in the others
    conf = rng.integers(0, 256, m.shape).astype(np.uint8)
    mask = write_mask(tmp_path / "mask.tif", m)
    probs = write_probs(tmp_path / "probs.tif", conf)
    run(mask, tmp_path / "out.gpkg", probs=probs, window=64, sieve=0)
    df = read(tmp_path / "out.gpkg")
    labels = features.rasterize(
        zip(df.geometry, range(1, len(df) + 1)), out_shape=m.shape, transform=UTM_2M, dtype="int32"
    )
    sums = np.bincount(labels.ravel(), weights=conf.ravel().astype(float), minlength=len(df) + 1)
    counts = np.bincount(labels.ravel(), minlength=len(df) + 1)
    np.testing.assert_allclose(df.mean_prob, sums[1:] / counts[1:] / 255, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(counts[1:] * 4, df.area_m2)
    # the region crossing nine seams: its mean is over exactly the class-1 pixels
    water = df[df.class_id == 1]
    assert len(water) == 1
    assert water.mean_prob.iloc[0] == pytest.approx(conf[m == 1].mean() / 255, abs=1e-12)
    singles = df[df.class_id == 3]
    assert len(singles) > 100
    pixels = singles.area_m2 / 4
    assert (singles.mean_prob * pixels).sum() == pytest.approx(conf[m == 3].sum() / 255, rel=1e-12)
    assert df.mean_prob.between(0, 1).all()


def test_mean_prob_from_a_confidence_band_alone(tmp_path):
    m = snake()
    conf = np.full(m.shape, 200, np.uint8)
    mask = write_mask(tmp_path / "mask.tif", m)
    alone = write_raster(
        tmp_path / "conf.tif", conf, crs="EPSG:32633", transform=UTM_2M, descriptions=["confidence"]
    )
    run(mask, tmp_path / "out.gpkg", probs=alone, window=64)
    assert np.allclose(read(tmp_path / "out.gpkg").mean_prob, 200 / 255)


def test_probs_on_another_grid_or_with_other_bands_are_refused(tmp_path):
    m = snake()
    conf = np.zeros(m.shape, np.uint8)
    mask = write_mask(tmp_path / "mask.tif", m)
    shifted = write_probs(tmp_path / "shifted.tif", conf, transform=from_origin(500010.0, 5500000.0, 2, 2))
    with pytest.raises(UserError, match="not on the grid"):
        run(mask, tmp_path / "out.gpkg", probs=shifted)
    wrong = write_probs(tmp_path / "wrong.tif", conf, n_classes=2)
    with pytest.raises(UserError, match=r"has 3 bands but the mask .* has 4 classes"):
        run(mask, tmp_path / "out.gpkg", probs=wrong)
    with pytest.raises(UserError, match="not on the grid"):
        run(mask, tmp_path / "out.gpkg", probs=write_probs(tmp_path / "small.tif", conf[:100]))


# -- nodata, empty output, bad input -------------------------------------------------------------------


def test_nodata_is_never_polygonized(tmp_path):
    rng = np.random.default_rng(6)
    m = blobby(rng, 100, 120, k=3, cell=10)
    m[rng.random(m.shape) < 0.1] = 255
    m[40:60, :] = 255
    mask = write_mask(tmp_path / "mask.tif", m)
    run(mask, tmp_path / "out.gpkg", window=32)
    df = read(tmp_path / "out.gpkg")
    assert df.area_m2.sum() == (m != 255).sum() * 4
    assert 255 not in set(df.class_id)
    band = shapely.box(500000.0, 5500000.0 - 120, 500240.0, 5500000.0 - 80)  # rows 40-60
    assert df.intersection(band).area.sum() == 0


def test_empty_result_writes_an_empty_layer_with_the_schema(tmp_path, caplog_rsseg):
    m = np.full((40, 50), 255, np.uint8)
    mask = write_mask(tmp_path / "mask.tif", m)
    summary = run(mask, tmp_path / "out.gpkg", probs=write_probs(tmp_path / "p.tif", np.zeros_like(m)))
    assert summary.polygons == 0
    assert "no polygon" in caplog_rsseg.text
    info = pyogrio.read_info(tmp_path / "out.gpkg", layer="polygons")
    assert info["features"] == 0 and info["geometry_type"] == "Polygon"
    assert list(info["fields"]) == ["class_id", "class_name", "area_m2", "perimeter_m", "mean_prob"]
    assert pyproj.CRS(info["crs"]).to_epsg() == 32633
    run(mask, tmp_path / "out.geojson")
    assert json.loads((tmp_path / "out.geojson").read_text())["features"] == []
    # filtered away entirely: also an empty, valid layer
    run(write_mask(tmp_path / "small.tif", np.ones((4, 4), np.uint8)), tmp_path / "f.gpkg", min_area_m2=1e6)
    assert pyogrio.read_info(tmp_path / "f.gpkg")["features"] == 0


def test_masks_that_are_not_single_band_integer_rasters_are_refused(tmp_path):
    three = write_raster(tmp_path / "rgb.tif", np.zeros((3, 10, 10), np.uint8))
    with pytest.raises(UserError, match=r"3 bands.*one band of class ids"):
        run(three, tmp_path / "out.gpkg")
    floats = write_raster(tmp_path / "f.tif", np.zeros((10, 10), np.float32))
    with pytest.raises(UserError, match=r"float32 values.*integer class ids"):
        run(floats, tmp_path / "out.gpkg")
    probs = write_probs(tmp_path / "p.tif", np.zeros((10, 10), np.uint8))
    with pytest.raises(UserError, match="probability raster; pass the class mask"):
        run(probs, tmp_path / "out.gpkg")
    with pytest.raises(UserError, match="does not exist"):
        run(tmp_path / "missing.tif", tmp_path / "out.gpkg")


def test_bad_options_are_refused_before_any_work(tmp_path):
    mask = write_mask(tmp_path / "mask.tif", snake())
    for kwargs, message in [
        ({"sieve": -1}, "--sieve"),
        ({"min_area_m2": -5}, "--min-area"),
        ({"window": 4}, "--window"),
        ({"fill_holes_m2": -1}, "--fill-holes"),
    ]:
        with pytest.raises(UserError, match=message):
            run(mask, tmp_path / "out.gpkg", **kwargs)
    with pytest.raises(UserError):
        run(mask, mask)


def test_check_vectorize_options_for_predict():
    table = [{"id": 0, "name": "background"}, {"id": 1, "name": "water"}]
    check_vectorize_options(table, sieve=4, min_area_m2=10.0, simplify=1.0)
    check_vectorize_options(table, classes=["water", 0])
    with pytest.raises(UserError, match=r"Unknown class 'road'.*the checkpoint"):
        check_vectorize_options(table, classes=["road"])
    with pytest.raises(UserError, match="--sieve"):
        check_vectorize_options(table, sieve=-2)


# -- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture
def caplog_rsseg():
    """Records of the "rsseg" logger (which does not propagate once the CLI has set logging up)."""

    class Capture(logging.Handler):
        def __init__(self):
            super().__init__(logging.DEBUG)
            self.messages: list[str] = []

        def emit(self, record):
            self.messages.append(record.getMessage())

        @property
        def text(self) -> str:
            return "\n".join(self.messages)

    logger = logging.getLogger("rsseg")
    handler = Capture()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_mean_prob_same_for_scaled_and_unscaled_probabilities(tmp_path):
    """predict writes GDAL scale 1/255 on its probabilities; rsseg 0.1.0 wrote none: both mean value / 255."""
    m = snake()
    conf = np.random.default_rng(3).integers(0, 256, m.shape).astype(np.uint8)
    mask = write_mask(tmp_path / "mask.tif", m)
    old = write_probs(tmp_path / "old.tif", conf)
    new = write_probs(tmp_path / "new.tif", conf)
    with rasterio.open(new, "r+") as dst:
        dst.scales, dst.offsets = [1 / 255] * dst.count, [0.0] * dst.count
    run(mask, tmp_path / "old.gpkg", probs=old, window=64)
    run(mask, tmp_path / "new.gpkg", probs=new, window=64)
    a, b = read(tmp_path / "old.gpkg"), read(tmp_path / "new.gpkg")
    np.testing.assert_array_equal(a.mean_prob, b.mean_prob)
    assert a.mean_prob.between(0, 1).all()


def test_probabilities_with_another_scale_are_refused(tmp_path):
    m = snake()
    mask = write_mask(tmp_path / "mask.tif", m)
    probs = write_probs(tmp_path / "probs.tif", np.full(m.shape, 9, np.uint8))
    with rasterio.open(probs, "r+") as dst:
        dst.scales = [0.01] * dst.count
    with pytest.raises(UserError, match=r"scale 0\.01"):
        run(mask, tmp_path / "out.gpkg", probs=probs, window=64)
