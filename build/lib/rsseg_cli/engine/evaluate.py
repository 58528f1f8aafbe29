"""A checkpoint on a split of a dataset's chips -> metrics.json, confusion matrix CSV and PNG, console table:
validation's sliding windows over a whole split, reported. `rsseg evaluate` and `rsseg demo` call
evaluate_chips, then print_chip_metrics. (Scene-level evaluation of a predicted mask is evaluation.scene.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from rsseg_cli.config import Config, parse_config
from rsseg_cli.data.chipset import ChipDataset
from rsseg_cli.data.normalize import Normalization
from rsseg_cli.engine.checkpoint import Checkpoint
from rsseg_cli.engine.eval_settings import eval_settings
from rsseg_cli.engine.precision import resolve_device, resolve_precision
from rsseg_cli.engine.validate import confusions_on_chips
from rsseg_cli.errors import UserError
from rsseg_cli.models.spec import variants_of
from rsseg_cli.runs import default_checkpoint, run_info

SUMMARY_KEYS = ("mean_iou", "overall_accuracy", "mean_f1", "kappa", "fw_iou")


def evaluate_chips(
    checkpoint: Path | None,
    data_dir: Path | None,
    split: str = "val",
    out: Path | None = None,
    device_name: str = "auto",
    precision_name: str = "auto",
    student: str | None = None,
    protocol: str | None = None,
    exclude: list[str] | None = None,
) -> dict[str, Any]:
    """Metrics of `checkpoint` (default: the latest run's best) on the labeled chips of `split` of `data_dir`
    (default: the run's dataset); writes the report into `out` (default: <run>/eval/<split>/). `protocol`
    and `exclude` override the run's scoring (engine.eval_settings)."""
    from rsseg_cli.evaluation.report import write_report

    path = default_checkpoint(checkpoint)
    ckpt = Checkpoint.read(path)
    run_dir = path.parent.parent
    if data_dir is None:
        data_dir = Path(run_info(run_dir).get("data", "data"))
    data = ChipDataset.open(data_dir)
    ckpt.check_dataset(data.band_names, data.class_names, data.meta.get("dtype"), str(data_dir))
    ids, lists = _split_ids(data, split, run_info(run_dir).get("split"), data_dir)
    if not ids:
        raise UserError(
            f"The dataset {data_dir} has no labeled chips in the {split!r} split. Use --split val/test."
        )
    device = resolve_device(device_name)
    precision = resolve_precision(precision_name, device)
    model = ckpt.load_model(device, student)
    norm = Normalization.from_dict(ckpt.normalization)
    scoring = eval_settings(_run_config(run_dir), data.meta, data.class_names, protocol, exclude)
    cms = confusions_on_chips(
        model, data, ids, norm, ckpt.crop, device, precision, **scoring.confusion_kwargs()
    )
    chosen = model.mode if variants_of(model) else "model"
    cm = cms[chosen]
    metrics = scoring.metrics(cm.matrix, data.class_names)
    metrics["protocol"] = scoring.describe()
    if len(cms) > 1:
        # A model with several predictions: all are scored; the report is the chosen one's.
        metrics["student"] = chosen
        metrics["students"] = {}
        for v, c in cms.items():
            m = scoring.metrics(c.matrix, data.class_names)
            metrics["students"][v] = {k: m[k] for k in SUMMARY_KEYS if k in m}
    metrics.update({"checkpoint": str(path), "data": str(data_dir), "split": split, "chips": len(ids)})
    if lists is not None:
        metrics["split_lists"] = lists.source.rsplit("/", 1)[0] + (
            "/val.txt" if split == "val" or lists.test_is_val else "/test.txt"
        )
    out = Path(out) if out is not None else run_dir / "eval" / split
    write_report(out, metrics, cm.matrix, data.class_names, ckpt.palette, title=f"{split} - {path.name}")
    return metrics


def _run_config(run_dir: Path) -> Config | None:
    """The run's resolved configuration (config.yaml), if the checkpoint sits in a run folder."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return None
    try:
        return parse_config(yaml.safe_load(path.read_text()) or {}, str(path))
    except (UserError, yaml.YAMLError, OSError):
        return None  # an old or edited run: rsseg's protocol


def _split_ids(data: ChipDataset, split: str, published: str | None, data_dir: Path):
    """The chips of `split`: for a run trained on a published split of a prepared benchmark, that paper's
    val or test list (Co2S reports its val list as test), else the dataset's labeled chips of the split."""
    if published and "benchmark" in data.meta:
        from rsseg_cli.benchmarks.published import published_split

        lists = published_split(data.meta, set(data.chips["id"]), published, data_dir)
        return list(lists.val if split == "val" else lists.test), lists
    if split == "test" and (data.meta.get("benchmark") or {}).get("test_is_val"):
        split = "val"  # the paper reports its val split as test
    return data.split(split, labeled=True)["id"].tolist(), None


def print_chip_metrics(metrics: dict[str, Any], as_json: bool = False) -> None:
    """The rich table of evaluate_chips' metrics (and each student's, for Co2S); with `as_json` the metrics
    JSON on stdout."""
    from rsseg_cli.evaluation.report import print_metrics, print_students

    student = metrics.get("student")
    label = f", student {student}" if student else ""
    title = (
        f"{metrics['checkpoint']} on {metrics['data']} ({metrics['split']}, {metrics['chips']} chips{label})"
    )
    print_metrics(metrics, title=title)
    if student:
        print_students(metrics["students"], student)
    if as_json:
        print(json.dumps(metrics, indent=2))
