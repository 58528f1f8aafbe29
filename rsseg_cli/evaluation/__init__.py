"""Evaluation: a global confusion matrix, metrics from it, and the report files and console table.

Imported lazily so that `import rsseg_cli.evaluation` does not pull in torch or matplotlib until needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rsseg_cli.evaluation.confusion import ConfusionMatrix
    from rsseg_cli.evaluation.metrics import compute_metrics
    from rsseg_cli.evaluation.report import metrics_table, print_metrics, write_report

__all__ = ["ConfusionMatrix", "compute_metrics", "metrics_table", "print_metrics", "write_report"]

_WHERE = {
    "ConfusionMatrix": "confusion",
    "compute_metrics": "metrics",
    "metrics_table": "report",
    "print_metrics": "report",
    "write_report": "report",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        from importlib import import_module

        return getattr(import_module(f"rsseg_cli.evaluation.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
