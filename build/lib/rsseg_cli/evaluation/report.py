"""Evaluation report: metrics.json, confusion_matrix.csv, confusion_matrix.png and a rich console table."""

from __future__ import annotations

import csv
import json
import math
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from rsseg_cli.atomic import atomic_file
from rsseg_cli.console_tables import keep_headers
from rsseg_cli.progress import console

METRICS_FILE = "metrics.json"
CONFUSION_CSV = "confusion_matrix.csv"
CONFUSION_PNG = "confusion_matrix.png"
MATRIX_AXES = "rows: ground truth, columns: prediction"

# Cell annotations stop being readable beyond this many classes; colours alone carry the picture then.
ANNOTATE_MAX_CLASSES = 20
# Counts under the percentage need room for a second line.
COUNTS_MAX_CLASSES = 10
DPI = 150


# -- files ----------------------------------------------------------------------------------------------------


def write_report(
    out_dir: Path,
    metrics: dict,
    matrix: np.ndarray,
    class_names: list[str],
    colors: list[str] | None = None,
    title: str = "",
) -> dict[str, Path]:
    """Write metrics.json, confusion_matrix.csv and confusion_matrix.png into ``out_dir``.

    All three are written to temporaries first and renamed only when all three are complete, so an
    interrupted report leaves the previous report (if any) untouched and no partial files.
    Returns {"metrics": ..., "confusion_csv": ..., "confusion_png": ...}.
    """
    m = np.asarray(matrix)
    k = len(class_names)
    if m.shape != (k, k):
        raise ValueError(f"confusion matrix of shape {m.shape} for {k} class names")
    if colors is not None and len(colors) != k:
        raise ValueError(f"{len(colors)} colours for {k} classes")
    out_dir = Path(out_dir)
    paths = {
        "metrics": out_dir / METRICS_FILE,
        "confusion_csv": out_dir / CONFUSION_CSV,
        "confusion_png": out_dir / CONFUSION_PNG,
    }
    with ExitStack() as stack:
        # Contexts exit in reverse order after the block: nothing is renamed unless every write succeeded.
        tmp = {key: stack.enter_context(atomic_file(path)) for key, path in paths.items()}
        _write_json(tmp["metrics"], metrics, m)
        _write_csv(tmp["confusion_csv"], m, class_names)
        _write_png(tmp["confusion_png"], m, class_names, colors, title, metrics)
    return paths


def _json_ready(x: Any) -> Any:
    """Numpy scalars/arrays -> Python values and NaN/inf -> null, so the file is strict JSON."""
    if isinstance(x, dict):
        return {str(k): _json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_ready(v) for v in x]
    if isinstance(x, np.ndarray):
        return _json_ready(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x


def _write_json(path: Path, metrics: dict, matrix: np.ndarray) -> None:
    doc = _json_ready(dict(metrics))
    doc["confusion_matrix"] = [[int(v) for v in row] for row in matrix.tolist()]
    doc["confusion_matrix_axes"] = MATRIX_AXES
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, allow_nan=False)
        f.write("\n")


