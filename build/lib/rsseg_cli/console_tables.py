"""Rich tables that fit an 80-column terminal without cutting their headers into "labe…".

Rich shrinks every column of a table that is too wide, headers included. Two tools keep headers whole:
`keep_headers` gives each column at least its header's width (rich then wraps the cells of the wide columns
instead), and `table_or_transposed` turns a table with many columns (one per class, say) into one with a row
per column when the wide form would not fit. `cut_headers` is what the tests check with.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from rich.console import Console, RenderableType
from rich.table import Table

WIDTH = 80  # the terminal width the tables are made for


def _header_width(header: object) -> int:
    return max((len(line) for line in str(header).splitlines()), default=0)


def keep_headers(table: Table) -> Table:
    """Give every column at least its header's width, so rich narrows (wraps) cells, never headers.

    Cells may wrap and fold (a long path breaks over lines): a column that may not wrap keeps its full width
    and makes rich cut the headers of the others."""
    for column in table.columns:
        column.min_width = max(column.min_width or 0, _header_width(column.header))
        column.no_wrap = False
        column.overflow = "fold"
    return table


def render_text(renderable: RenderableType, width: int = WIDTH) -> str:
    """What `renderable` looks like on a terminal `width` columns wide, as plain text."""
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def table_width(table: Table) -> int:
    """The width `table` takes when nothing limits it."""
    return max(len(line) for line in render_text(table, width=10_000).splitlines())


def cut_headers(table: Table, width: int = WIDTH) -> list[str]:
    """The headers of `table` that do not appear whole on one line when it is rendered `width` wide."""
    lines = render_text(table, width).splitlines()
    return [
        str(c.header) for c in table.columns if str(c.header) and not any(str(c.header) in ln for ln in lines)
    ]


def table_or_transposed(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    width: int = WIDTH,
    corner: str = "",
) -> Table:
    """A table of `rows` under `headers`, or, if that is wider than `width`, its transpose: one row per
    header after the first, one column per row (headed by the row's first cell), `corner` top left.

    The first column names the rows (e.g. the split); the others are right-aligned numbers.
    """
    wide = Table(title=title)
    for i, h in enumerate(headers):
        wide.add_column(h, justify="left" if i == 0 else "right")
    for row in rows:
        wide.add_row(*row)
    if table_width(wide) <= width:
        return keep_headers(wide)
    tall = Table(title=title)
    tall.add_column(corner)
    for row in rows:
        tall.add_column(row[0], justify="right")
    for i, h in enumerate(headers[1:], start=1):
        tall.add_row(h, *(row[i] for row in rows))
    return keep_headers(tall)
