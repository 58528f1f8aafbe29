"""The command layer's boundaries: only rsseg_cli/cli.py imports rsseg_cli.commands, command modules do not
import each other, and every command exposes run(options) over an options class of its own module."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "rsseg_cli"
# Every module of rsseg_cli/commands is a command (a new command needs no change here).
COMMANDS = tuple(sorted(p.stem for p in (PACKAGE / "commands").glob("*.py") if p.stem != "__init__"))


def imported_modules(path: Path, root: Path = PACKAGE) -> set[str]:
    """Every module a file of the package at `root` imports, at module level or inside functions, absolute or
    relative, including `from rsseg_cli import commands` and importlib.import_module("...") literals."""
    package = ".".join(path.relative_to(root.parent).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.add(str(node.args[0].value))
    return found


def _is_commands(module: str) -> bool:
    return module == "rsseg_cli.commands" or module.startswith("rsseg_cli.commands.")


def test_the_parser_sees_every_kind_of_import(tmp_path):
    pkg = tmp_path / "rsseg_cli" / "sub"
    pkg.mkdir(parents=True)
    f = pkg / "m.py"
    f.write_text(
        "import rsseg_cli.commands.tile\n"
        "def f():\n    from rsseg_cli import commands\n    from ..commands import demo\n"
        "    importlib.import_module('rsseg_cli.commands.train')\n"
    )
    found = imported_modules(f, root=tmp_path / "rsseg_cli")
    assert {"rsseg_cli.commands.tile", "rsseg_cli.commands", "rsseg_cli.commands.demo"} <= found
    assert "rsseg_cli.commands.train" in found


# The command line: cli.py and the flag modules of commands registered there (cli_<command>.py).
CLI_FILES = (
    Path("cli.py"),
    *(
        Path(p.name)
        for p in sorted(PACKAGE.glob("cli_*.py"))
        if (PACKAGE / "commands" / f"{p.stem[4:]}.py").exists()
    ),
)


def test_only_the_cli_imports_commands():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "commands" or rel in CLI_FILES:
            continue
        bad = sorted(m for m in imported_modules(path) if _is_commands(m))
        if bad:
            offenders[str(rel)] = bad
    assert offenders == {}


def test_commands_do_not_import_each_other():
    offenders = {}
    for path in sorted((PACKAGE / "commands").glob("*.py")):
        own = f"rsseg_cli.commands.{path.stem}"
        bad = sorted(m for m in imported_modules(path) if _is_commands(m) and m != own)
        if bad:
            offenders[path.name] = bad
    assert offenders == {}


def test_the_cli_reaches_commands_only_through_run():
    used = {
        node.attr
        for rel in CLI_FILES
        for node in ast.walk(ast.parse((PACKAGE / rel).read_text()))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "command"
    }
    assert used <= {"run", *(f"{c.capitalize()}Options" for c in COMMANDS)}, used


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_has_run_over_its_own_options(name):
    module = importlib.import_module(f"rsseg_cli.commands.{name}")
    options = getattr(module, f"{name.capitalize()}Options")
    assert dataclasses.is_dataclass(options) and options.__module__ == module.__name__
    (param,) = inspect.signature(module.run).parameters.values()
    assert param.name == "options" and param.annotation in (options.__name__, options)
