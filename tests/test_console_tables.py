"""Console tables on an 80-column terminal: every header whole (no "labe…", no header wrapped into pieces)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console
from rich.table import Table

from rsseg_cli.console_tables import cut_headers, keep_headers, render_text, table_or_transposed

CLASSES = ["water", "forest", "grassland", "cropland", "bare_soil", "building", "road"]


def _metrics(names: list[str]) -> dict:
    row = {"iou": 0.5, "f1": 0.6, "precision": 0.7, "recall": 0.8, "support": 1_234_567}
    return {
        "mean_iou": 0.5,
        "mean_f1": 0.6,
        "pixels": 123_456_789,
        "per_class": [{"name": n, **row} for n in names],
    }


def test_cut_headers_sees_a_cut_header():
    """The check itself: a table too wide for 80 columns has its headers cut, and keep_headers stops that."""
    table = Table()
    table.add_column("scene", no_wrap=True)
    for name in ["labeled", "classes", "windows", "polygons"]:
        table.add_column(name, justify="right")
    table.add_row("a_scene_with_a_very_long_name_" * 2, "1", "2", "3", "4")
    assert cut_headers(table)
    assert not cut_headers(keep_headers(table))


@pytest.mark.parametrize(
    "names", [CLASSES, ["impervious_surfaces_and_sealed_areas_long_name", "tree", "car"]]
)
def test_metrics_table_headers_fit_80_columns(names):
    from rsseg_cli.evaluation.report import metrics_table

    table = metrics_table(_metrics(names), "val")
    assert cut_headers(table) == []
    text = render_text(table)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80


def test_predict_summary_fits_80_columns(monkeypatch):
    import rsseg_cli.predict.run as run

    console = Console(width=80, record=True, color_system=None)
    monkeypatch.setattr(run, "console", console)
    outputs = [Path("/data/predictions/a_rather_long_scene_name_2024_06_01_mask.tif"), Path("/x/p.gpkg")]
    job = SimpleNamespace(scene=Path("/data/a_rather_long_scene_name_2024_06_01.tif"), outputs=outputs)
    job.mask = outputs[0]
    result = run.SceneResult(job, 10_000, 10_000, 1_000, 123.4, 100.0, {"water": 5}, 0, polygons=12_345)
    run.print_predict_summary([result])
    text = console.export_text()
    assert "…" not in text
    for header in ("scene", "size", "windows", "MP/s", "model %"):
        assert header in text
    assert str(outputs[0]) in " ".join(text.split())  # the files are listed whole, under the table


def test_table_or_transposed_keeps_a_narrow_table_and_turns_a_wide_one():
    rows = [["train", "57", "57", *["13.6%"] * 7], ["val", "11", "11", *["6.3%"] * 7]]
    headers = ["split", "chips", "labeled", *CLASSES]
    tall = table_or_transposed(headers, rows, corner="class")
    assert [c.header for c in tall.columns] == ["class", "train", "val"]
    assert cut_headers(tall) == [] and "…" not in render_text(tall)
    assert "bare_soil" in render_text(tall)
    narrow = table_or_transposed(headers[:4], [r[:4] for r in rows])
    assert [c.header for c in narrow.columns] == headers[:4]
