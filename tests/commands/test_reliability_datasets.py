"""Damaged datasets caught when they are opened, through the real CLI (train and evaluate on chips): a deleted
or truncated chip, a broken or mistyped dataset.yaml, a missing or garbage chips.csv, chip paths that leave
the dataset folder. Each is exit 2 with one message naming the file and suggesting to tile again, and leaves
nothing behind: no run or report folder, `latest` untouched, no partial file anywhere."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.commands.helpers import assert_user_error
from tests.helpers import TINY_TRAIN

RETILE = "rsseg tile"


def _sets(settings: list[str]) -> list[str]:
    return [a for s in settings for a in ("--set", s)]


@pytest.fixture(scope="module")
def checkpoint(dataset, tmp_path_factory) -> Path:
    """A tiny model trained on the sample dataset (for evaluate)."""
    from rsseg_cli.cli import main

    run = tmp_path_factory.mktemp("ckpt") / "run"
    args = ["train", "--data", dataset, "--out", run, "--method", "supervised", "--labeled", "1/4"]
    sets = [s for s in TINY_TRAIN if not s.startswith(("train.iterations", "train.eval_every"))]
    try:
        main([str(a) for a in [*args, *_sets([*sets, "train.iterations=2", "train.eval_every=2"])]])
    except SystemExit as exc:
        assert not exc.code, exc.code
    assert (run / "checkpoints" / "best.pt").exists()
    return run / "checkpoints" / "best.pt"


@pytest.fixture
def data(dataset, tmp_path) -> Path:
    """A private copy of the sample dataset, to damage."""
    return Path(shutil.copytree(dataset, tmp_path / "data"))


def _table(data: Path) -> pd.DataFrame:
    return pd.read_csv(data / "chips.csv", keep_default_na=False)


def _edit_meta(data: Path, **changes) -> None:
    meta = yaml.safe_load((data / "dataset.yaml").read_text())
    for key, value in changes.items():
        if value is _DROP:
            del meta[key]
        elif isinstance(value, dict) and isinstance(meta.get(key), dict) and value.get("_merge"):
            meta[key].update({k: v for k, v in value.items() if k != "_merge"})
        else:
            meta[key] = value
    (data / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))


def _edit_chips(data: Path, column: str, value, row: int = 0) -> None:
    table = _table(data)
    table[column] = table[column].astype(object)
    table.loc[row, column] = value
    table.to_csv(data / "chips.csv", index=False)


_DROP = object()


def _first(data: Path, split: str) -> int:
    return int((_table(data)["split"] == split).to_numpy().nonzero()[0][0])


def _delete_image(data):
    first = _table(data).iloc[0]
    (data / first.image).unlink()
    return Path(first.image).name


def _delete_label(data):
    first = _table(data).iloc[0]
    (data / first.label).unlink()
    return Path(first.label).name


# name -> (damage(data) -> extra needle or None, needles)
CASES = {
    "deleted-chip-image": (_delete_image, ["chips.csv", "missing", RETILE]),
    "deleted-chip-label": (_delete_label, ["chips.csv", "missing", RETILE]),
    "yaml-syntax-error": (
        lambda d: (d / "dataset.yaml").write_text("chip_size: [64\nbands: {oops\n"),
        ["dataset.yaml", "not valid YAML", "line", RETILE],
    ),
    "yaml-not-a-mapping": (
        lambda d: (d / "dataset.yaml").write_text("just some text\n"),
        ["dataset.yaml", "should hold keys", RETILE],
    ),
    "classes-a-string": (
        lambda d: _edit_meta(d, classes="oops"),
        ["dataset.yaml", "`classes: 'oops'`", "list of classes", RETILE],
    ),
    "statistics-emptied": (
        lambda d: _edit_meta(d, statistics={}),
        ["dataset.yaml", "statistics.mean", "one number per band", RETILE],
    ),
    "statistics-null": (
        lambda d: _edit_meta(d, statistics=None),
        ["dataset.yaml", "statistics", "one number per band", RETILE],
    ),
    "statistics-short-list": (
        lambda d: _edit_meta(d, statistics={"_merge": True, "p98": [1.0]}),
        ["dataset.yaml", "statistics.p98 holds 1 numbers for 4 bands", RETILE],
    ),
    "chip-size-missing": (
        lambda d: _edit_meta(d, chip_size=_DROP),
        ["dataset.yaml", "no `chip_size` key", "positive whole number", RETILE],
    ),
    "chip-size-text": (
        lambda d: _edit_meta(d, chip_size="sixty-four"),
        ["dataset.yaml", "chip_size", "positive whole number", RETILE],
    ),
    "bands-missing": (
        lambda d: _edit_meta(d, bands=_DROP),
        ["dataset.yaml", "no `bands` key", "list of bands", RETILE],
    ),
    "class-ids-out-of-order": (
        lambda d: _edit_meta(d, classes=yaml.safe_load((d / "dataset.yaml").read_text())["classes"][1:]),
        ["dataset.yaml", "class ids", RETILE],
    ),
    "chips-csv-missing": (lambda d: (d / "chips.csv").unlink(), ["chips.csv", "is missing", RETILE]),
    "chips-csv-empty": (lambda d: (d / "chips.csv").write_text(""), ["chips.csv", "is empty", RETILE]),
    "chips-csv-binary": (
        lambda d: (d / "chips.csv").write_bytes(bytes(range(256)) * 8),
        ["chips.csv", RETILE],
    ),
    "chips-csv-wrong-columns": (
        lambda d: (d / "chips.csv").write_text("a,b\n1,2\n"),
        ["chips.csv", "lacks the column(s) id, scene, split", RETILE],
    ),
    "chips-csv-header-only": (
        lambda d: (d / "chips.csv").write_text(",".join(_table(d).columns) + "\n"),
        ["chips.csv", "lists no chip", RETILE],
    ),
    "chips-csv-bad-split": (
        lambda d: _edit_chips(d, "split", "oops"),
        ["chips.csv", "'oops' in column `split` on line 2", "train, val, test", RETILE],
    ),
    "chips-csv-bad-labeled": (
        lambda d: _edit_chips(d, "labeled", "maybe"),
        ["chips.csv", "column `labeled`", "True or False", RETILE],
    ),
    "chips-csv-negative-count": (
        lambda d: _edit_chips(d, "px_0", -5),
        ["chips.csv", "column `px_0`", "pixel count", RETILE],
    ),
    "chips-csv-duplicate-id": (
        lambda d: _edit_chips(d, "id", _table(d).iloc[0]["id"], row=1),
        ["chips.csv", "column `id` on line 3", "not already used", RETILE],
    ),
    "chip-path-parent": (
        lambda d: _edit_chips(d, "image", "../outside.tif"),
        ["chips.csv", "'../outside.tif' in column `image`", "inside the dataset folder", RETILE],
    ),
    "chip-path-absolute": (
        lambda d: _edit_chips(d, "image", str(d.parent / "outside.tif")),
        ["chips.csv", "column `image`", "inside the dataset folder", RETILE],
    ),
    "val-chip-path-parent": (  # evaluate read this file outside the dataset before
        lambda d: _edit_chips(d, "image", "../outside.tif", row=_first(d, "val")),
        ["chips.csv", "'../outside.tif' in column `image`", "inside the dataset folder", RETILE],
    ),
    "label-path-parent": (
        lambda d: _edit_chips(d, "label", "labels/../../outside.tif"),
        ["chips.csv", "column `label`", "inside the dataset folder", RETILE],
    ),
}


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _train_args(data: Path, out: Path) -> list:
    return ["train", "--data", data, "--out", out, "--method", "supervised", *_sets(TINY_TRAIN)]


@pytest.fixture
def runs(tmp_path) -> Path:
    """A runs folder with an earlier run and `latest` pointing at it."""
    runs = tmp_path / "runs"
    (runs / "old").mkdir(parents=True)
    (runs / "latest").symlink_to("old")
    return runs


@pytest.mark.parametrize("case", list(CASES))
def test_train_refuses_a_damaged_dataset(cli, data, runs, tmp_path, case):
    damage, needles = CASES[case]
    named = damage(data)
    outside = tmp_path / "outside.tif"
    outside.write_bytes(b"not a chip")
    before = _tree(tmp_path)
    r = cli(*_train_args(data, runs / "new"))
    assert_user_error(r, *needles, *([named] if isinstance(named, str) else []))
    assert not (runs / "new").exists()
    assert os.readlink(runs / "latest") == "old"
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("case", list(CASES))
def test_evaluate_refuses_a_damaged_dataset(cli, data, checkpoint, tmp_path, case):
    damage, needles = CASES[case]
    named = damage(data)
    (tmp_path / "outside.tif").write_bytes(b"not a chip")
    before = _tree(tmp_path)
    r = cli("evaluate", "--checkpoint", checkpoint, "--data", data, "--out", tmp_path / "report")
    assert_user_error(r, *needles, *([named] if isinstance(named, str) else []))
    assert _tree(tmp_path) == before


def _truncate(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 8)  # the header survives, the pixels and the directory do not


@pytest.mark.parametrize("workers", [0, 2])
def test_train_reports_a_truncated_chip_read_by_a_worker(cli, data, tmp_path, workers):
    table = _table(data)
    chip = table[(table["split"] == "train") & (table["labeled"])].iloc[0]
    _truncate(data / chip.image)
    split = tmp_path / "labeled.txt"
    split.write_text(f"{chip.id}\n")
    args = _train_args(data, tmp_path / "runs" / "new")
    r = cli(*args, "--split-file", split, "--set", f"train.workers={workers}")
    assert_user_error(r, str(data / chip.image), "cannot be read", "truncated", RETILE)
    assert "Original Traceback" not in r.err and "worker" not in r.err
    # The run began before the chip was read (a fast check cannot decode every chip); it had no checkpoint, so
    # its folder is removed and runs/latest was never pointed at it.
    assert not (tmp_path / "runs" / "latest").is_symlink()
    assert not (tmp_path / "runs" / "new").exists()


def test_evaluate_reports_a_truncated_chip(cli, data, checkpoint, tmp_path):
    table = _table(data)
    chip = table[(table["split"] == "val") & (table["labeled"])].iloc[-1]
    _truncate(data / chip.label)
    before = _tree(tmp_path)
    r = cli("evaluate", "--checkpoint", checkpoint, "--data", data, "--out", tmp_path / "report")
    assert_user_error(r, str(data / chip.label), "cannot be read", RETILE)
    assert _tree(tmp_path) == before


def test_a_sound_dataset_still_opens(dataset):
    from rsseg_cli.data.chipset import ChipDataset

    data = ChipDataset.open(dataset)
    assert data.num_classes == 7 and len(data.chips) > 0
