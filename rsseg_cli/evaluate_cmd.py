"""`rsseg evaluate`: a checkpoint on a split of a dataset -> metrics.json, confusion matrix CSV and PNG."""

from __future__ import annotations

import json
from pathlib import Path

from rsseg_cli.data.chipset import ChipDataset
from rsseg_cli.data.normalize import Normalization
from rsseg_cli.engine import checkpoint as ckpt
from rsseg_cli.engine.precision import resolve_device, resolve_precision
from rsseg_cli.engine.validate import confusions_on_chips
from rsseg_cli.errors import UserError
from rsseg_cli.runs import default_checkpoint, run_info


def load_model(payload: dict, device, student: str | None = None):
    """The checkpoint's network in eval mode; for Co2S, the chosen prediction (`student`: clip, dinov3 or
    ensemble; default the one that validated best)."""
    from rsseg_cli.train import build_model

    model = build_model(payload["model"], "none")
    model.load_state_dict(payload["state_dict"])
    if hasattr(model, "variants"):
        model.use(student or payload.get("student") or "ensemble")
    elif student is not None:
        raise UserError(
            f"--student applies to Co2S checkpoints (two students); this one was trained with "
            f"{payload.get('method', 'another method')}. Leave --student out."
        )
    return model.to(device).eval()


def check_compatible(payload: dict, data: ChipDataset, source: str) -> None:
    bands = [b["name"] for b in payload["bands"]]
    if len(bands) != len(data.band_names):
        raise UserError(
            f"The checkpoint was trained on {len(bands)} bands ({', '.join(bands)}) but {source} has "
            f"{len(data.band_names)} ({', '.join(data.band_names)}). Tile with the same bands (tile.bands)."
        )
    names = [c["name"] for c in payload["classes"]]
    if names != data.class_names:
        raise UserError(
            f"The checkpoint's classes ({', '.join(names)}) differ from {source}'s ({', '.join(data.class_names)})."
        )


def run_evaluate(
    checkpoint: Path | None,
    data_dir: Path | None,
    split: str,
    out: Path | None,
    as_json: bool,
    device_name: str,
    precision_name: str,
    student: str | None = None,
) -> dict:
    from rsseg_cli.evaluation.metrics import compute_metrics
    from rsseg_cli.evaluation.report import print_metrics, print_students, write_report

    path = default_checkpoint(checkpoint)
    payload = ckpt.load(path)
    run_dir = path.parent.parent
    if data_dir is None:
        data_dir = Path(run_info(run_dir).get("data", "data"))
    data = ChipDataset.open(data_dir)
    check_compatible(payload, data, str(data_dir))
    ids = data.split(split, labeled=True)["id"].tolist()
    if not ids:
        raise UserError(
            f"The dataset {data_dir} has no labeled chips in the {split!r} split. Use --split val/test."
        )
    device = resolve_device(device_name)
    precision = resolve_precision(precision_name, device)
    model = load_model(payload, device, student)
    norm = Normalization.from_dict(payload["normalization"])
    cms = confusions_on_chips(model, data, ids, norm, payload["crop"], device, precision)
    chosen = getattr(model, "mode", "model")
    cm = cms[chosen]
    metrics = compute_metrics(cm.matrix, data.class_names)
    if len(cms) > 1:
        # Co2S: both students and their ensemble are scored; the report is the chosen one's.
        metrics["student"] = chosen
        metrics["students"] = {}
        for v, c in cms.items():
            m = compute_metrics(c.matrix, data.class_names)
            metrics["students"][v] = {
                k: m[k] for k in ("mean_iou", "overall_accuracy", "mean_f1", "kappa", "fw_iou") if k in m
            }
    metrics.update({"checkpoint": str(path), "data": str(data_dir), "split": split, "chips": len(ids)})
    out = Path(out) if out is not None else run_dir / "eval" / split
    write_report(
        out, metrics, cm.matrix, data.class_names, payload.get("palette"), title=f"{split} - {path.name}"
    )
    label = f", student {chosen}" if len(cms) > 1 else ""
    print_metrics(metrics, title=f"{path} on {data_dir} ({split}, {len(ids)} chips{label})")
    if len(cms) > 1:
        print_students(metrics["students"], chosen)
    if as_json:
        print(json.dumps(metrics, indent=2))
    return metrics
