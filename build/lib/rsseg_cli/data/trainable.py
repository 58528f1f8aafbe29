"""Can the dataset `rsseg tile` is about to write be trained? If not, say why and how to fix it, before
anything is written: a split with no labeled train chip used to pass silently and fail much later."""

from __future__ import annotations

import logging

from rsseg_cli.config import SplitConfig
from rsseg_cli.errors import UserError

log = logging.getLogger("rsseg")


def split_problems(report: dict, cfg: SplitConfig) -> list[str]:
    """What stops training on this split (empty when it can be trained)."""
    splits = report["splits"]
    pixels = report["labeled_pixels"]
    names, total = pixels["classes"], pixels["total"]
    problems = []
    if splits["train"]["labeled_chips"] == 0:
        problems.append("the train split holds no labeled chip")
    else:
        missing = [n for n, t, p in zip(names, total, splits["train"]["class_pixels"]) if t and not p]
        if missing:
            problems.append(f"no train pixel of class(es) {', '.join(missing)}")

    if cfg.fractions.get("val", 0) > 0 and splits["val"]["labeled_chips"] == 0:
        problems.append("the val split holds no labeled chip, so training cannot be validated")
    return problems


def check_trainable(report: dict, cfg: SplitConfig, keep: bool) -> None:
    problems = split_problems(report, cfg)
    report["trainable"] = {"passed": not problems, "problems": problems}
    pixels = report["labeled_pixels"]
    absent = [n for n, t in zip(pixels["classes"], pixels["total"]) if not t]
    if absent:  # a legend may list classes a scene lacks; labels on nodata are the other cause
        log.warning(
            "class(es) %s have no labeled valid pixel (not in these labels, or labeled only on nodata / "
            "outside the scene): the model cannot learn them",
            ", ".join(absent),
        )
    if cfg.fractions.get("val", 0) <= 0:
        log.warning("tile.split.fractions has no val share: train this dataset with `rsseg train --no-val`")
    if not problems:
        return
    units = (report.get("method_details") or {}).get("units")
    found = f" ({units} labeled regions found)" if units is not None else ""
    fixes = (
        "To fix it: digitize more polygons (two or more per class let val hold every class), use a smaller "
        "--chip-size so a few polygons fall into more chips, use the default label-aware split "
        "(tile.split.method=labels) if another was set, or change tile.split.fractions. To write it anyway pass "
        "--keep-incomplete (and train a dataset without val chips with `rsseg train --no-val`)."
    )
    message = f"The split cannot be trained: {'; '.join(problems)}{found}. {fixes}"
    if not keep:
        raise UserError(message)
    log.warning("%s (kept as asked with --keep-incomplete)", message.split(" To fix it:")[0])
