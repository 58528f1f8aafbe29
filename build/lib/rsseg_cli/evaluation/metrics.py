"""Segmentation metrics from a confusion matrix, as a JSON-ready dict (plain floats, null for 0/0)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _ratio(num: float, den: float) -> float | None:
    """num / den as a plain float, or None (JSON null) for 0/0-style undefined values."""
    return float(num / den) if den > 0 else None


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(np.asarray(present, dtype=np.float64))) if present else None


def class_indices(class_names: list[str], names: list[str] | tuple[str, ...]) -> list[int]:
    """Indices of `names` among `class_names` (exact names); an unknown name is an error listing the classes."""
    known = [str(n) for n in class_names]
    missing = [n for n in names if n not in known]
    if missing:
        raise ValueError(f"unknown class name(s) {', '.join(map(repr, missing))}; the classes are {known}")
    return sorted({known.index(n) for n in names})


def ignore_true_classes(matrix: np.ndarray, indices: list[int]) -> np.ndarray:
    """A copy of `matrix` without the ground-truth pixels of classes `indices` (their rows zeroed), as if
    their label were the ignore value: RS-MTDF's eval sets DeepGlobe 'unknown' to 255 before scoring.

    Only rows go: a pixel of another class predicted as an excluded class stays an error of its true
    class (its row), as in the release, where the prediction keeps every class; dropping the columns too
    would silently forgive those misses. The matrix stays K x K, so class ids keep their meaning."""
    m = np.array(matrix, copy=True)
    m[list(indices), :] = 0
    return m


def compute_metrics(
    matrix: np.ndarray, class_names: list[str], exclude: list[str] | None = None
) -> dict[str, Any]:
    """Pixel metrics of a (K, K) confusion matrix with rows = ground truth and columns = prediction.

    With ``tp_i = M[i, i]``, ``support_i = sum_j M[i, j]`` (ground-truth pixels of class i),
    ``predicted_i = sum_j M[j, i]`` (pixels predicted as class i) and ``N = sum M``:

    - precision_i = tp_i / predicted_i                               (null when class i is never predicted)
    - recall_i    = tp_i / support_i                                 (null when class i is absent from truth)
    - iou_i       = tp_i / (support_i + predicted_i - tp_i)          (null when absent from both)
    - f1_i        = 2 tp_i / (support_i + predicted_i)               (null when absent from both; equals
      the harmonic mean of precision and recall where both are defined, and 0 when either is 0)
    - overall_accuracy = sum_i tp_i / N
    - mean_iou, mean_f1: unweighted mean over the classes PRESENT in the ground truth (support > 0).
      A class absent from the truth has no recall and an IoU that only measures false alarms, so averaging
      it in would make the score depend on which classes happen to be in the evaluated area. Its false
      alarms are not hidden: each is a missed pixel of its true class and lowers that class's IoU and
      recall. ``mean_iou_note`` says this and names the absent classes.
    - fw_iou (frequency-weighted IoU) = sum_i (support_i / N) * iou_i over present classes.
    - kappa (Cohen's kappa) = (po - pe) / (1 - pe) with po = overall_accuracy and
      pe = sum_i support_i * predicted_i / N^2 (agreement expected by chance from the two marginals).
      Computed exactly in integers as (N * sum tp - sum s_i p_i) / (N^2 - sum s_i p_i). When pe == 1 (truth
      and prediction are both one and the same single class) it is 0/0; we report 1.0 because the
      agreement is perfect (po == 1 then).

    Every ratio is computed in float64 and returned as a plain Python float, or None where undefined.
    With no counted pixels every aggregate is None.

    ``exclude`` (class names, e.g. DWL's Potsdam 'clutter', DeepGlobe 'unknown'): those classes keep their
    per-class entries but leave mean_iou, mean_f1 and fw_iou (whose weights then sum to one over the kept
    classes), as DWL's test.py deletes them from the mean; their pixels stay counted (overall_accuracy,
    kappa and the other classes' false positives include them). To not score their pixels at all
    (RS-MTDF), pass ``ignore_true_classes(matrix, class_indices(class_names, exclude))`` as the matrix.
    The result then names them in ``excluded_classes``; without exclusions the output is unchanged.
    """
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {m.shape}")
    k = m.shape[0]
    if len(class_names) != k:
        raise ValueError(f"{len(class_names)} class names for a {k}x{k} confusion matrix")
    if m.dtype.kind not in "iu":
        raise TypeError(f"confusion matrix must hold integer counts, got dtype {m.dtype}")
    if (m < 0).any():
        raise ValueError("confusion matrix has negative counts")

    # Exact integer marginals (Python ints: N^2 overflows int64 past ~3e9 pixels).
    counts = [[int(v) for v in row] for row in m.tolist()]
    tp = [counts[i][i] for i in range(k)]
    support = [sum(counts[i]) for i in range(k)]
    predicted = [sum(counts[j][i] for j in range(k)) for i in range(k)]
    n = sum(support)

    f = np.float64
    per_class: list[dict[str, Any]] = []
    for i in range(k):
        union = support[i] + predicted[i] - tp[i]
        per_class.append(
            {
                "id": i,
                "name": str(class_names[i]),
                "iou": _ratio(f(tp[i]), f(union)),
                "f1": _ratio(f(2 * tp[i]), f(support[i] + predicted[i])),
                "precision": _ratio(f(tp[i]), f(predicted[i])),
                "recall": _ratio(f(tp[i]), f(support[i])),
                "support": support[i],
                "predicted": predicted[i],
            }
        )

    excluded = class_indices(class_names, exclude or [])
    present = [i for i in range(k) if support[i] > 0 and i not in excluded]
    absent = [str(class_names[i]) for i in range(k) if support[i] == 0 and i not in excluded]
    mean_iou = _mean([per_class[i]["iou"] for i in present])
    mean_f1 = _mean([per_class[i]["f1"] for i in present])

    fw_iou: float | None = None
    kept = sum(support[i] for i in present)  # n without exclusions
    if kept > 0:
        weights = np.asarray([support[i] for i in present], dtype=np.float64) / f(kept)
        ious = np.asarray([per_class[i]["iou"] for i in present], dtype=np.float64)
        fw_iou = float(np.sum(weights * ious))

    kappa: float | None = None
    if n > 0:
        chance = sum(s * p for s, p in zip(support, predicted))
        num = n * sum(tp) - chance
        den = n * n - chance
        # den == 0 <=> pe == 1 <=> truth and prediction are the same single class everywhere.
        kappa = float(f(num) / f(den)) if den > 0 else 1.0

    if n == 0:
        note = "no pixels were counted; every metric is undefined (null)"
    elif absent:
        note = (
            f"mean_iou and mean_f1 are averaged over the {len(present)} of {k} classes present in the ground "
            f"truth (support > 0); absent from the ground truth: {', '.join(absent)}"
        )
    else:
        note = f"mean_iou and mean_f1 are averaged over all {k} classes (all are present in the ground truth)"
    if excluded and n > 0:
        names = ", ".join(str(class_names[i]) for i in excluded)
        note = (
            f"mean_iou and mean_f1 are averaged over the {len(present)} of {k} classes present in the ground "
            f"truth and not excluded; excluded: {names}"
            + (f"; absent from the ground truth: {', '.join(absent)}" if absent else "")
        )

    result = {
        "overall_accuracy": _ratio(f(sum(tp)), f(n)),
        "mean_iou": mean_iou,
        "mean_iou_note": note,
        "mean_f1": mean_f1,
        "fw_iou": fw_iou,
        "kappa": kappa,
        "pixels": n,
        "num_classes": k,
        "classes_present": len(present),
        "absent_classes": absent,
        "per_class": per_class,
    }
    if excluded:
        result["excluded_classes"] = [str(class_names[i]) for i in excluded]
    return result
