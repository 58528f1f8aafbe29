"""Every command's --help on an 80-column terminal, as a user reads it: no typer or Python artefacts."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from rsseg_cli.cli import app

COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]

# What typer or click print when a declaration is off: type tags on switches, Python types, braces around
# arguments, "no-x" as a default, a None default, and a short help cut at "e.g.".
ARTEFACTS = [
    "<bool>",
    "list[",
    "<Path>",
    "{",
    "}",
    "[default: no-",
    "default: None",
    "(e.g.\n",
    "NoneType",
]


def _help(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_is_checked():
    assert {"tile", "train", "evaluate", "predict", "vectorize", "sample", "stack", "demo"} <= set(COMMANDS)


@pytest.mark.parametrize("args", [(), *((c,) for c in COMMANDS)], ids=lambda a: " ".join(a) or "rsseg")
def test_help_has_no_artefacts(args):
    text = _help(*args)
    for artefact in ARTEFACTS:
        assert artefact not in text, f"{artefact!r} in `rsseg {' '.join(args)} --help`:\n{text}"
    assert max(len(line) for line in text.splitlines()) <= 80


def test_command_list_is_not_cut():
    """Each command's one-line summary in `rsseg --help` is whole, not cut with '...'."""
    commands = _help().split("Commands:")[1]
    assert "..." not in commands
    for name in COMMANDS:
        assert re.search(rf"^  {name} +\S", commands, re.MULTILINE), name


def test_arguments_read_as_values():
    """Repeatable arguments as [SCENES]... on the usage line (optional: --scenes-from may give them) and
    `<path>` / `<str>` in the list, not `<list[Path]>`."""
    tile = _help("tile")
    assert "rsseg tile [OPTIONS] [SCENES]..." in tile
    assert "scenes... <str>" in tile
    assert "rsseg stack [OPTIONS] BANDS..." in _help("stack")
    assert "bands... <path>" in _help("stack")
    assert "[OUT_DIR]" in _help("sample")


def test_switch_defaults_read_off():
    for command in ("tile", "demo", "predict", "stack"):
        text = " ".join(_help(command).split())
        assert "--overwrite / --no-overwrite" in text
        assert re.search(r"--overwrite / --no-overwrite .{0,80}?\[default: off\]", text), text
