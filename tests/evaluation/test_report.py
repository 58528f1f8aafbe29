"""Report files (metrics.json, CSV, PNG), all-or-nothing writing, and the console table."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from rsseg_cli.evaluation import report
from rsseg_cli.evaluation.metrics import compute_metrics
from rsseg_cli.evaluation.report import metrics_table, print_metrics, write_report

NAMES = ["water", "forest", "urban"]
COLORS = ["#1f77b4", "#2ca02c", "#d62728"]
M = np.array([[5, 1, 2], [1, 3, 0], [0, 0, 0]], dtype=np.int64)
FILES = {"metrics.json", "confusion_matrix.csv", "confusion_matrix.png"}


def _no_constants(name: str):
    raise AssertionError(f"non-standard JSON constant {name} in metrics.json")


def _write(out: Path, matrix: np.ndarray = M, names: list[str] = NAMES, colors=COLORS) -> dict[str, Path]:
    return write_report(out, compute_metrics(matrix, names), matrix, names, colors, title="test run")


def test_writes_three_files_that_parse_back(tmp_path: Path):
    paths = _write(tmp_path / "report")
    assert {p.name for p in paths.values()} == FILES
    assert {p.name for p in (tmp_path / "report").iterdir()} == FILES  # and no temporaries left over

    doc = json.loads(paths["metrics"].read_text(), parse_constant=_no_constants)
    assert doc["confusion_matrix"] == M.tolist()
    assert doc["per_class"][2]["recall"] is None
    assert doc["kappa"] == pytest.approx(0.4)  # hand-computed in test_metrics: (2/3 - 4/9) / (1 - 4/9)

    with open(paths["confusion_csv"], newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["truth\\pred", *NAMES]
    assert [r[0] for r in rows[1:]] == NAMES
    np.testing.assert_array_equal(np.array([[int(v) for v in r[1:]] for r in rows[1:]]), M)

    with Image.open(paths["confusion_png"]) as im:
        assert im.format == "PNG"
        w, h = im.size
        pixels = np.asarray(im.convert("L"))
    assert 500 <= w <= 4000 and 500 <= h <= 4000
    assert pixels.std() > 10  # something was drawn


def test_non_finite_values_from_callers_become_null(tmp_path: Path):
    metrics = compute_metrics(M, NAMES)
    metrics["loss"] = float("nan")
    metrics["extra"] = np.float32(0.5)
    paths = write_report(tmp_path, metrics, M, NAMES)
    doc = json.loads(paths["metrics"].read_text(), parse_constant=_no_constants)
    assert doc["loss"] is None and doc["extra"] == 0.5


@pytest.mark.parametrize("k", [1, 25, 30])
def test_png_for_one_to_thirty_classes(tmp_path: Path, k: int):
    rng = np.random.default_rng(k)
    matrix = rng.integers(0, 1000, size=(k, k)).astype(np.int64)
    names = [f"class number {i}" for i in range(k)]
    paths = _write(tmp_path, matrix, names, colors=None)
    with Image.open(paths["confusion_png"]) as im:
        w, h = im.size
    assert 400 <= w <= 4000 and 400 <= h <= 4000


def test_mismatched_inputs_are_rejected(tmp_path: Path):
    metrics = compute_metrics(M, NAMES)
    with pytest.raises(ValueError):
        write_report(tmp_path, metrics, M, NAMES[:2])
    with pytest.raises(ValueError):
        write_report(tmp_path, metrics, M, NAMES, colors=COLORS[:2])
    assert not any(tmp_path.iterdir())


def _fail_png(path, *args, **kwargs):
    Path(path).write_bytes(b"\x89PNG half")  # a partial file on disk, then the failure
    raise RuntimeError("interrupted while saving the PNG")


def _fail_csv(path, matrix, names):
    with open(path, "w") as f:
        f.write("truth\\pred,wat")
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("target", "replacement", "error"),
    [
        ("_write_png", _fail_png, RuntimeError),
        ("_write_csv", _fail_csv, KeyboardInterrupt),
    ],
)
def test_interrupted_write_leaves_no_partial_files_and_keeps_the_old_report(
    tmp_path: Path, monkeypatch, target, replacement, error
):
    fresh = tmp_path / "fresh"
    old = tmp_path / "old"
    _write(old)
    before = {p.name: p.read_bytes() for p in old.iterdir()}

    monkeypatch.setattr(report, target, replacement)
    other = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.int64)
    with pytest.raises(error):
        _write(fresh, other)
    with pytest.raises(error):
        _write(old, other)

    assert not fresh.exists() or not any(fresh.iterdir())
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before


def test_interrupt_inside_matplotlib_savefig(tmp_path: Path, monkeypatch):
    from matplotlib.figure import Figure

    def boom(self, fname, **kwargs):
        Path(fname).write_bytes(b"\x89PNG")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", boom)
    with pytest.raises(OSError):
        _write(tmp_path)
    assert list(tmp_path.iterdir()) == []


def _render(metrics: dict, title: str = "") -> str:
    buf = io.StringIO()
    Console(file=buf, width=160, color_system=None).print(metrics_table(metrics, title))
    return buf.getvalue()


def test_metrics_table_percentages_and_dashes():
    text = _render(compute_metrics(M, NAMES), "val")
    lines = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") > 2}
    # water: IoU 5/9 = 55.6 %, F1 5/7 = 71.4 %, precision 5/6 = 83.3 %, recall 5/8 = 62.5 %
    water = [c.strip() for c in lines["water"].split("│")[1:-1]]
    assert water == ["water", "55.6", "71.4", "83.3", "62.5", "8"]
    urban = [c.strip() for c in next(v for k, v in lines.items() if k.startswith("urban")).split("│")[1:-1]]
    assert urban[1:] == ["0.0", "0.0", "0.0", "-", "0"]  # recall of a class absent from the truth: '-'
    # Summary: OA 2/3, mIoU 26/45, mean F1 41/56, FWIoU 77/135, kappa 2/5
    assert "OA 66.7%" in text and "mIoU 57.8%" in text and "mean F1 73.2%" in text
    assert "FWIoU 57.0%" in text and "kappa 0.400" in text
    assert "val" in text


def test_print_metrics_goes_to_stderr(capsys):
    print_metrics(compute_metrics(M, NAMES), "validation")
    captured = capsys.readouterr()
    assert captured.out == ""
    err = " ".join(captured.err.split())  # rich wraps at the console width
    assert "forest" in err and "absent from the ground truth: urban" in err
