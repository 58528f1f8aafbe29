"""`rsseg tile` options: flags -> TileOptions (validated when parsed), --overlap-px and its old spelling."""

from __future__ import annotations

import pytest
import yaml

from rsseg_cli.commands.tile import TileOptions
from tests.commands.helpers import assert_user_error, spy


@pytest.fixture
def tile_spy(monkeypatch):
    """The library call replaced: the options stop at tile_scenes, so no raster is needed."""
    monkeypatch.setattr("rsseg_cli.data.summary.print_tile_summary", lambda result: None)
    return spy(monkeypatch, "rsseg_cli.data.tiling", "tile_scenes")


def test_flags_reach_the_config(cli, tile_spy, tmp_path):
    r = cli("tile", "s.tif", "--chip-size", "64", "--overlap-px", "8", "--bands", "4,3,2", "--no-all-touched",
            "--edge", "snap", "--workers", "3", "--seed", "5", "--out", tmp_path / "d")  # fmt: skip
    assert r.code == 0, r.err
    scenes, labels, out, cfg = tile_spy.args
    assert scenes == ["s.tif"] and labels == [] and out == tmp_path / "d"  # as given: URLs stay URLs
    assert (cfg.tile.chip_size, cfg.tile.overlap, cfg.tile.effective_stride) == (64, 8, 56)
    assert cfg.tile.bands == [4, 3, 2] and cfg.tile.labels.all_touched is False
    assert (cfg.tile.edge, cfg.tile.workers, cfg.seed) == ("snap", 3, 5)
    assert "Deprecated" not in r.err


def test_urls_scene_lists_and_assets_reach_tile_scenes(cli, tile_spy, tmp_path):
    (tmp_path / "more.txt").write_text("# listed scenes follow the arguments\ns3://bucket/b.tif\nlocal.tif\n")
    r = cli("tile", "https://h.example/a.tif?sig=x", "--scenes-from", tmp_path / "more.txt",
            "--assets", "red, nir", "--out", tmp_path / "d")  # fmt: skip
    assert r.code == 0, r.err
    scenes = tile_spy.args[0]
    assert scenes == ["https://h.example/a.tif?sig=x", "s3://bucket/b.tif", str(tmp_path / "local.tif")]
    assert tile_spy.calls[-1][1]["assets"] == ["red", "nir"]


def test_deprecated_overlap_keeps_its_meaning_in_pixels(cli, tile_spy):
    r = cli("tile", "s.tif", "--chip-size", "64", "--overlap", "16")
    assert r.code == 0, r.err
    assert tile_spy.args[3].tile.overlap == 16
    text = " ".join(r.err.split())
    assert "Deprecated" in text and "--overlap is now --overlap-px" in text


def test_old_and_new_overlap_together_are_refused(cli, tile_spy):
    assert_user_error(cli("tile", "s.tif", "--overlap", "8", "--overlap-px", "8"), "--overlap-px only")
    assert not tile_spy.calls


def test_deprecated_overlap_end_to_end(cli, make_scene, tmp_path):
    scene = make_scene(64, 64)
    r = cli("tile", scene.image, "--labels", scene.labels, "--chip-size", "32", "--overlap", "8",
            "--out", tmp_path / "d")  # fmt: skip
    assert r.code == 0, r.err
    meta = yaml.safe_load((tmp_path / "d" / "dataset.yaml").read_text())
    assert (meta["chip_size"], meta["stride"]) == (32, 24)
    assert "--overlap-px" in r.err


@pytest.mark.parametrize(
    "args,needles",
    [
        (("--edge", "wrap"), ("tile.edge", "(--edge)", "'pad'")),
        (("--max-nodata", "2"), ("tile.max_nodata", "(--max-nodata)")),
        (("--chip-size", "64", "--overlap-px", "64"), ("overlap 64 must be smaller than chip_size 64",)),
        (("--workers", "0"), ("tile.workers", "(--workers)")),
        (("--set", "tile.chip_sise=3"), ("unknown key 'tile.chip_sise'", "chip_size")),
    ],
    ids=["edge", "max-nodata", "overlap-vs-chip", "workers", "unknown-key"],
)
def test_bad_values_stop_when_parsed(cli, tile_spy, args, needles):
    assert_user_error(cli("tile", "s.tif", *args), *needles)
    assert not tile_spy.calls  # nothing ran


