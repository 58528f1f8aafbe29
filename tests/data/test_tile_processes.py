"""`tile.processes`: several scenes cut at once in worker processes give the very dataset one process gives
(chips, statistics, split), and the command line's --processes reaches it."""

from __future__ import annotations

import pandas as pd
import yaml

from rsseg_cli.config import load_config
from rsseg_cli.data.tiling import tile_scenes

SETS = ["tile.chip_size=32"]  # the default label-aware split, over three scenes


def _dataset(root):
    meta = yaml.safe_load((root / "dataset.yaml").read_text())
    for key in ("created", "scenes"):
        meta.pop(key)
    chips = pd.read_csv(root / "chips.csv", keep_default_na=False)
    files = {p.relative_to(root): p.read_bytes() for p in sorted((root / "images").rglob("*.tif"))}
    files |= {p.relative_to(root): p.read_bytes() for p in sorted((root / "labels").rglob("*.tif"))}
    return meta, chips, files


def test_three_scenes_in_two_processes_equal_one_process(make_scene, tmp_path):
    scenes = [make_scene(h=120 + 20 * i, w=160, name=f"s{i}") for i in range(3)]
    images, labels = [s.image for s in scenes], [s.labels for s in scenes]
    one = tile_scenes(images, labels, tmp_path / "one", load_config(overrides=SETS))
    two = tile_scenes(images, labels, tmp_path / "two", load_config(overrides=[*SETS, "tile.processes=2"]))
    assert one.chips == two.chips > 30
    meta_one, chips_one, files_one = _dataset(tmp_path / "one")
    meta_two, chips_two, files_two = _dataset(tmp_path / "two")
    assert meta_two == meta_one
    pd.testing.assert_frame_equal(chips_two, chips_one)
    assert files_two.keys() == files_one.keys() and files_two == files_one


def test_processes_flag_reaches_the_config(make_scene, tmp_path, cli):
    a, b = make_scene(h=128, w=128, name="a"), make_scene(h=128, w=128, name="b")
    r = cli("tile", a.image, b.image, "-l", a.labels, "-l", b.labels, "--out", tmp_path / "d",
            "--chip-size", "64", "--processes", "2")  # fmt: skip
    assert r.code == 0, r.err
    config = yaml.safe_load((tmp_path / "d" / "config.yaml").read_text())
    assert config["tile"]["processes"] == 2
