"""`rsseg suggest` end to end: squares inside the scene, disjoint, within budget, away from labeled chips and
areas; the GeoPackage with its stored style, the uncertainty COG, the quick-look; refusals."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
import torch

from rsseg_cli.engine.checkpoint import Checkpoint
from rsseg_cli.geo.gpkg_style import read_default_style

SIZE = 32  # the checkpoint's chip size: the default window


def _squares(path: Path) -> gpd.GeoDataFrame:
    return gpd.read_file(path, layer="suggestions")


def _disjoint(frame: gpd.GeoDataFrame) -> bool:
    geoms = list(frame.geometry)
    return all(shapely.area(a.intersection(b)) == 0 for i, a in enumerate(geoms) for b in geoms[i + 1 :])


def test_suggest_writes_disjoint_squares_inside_the_scene(cli, tmp_path, checkpoint, scene):
    out = tmp_path / "s.gpkg"
    r = cli(
        "suggest", scene.image, "--checkpoint", checkpoint, "--budget", "7", "--out", out, "--device", "cpu"
    )
    assert r.code == 0, r.out + r.err
    frame = _squares(out)
    assert len(frame) == 7 and list(frame["rank"]) == list(range(1, 8))
    assert _disjoint(frame)
    with rasterio.open(scene.image) as src:
        bounds = shapely.box(*src.bounds)
        h, w = src.height, src.width
    assert all(bounds.covers(g) for g in frame.geometry)
    assert (frame["row"] % SIZE == 0).all() and (frame["col"] % SIZE == 0).all()  # the tile grid
    assert ((frame["row"] + SIZE <= h) | (frame["valid_fraction"] < 1)).all()
    shares = frame[[c for c in frame.columns if c.startswith("share_")]].to_numpy()
    assert np.allclose(shares.sum(axis=1), 1.0, atol=1e-3)
    assert frame["disagreement"].notna().all()  # flip views of the supervised model
    # The style: stored as the layer's default in the GeoPackage and beside it.
    assert "rank" in read_default_style(out, "suggestions")
    assert (tmp_path / "s.qml").read_text().count('fieldName="rank"') == 1
    # The uncertainty COG: one band, 0..1 through its scale, invalid pixels masked; the quick-look.
    with rasterio.open(tmp_path / "s_uncertainty.tif") as src:
        assert (src.count, src.dtypes[0], src.height, src.width) == (1, "uint8", h, w)
        assert src.scales[0] == pytest.approx(1 / 255)
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        values = src.read(1)
    assert values.max() > values.min()
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_suggest_ranks_by_the_scores_it_reports(cli, tmp_path, checkpoint, scene):
    out = tmp_path / "s.gpkg"
    assert cli("suggest", scene.image, "--checkpoint", checkpoint, "--budget", "5", "--out", out, "--strategy",
               "entropy", "--no-quicklook", "--no-uncertainty", "--set", "suggest.diversity=0").code == 0  # fmt: skip
    frame = _squares(out)
    assert (np.diff(frame["score"].to_numpy()) <= 1e-9).all()  # plain top-N: best first
    assert np.allclose(frame["score"], frame["entropy"] * frame["valid_fraction"], atol=1e-5)
    assert not (tmp_path / "s_uncertainty.tif").exists() and not (tmp_path / "s.png").exists()


def test_suggest_never_overlaps_labeled_chips_or_areas(cli, tmp_path, checkpoint, scene):
    data = tmp_path / "data"
    assert cli("tile", scene.image, "--labels", scene.labels, "--out", data, "--chip-size", SIZE,
               "--keep-incomplete").code == 0  # fmt: skip
    chips = gpd.read_file(data / "chips.gpkg")
    labeled = chips[chips["labeled"].astype(bool)]
    # Label only a few chips: a dataset folder whose other chips are unlabeled.
    areas = tmp_path / "areas.gpkg"
    gpd.GeoDataFrame(geometry=[labeled.geometry.iloc[0].buffer(-4)], crs=chips.crs).to_file(areas)
    out = tmp_path / "s.gpkg"
    r = cli("suggest", scene.image, "--checkpoint", checkpoint, "--budget", "30", "--out", out, "--exclude",
            areas, "--no-quicklook", "--no-uncertainty")  # fmt: skip
    assert r.code == 0, r.out + r.err
    frame = _squares(out)
    area = gpd.read_file(areas).geometry.iloc[0]
    assert not any(g.intersection(area).area > 0 for g in frame.geometry)
    # Every chip of this dataset is labeled: nothing is left to suggest.
    r = cli("suggest", scene.image, "--checkpoint", checkpoint, "--out", out, "--exclude", data, "--overwrite",
            "--no-quicklook", "--no-uncertainty")  # fmt: skip
    assert r.code == 2 and "No window can be suggested" in r.err + r.out


def test_disagreement_of_the_ema_teacher_and_its_student(cli, tmp_path, checkpoint, scene):
    """A last.pt beside best.pt holding a different student: disagreement comes from teacher vs student."""
    best = Checkpoint.read(checkpoint)
    torch.manual_seed(5)
    student = {
        k: v + 0.5 * torch.randn_like(v) if v.is_floating_point() else v for k, v in best.state_dict.items()
    }
    best.method = "fixmatch"
    best.train_state = {"model": student, "ema": best.state_dict, "optimizer": {}, "scaler": {}, "step": 1,
                        "best": {}, "config": {}}  # fmt: skip
    best.save(checkpoint.with_name("last.pt"))
    out = tmp_path / "s.gpkg"
    r = cli("suggest", scene.image, "--checkpoint", checkpoint, "--budget", "3", "--out", out, "--strategy",
            "disagreement", "--no-quicklook")  # fmt: skip
    assert r.code == 0, r.out + r.err
    assert "disagreement: ema" in (r.out + r.err).replace("\n", " ")
    assert (_squares(out)["disagreement"] > 0).all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "s.tif"], "must be a .gpkg"),
        (["--strategy", "loud"], "strategy"),
        (["--budget", "0"], "budget"),
        (["--exclude", "nowhere"], "neither a dataset folder"),
    ],
)
def test_bad_input_exits_2(cli, tmp_path, checkpoint, scene, args, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("suggest", scene.image, "--checkpoint", checkpoint, *args)
    assert r.code == 2 and message in (r.out + r.err), r.out + r.err
    assert "Traceback" not in r.out + r.err


def test_existing_output_is_refused_and_an_onnx_model_explained(cli, tmp_path, checkpoint, scene):
    out = tmp_path / "s.gpkg"
    out.write_text("x")
    r = cli("suggest", scene.image, "--checkpoint", checkpoint, "--out", out)
    assert r.code == 2 and "--overwrite" in r.out + r.err and out.read_text() == "x"
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"\0")
    r = cli("suggest", scene.image, "--checkpoint", onnx, "--out", tmp_path / "t.gpkg")
    assert r.code == 2 and "best.pt" in r.out + r.err
    assert not (tmp_path / "t.gpkg").exists()


@pytest.mark.parametrize(("method", "source"), [("co2s", "students"), ("rs-mtdf", "views")])
def test_every_method_gives_its_disagreement_and_features(cli, tmp_path, scene, method, source):
    """Co2S: its two students disagree; RS-MTDF without last.pt: the flip views. Features come from the
    student backbones (Co2S) or the fused segmenter's encoder, and the novelty of windows against --exclude."""
    from tests.export import save_method_checkpoint

    ckpt = save_method_checkpoint(
        tmp_path / "best.pt", method, variant="ensemble" if method == "co2s" else None
    )
    areas = tmp_path / "areas.gpkg"
    with rasterio.open(scene.image) as src:
        left = shapely.box(src.bounds.left, src.bounds.bottom, src.bounds.left + 64, src.bounds.top)
        crs = src.crs
    gpd.GeoDataFrame(geometry=[left], crs=crs).to_file(areas)
    out = tmp_path / "s.gpkg"
    r = cli("suggest", scene.image, "--checkpoint", ckpt, "--budget", "3", "--out", out, "--exclude", areas,
            "--no-quicklook", "--no-uncertainty")  # fmt: skip
    assert r.code == 0, r.out + r.err
    assert f"disagreement: {source}" in (r.out + r.err).replace("\n", " ")
    frame = _squares(out)
    assert len(frame) == 3 and frame["novelty"].notna().all() and (frame["col"] >= 64).all()
