"""Scene evaluation: a predicted class mask against raster or vector labels, windowed over the mask's grid."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from rsseg_cli.errors import UserError
from rsseg_cli.evaluation.scene import evaluate_scene
from rsseg_cli.geo.class_raster import write_class_metadata
from tests.conftest import UTM, write_raster

CLASSES = [
    {"id": 0, "name": "water", "color": "#1f77b4"},
    {"id": 1, "name": "forest", "color": "#2ca02c"},
    {"id": 2, "name": "urban", "color": "#d62728"},
]
K = len(CLASSES)
H, W = 150, 170  # not a multiple of the 64 px test window
ORIGIN = (500000.0, 5500000.0)
RES = 10.0
TRANSFORM = from_origin(*ORIGIN, RES, RES)
REPORT = {"metrics.json", "confusion_matrix.csv", "confusion_matrix.png"}


def write_mask(path: Path, ids: np.ndarray, classes=CLASSES, transform=TRANSFORM, crs=UTM) -> Path:
    """A prediction mask as `rsseg predict` writes it: uint8 ids, nodata 255, class table tag."""
    profile = dict(
        driver="GTiff", width=ids.shape[1], height=ids.shape[0], count=1, dtype="uint8", nodata=255
    )
    with rasterio.open(path, "w", crs=crs, transform=transform, **profile) as dst:
        dst.write(ids.astype(np.uint8), 1)
        write_class_metadata(dst, classes)
    return path


def brute_force(pred: np.ndarray, truth: np.ndarray, k: int = K) -> np.ndarray:
    """Confusion matrix by explicit loops over classes: rows truth, columns prediction."""
    m = np.zeros((k, k), dtype=np.int64)
    for t in range(k):
        for p in range(k):
            m[t, p] = int(np.sum((truth == t) & (pred == p)))
    return m


@pytest.fixture
def pair(tmp_path):
    """A noisy prediction and its labels with ignore pixels (255) and unpredicted pixels (255)."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, K, size=(H, W)).astype(np.uint8)
    pred = np.where(rng.random((H, W)) < 0.7, truth, rng.integers(0, K, size=(H, W))).astype(np.uint8)
    truth[rng.random((H, W)) < 0.1] = 255  # unlabeled
    truth[:, -3:] = 255  # unlabeled strip in the last, partial window column
    pred[rng.random((H, W)) < 0.05] = 255  # no prediction
    mask = write_mask(tmp_path / "mask.tif", pred)
    labels = write_raster(tmp_path / "labels.tif", truth, transform=TRANSFORM, nodata=255)
    return mask, labels, pred, truth


def test_metrics_equal_brute_force_over_partial_windows(pair, tmp_path):
    mask, labels, pred, truth = pair
    metrics = evaluate_scene(mask, labels, out=tmp_path / "rep", window=64)
    expected = brute_force(pred, truth)
    doc = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert doc["confusion_matrix"] == expected.tolist()
    assert metrics["windows"] == 3 * 3
    assert metrics["pixels"] == expected.sum()
    assert metrics["overall_accuracy"] == pytest.approx(np.trace(expected) / expected.sum())
    ious = [expected[i, i] / (expected[i].sum() + expected[:, i].sum() - expected[i, i]) for i in range(K)]
    assert metrics["mean_iou"] == pytest.approx(np.mean(ious))
    for row, iou in zip(metrics["per_class"], ious):
        assert row["iou"] == pytest.approx(iou)
        assert row["support"] == expected[row["id"]].sum()
    labeled = truth != 255
    assert metrics["labeled_pixels"] == labeled.sum()
    assert metrics["ignored_pixels"] == (~labeled).sum()
    assert metrics["scene_pixels"] == H * W
    assert metrics["pred"] == str(mask) and metrics["labels"] == str(labels)


def test_window_size_does_not_change_the_result(pair, tmp_path):
    mask, labels, _, _ = pair
    small = evaluate_scene(mask, labels, out=tmp_path / "a", window=37)
    whole = evaluate_scene(mask, labels, out=tmp_path / "b", window=4096)
    assert small["per_class"] == whole["per_class"] and small["pixels"] == whole["pixels"]
    assert whole["windows"] == 1


