"""`rsseg train` options: --labeled and friends are validated when parsed, on every path (a new run, --resume,
--split-file), before any dataset is opened."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsseg_cli.commands.train import TrainOptions
from rsseg_cli.errors import UserError
from tests.commands.helpers import assert_user_error, spy

FORMS = "a share of the labeled training chips, above 0 and at most 1 (1/8, 12.5%, 0.125), or a number of chips, at least 1 (40)"


@pytest.fixture
def training(monkeypatch):
    return spy(monkeypatch, "rsseg_cli.engine.run", "run_training", result=Path("runs/x"))


@pytest.mark.parametrize(
    "value,needle",
    [("abc", FORMS), ("1/0", FORMS), ("0", FORMS), ("150%", "at most 1"), ("-1/8", "above 0")],
)
@pytest.mark.parametrize(
    "extra", [(), ("--resume",), ("--split-file", "SPLIT")], ids=["new-run", "resume", "split-file"]
)
def test_bad_labeled_stops_at_parse_time(cli, training, tmp_path, value, needle, extra):
    split = tmp_path / "labeled.txt"
    split.write_text("scene_r0_c0\n")
    extra = tuple(str(split) if a == "SPLIT" else a for a in extra)
    # The dataset does not exist: the --labeled message must come first, whatever the path.
    r = cli("train", "--data", tmp_path / "missing", "--labeled", value, *extra)
    assert_user_error(r, "train.labeled", "(--labeled)", needle)
    assert not training.calls


@pytest.mark.parametrize("value", ["1/8", "12.5%", "0.125", "40", "1/1"])
def test_good_labeled_forms_pass(cli, training, value):
    r = cli("train", "--labeled", value)
    assert r.code == 0, r.err
    assert training.args[1].train.labeled == value


def test_labeled_from_set_and_config_file_is_checked_too(cli, training, tmp_path):
    assert_user_error(cli("train", "--set", "train.labeled=1/0"), "train.labeled", FORMS)
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  labeled: 2.5\n")
    assert_user_error(cli("train", "--config", f), "train.labeled", "at most 1")
    # A YAML number is a ratio like its text form.
    assert cli("train", "--set", "train.labeled=0.25").code == 0
    assert training.args[1].train.labeled == "0.25"  # the only call: the bad values never reached it


def test_flag_beats_set_beats_file(cli, training, tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  labeled: 1/2\n  precision: bf16\n")
    assert cli("train", "--config", f).code == 0
    assert cli("train", "--config", f, "--set", "train.labeled=1/4").code == 0
    assert cli("train", "--config", f, "--set", "train.labeled=1/4", "--labeled", "1/8").code == 0
    got = [args[1].train.labeled for args, _ in training.calls]
    assert got == ["1/2", "1/4", "1/8"]
    assert all(args[1].train.precision == "bf16" for args, _ in training.calls)


@pytest.mark.parametrize(
    "args,needles",
    [
        (("--method", "magic"), ("train.method", "(--method)", "unimatch-v2")),
        (("--precision", "fp8"), ("train.precision", "(--precision)", "'bf16'")),
        (("--stop-after", "0"), ("--stop-after",)),
        (("--split-file", "nope.txt"), ("split file nope.txt does not exist",)),
        (("--init-from", "nope.pt"), ("--init-from nope.pt does not exist",)),
    ],
    ids=["method", "precision", "stop-after", "split-file", "init-from"],
)
def test_other_bad_values(cli, training, args, needles):
    assert_user_error(cli("train", *args), *needles)
    assert not training.calls


def test_paths_and_switches_reach_training(cli, training, tmp_path):
    r = cli("train", "--data", tmp_path / "d", "--out", tmp_path / "r", "--resume", "--stop-after", "3")
    assert r.code == 0, r.err
    assert training.args[0] == tmp_path / "d"
    assert training.kwargs == dict(
        out=tmp_path / "r", split_file=None, resume=True, stop_after=3, published=None, init_from=None
    )
    assert cli("train", "--split", "co2s/1_8").code == 0
    assert training.calls[-1][1]["published"] == "co2s/1_8"


def test_options_object():
    assert TrainOptions(labeled="1/8").config.train.labeled == "1/8"
    with pytest.raises(UserError, match=r"'1/0' is not understood"):
        TrainOptions(labeled="1/0")
