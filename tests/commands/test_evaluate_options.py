"""`rsseg evaluate` options: the `evaluate:` config section, chip mode vs scene mode (--pred), --split."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.commands.helpers import assert_user_error, spy


@pytest.fixture
def chips(monkeypatch):
    monkeypatch.setattr("rsseg_cli.engine.evaluate.print_chip_metrics", lambda metrics, as_json=False: None)
    return spy(monkeypatch, "rsseg_cli.engine.evaluate", "evaluate_chips", result={})


@pytest.fixture
def scene(monkeypatch):
    return spy(monkeypatch, "rsseg_cli.evaluation.scene", "evaluate_scene", result={})


def test_chip_mode_defaults_and_flags(cli, chips, tmp_path):
    assert cli("evaluate").code == 0
    r = cli("evaluate", "--checkpoint", tmp_path / "b.pt", "--data", tmp_path / "d", "--split", "test",
            "--device", "cpu", "--precision", "fp32", "--student", "dinov3", "--out", tmp_path / "o",
            "--protocol", "co2s", "--set", "evaluate.exclude_classes=[road]")  # fmt: skip
    assert r.code == 0, r.err
    (default_args, _), (args, _) = chips.calls
    assert default_args == (None, None, "val", None, "auto", "auto", None, None, None)
    assert args == (
        tmp_path / "b.pt", tmp_path / "d", "test", tmp_path / "o", "cpu", "fp32", "dinov3", "co2s", ["road"]
    )  # fmt: skip


def test_protocol_must_be_a_known_one(cli, chips):
    assert_user_error(cli("evaluate", "--protocol", "mmseg"), "evaluate.protocol", "(--protocol)", "'co2s'")
    assert not chips.calls


def test_precedence_flag_over_set_over_file(cli, chips, tmp_path):
    f = tmp_path / "e.yaml"
    f.write_text("evaluate:\n  split: test\n  precision: bf16\n")
    assert cli("evaluate", "--config", f).code == 0
    assert cli("evaluate", "--config", f, "--set", "evaluate.split=val").code == 0
    assert cli("evaluate", "--config", f, "--set", "evaluate.split=val", "--split", "test").code == 0
    assert [c[0][2] for c in chips.calls] == ["test", "val", "test"]
    assert {c[0][5] for c in chips.calls} == {"bf16"}


def test_split_must_be_val_or_test(cli, chips):
    assert_user_error(cli("evaluate", "--split", "train"), "evaluate.split", "(--split)", "'val' or 'test'")
    assert_user_error(cli("evaluate", "--set", "evaluate.split=all"), "evaluate.split", "--set")
    assert not chips.calls


def test_scene_mode_takes_its_settings_from_the_config(cli, scene, chips, tmp_path):
    f = tmp_path / "e.yaml"
    f.write_text("evaluate:\n  all_touched: true\n  label_field: kind\n")
    r = cli("evaluate", "--pred", "m.tif", "--labels", "l.gpkg", "--config", f, "--json")
    assert r.code == 0, r.err
    assert scene.args == (Path("m.tif"), Path("l.gpkg"))
    assert scene.kwargs == dict(
        label_field="kind", reproject=False, all_touched=True, out=None, as_json=True, overwrite=False
    )
    r = cli("evaluate", "--pred", "m.tif", "--labels", "l.tif", "--reproject-labels", "--label-field", "c")
    assert r.code == 0, r.err
    assert scene.calls[1][1]["reproject"] is True and scene.calls[1][1]["label_field"] == "c"
    # Scene settings in a config file are no mistake in chip mode (only flags given on the line are).
    assert cli("evaluate", "--config", f).code == 0 and len(chips.calls) == 1


@pytest.mark.parametrize(
    "args,needles",
    [
        (("--pred", "m.tif", "--labels", "l.tif", "--split", "val"), ("--split belong to checkpoint",)),
        (("--pred", "m.tif", "--labels", "l.tif", "--checkpoint", "b.pt", "--student", "clip"),
         ("--checkpoint, --student belong to checkpoint",)),
        (("--pred", "m.tif"), ("needs the ground truth", "--labels")),
        (("--labels", "l.tif"), ("--labels apply to scene evaluation only", "--pred")),
        (("--all-touched", "--label-field", "k"), ("--label-field, --all-touched apply to scene",)),
    ],
    ids=["pred-split", "pred-checkpoint", "pred-no-labels", "labels-no-pred", "scene-flags"],
)  # fmt: skip
def test_mixing_modes_is_refused_when_parsed(cli, chips, scene, args, needles):
    assert_user_error(cli("evaluate", *args), *needles)
    assert not chips.calls and not scene.calls


def test_no_scene_flag_off_is_not_a_mistake(cli, chips):
    assert cli("evaluate", "--no-all-touched").code == 0


def test_chip_mode_out_holding_a_report_needs_overwrite(cli, chips, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    r = cli("evaluate", "--out", out)
    assert_user_error(r, str(out), "already holds an evaluation report", "--overwrite")
    assert not chips.calls
    assert cli("evaluate", "--out", out, "--overwrite").code == 0 and len(chips.calls) == 1