def test_ignore_and_unpredicted_pixels_are_never_class_0(tmp_path, caplog):
    truth = np.full((40, 50), 1, np.uint8)
    truth[:10] = 255  # unlabeled
    pred = np.full((40, 50), 1, np.uint8)
    pred[10:15] = 255  # labeled but not predicted
    pred[:10] = 0  # predictions over unlabeled ground count nowhere
    mask = write_mask(tmp_path / "mask.tif", pred)
    labels = write_raster(tmp_path / "labels.tif", truth, transform=TRANSFORM, nodata=255)
    with caplog.at_level("WARNING", logger="rsseg"):
        metrics = evaluate_scene(mask, labels, out=tmp_path / "rep", window=16)
    matrix = np.array(json.loads((tmp_path / "rep" / "metrics.json").read_text())["confusion_matrix"])
    assert matrix[:, 0].sum() == 0 and matrix[0].sum() == 0
    assert matrix[1, 1] == 25 * 50 and matrix.sum() == 25 * 50
    assert metrics["unpredicted_pixels"] == 5 * 50
    assert metrics["ignored_pixels"] == 10 * 50
    assert metrics["overall_accuracy"] == 1.0
    assert "no prediction" in caplog.text and "250" in caplog.text


def test_label_nodata_other_than_255_is_ignored(tmp_path):
    truth = np.full((30, 30), 2, np.uint16)
    truth[:, :10] = 0  # nodata of this label raster; 0 is also the value of class "water"
    pred = np.full((30, 30), 2, np.uint8)
    mask = write_mask(tmp_path / "mask.tif", pred)
    labels = write_raster(tmp_path / "labels.tif", truth, transform=TRANSFORM, nodata=0)
    metrics = evaluate_scene(mask, labels, out=tmp_path / "rep", window=16)
    assert metrics["pixels"] == 30 * 20 and metrics["per_class"][0]["support"] == 0


def test_label_values_map_through_the_class_value(tmp_path):
    classes = [{"id": 0, "name": "water", "value": 10}, {"id": 1, "name": "forest", "value": 20}]
    truth = np.full((20, 20), 10, np.uint8)
    truth[:, 10:] = 20
    pred = (np.arange(20)[None, :] >= 10).repeat(20, 0).astype(np.uint8)
    mask = write_mask(tmp_path / "mask.tif", pred, classes=classes)
    labels = write_raster(tmp_path / "labels.tif", truth, transform=TRANSFORM)
    metrics = evaluate_scene(mask, labels, out=tmp_path / "rep")
    assert metrics["overall_accuracy"] == 1.0 and metrics["pixels"] == 400


def test_label_values_not_in_the_class_table_are_refused(tmp_path):
    truth = np.zeros((20, 20), np.uint8)
    truth[0, :3] = 7
    mask = write_mask(tmp_path / "mask.tif", np.zeros((20, 20), np.uint8))
    labels = write_raster(tmp_path / "labels.tif", truth, transform=TRANSFORM, nodata=255)
    with pytest.raises(UserError, match=r"values 7 \(3 px\).*water \(0\), forest \(1\), urban \(2\)"):
        evaluate_scene(mask, labels, out=tmp_path / "rep")


