"""The flags of `rsseg prepare` (registered on the app in cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rsseg_cli.cli_options import OverwriteOpt

NAMES = "whdld, loveda, potsdam, gid15, mer, msl, potsdam-dwl, deepglobe"


def prepare(
    name: Annotated[str, typer.Argument(help=f"The benchmark: {NAMES}.")],
    src: Annotated[Path, typer.Argument(help="Its folder in the released layout (see docs/reproduce.md).")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Dataset folder to write. [default: data/NAME]")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Processes that read the files. [default: cores, at most 8]")
    ] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """A public benchmark (its prepared layout) as an rsseg dataset: images used in place, the benchmark's class
    table and label values, and the papers' published split lists (rsseg train --split co2s/1_8)."""
    from rsseg_cli.commands import prepare as command

    command.run(command.PrepareOptions(name=name, src=src, out=out, overwrite=overwrite, workers=workers))
