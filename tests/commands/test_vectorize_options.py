"""`rsseg vectorize` options: the `vectorize:` config section with --config/--set, values checked when parsed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.commands.helpers import assert_user_error, spy
from tests.vectorize.helpers import read, write_mask
from tests.vectorize.test_vectorize import snake


@pytest.fixture
def vectorizing(monkeypatch):
    monkeypatch.setattr("rsseg_cli.vectorize.print_vectorize_summary", lambda summary: None)
    return spy(monkeypatch, "rsseg_cli.vectorize", "vectorize_mask")


def test_defaults_and_flags(cli, vectorizing, tmp_path):
    assert cli("vectorize", tmp_path / "mask.tif").code == 0
    r = cli("vectorize", tmp_path / "mask.tif", "--out", tmp_path / "p.geojson", "--probs", tmp_path / "p.tif",
            "--classes", "water,1", "--sieve", "0", "--min-area", "5", "--simplify", "1", "--fill-holes", "2",
            "--window", "64")  # fmt: skip
    assert r.code == 0, r.err
    (args0, kw0), (args1, kw1) = vectorizing.calls
    assert args0 == (tmp_path / "mask.tif", tmp_path / "mask.gpkg")
    assert kw0 == dict(probs=None, classes=None, sieve=8, min_area_m2=0.0, simplify=0.0, fill_holes_m2=0.0,
                       window=4096)  # fmt: skip
    assert args1 == (tmp_path / "mask.tif", tmp_path / "p.geojson")
    assert kw1 == dict(probs=tmp_path / "p.tif", classes=["water", "1"], sieve=0, min_area_m2=5.0,
                       simplify=1.0, fill_holes_m2=2.0, window=64)  # fmt: skip


def test_precedence_flag_over_set_over_file(cli, vectorizing, tmp_path):
    f = tmp_path / "v.yaml"
    f.write_text("vectorize:\n  sieve: 4\n  classes: [water]\n")
    mask = Path("m.tif")
    for extra in [("--config", f), ("--config", f, "--set", "vectorize.sieve=0"),
                  ("--config", f, "--set", "vectorize.sieve=0", "--sieve", "2")]:  # fmt: skip
        assert cli("vectorize", mask, *extra).code == 0
    assert [kw["sieve"] for _, kw in vectorizing.calls] == [4, 0, 2]
    assert {tuple(kw["classes"]) for _, kw in vectorizing.calls} == {("water",)}


@pytest.mark.parametrize(
    "args,needles",
    [
        (("--sieve", "-1"), ("vectorize.sieve", "(--sieve)")),
        (("--min-area", "-2"), ("vectorize.min_area", "(--min-area)")),
        (("--window", "8"), ("vectorize.window", "(--window)", "16")),
        (("--classes", ","), ("vectorize.classes", "at least one class")),
        (("--set", "vectorize.simplify=-1"), ("vectorize.simplify", "--set")),
    ],
    ids=["sieve", "min-area", "window", "classes", "set"],
)
def test_bad_values_stop_when_parsed(cli, vectorizing, args, needles):
    assert_user_error(cli("vectorize", "m.tif", *args), *needles)
    assert not vectorizing.calls


def test_set_sieve_zero_end_to_end(cli, tmp_path):
    """Without sieving every region is a polygon; the default sieve (8 px) merges a one-pixel island away."""
    m = snake()
    m[100, 100] = 3  # a one-pixel forest island in the background
    mask = write_mask(tmp_path / "mask.tif", m)
    assert cli("vectorize", mask, "--out", tmp_path / "a.gpkg").code == 0
    r = cli("vectorize", mask, "--out", tmp_path / "b.gpkg", "--set", "vectorize.sieve=0")
    assert r.code == 0, r.err
    sieved, unsieved = read(tmp_path / "a.gpkg"), read(tmp_path / "b.gpkg")
    assert len(unsieved) == len(sieved) + 1
    island = unsieved[unsieved.class_id == 3]
    assert len(island) == 1 and island.area_m2.iloc[0] == 4.0  # one 2 m pixel