def test_messages_name_the_installed_reference_config(cli, tile_spy):
    from rsseg_cli.config import reference_config

    r = cli("tile", "s.tif", "--edge", "wrap")
    assert f"See {reference_config()} for every key" in r.err
    assert reference_config().is_file() and "configs" in reference_config().parts


def test_options_object_validates_on_construction():
    opts = TileOptions(["a.tif"], bands="red, green ,blue", overrides=["tile.chip_size=128"], chip_size=96)
    assert opts.config.tile.bands == ["red", "green", "blue"]
    assert opts.config.tile.chip_size == 96  # a flag wins over --set
    from rsseg_cli.errors import UserError

    with pytest.raises(UserError, match="--stride"):
        TileOptions(["a.tif"], stride=0)


def test_help_has_no_type_tags_and_hides_deprecated_spellings(cli):
    r = cli("tile", "--help")
    assert r.code == 0
    assert "<bool>" not in r.out
    assert "--all-touched / --no-all-touched" in r.out and "--overlap-px" in r.out
    assert "--overlap " not in r.out.replace("--overlap-px", "")
    assert "[default: 512]" in r.out  # the schema's default, shown although the flag defaults to "not given"


def test_config_files_are_deep_merged_in_order_then_set_then_flags(cli, tile_spy, tmp_path):
    base, site = tmp_path / "base.yaml", tmp_path / "site.yaml"
    base.write_text(
        "seed: 3\ntile:\n  chip_size: 128\n  edge: snap\n  labels:\n    field: kind\n    all_touched: true\n"
    )
    site.write_text("tile:\n  chip_size: 96\n  labels:\n    field: lc\n")
    r = cli("tile", "s.tif", "--config", base, "-c", site)
    assert r.code == 0, r.err
    cfg = tile_spy.calls[-1][0][3]
    # site overrides what it names, base keeps the rest (a deep merge, not a replacement of `tile:`)
    assert (cfg.tile.chip_size, cfg.tile.edge, cfg.seed) == (96, "snap", 3)
    assert (cfg.tile.labels.field, cfg.tile.labels.all_touched) == ("lc", True)
    r = cli("tile", "s.tif", "--config", site, "--config", base)  # the order matters
    assert r.code == 0, r.err
    assert (tile_spy.calls[-1][0][3].tile.chip_size, tile_spy.calls[-1][0][3].tile.labels.field) == (
        128,
        "kind",
    )
    r = cli("tile", "s.tif", "-c", base, "-c", site, "--set", "tile.chip_size=64", "--edge", "pad")
    assert r.code == 0, r.err
    assert (tile_spy.calls[-1][0][3].tile.chip_size, tile_spy.calls[-1][0][3].tile.edge) == (64, "pad")
    r = cli("tile", "s.tif", "-c", base, "-c", tmp_path / "missing.yaml")
    assert_user_error(r, "missing.yaml does not exist")


@pytest.mark.parametrize(
    "command",
    [
        ["train"],
        ["evaluate"],
        ["predict", "s.tif", "--out", "m.tif"],
        ["vectorize", "m.tif"],
    ],
)
def test_every_command_with_config_takes_several_files(cli, tmp_path, monkeypatch, command):
    """Each --config file is read (an invalid value in the second one is reported with that file's name)."""
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("seed: 1\n")
    bad.write_text("tile:\n  chip_size: big\n")
    r = cli(*command, "--config", good, "--config", bad)
    assert_user_error(r, "tile.chip_size", str(bad))
    r = cli(*command, "--config", bad, "--config", good)
    assert_user_error(r, "tile.chip_size")
