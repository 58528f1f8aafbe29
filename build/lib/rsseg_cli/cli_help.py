"""Corrections to typer's plain help (rich_markup_mode=None).

Typer writes a repeatable argument as `scenes... <list[Path]>` (a Python type, not something to type),
puts required arguments in braces on the usage line (`rsseg tile [OPTIONS] {scenes}...`), which no other
command-line tool does, and gives a switch's default as `[default: no-overwrite]`. `install()` makes them
read `scenes... <path>`, `rsseg tile [OPTIONS] SCENES...` (click's own convention) and `[default: off]`,
as the switches whose default the configuration holds already say. tests/commands/test_help_text.py renders
every command's help to hold this.
"""

from __future__ import annotations

import re
from typing import Any

from typer.core import TyperArgument, TyperOption

_LIST = re.compile(r"<list\[(\w+)\]>")
_original_display_type = TyperArgument.display_type
_original_default_string = TyperOption._get_default_string


def _display_type(self: TyperArgument, ctx: Any) -> str:
    """`<path>` for list[Path] (the `...` after the name already says "one or more")."""
    text = _original_display_type(self, ctx)
    match = _LIST.fullmatch(text)
    return f"<{match.group(1).lower()}>" if match else text


def _usage_display_name(self: TyperArgument) -> str:
    """SCENES... for a required argument, [OUT_DIR] for an optional one."""
    name = self.display_name_raw.upper()
    name = name if self.required else f"[{name}]"
    return f"{name}..." if self.nargs != 1 else name


def _default_string(self: TyperOption, *, ctx: Any, show_default_is_str: bool, default_value: Any) -> str:
    """`off`/`on` for a --x/--no-x switch, instead of `no-x`/`x`."""
    if self.is_bool_flag and self.secondary_opts and not show_default_is_str:
        return "on" if self.default else "off"
    return _original_default_string(
        self, ctx=ctx, show_default_is_str=show_default_is_str, default_value=default_value
    )


def install() -> None:
    """Patch typer's argument formatting (idempotent; only help and usage text change)."""
    TyperArgument.display_type = _display_type  # type: ignore[method-assign]
    TyperArgument._usage_display_name = _usage_display_name  # type: ignore[method-assign]
    TyperOption._get_default_string = _default_string  # type: ignore[method-assign]
