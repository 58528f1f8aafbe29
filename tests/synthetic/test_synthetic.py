"""Tests for the synthetic sample scene (rsseg_cli.synthetic) and the shared synthetic training batch."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp
from rasterio.windows import Window

from rsseg_cli.errors import UserError
from rsseg_cli.geo.class_raster import CLASS_TAG, MASK_NODATA, read_class_table
from rsseg_cli.synthetic import SAMPLE_CLASSES, SampleScene, generate_sample, sample_total_blocks
from rsseg_cli.synthetic import write as synthetic_write
from rsseg_cli.synthetic.layout import build_layout
from rsseg_cli.synthetic.render import render_block
from rsseg_cli.synthetic.write import BLOCK, to_dtype

N_CLASSES = 7


def _read(scene: SampleScene) -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(scene.scene) as d:
        img = d.read()
    with rasterio.open(scene.labels) as d:
        lab = d.read(1)
    return img, lab


@pytest.fixture(scope="module")
def scene1024(tmp_path_factory: pytest.TempPathFactory) -> tuple[SampleScene, np.ndarray, np.ndarray]:
    # One shared 1024 x 1024 seed-0 scene (6 bands so that the SWIR spectra are checked too).
    out = tmp_path_factory.mktemp("s1024")
    s = generate_sample(out, height=1024, width=1024, bands=6, seed=0)
    img, lab = _read(s)
    return s, img, lab


def test_class_table() -> None:
    names = [c["name"] for c in SAMPLE_CLASSES]
    assert names == ["water", "forest", "grassland", "cropland", "bare_soil", "building", "road"]
    assert [c["id"] for c in SAMPLE_CLASSES] == list(range(N_CLASSES))
    for c in SAMPLE_CLASSES:
        assert len(c["color"]) == 7 and c["color"].startswith("#")
        int(c["color"][1:], 16)
        assert c["concepts"] and all(isinstance(x, str) and x for x in c["concepts"])
    assert len({c["color"] for c in SAMPLE_CLASSES}) == N_CLASSES


def test_total_blocks() -> None:
    assert sample_total_blocks(512, 512) == 1
    assert sample_total_blocks(513, 512) == 2
    assert sample_total_blocks(1100, 1300) == 9
    assert sample_total_blocks(20000, 20000) == 40 * 40


def test_deterministic_and_seeded(tmp_path: Path) -> None:
    kw = {"height": 300, "width": 700, "seed": 3}
    a = generate_sample(tmp_path / "a", **kw)
    b = generate_sample(tmp_path / "b", **kw)
    c = generate_sample(tmp_path / "c", **{**kw, "seed": 4})
    img_a, lab_a = _read(a)
    img_b, lab_b = _read(b)
    img_c, lab_c = _read(c)
    assert np.array_equal(img_a, img_b) and np.array_equal(lab_a, lab_b)
    assert a.scene.read_bytes() == b.scene.read_bytes()
    assert a.labels.read_bytes() == b.labels.read_bytes()
    assert not np.array_equal(img_a, img_c)
    assert (lab_a != lab_c).mean() > 0.1


def test_outputs_names_and_no_leftovers(tmp_path: Path) -> None:
    calls: list[int] = []
    out = tmp_path / "new" / "dir"  # created on demand
    s = generate_sample(out, height=1100, width=1300, name="demo", on_block=calls.append)
    assert s == SampleScene(scene=out / "demo.tif", labels=out / "demo_labels.tif")
    assert sorted(p.name for p in out.iterdir()) == ["demo.tif", "demo_labels.tif"]
    assert sum(calls) == len(calls) == sample_total_blocks(1100, 1300)


def test_blocks_windows_and_order(tmp_path: Path) -> None:
    h, w = 1100, 1300
    s = generate_sample(tmp_path, height=h, width=w, seed=5)
    img, lab = _read(s)
    # Reading back in odd windows gives the same pixels.
    with rasterio.open(s.scene) as d:
        for y0, x0, wh, ww in [(0, 0, 300, 777), (500, 400, 600, 900), (1023, 1023, 77, 277)]:
            win = d.read(window=Window(x0, y0, ww, wh))
            assert np.array_equal(win, img[:, y0 : y0 + wh, x0 : x0 + ww])
        assert d.block_shapes[0] == (BLOCK, BLOCK)
    # Rendering the blocks in reverse order reproduces the file: nothing depends on block order.
    lay = build_layout(h, w, 4, 5)
    for by in reversed(range(math.ceil(h / BLOCK))):
        for bx in reversed(range(math.ceil(w / BLOCK))):
            y0, x0 = by * BLOCK, bx * BLOCK
            bh, bw = min(BLOCK, h - y0), min(BLOCK, w - x0)
            refl, blab, nd = render_block(lay, y0, x0, bh, bw, np.random.default_rng([5, by, bx]))
            assert np.array_equal(blab, lab[y0 : y0 + bh, x0 : x0 + bw])
            assert np.array_equal(to_dtype(refl, nd, "uint16", 0), img[:, y0 : y0 + bh, x0 : x0 + bw])


def test_no_seams_between_blocks(tmp_path: Path) -> None:
    s = generate_sample(tmp_path, height=1100, width=1300, seed=2)
    img, lab = _read(s)
    x = img.astype(np.float64)
    valid = lab != 255

    def col_step(c: int) -> float:
        ok = valid[:, c] & valid[:, c + 1]
        return float(np.abs(x[:, ok, c + 1] - x[:, ok, c]).mean())

    def row_step(r: int) -> float:
        ok = valid[r] & valid[r + 1]
        return float(np.abs(x[:, r + 1, ok] - x[:, r, ok]).mean())

    for seam in (BLOCK - 1, 2 * BLOCK - 1):  # step from the last pixel of a block to the next block
        ref_c = np.median([col_step(c) for c in range(seam - 12, seam + 12) if c != seam])
        ref_r = np.median([row_step(r) for r in range(seam - 12, seam + 12) if r != seam and r + 1 < 1100])
        assert col_step(seam) < 1.25 * ref_c
        if seam + 1 < 1100:
            assert row_step(seam) < 1.25 * ref_r


def test_classes_and_nodata(scene1024: tuple[SampleScene, np.ndarray, np.ndarray]) -> None:
    _, img, lab = scene1024
    nodata = lab == 255
    assert 0.03 <= nodata.mean() <= 0.10
    valid = ~nodata
    frac = np.bincount(lab[valid], minlength=256)[:N_CLASSES] / valid.sum()
    assert set(np.unique(lab[valid])) == set(range(N_CLASSES))
    assert (frac >= 0.005).all(), dict(zip([c["name"] for c in SAMPLE_CLASSES], frac.round(4), strict=True))
    # Image and label nodata agree exactly: all bands nodata there, no band nodata elsewhere.
    assert (img[:, nodata] == 0).all()
    assert (img[:, valid] != 0).all()
    # The nodata region is a corner swath edge: it touches exactly one corner of the scene.
    corners = [nodata[0, 0], nodata[0, -1], nodata[-1, 0], nodata[-1, -1]]
    assert sum(corners) == 1


def test_spectra_distinct(scene1024: tuple[SampleScene, np.ndarray, np.ndarray]) -> None:
    s, img, lab = scene1024
    with rasterio.open(s.scene) as d:
        names = list(d.descriptions)
    x = img.reshape(img.shape[0], -1).T / 10000.0  # reflectance
    y = lab.ravel()
    mu = np.array([x[y == c].mean(axis=0) for c in range(N_CLASSES)])
    sd = np.array([np.sqrt(x[y == c].var(axis=0).mean()) for c in range(N_CLASSES)])
    nir, red = names.index("nir"), names.index("red")
    water, forest, grass, crop, bare, _building, road = range(N_CLASSES)
    assert mu[water, nir] < 0.05 < 0.2 < mu[forest, nir]
    ndvi = (mu[:, nir] - mu[:, red]) / (mu[:, nir] + mu[:, red])
    assert ndvi[water] < 0.0 < ndvi[road] < 0.3
    assert min(ndvi[forest], ndvi[grass], ndvi[crop]) > 0.5 > ndvi[bare]
    swir1 = names.index("swir1")
    assert mu[bare, swir1] > mu[grass, swir1] > mu[forest, swir1]
    # Every pair of class means is further apart than the classes' typical within-class spread.
    for a in range(N_CLASSES):
        for b in range(a + 1, N_CLASSES):
            dist = np.linalg.norm(mu[a] - mu[b])
            assert dist > 1.0 * (sd[a] + sd[b]) / 2, (SAMPLE_CLASSES[a]["name"], SAMPLE_CLASSES[b]["name"])
    # ... but classes are not constant: there is real intra-class variation.
    assert (sd > 0.005).all()


def test_metadata(scene1024: tuple[SampleScene, np.ndarray, np.ndarray]) -> None:
    s, _, _ = scene1024
    with rasterio.open(s.scene) as d:
        assert d.crs.to_epsg() == 32633
        assert d.transform.a == 1.0 and d.transform.e == -1.0 and d.transform.b == d.transform.d == 0
        assert d.descriptions == ("red", "green", "blue", "nir", "swir1", "swir2")
        assert d.colorinterp[:3] == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        assert set(d.colorinterp[3:]) == {ColorInterp.undefined}
        assert d.nodatavals == (0,) * 6
        assert d.profile["compress"] == "deflate" and d.profile["tiled"]
        assert d.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") == "2"
        assert d.dtypes[0] == "uint16"
    with rasterio.open(s.labels) as d:
        assert d.dtypes[0] == "uint8" and d.nodata == 255
        assert d.descriptions == ("class",)
        cmap = d.colormap(1)
        for c in SAMPLE_CLASSES:
            h = c["color"][1:]
            assert cmap[c["id"]][:3] == tuple(int(h[i : i + 2], 16) for i in (0, 2, 4))
        assert cmap[255][:3] == (0, 0, 0)


def test_small_odd_size(tmp_path: Path) -> None:
    s = generate_sample(tmp_path, height=97, width=131, seed=0)
    img, lab = _read(s)
    assert img.shape == (4, 97, 131) and lab.shape == (97, 131)
    valid = lab != 255
    assert 0.0 < (~valid).mean() < 0.12
    assert len(np.unique(lab[valid])) >= 4  # still a landscape, not a single class
    assert (img[:, ~valid] == 0).all() and (img[:, valid] > 0).all()


@pytest.mark.parametrize(
    ("dtype", "nodata", "expect_nodata"),
    [
        ("uint8", None, 0),
        ("int16", None, -32768),
        ("float32", None, math.nan),
        ("uint16", 65535, 65535),
        ("float32", -9999.0, -9999.0),
    ],
)
def test_dtypes_and_nodata(tmp_path: Path, dtype: str, nodata: float | None, expect_nodata: float) -> None:
    s = generate_sample(tmp_path, height=200, width=260, dtype=dtype, nodata=nodata, seed=1)
    img, lab = _read(s)
    assert img.dtype == np.dtype(dtype)
    mask = lab == 255
    assert mask.any()
    with rasterio.open(s.scene) as d:
        nd = d.nodata
        pred = d.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR")
    assert pred == ("3" if dtype == "float32" else "2")
    if math.isnan(expect_nodata):
        assert math.isnan(nd)
        assert np.isnan(img[:, mask]).all() and not np.isnan(img[:, ~mask]).any()
    else:
        assert nd == expect_nodata
        assert (img[:, mask] == expect_nodata).all() and (img[:, ~mask] != expect_nodata).all()
    valid = img[:, ~mask].astype(np.float64)
    if dtype == "float32":
        assert valid.min() >= 0.0 and valid.max() <= 1.0 and valid.max() > 0.2
    elif dtype == "uint8":
        assert valid.min() >= 1 and valid.max() > 150  # the display gain uses the range
    else:
        assert valid.min() >= 0 and 2000 < valid.max() < 10000  # reflectance x 10000


def test_geographic_crs(tmp_path: Path) -> None:
    s = generate_sample(tmp_path, height=64, width=80, crs="EPSG:4326")
    with rasterio.open(s.scene) as d:
        assert d.crs.is_geographic and d.crs.to_epsg() == 4326
        t = d.transform
        assert t.a == pytest.approx(1e-5) and t.e == pytest.approx(-1e-5)
        assert 14.0 < t.c < 16.0 and 46.0 < t.f < 48.0
        left, bottom, right, top = d.bounds
        assert -180 <= left < right <= 180 and -90 <= bottom < top <= 90


def test_custom_proj_crs_and_resolution(tmp_path: Path) -> None:
    proj = "+proj=tmerc +lat_0=0 +lon_0=15.5 +k=0.9996 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m +no_defs"
    s = generate_sample(tmp_path, height=64, width=80, crs=proj, resolution=10.0)
    with rasterio.open(s.scene) as d:
        assert d.crs.to_epsg() is None
        assert d.crs.is_projected
        assert d.crs.to_dict()["lon_0"] == pytest.approx(15.5)
        assert d.transform.a == 10.0 and d.transform.e == -10.0
    with rasterio.open(s.labels) as d:
        assert d.crs.to_dict()["lon_0"] == pytest.approx(15.5)


@pytest.mark.parametrize(
    ("bands", "names"),
    [
        (3, ("red", "green", "blue")),
        (6, ("red", "green", "blue", "nir", "swir1", "swir2")),
        (8, ("red", "green", "blue", "nir", "swir1", "swir2", "b7", "b8")),
    ],
)
def test_band_counts(tmp_path: Path, bands: int, names: tuple[str, ...]) -> None:
    s = generate_sample(tmp_path, height=48, width=40, bands=bands)
    with rasterio.open(s.scene) as d:
        assert d.count == bands and d.descriptions == names
        assert d.colorinterp[:3] == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        img = d.read()
    # Interpolated extra bands are real data, distinct from their neighbours.
    assert all(not np.array_equal(img[i], img[i + 1]) for i in range(bands - 1))


def test_interrupted_leaves_nothing(tmp_path: Path) -> None:
    calls = []

    def boom(n: int) -> None:
        calls.append(n)
        if len(calls) == 3:
            raise KeyboardInterrupt  # like Ctrl-C in the middle of the scene

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        generate_sample(out, height=1100, width=1300, on_block=boom)
    assert len(calls) == 3
    assert not out.exists()  # not even the folder it created


def test_interrupted_keeps_previous_complete_output(tmp_path: Path) -> None:
    s = generate_sample(tmp_path, height=600, width=600, seed=0)
    before = s.scene.read_bytes()

    def boom(n: int) -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        generate_sample(tmp_path, height=600, width=600, seed=1, on_block=boom)
    assert s.scene.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif", "scene_labels.tif"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dtype": "int32"},
        {"dtype": "uint16", "nodata": 70000},
        {"dtype": "uint8", "nodata": math.nan},
        {"crs": "not a crs"},
        {"bands": 0},
        {"height": 0},
        {"resolution": -1.0},
        {"name": "../x"},
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(UserError):
        generate_sample(tmp_path / "o", **{"height": 32, "width": 32, **kwargs})
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


# --------------------------------------------------------------------------------------------------
# The label raster follows the class-raster contract; writing is atomic.


def test_labels_carry_the_class_raster_contract(
    scene1024: tuple[SampleScene, np.ndarray, np.ndarray],
) -> None:
    s, _, lab = scene1024
    with rasterio.open(s.labels) as d:
        table = read_class_table(d)
        assert CLASS_TAG in d.tags()  # from the tag itself, not reconstructed from the colormap
        assert d.nodata == MASK_NODATA and d.descriptions == ("class",)
        assert d.tags(1) == {f"CLASS_{c['id']}": c["name"] for c in SAMPLE_CLASSES}
        assert d.colormap(1)[MASK_NODATA] == (0, 0, 0, 0)
    assert table == [
        {"id": c["id"], "name": c["name"], "color": c["color"], "value": None} for c in SAMPLE_CLASSES
    ]
    assert set(np.unique(lab)) <= {c["id"] for c in SAMPLE_CLASSES} | {MASK_NODATA}


def test_interrupted_render_leaves_no_final_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = synthetic_write.render_block

    def failing(*args: object, **kwargs: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        calls.append(1)
        if len(calls) == 3:  # mid-way: two blocks are already written to the temporary files
            raise RuntimeError("renderer failed")
        return real(*args, **kwargs)

    monkeypatch.setattr(synthetic_write, "render_block", failing)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="renderer failed"):
        generate_sample(out, height=1100, width=1300)
    assert len(calls) == 3
    assert not (out / "scene.tif").exists() and not (out / "scene_labels.tif").exists()
    assert not out.exists()  # no temporaries either, nor the folder it created


def test_stale_partials_of_killed_runs_are_removed(tmp_path: Path) -> None:
    # A run killed by SIGKILL leaves its temporaries (named after its process id) behind.
    dead = 2**22 + 12345  # above Linux's default pid_max, so no live process has this id
    stale = [tmp_path / f".scene.tif.partial-{dead}", tmp_path / f".scene_labels.tif.partial-{dead}"]
    for p in stale:
        p.write_bytes(b"half a TIFF")
    generate_sample(tmp_path, height=64, width=64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif", "scene_labels.tif"]


def test_class_raster_contract_imports_no_data_package() -> None:
    # geo.class_raster is the bottom of the class-raster contract: data/ builds on it, never the reverse.
    code = (
        "import sys, rsseg_cli.geo.class_raster; "
        "bad = [m for m in sys.modules if m.startswith(('rsseg_cli.data', 'rsseg_cli.config'))]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_mask_nodata_is_the_ignore_index() -> None:
    from rsseg_cli.config import IGNORE_INDEX

    assert MASK_NODATA == IGNORE_INDEX