def test_vector_labels_in_4326_over_a_utm_prediction(tmp_path):
    gpd = pytest.importorskip("geopandas")
    from shapely.geometry import box

    pred = np.zeros((H, W), np.uint8)
    pred[:, 80:] = 1  # forest east of column 80
    mask = write_mask(tmp_path / "mask.tif", pred)
    x0, y0 = ORIGIN
    # Two polygons drawn in UTM on pixel edges (so no pixel centre is ambiguous), then stored in EPSG:4326:
    # water on columns 10..49 and forest on columns 70..109, rows 20..99. The prediction calls columns
    # 70..79 water, so 10 x 80 forest pixels are missed.
    water = box(x0 + 10 * RES, y0 - 100 * RES, x0 + 50 * RES, y0 - 20 * RES)
    forest = box(x0 + 70 * RES, y0 - 100 * RES, x0 + 110 * RES, y0 - 20 * RES)
    frame = gpd.GeoDataFrame({"landcover": ["water", "forest"]}, geometry=[water, forest], crs=UTM)
    frame = frame.to_crs("EPSG:4326")
    path = tmp_path / "labels.gpkg"
    frame.to_file(path)
    metrics = evaluate_scene(mask, path, label_field="landcover", out=tmp_path / "rep", window=64)
    m = np.array(json.loads((tmp_path / "rep" / "metrics.json").read_text())["confusion_matrix"])
    # Reprojected to UTM the polygons are rectangles again up to floating point: the counts are exact.
    assert m.tolist() == [[40 * 80, 0, 0], [10 * 80, 30 * 80, 0], [0, 0, 0]]
    assert metrics["labels_kind"] == "vector" and metrics["ignored_pixels"] == H * W - 80 * 80
    assert metrics["per_class"][1]["recall"] == pytest.approx(0.75)


def test_vector_labels_without_the_class_field(tmp_path):
    gpd = pytest.importorskip("geopandas")
    from shapely.geometry import box

    mask = write_mask(tmp_path / "mask.tif", np.zeros((20, 20), np.uint8))
    x0, y0 = ORIGIN
    frame = gpd.GeoDataFrame({"kind": ["water"]}, geometry=[box(x0, y0 - 50, x0 + 50, y0)], crs=UTM)
    frame.to_file(tmp_path / "labels.gpkg")
    with pytest.raises(UserError, match="--label-field"):
        evaluate_scene(mask, tmp_path / "labels.gpkg", out=tmp_path / "rep")
    frame.rename(columns={"kind": "class"}).assign(**{"class": ["lake"]}).to_file(tmp_path / "lake.gpkg")
    with pytest.raises(UserError, match=r"lake.*match no class"):
        evaluate_scene(mask, tmp_path / "lake.gpkg", out=tmp_path / "rep")


@pytest.mark.parametrize("kind", ["bands", "float", "no_table"])
def test_a_prediction_that_is_not_a_class_mask_is_refused(tmp_path, kind):
    labels = write_raster(tmp_path / "labels.tif", np.zeros((20, 20), np.uint8), transform=TRANSFORM)
    if kind == "bands":
        mask = write_raster(tmp_path / "mask.tif", np.zeros((3, 20, 20), np.uint8), transform=TRANSFORM)
    elif kind == "float":
        mask = write_raster(tmp_path / "mask.tif", np.zeros((20, 20), np.float32), transform=TRANSFORM)
    else:
        mask = write_raster(tmp_path / "mask.tif", np.zeros((20, 20), np.uint8), transform=TRANSFORM)
    with pytest.raises(UserError, match="rsseg predict") as err:
        evaluate_scene(mask, labels, out=tmp_path / "rep")
    assert "RSSEG_CLASSES" in str(err.value)


