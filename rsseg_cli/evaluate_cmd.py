"""`rsseg evaluate`: a checkpoint on a split of a dataset -> metrics.json, confusion matrix CSV and PNG."""

from __future__ import annotations

import json
from pathlib import Path

from rsseg_cli.data.chipset import ChipDataset
from rsseg_cli.data.normalize import Normalization
from rsseg_cli.engine import checkpoint as ckpt
from rsseg_cli.engine.precision import resolve_device, resolve_precision
from rsseg_cli.engine.validate import confusion_on_chips
from rsseg_cli.errors import UserError
from rsseg_cli.runs import default_checkpoint, run_info


def load_model(payload: dict, device):
    from rsseg_cli.train import build_model

    model = build_model(payload["model"], "none")
    model.load_state_dict(payload["state_dict"])
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
) -> dict:
    from rsseg_cli.evaluation.metrics import compute_metrics
    from rsseg_cli.evaluation.report import print_metrics, write_report

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
    model = load_model(payload, device)
    norm = Normalization.from_dict(payload["normalization"])
    cm = confusion_on_chips(model, data, ids, norm, payload["crop"], device, precision)
    metrics = compute_metrics(cm.matrix, data.class_names)
    metrics.update({"checkpoint": str(path), "data": str(data_dir), "split": split, "chips": len(ids)})
    out = Path(out) if out is not None else run_dir / "eval" / split
    write_report(
        out, metrics, cm.matrix, data.class_names, payload.get("palette"), title=f"{split} - {path.name}"
    )
    print_metrics(metrics, title=f"{path} on {data_dir} ({split}, {len(ids)} chips)")
    if as_json:
        print(json.dumps(metrics, indent=2))
    return metrics
