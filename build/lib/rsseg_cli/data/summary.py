"""The console summary of a tiled dataset (rich tables on stderr): `rsseg tile` and `rsseg demo` print it.

Classes are rows, not columns, so the tables fit 80 columns whatever the number of classes.
"""

from __future__ import annotations

import json

import yaml
from rich.table import Table

from rsseg_cli.data.chips import SPLITS
from rsseg_cli.data.manifest import DATASET_FILE, SPLIT_REPORT
from rsseg_cli.progress import console


def _share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def split_table(report: dict, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for name in ("split", "chips", "labeled chips", "labeled px"):
        table.add_column(name, justify="left" if name == "split" else "right", no_wrap=True)
    for split, row in report["splits"].items():
        table.add_row(split, str(row["chips"]), str(row["labeled_chips"]), f"{sum(row['class_pixels']):,}")
    return table


def class_table(report: dict, names: list[str]) -> Table:
    """Per class: each split's share of its labeled pixels, and how much of the scene's labels was kept."""
    pixels = report.get("labeled_pixels")
    table = Table(title="labeled pixels per class", title_justify="left")
    table.add_column("class", overflow="fold")
    for split in SPLITS:
        table.add_column(split, justify="right", no_wrap=True)
    if pixels:
        table.add_column("kept", justify="right", no_wrap=True)
    for k, name in enumerate(names):
        per_split = [report["splits"][s]["class_pixels"][k] for s in SPLITS]
        total = sum(per_split)
        row = [name, *(_share(p, total) for p in per_split)]
        if pixels:
            row.append(_share(pixels["kept"][k], pixels["total"][k]))
        table.add_row(*row)
    return table


def summary_notes(report: dict, names: list[str]) -> list[str]:
    """Plain sentences about what the split kept and what to watch out for."""
    notes = []
    pixels = report.get("labeled_pixels")
    if pixels and sum(pixels["total"]):
        lost = sum(pixels["lost"])
        notes.append(
            f"kept {_share(sum(pixels['kept']), sum(pixels['total']))} of the scenes' labeled pixels"
            + (f" ({lost:,} px lost, see split_report.json)" if lost else "")
        )
    cut = (report.get("method_details") or {}).get("classes_cut_across_splits") or []
    if cut:
        notes.append(
            "[yellow]val/test hold pieces of the same labeled regions as train for "
            f"{', '.join(names[k] for k in cut)}[/]: too few regions to keep them apart, so their val scores "
            "are optimistic (digitize separate polygons for them)"
        )
    trainable = report.get("trainable") or {}
    if trainable.get("problems"):
        notes.append(f"[red]cannot be trained as is[/]: {'; '.join(trainable['problems'])}")
    return notes


def print_tile_summary(result) -> None:
    meta = yaml.safe_load((result.out / DATASET_FILE).read_text())
    report = json.loads((result.out / SPLIT_REPORT).read_text())
    names = [c["name"] for c in meta["classes"]]
    title = f"{result.out}: {result.chips} chips from {len(meta['scenes'])} scene(s)"
    console.print(split_table(report, title))
    if names:
        console.print(class_table(report, names))
    leak = report["leakage_check"]
    dropped = ", ".join(f"{n} {reason}" for reason, n in result.dropped.items()) or "none"
    lines = [
        f"split {report['method']}; leakage check "
        f"{'[green]passed[/]' if leak['passed'] else '[red]FAILED[/]'} ({leak['rule']})",
        *summary_notes(report, names),
        f"windows {result.windows}, dropped: {dropped}; {result.seconds:.1f} s "
        f"({result.windows / max(result.seconds, 1e-9):.1f} windows/s)",
    ]
    for line in lines:
        console.print(line, highlight=False)