def test_cli_end_to_end_writes_the_report_and_json(cli, pair):
    mask, labels, pred, truth = pair
    r = cli("evaluate", "--pred", mask, "--labels", labels, "--json")
    assert r.code == 0, r.err
    out = mask.parent / "mask_vs_labels"
    assert {p.name for p in out.iterdir()} == REPORT
    doc = json.loads(r.out)
    assert doc["pixels"] == brute_force(pred, truth).sum()
    assert doc["unpredicted_pixels"] == int(((truth != 255) & (pred == 255)).sum()) > 0
    with open(out / "confusion_matrix.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["truth\\pred", "water", "forest", "urban"]
    assert [[int(v) for v in row[1:]] for row in rows[1:]] == brute_force(pred, truth).tolist()
    assert "mean (present classes)" in r.err  # the table

    r = cli("evaluate", "--pred", mask, "--labels", labels, "--out", mask.parent / "rep")
    assert r.code == 0, r.err
    assert r.out == "" and {p.name for p in (mask.parent / "rep").iterdir()} == REPORT


def test_cli_labels_on_another_grid_need_reproject_labels(cli, tmp_path):
    cols = np.mgrid[0:H, 0:W][1]
    pred = ((cols // 40) % K).astype(np.uint8)
    mask = write_mask(tmp_path / "mask.tif", pred)
    # The same classes at half the pixel size: a different grid over the same ground.
    fine = ((np.mgrid[0 : 2 * H, 0 : 2 * W][1] // 80) % K).astype(np.uint8)
    labels = write_raster(
        tmp_path / "labels.tif", fine, transform=from_origin(*ORIGIN, RES / 2, RES / 2), nodata=255
    )
    r = cli("evaluate", "--pred", mask, "--labels", labels)
    assert r.code == 2
    assert "--reproject-labels" in r.err and "not on the grid" in r.err
    assert "tile.labels" not in r.err and "Traceback" not in r.err

    r = cli("evaluate", "--pred", mask, "--labels", labels, "--reproject-labels", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["labels_resampled"] is True
    assert doc["overall_accuracy"] == 1.0 and doc["pixels"] == H * W


@pytest.mark.parametrize(
    "args, words",
    [
        (["--split", "val"], "--split"),
        (["--checkpoint", "best.pt"], "--checkpoint"),
        (["--data", "data"], "--data"),
    ],
)
def test_cli_refuses_pred_mixed_with_chip_options(cli, pair, args, words):
    mask, labels, _, _ = pair
    r = cli("evaluate", "--pred", mask, "--labels", labels, *args)
    assert r.code == 2
    assert words in r.err and "do not apply with --pred" in r.err
    assert not (mask.parent / "mask_vs_labels").exists()


def test_cli_scene_options_need_pred_and_pred_needs_labels(cli, pair):
    mask, labels, _, _ = pair
    r = cli("evaluate", "--labels", labels)
    assert r.code == 2 and "--pred" in r.err and "scene evaluation only" in r.err
    r = cli("evaluate", "--pred", mask)
    assert r.code == 2 and "add --labels" in r.err


def test_cli_missing_files(cli, pair, tmp_path):
    mask, labels, _, _ = pair
    r = cli("evaluate", "--pred", tmp_path / "nope.tif", "--labels", labels)
    assert r.code == 2 and "nope.tif does not exist" in r.err
    r = cli("evaluate", "--pred", mask, "--labels", tmp_path / "nope.gpkg")
    assert r.code == 2 and "nope.gpkg do not exist" in r.err
    r = cli("evaluate", "--pred", mask, "--labels", tmp_path / "nope.tif")
    assert r.code == 2 and "nope.tif does not exist" in r.err


def test_all_touched_burns_every_touched_pixel(tmp_path):
    gpd = pytest.importorskip("geopandas")
    from shapely.geometry import box

    mask = write_mask(tmp_path / "mask.tif", np.zeros((20, 20), np.uint8))
    x0, y0 = ORIGIN
    # Columns and rows 2.6..5.4: 2 x 2 pixel centres (3.5, 4.5) inside, 4 x 4 pixels (2..5) touched.
    square = box(x0 + 2.6 * RES, y0 - 5.4 * RES, x0 + 5.4 * RES, y0 - 2.6 * RES)
    gpd.GeoDataFrame({"class": ["water"]}, geometry=[square], crs=UTM).to_file(tmp_path / "l.gpkg")
    centre = evaluate_scene(mask, tmp_path / "l.gpkg", out=tmp_path / "a")
    touched = evaluate_scene(mask, tmp_path / "l.gpkg", all_touched=True, out=tmp_path / "b")
    assert (centre["pixels"], touched["pixels"]) == (4, 16)


def test_each_label_source_gets_its_own_default_report_folder(cli, pair, tmp_path):
    mask, labels, _, truth = pair
    other = write_raster(tmp_path / "survey.tif", np.where(truth == 255, 255, 0).astype(np.uint8),
                         transform=TRANSFORM, nodata=255)  # fmt: skip
    (tmp_path / "b").mkdir()
    same_stem = write_raster(tmp_path / "b" / "labels.tif", truth, transform=TRANSFORM, nodata=255)
    for source in (labels, other, same_stem, labels):  # the same pair again refreshes its own report
        r = cli("evaluate", "--pred", mask, "--labels", source, "--json")
        assert r.code == 0, r.err
    folders = {p.name: json.loads((p / "metrics.json").read_text()) for p in tmp_path.glob("mask_vs_*")}
    assert sorted(folders) == ["mask_vs_labels", "mask_vs_labels_2", "mask_vs_survey"]
    assert folders["mask_vs_labels"]["labels"] == str(labels)
    assert folders["mask_vs_labels_2"]["labels"] == str(same_stem)
    assert folders["mask_vs_survey"]["labels"] == str(other)
    assert folders["mask_vs_survey"]["overall_accuracy"] != folders["mask_vs_labels"]["overall_accuracy"]


def test_an_explicit_out_holding_a_report_needs_overwrite(cli, pair, tmp_path):
    mask, labels, _, _ = pair
    out = tmp_path / "rep"
    out.mkdir()
    assert cli("evaluate", "--pred", mask, "--labels", labels, "--out", out).code == 0  # empty folder: fine
    before = (out / "metrics.json").read_bytes()
    r = cli("evaluate", "--pred", mask, "--labels", labels, "--out", out)
    assert r.code == 2
    text = " ".join(r.err.split())
    assert str(out) in text and "--overwrite" in text and "Traceback" not in text
    assert (out / "metrics.json").read_bytes() == before
    r = cli("evaluate", "--pred", mask, "--labels", labels, "--out", out, "--overwrite")
    assert r.code == 0, r.err
    r = cli("evaluate", "--pred", mask, "--labels", labels, "--out", mask)
    assert r.code == 2 and "is a file" in r.err


def test_vector_labels_off_the_prediction_are_refused_naming_both_extents(cli, tmp_path):
    gpd = pytest.importorskip("geopandas")
    from shapely.geometry import box

    mask = write_mask(tmp_path / "mask.tif", np.zeros((20, 20), np.uint8))
    x0, y0 = ORIGIN
    far = box(x0 - 5000, y0 - 50, x0 - 4000, y0)  # 4 km west of the 200 m prediction
    gpd.GeoDataFrame({"class": ["water"]}, geometry=[far], crs=UTM).to_crs("EPSG:3857").to_file(
        tmp_path / "l.gpkg"
    )
    r = cli("evaluate", "--pred", mask, "--labels", tmp_path / "l.gpkg")
    assert r.code == 2, r.err
    text = " ".join(r.err.split())
    assert "do not overlap" in text and "EPSG:3857" in text and "EPSG:32633" in text
    assert "(500000, 5.4998e+06) - (500200, 5.5e+06)" in text and "Traceback" not in text
    assert not list(tmp_path.glob("mask_vs_*"))


def test_float_label_rasters_of_whole_numbers_are_scored_and_fractions_refused(cli, pair, tmp_path):
    mask, _, pred, truth = pair
    floats = truth.astype(np.float32)
    floats[truth == 255] = -99999.0
    labels = write_raster(tmp_path / "float_labels.tif", floats, transform=TRANSFORM, nodata=-99999.0)
    r = cli("evaluate", "--pred", mask, "--labels", labels, "--json")
    assert r.code == 0, r.err
    assert "read as integer" in " ".join(r.err.split())
    assert json.loads(r.out)["pixels"] == brute_force(pred, truth).sum()
    m = json.loads((tmp_path / "mask_vs_float_labels" / "metrics.json").read_text())["confusion_matrix"]
    assert m == brute_force(pred, truth).tolist()
    floats[3, 4] = 0.75
    labels = write_raster(tmp_path / "odd_labels.tif", floats, transform=TRANSFORM, nodata=-99999.0)
    r = cli("evaluate", "--pred", mask, "--labels", labels)
    assert r.code == 2 and "not whole numbers" in r.err and "0.75" in r.err
