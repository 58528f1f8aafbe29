"""The console summary of a tiled dataset (a rich table on stderr): `rsseg tile` and `rsseg demo` print it."""

from __future__ import annotations

import json

import yaml
from rich.table import Table

from rsseg_cli.data.manifest import DATASET_FILE, SPLIT_REPORT
from rsseg_cli.progress import console


def print_tile_summary(result) -> None:
    meta = yaml.safe_load((result.out / DATASET_FILE).read_text())
    report = json.loads((result.out / SPLIT_REPORT).read_text())
    names = [c["name"] for c in meta["classes"]]
    table = Table(title=f"Dataset {result.out}  ({result.chips} chips from {len(meta['scenes'])} scene(s))")
    table.add_column("split")
    table.add_column("chips", justify="right")
    table.add_column("labeled", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for split, row in report["splits"].items():
        total = sum(row["class_pixels"]) or 1
        shares = [f"{100 * p / total:.1f}%" for p in row["class_pixels"]]
        table.add_row(split, str(row["chips"]), str(row["labeled_chips"]), *shares)
    console.print(table)
    leak = report["leakage_check"]
    dropped = ", ".join(f"{n} {reason}" for reason, n in result.dropped.items()) or "none"
    console.print(
        f"windows {result.windows}, dropped: {dropped}; leakage check "
        f"{'[green]passed[/]' if leak['passed'] else '[red]FAILED[/]'} ({leak['rule']}); "
        f"{result.seconds:.1f} s ({result.windows / max(result.seconds, 1e-9):.1f} chips/s)",
        highlight=False,
    )
