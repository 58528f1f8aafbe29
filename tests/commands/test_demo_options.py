"""`rsseg demo` options: its settings are configs/demo.yaml, a normal config file shipped with the package."""

from __future__ import annotations

import pytest

from rsseg_cli.commands.demo import DemoOptions
from rsseg_cli.config import load_config, reference_config
from tests.commands.helpers import assert_user_error, spy


def test_demo_config_is_the_shipped_demo_yaml():
    cfg = DemoOptions(steps=30).config
    shipped = load_config(reference_config("demo.yaml"))
    assert cfg.tile == shipped.tile and cfg.model == shipped.model
    assert (cfg.tile.chip_size, cfg.tile.split.block_size) == (128, 2)
    assert cfg.model.weights == "none" and cfg.train.method == "unimatch-v2" and cfg.train.labeled == "1/8"
    assert (cfg.train.iterations, cfg.train.eval_every) == (30, 10)  # from --steps


@pytest.mark.parametrize(
    "args,needles",
    [(("--steps", "0"), ("--steps 0",)), (("--size", "100"), ("--size 100", "128-pixel chips"))],
    ids=["steps", "size"],
)
def test_bad_values_stop_when_parsed(cli, monkeypatch, tmp_path, args, needles):
    demo = spy(monkeypatch, "rsseg_cli.commands.demo", "run")
    assert_user_error(cli("demo", "--out", tmp_path / "d", *args), *needles)
    assert not demo.calls and not (tmp_path / "d").exists()
