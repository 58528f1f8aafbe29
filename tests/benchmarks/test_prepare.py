"""`rsseg prepare NAME SRC` on miniature benchmarks in their published layouts (tests/benchmarks/fixtures.py):
the class table, the split of each chip, labels read back as hand-converted class ids, clean refusals of bad
layouts, and `rsseg train --split` selecting exactly a published list's chips."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from rsseg_cli.benchmarks.lists import ratios, read_list
from tests.benchmarks.fixtures import BENCHMARKS, make_fixture
from tests.commands.helpers import assert_user_error
from tests.helpers import TINY_HEAD, TINY_TRAIN

# The published crops carry no georeferencing (GID's and DWL Potsdam's TIFs): rasterio says so on every read.
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
SIZE = 32
NAMES = list(BENCHMARKS)  # the eight presets and the official LoveDA layout
RASTERS = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}


def _main(*args: str | Path) -> int:
    """`rsseg ARGS` in-process for module-scoped fixtures (the `cli` fixture is per test)."""
    from rsseg_cli.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _words(name: str) -> str:
    """Class names compared in lower case with spaces: 'low_vegetation' and 'Low vegetation' are one name."""
    return " ".join(re.split(r"[\s_\-]+", name.strip().lower()))


@pytest.fixture(scope="module", params=NAMES)
def prepared(request, tmp_path_factory) -> tuple[dict, Path]:
    root = tmp_path_factory.mktemp(request.param)
    fixture = make_fixture(request.param, root / "src", size=SIZE, seed=NAMES.index(request.param))
    out = root / "out"
    code = _main("prepare", fixture["name"], fixture["src"], "--out", out)
    assert code == 0, f"rsseg prepare {fixture['name']} exited {code}"
    return fixture, out


def _open(out: Path):
    from rsseg_cli.data.chipset import ChipDataset

    return ChipDataset.open(out)


def _chips_csv(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "chips.csv", dtype={"id": str, "image": str, "label": str, "split": str})


# --- the dataset folder -------------------------------------------------------------------------------------


def test_class_table_is_the_benchmarks(prepared):
    fixture, out = prepared
    spec = fixture["spec"]
    meta = yaml.safe_load((out / "dataset.yaml").read_text())
    classes = meta["classes"]
    assert [_words(c["name"]) for c in classes] == list(spec.classes)
    assert [c["id"] for c in classes] == list(range(len(spec.classes)))
    assert all({"id", "name", "color", "value"} <= set(c) for c in classes)


def test_benchmark_record_names_lists_and_conversion(prepared):
    fixture, out = prepared
    spec = fixture["spec"]
    bench = yaml.safe_load((out / "dataset.yaml").read_text())["benchmark"]
    assert bench["name"] == fixture["name"]
    assert bench["label_conversion"] == ("reduce-zero-label" if spec.reduce_zero_label else "identity")
    assert Path(bench["source"]).resolve() == fixture["src"].resolve()
    assert {"layout", "protocol", "exclude_classes"} <= set(bench)
    if spec.lists:  # the official LoveDA layout has no published lists of its own
        family, dataset = spec.lists.split("/")
        assert bench["lists"] == spec.lists
        assert sorted(bench["splits"]) == sorted(f"{family}/{r}" for r in ratios(family, dataset))


def test_every_image_is_one_chip_in_its_split(prepared):
    fixture, out = prepared
    chips = _chips_csv(out).set_index("id")
    expected = fixture["chips"]
    assert sorted(chips.index) == sorted(expected)
    assert {i: chips.loc[i, "split"] for i in expected} == {i: c["split"] for i, c in expected.items()}
    assert chips["labeled"].astype(bool).all()


def test_chip_ids_read_back_as_the_image_stems(prepared):
    """As text: LoveDA's and MSL's stems are numbers, and split lists name chips by their stems."""
    fixture, out = prepared
    ids = _open(out).chips["id"].tolist()
    assert sorted(ids, key=str) == sorted(fixture["chips"]), [type(i).__name__ for i in ids[:3]]


def test_chips_point_at_the_source_files_uncopied(prepared):
    fixture, out = prepared
    chips = _chips_csv(out).set_index("id")
    for chip_id, c in fixture["chips"].items():
        assert Path(chips.loc[chip_id, "image"]).as_posix() == c["image"]
        assert Path(chips.loc[chip_id, "label"]).as_posix() == c["label"]
        assert (chips.loc[chip_id, "height"], chips.loc[chip_id, "width"]) == (SIZE, SIZE)
    assert not [p for p in out.rglob("*") if p.suffix.lower() in RASTERS]  # no image copied


def test_labels_read_back_as_hand_converted_class_ids(prepared):
    """Both ways chips are read: read_chip with the dataset's label map, and the evaluation chips training
    validates on (which must apply that map themselves)."""
    from rsseg_cli.data.chipset import EvalChips, read_chip
    from rsseg_cli.data.normalize import Normalization, default_band_map

    fixture, out = prepared
    data = _open(out)
    assert Path(data.files_root).resolve() == fixture["src"].resolve()
    norm = Normalization.from_dataset(data.meta["statistics"], default_band_map(data.band_names))
    ids = data.chips["id"].tolist()
    chips = EvalChips(data, ids, norm)
    for i, row in enumerate(data.chips.itertuples()):
        expected = fixture["spec"].convert(fixture["chips"][str(row.id)]["raw"])
        image, _, mask = read_chip(data.files_root, row, norm, data.label_map)
        assert image.shape == (3, SIZE, SIZE)
        assert mask is not None
        np.testing.assert_array_equal(mask.numpy(), expected, err_msg=row.id)
        np.testing.assert_array_equal(chips[i]["mask"].numpy(), expected, err_msg=f"EvalChips {row.id}")


def test_pixel_counts_are_of_the_converted_classes(prepared):
    fixture, out = prepared
    chips = _chips_csv(out).set_index("id")
    k = len(fixture["spec"].classes)
    assert [c for c in chips.columns if c.startswith("px_")] == [f"px_{i}" for i in range(k)]
    for chip_id, c in fixture["chips"].items():
        converted = fixture["spec"].convert(c["raw"])
        counts = [int((converted == i).sum()) for i in range(k)]
        assert [int(chips.loc[chip_id, f"px_{i}"]) for i in range(k)] == counts, chip_id
        assert int(chips.loc[chip_id, "ignore_pixels"]) == int((converted == 255).sum()), chip_id


def test_overwrite_prepares_again(tmp_path, cli):
    fixture = make_fixture("whdld", tmp_path / "src", per_list=1, size=16)
    out = tmp_path / "out"
    assert cli("prepare", "whdld", fixture["src"], "--out", out).code == 0
    second = cli("prepare", "whdld", fixture["src"], "--out", out, "--overwrite", "--workers", "1")
    assert second.code == 0, second.err
    assert sorted(_chips_csv(out)["id"]) == sorted(fixture["chips"])


# --- bad input: exit 2, one paragraph, no traceback ---------------------------------------------------------


def test_missing_source_is_refused(tmp_path, cli):
    missing = tmp_path / "no-such-folder"
    assert_user_error(cli("prepare", "whdld", missing, "--out", tmp_path / "out"), str(missing))


def test_unknown_name_is_refused(tmp_path, cli):
    fixture = make_fixture("whdld", tmp_path / "src", per_list=1, size=16)
    assert_user_error(cli("prepare", "whdld2", fixture["src"], "--out", tmp_path / "out"), "whdld2")


@pytest.mark.parametrize(
    ("name", "folder"),
    [("whdld", "labels"), ("gid15", "images"), ("potsdam-dwl", "label"), ("deepglobe", "data_cropped")],
)
def test_missing_sub_folder_is_named(tmp_path, cli, name, folder):
    fixture = make_fixture(name, tmp_path / "src", per_list=1, size=16)
    shutil.rmtree(fixture["src"] / folder)
    result = cli("prepare", fixture["name"], fixture["src"], "--out", tmp_path / "out")
    assert_user_error(result, folder, f"{folder}/")  # names it, and shows the layout that holds it
    assert not (tmp_path / "out" / "chips.csv").exists()


def test_official_loveda_without_masks_is_refused(tmp_path, cli):
    fixture = make_fixture("loveda-official", tmp_path / "src", per_list=1, size=16)
    shutil.rmtree(fixture["src"] / "Val" / "Rural" / "masks_png")
    result = cli("prepare", "loveda", fixture["src"], "--out", tmp_path / "out")
    assert_user_error(result, "masks_png")


@pytest.mark.parametrize("layout", ["empty", "empty sub-folders"])
def test_no_images_is_refused(tmp_path, cli, layout):
    src = tmp_path / "src"
    src.mkdir()
    if layout == "empty sub-folders":
        (src / "images").mkdir()
        (src / "labels").mkdir()
    needle = "no image" if layout == "empty sub-folders" else "images"  # else: the missing folders
    assert_user_error(cli("prepare", "whdld", src, "--out", tmp_path / "out"), needle)


@pytest.mark.parametrize("name", ["whdld", "deepglobe", "loveda-official"])
def test_image_without_its_label_is_named(tmp_path, cli, name):
    fixture = make_fixture(name, tmp_path / "src", per_list=2, size=16)
    lonely = sorted(fixture["chips"])[0]
    (fixture["src"] / fixture["chips"][lonely]["label"]).unlink()
    result = cli("prepare", fixture["name"], fixture["src"], "--out", tmp_path / "out")
    assert_user_error(result, lonely)
    assert re.search(r"\b1\b", result.err), result.err  # the count of images without a label


def test_label_value_outside_the_table_is_named(tmp_path, cli):
    from tests.benchmarks.fixtures import write_label

    fixture = make_fixture("whdld", tmp_path / "src", per_list=1, size=16)
    chip = next(iter(fixture["chips"].values()))
    raw = chip["raw"].copy()
    raw[3, 3] = 77  # whdld labels hold 0..6 (and 255)
    write_label(fixture["src"] / chip["label"], raw)
    assert_user_error(cli("prepare", "whdld", fixture["src"], "--out", tmp_path / "out"), "77")


# --- rsseg train --split -------------------------------------------------------------------------------------

TRAIN_SETS = [*TINY_TRAIN, *TINY_HEAD, "train.iterations=2", "train.eval_every=2", "train.crop=32"]


def _train_args(data: Path, out: Path, split: str) -> list[str]:
    sets = [a for kv in TRAIN_SETS for a in ("--set", kv)]
    return [
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--method",
        "supervised",
        "--split",
        split,
        *sets,
    ]


def _stems(list_name: str) -> list[str]:
    return sorted(Path(line[0]).stem for line in read_list(list_name))


def test_split_trains_on_exactly_the_listed_chips(mer_full, tmp_path, cli, no_plots):
    run = tmp_path / "run"
    result = cli(*_train_args(mer_full, run, "co2s/1_8"))
    assert result.code == 0, result.err[-3000:]
    labeled = (run / "splits" / "labeled.txt").read_text().split()
    unlabeled = (run / "splits" / "unlabeled.txt").read_text().split()
    assert sorted(labeled) == _stems("co2s/mer/1_8/labeled.txt")
    assert sorted(unlabeled) == _stems("co2s/mer/1_8/unlabeled.txt")
    info = json.loads((run / "run.json").read_text())
    assert info["split"] == "co2s/1_8"
    assert (info["labeled_chips"], info["unlabeled_chips"]) == (106, 745)
    assert info["val_chips"] == len(read_list("co2s/mer/val.txt")) == 213


@pytest.mark.parametrize(
    ("name", "split", "listed"),
    [("mer", "co2s/1_8", 106), ("msl", "co2s/1_8", 392), ("potsdam-dwl", "rs-mtdf/5", 164)],
)
def test_split_naming_missing_chips_is_refused(tmp_path, cli, caplog, name, split, listed):
    fixture = make_fixture(name, tmp_path / "src", per_list=2, size=16)
    out = tmp_path / "data"
    with caplog.at_level(logging.WARNING):
        assert cli("prepare", fixture["name"], fixture["src"], "--out", out).code == 0
    assert any(r.levelno == logging.WARNING for r in caplog.records)  # a partial source: only a warning
    result = cli(*_train_args(out, tmp_path / "run", split))
    assert_user_error(result)
    counts = {int(n) for n in re.findall(r"\d+", result.err)}
    assert listed - 2 in counts, result.err  # the labeled list's names the fixture lacks (it has 2 of them)
    lacking = set(_stems(f"{fixture['spec'].lists}/{split.split('/')[1]}/labeled.txt")) - set(
        fixture["chips"]
    )
    assert any(stem in result.err for stem in lacking), result.err  # a few of the names
    assert not (tmp_path / "run" / "run.json").exists()
