"""`rsseg predict` options: the `predict:` config section with --config/--set, --overlap-fraction (and the
old --overlap), --bands as a band selection, and values validated when parsed."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from rsseg_cli.commands.predict import PredictOptions
from tests.commands.helpers import assert_user_error, spy
from tests.conftest import write_raster


@pytest.fixture
def predicting(monkeypatch):
    monkeypatch.setattr("rsseg_cli.predict.run.print_predict_summary", lambda results: None)
    return spy(monkeypatch, "rsseg_cli.predict.run", "predict_scenes", result=[])


def settings(s):
    return s.kwargs["settings"]


def test_defaults_come_from_the_schema(cli, predicting, tmp_path):
    r = cli("predict", "s.tif", "--out", tmp_path / "m.tif")
    assert r.code == 0, r.err
    got = settings(predicting)
    assert (got.overlap_fraction, got.batch_size, got.tta, got.compress) == (0.25, 8, "none", "deflate")
    assert got.vector.sieve == 8 and got.window is None and got.bands is None


def test_flags_reach_the_settings(cli, predicting, tmp_path):
    r = cli("predict", "s.tif", "--out", tmp_path / "m.tif", "--overlap-fraction", "0.5", "--batch-size", "3",
            "--tta", "d4", "--window", "64", "--bands", "3,1,nir", "--compress", "zstd", "--pixel-space",
            "--device", "cpu", "--precision", "fp32", "--student", "clip", "--sieve", "0", "--min-area", "2",
            "--simplify", "1.5", "--fill-holes", "3", "--classes", "water, 2", "--vector", tmp_path / "p.gpkg")  # fmt: skip
    assert r.code == 0, r.err
    got = settings(predicting)
    assert (got.overlap_fraction, got.batch_size, got.tta, got.window) == (0.5, 3, "d4", 64)
    assert got.bands == [3, 1, "nir"] and got.compress == "zstd" and got.pixel_space is True
    assert (got.device, got.precision, got.student) == ("cpu", "fp32", "clip")
    assert got.vector.vectorize_kwargs() == dict(
        classes=["water", "2"], sieve=0, min_area_m2=2.0, simplify=1.5, fill_holes_m2=3.0
    )
    assert predicting.kwargs["vector"] == tmp_path / "p.gpkg"


def test_deprecated_overlap_is_the_fraction(cli, predicting, tmp_path):
    r = cli("predict", "s.tif", "--out", tmp_path / "m.tif", "--overlap", "0.5")
    assert r.code == 0, r.err
    assert settings(predicting).overlap_fraction == 0.5
    assert "--overlap is now --overlap-fraction" in " ".join(r.err.split())
    both = cli(
        "predict", "s.tif", "--out", tmp_path / "m.tif", "--overlap", "0.5", "--overlap-fraction", "0.1"
    )
    assert_user_error(both, "--overlap-fraction only")


def test_precedence_flag_over_set_over_file(cli, predicting, tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("predict:\n  batch_size: 3\n  tta: flip\n  vector: {sieve: 4}\n")
    base = ("predict", "s.tif", "--out", tmp_path / "m.tif")
    for extra in [(), ("--config", f), ("--config", f, "--set", "predict.batch_size=5"),
                  ("--config", f, "--set", "predict.batch_size=5", "--batch-size", "7")]:  # fmt: skip
        assert cli(*base, *extra).code == 0
    got = [c[1]["settings"] for c in predicting.calls]
    assert [s.batch_size for s in got] == [8, 3, 5, 7]
    assert [s.tta for s in got] == ["none", "flip", "flip", "flip"]
    assert [s.vector.sieve for s in got] == [8, 4, 4, 4]


@pytest.mark.parametrize(
    "args,needles",
    [
        (("--overlap-fraction", "1"), ("predict.overlap_fraction", "(--overlap-fraction)", "less than 1")),
        (("--overlap", "-0.1"), ("predict.overlap_fraction", "greater than or equal to 0")),
        (("--batch-size", "0"), ("predict.batch_size", "(--batch-size)")),
        (("--tta", "spin"), ("predict.tta", "(--tta)", "'flip'", "'d4'")),
        (("--compress", "lz4"), ("predict.compress", "(--compress)", "'zstd'")),
        (("--window", "0"), ("predict.window", "(--window)")),
        (("--precision", "fp64"), ("predict.precision", "(--precision)")),
        (("--sieve", "-1"), ("predict.vector.sieve", "(--sieve)")),
        (("--set", "predict.tta=spin"), ("predict.tta", "--set")),
    ],
    ids=["overlap", "old-overlap", "batch", "tta", "compress", "window", "precision", "sieve", "set"],
)
def test_bad_values_stop_when_parsed(cli, predicting, tmp_path, args, needles):
    assert_user_error(cli("predict", "s.tif", "--out", tmp_path / "m.tif", *args), *needles)
    assert not predicting.calls


def test_set_batch_size_reaches_the_predictor(cli, tmp_path, monkeypatch):
    """End to end: `--set predict.batch_size=2` is the batch size the stream predicts with."""
    import rsseg_cli.predict.scene as run
    from tests.predict.conftest import save_checkpoint

    seen = []
    real = run.StreamPredictor

    def recording(*args, **kwargs):
        seen.append((kwargs["batch_size"], kwargs["overlap"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(run, "StreamPredictor", recording)
    ckpt = save_checkpoint(tmp_path / "best.pt")
    scene = write_raster(
        tmp_path / "s.tif", np.random.default_rng(0).integers(1, 999, (3, 40, 40)).astype("uint16")
    )
    r = cli("predict", scene, "--out", tmp_path / "m.tif", "--checkpoint", ckpt, "--set", "predict.batch_size=2",
            "--set", "predict.overlap_fraction=0.5")  # fmt: skip
    assert r.code == 0, r.err
    assert seen == [(2, 0.5)]
    with rasterio.open(tmp_path / "m.tif") as m:
        assert (m.height, m.width) == (40, 40)


def test_options_object():
    opts = PredictOptions(["a.tif"], out="m.tif", overrides=["predict.vector.classes=[1, water]"], sieve=0)
    assert opts.config.predict.vector.classes == [1, "water"] and opts.config.predict.vector.sieve == 0


def test_schema_choices_and_defaults_match_the_library():
    """The schema states the choices and defaults the prediction and vectorize code implement."""
    from typing import get_args

    from rsseg_cli.config import PredictConfig, VectorizeConfig
    from rsseg_cli.predict.cog import COMPRESSIONS
    from rsseg_cli.predict.model import TTA_VIEWS
    from rsseg_cli.vectorize import DEFAULT_SIEVE, DEFAULT_WINDOW
    from rsseg_cli.vectorize.core import MIN_WINDOW

    fields = PredictConfig.model_fields
    assert set(get_args(fields["compress"].annotation)) == set(COMPRESSIONS)
    assert set(get_args(fields["tta"].annotation)) == set(TTA_VIEWS)
    v = VectorizeConfig()
    assert (v.sieve, v.window) == (DEFAULT_SIEVE, DEFAULT_WINDOW)
    assert VectorizeConfig.model_fields["window"].metadata[0].ge == MIN_WINDOW
