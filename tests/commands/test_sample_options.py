"""`rsseg sample` options: --band-count (and the old --bands), values checked when parsed."""

from __future__ import annotations

import pytest
import rasterio

from rsseg_cli.commands.sample import SampleOptions
from tests.commands.helpers import assert_user_error, spy


@pytest.fixture
def sampling(monkeypatch):
    return spy(monkeypatch, "rsseg_cli.commands.sample", "run")


def test_band_count_and_its_old_spelling(cli, tmp_path):
    r = cli("sample", tmp_path / "a", "--size", "64", "--band-count", "3")
    assert r.code == 0, r.err
    assert "Deprecated" not in r.err
    old = cli("sample", tmp_path / "b", "--size", "64", "--bands", "5")
    assert old.code == 0, old.err
    assert "--bands is now --band-count" in " ".join(old.err.split())
    with rasterio.open(tmp_path / "a" / "scene.tif") as a, rasterio.open(tmp_path / "b" / "scene.tif") as b:
        assert (a.count, b.count) == (3, 5)


def test_old_and_new_together_are_refused(cli, sampling):
    assert_user_error(cli("sample", "--bands", "3", "--band-count", "3"), "--band-count only")
    assert not sampling.calls


@pytest.mark.parametrize(
    "args,needles",
    [
        (("--band-count", "2"), ("--band-count 2", "3 (RGB) to 16")),
        (("--bands", "17"), ("--band-count 17",)),
        (("--size", "abc"), ("--size 'abc'", "HEIGHTxWIDTH")),
        (("--size", "8"), ("at least 16 px",)),
        (("--dtype", "complex64"), ("--dtype 'complex64'", "uint16")),
        (("--crs", "EPSG:999999"), ("--crs", "EPSG:32633")),
        (("--resolution", "0"), ("--resolution 0.0", "positive")),
    ],
    ids=["band-count", "old-bands", "size", "small", "dtype", "crs", "resolution"],
)
def test_bad_values_stop_when_parsed(cli, sampling, args, needles):
    assert_user_error(cli("sample", *args), *needles)
    assert not sampling.calls


def test_options_object():
    opts = SampleOptions(size="100x130", band_count=6)
    assert (opts.height, opts.width, opts.band_count) == (100, 130, 6)
