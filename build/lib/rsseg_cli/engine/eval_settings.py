"""How a run is scored: the evaluation protocol (engine.protocols) with the recipe's validation size, and the
classes left out of the means. Validation during training and `rsseg evaluate` resolve it the same way, so a
run's best checkpoint is chosen by the metric its evaluation reports."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np

from rsseg_cli.config import Config
from rsseg_cli.engine.protocols import Protocol, get_protocol
from rsseg_cli.evaluation.metrics import class_indices, compute_metrics, ignore_true_classes

log = logging.getLogger("rsseg")


@dataclass(frozen=True)
class EvalSettings:
    protocol: Protocol
    short_side: int | None = None  # validation resize (train.rescale.val_short_side)
    max_long: int = 2048
    exclude: list[str] = field(default_factory=list)

    def metrics(self, matrix: np.ndarray, class_names: list[str]) -> dict:
        """compute_metrics with the exclusions; a protocol that ignores the excluded classes' pixels (RS-MTDF)
        drops their ground-truth rows first."""
        if self.exclude and self.protocol.excluded_pixels == "ignored":
            matrix = ignore_true_classes(matrix, class_indices(class_names, self.exclude))
        return compute_metrics(matrix, class_names, exclude=self.exclude or None)

    def describe(self) -> dict:
        """What metrics.json records as its `protocol`."""
        return {
            "name": self.protocol.name,
            "source": self.protocol.source,
            "short_side": self.short_side,
            "excluded_classes": list(self.exclude),
        }

    def confusion_kwargs(self) -> dict:
        return {"protocol": self.protocol, "short_side": self.short_side, "max_long": self.max_long}


def eval_settings(
    run_cfg: Config | None,
    meta: dict,
    class_names: list[str],
    protocol: str | None = None,
    exclude: list[str] | None = None,
) -> EvalSettings:
    """The scoring of a run (its configuration `run_cfg`) on a dataset (`meta`, `class_names`); `protocol` and
    `exclude` override the run's (rsseg evaluate --protocol / evaluate.exclude_classes)."""
    evaluate = run_cfg.evaluate if run_cfg is not None else None
    name = protocol or (evaluate.protocol if evaluate else None) or "rsseg"
    chosen = get_protocol(name)
    if exclude is None and evaluate is not None:
        exclude = evaluate.exclude_classes
    if exclude is None:
        bench = meta.get("benchmark") or {}
        exclude = list(bench.get("exclude_classes") or []) if chosen.name == bench.get("protocol") else []
    unknown = [c for c in exclude if c not in class_names]
    if unknown:  # a dataset recipe used on other data (its classes are named differently): say so, go on
        log.warning(
            "evaluate.exclude_classes names %s, which the dataset's class table does not hold (%s): %s in the "
            "means",
            ", ".join(unknown),
            ", ".join(class_names),
            "they are not" if len(unknown) > 1 else "it is not",
        )
        exclude = [c for c in exclude if c in class_names]
    rescale = run_cfg.train.rescale if run_cfg is not None else None
    short = rescale.val_short_side if rescale is not None else None
    max_long = rescale.max_long if rescale is not None else 2048
    return EvalSettings(replace(chosen), short, max_long, list(exclude))