def _write_csv(path: Path, matrix: np.ndarray, class_names: list[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["truth\\pred", *class_names])
        for name, row in zip(class_names, matrix.tolist()):
            w.writerow([name, *(int(v) for v in row)])


# -- plot -----------------------------------------------------------------------------------------------------


def _human(n: int) -> str:
    """Compact pixel count: 9999, 12.3k, 4.5M, 1.2G."""
    if n < 10_000:
        return str(n)
    for div, suffix in ((1e3, "k"), (1e6, "M"), (1e9, "G")):
        text = f"{n / div:.1f}"
        if float(text) < 1000:  # 999_960 is 1.0M, not 1000.0k
            return f"{text}{suffix}"
    return f"{n / 1e12:.1f}T"


def _pct(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{100 * v:.{digits}f}%"


def _summary_line(metrics: dict) -> str:
    kappa = metrics.get("kappa")
    return (
        f"OA {_pct(metrics.get('overall_accuracy'))} · mIoU {_pct(metrics.get('mean_iou'))} · "
        f"mean F1 {_pct(metrics.get('mean_f1'))} · FWIoU {_pct(metrics.get('fw_iou'))} · "
        f"kappa {'-' if kappa is None else f'{kappa:.3f}'}"
    )


def _write_png(
    path: Path,
    matrix: np.ndarray,
    class_names: list[str],
    colors: list[str] | None,
    title: str,
    metrics: dict,
) -> None:
    # The object API with an explicit Agg canvas: no pyplot state, no GUI backend, safe in threads.
    import matplotlib as mpl
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import to_rgb
    from matplotlib.figure import Figure
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    k = len(class_names)
    counts = matrix.astype(np.float64)
    support = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = 100.0 * counts / support[:, None]  # rows absent from the truth become NaN (drawn grey)

    side = float(np.clip(0.6 * k, 4.0, 14.0))  # inches of matrix; cells shrink slowly up to ~30 classes
    cell_pt = side * 72 / k
    tick_fs = float(np.clip(cell_pt * 0.38, 6.0, 10.0))
    cell_fs = float(np.clip(cell_pt * 0.26, 5.5, 10.0))

    fig = Figure(figsize=(side + 3.0, side + 2.0), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    cmap = mpl.colormaps["Blues"].with_extremes(bad="#e4e4e4")
    im = ax.imshow(np.ma.masked_invalid(pct), cmap=cmap, vmin=0.0, vmax=100.0, interpolation="nearest")

    # Thin gridlines between cells help the eye follow a row across many classes.
    ax.set_xticks(np.arange(-0.5, k, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, k, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=0.6)
    ax.tick_params(which="minor", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)

    divider = make_axes_locatable(ax)
    cax = divider.append_axes("right", size=0.18, pad=0.15)
    cbar = fig.colorbar(im, cax=cax)
    cbar.set_label("% of the ground-truth class (row-normalized)", fontsize=tick_fs)
    cbar.ax.tick_params(labelsize=tick_fs)

    y_labels = [f"{name} ({_human(int(n))})" for name, n in zip(class_names, support)]
    rotate = k > 6 or max(len(n) for n in class_names) > 8
    if colors is not None:
        # Class colour swatches beside the labels so the matrix reads against the map legend.
        swatch = np.array([to_rgb(c) for c in colors])
        lax = divider.append_axes("left", size=0.16, pad=0.04, sharey=ax)
        lax.imshow(swatch[:, None, :], aspect="auto", interpolation="nearest")
        bax = divider.append_axes("bottom", size=0.16, pad=0.04, sharex=ax)
        bax.imshow(swatch[None, :, :], aspect="auto", interpolation="nearest")
        ylab_ax, xlab_ax = lax, bax
        lax.set_xticks([])
        bax.set_yticks([])
        for a in (lax, bax):
            a.tick_params(which="minor", length=0)  # the cell gridlines' minor ticks are shared with ax
            for spine in a.spines.values():
                spine.set_visible(False)
        ax.tick_params(labelleft=False, labelbottom=False, left=False, bottom=False)
    else:
        ylab_ax, xlab_ax = ax, ax
    ylab_ax.set_yticks(np.arange(k))
    ylab_ax.set_yticklabels(y_labels, fontsize=tick_fs)
    xlab_ax.set_xticks(np.arange(k))
    xlab_ax.set_xticklabels(
        class_names,
        fontsize=tick_fs,
        rotation=45 if rotate else 0,
        ha="right" if rotate else "center",
        rotation_mode="anchor",
    )
    ylab_ax.set_ylabel("ground truth (pixels)", fontsize=tick_fs + 1)
    xlab_ax.set_xlabel("prediction", fontsize=tick_fs + 1)

    if k <= ANNOTATE_MAX_CLASSES:
        _annotate(ax, matrix, pct, cell_fs, with_counts=k <= COUNTS_MAX_CLASSES)
    for i in np.flatnonzero(support == 0):
        ax.text(
            (k - 1) / 2,
            i,
            "absent from ground truth",
            ha="center",
            va="center",
            fontsize=cell_fs,
            color="#555",
        )

    heading = f"{title}\n" if title else ""
    ax.set_title(f"{heading}{_summary_line(metrics)}", fontsize=tick_fs + 1, loc="center")
    fig.savefig(path, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")


def _annotate(ax, matrix: np.ndarray, pct: np.ndarray, fontsize: float, with_counts: bool) -> None:
    """Write the row percentage (and the count for small K) in each non-empty cell."""
    k = matrix.shape[0]
    for i in range(k):
        for j in range(k):
            n = int(matrix[i, j])
            if n == 0:
                continue  # empty cells stay blank: far less clutter, and the colour already says 0
            p = float(pct[i, j])
            text = "<0.1" if p < 0.05 else ("100" if p >= 99.95 else f"{p:.1f}")
            if with_counts:
                text += f"\n{_human(n)}"
            color = "white" if p > 55 else "#1a1a1a"
            weight = "bold" if i == j else "normal"
            ax.text(j, i, text, ha="center", va="center", fontsize=fontsize, color=color, fontweight=weight)


# -- console --------------------------------------------------------------------------------------------------


def _cell(v: float | None) -> str:
    """Percent with one decimal, '-' where the metric is undefined."""
    return "-" if v is None else f"{100 * v:.1f}"


def metrics_table(metrics: dict, title: str = "") -> Table:
    """Per-class IoU, F1, precision, recall (percent) and support, with the means and a summary line."""
    table = Table(
        title=title or None, show_footer=True, caption=_summary_line(metrics), caption_justify="left"
    )
    table.add_column("class", footer="mean (present classes)", overflow="fold")
    table.add_column("IoU %", justify="right", footer=_cell(metrics.get("mean_iou")))
    table.add_column("F1 %", justify="right", footer=_cell(metrics.get("mean_f1")))
    table.add_column("precision %", justify="right")
    table.add_column("recall %", justify="right")
    table.add_column("support", justify="right", footer=f"{int(metrics.get('pixels') or 0):,}")
    for row in metrics["per_class"]:
        absent = row["support"] == 0
        table.add_row(
            row["name"] + (" (absent)" if absent else ""),
            _cell(row["iou"]),
            _cell(row["f1"]),
            _cell(row["precision"]),
            _cell(row["recall"]),
            f"{row['support']:,}",
            style="dim" if absent else None,
        )
    return keep_headers(table)  # long class names wrap instead of cutting "precision %" short


def print_metrics(metrics: dict, title: str = "") -> None:
    """Print the metrics table and the mIoU note on the console (stderr)."""
    console.print(metrics_table(metrics, title))
    note = metrics.get("mean_iou_note")
    if note:
        console.print(note, style="dim", highlight=False)


def print_students(students: dict[str, dict], chosen: str) -> None:
    """Co2S: mIoU, OA and mean F1 of each student and of their ensemble, the reported one marked."""
    from rich.table import Table

    table = Table(title="students")
    for col in ("prediction", "mIoU", "OA", "mean F1"):
        table.add_column(col, justify="left" if col == "prediction" else "right")
    for name, m in students.items():
        table.add_row(
            f"{name} *" if name == chosen else name,
            f"{100 * m['mean_iou']:.2f}",
            f"{100 * m['overall_accuracy']:.2f}",
            f"{100 * m['mean_f1']:.2f}",
        )
    console.print(keep_headers(table))
    console.print(
        "* reported above; choose with --student clip|dinov3|ensemble", style="dim", highlight=False
    )
