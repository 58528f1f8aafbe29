"""`rsseg evaluate`: a checkpoint on a split of dataset chips, or (--pred) a predicted mask against labels
over a whole scene -> metrics.json, confusion matrix CSV and PNG, a table (and the JSON on stdout)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsseg_cli.config import Config, load_config
from rsseg_cli.errors import UserError

# Option -> (flag, config key). None means "not given": the configuration (file, --set, defaults) decides.
FLAGS = {
    "split": ("--split", "evaluate.split"),
    "device": ("--device", "evaluate.device"),
    "precision": ("--precision", "evaluate.precision"),
    "student": ("--student", "evaluate.student"),
    "protocol": ("--protocol", "evaluate.protocol"),
    "label_field": ("--label-field", "evaluate.label_field"),
    "all_touched": ("--all-touched", "evaluate.all_touched"),
    "reproject_labels": ("--reproject-labels", "evaluate.reproject_labels"),
}
CHIP_ONLY = ("checkpoint", "data", "split", "student", "protocol")
SCENE_ONLY = ("labels", "label_field", "reproject_labels", "all_touched")


def _flag(name: str) -> str:
    return FLAGS[name][0] if name in FLAGS else f"--{name.replace('_', '-')}"


@dataclass
class EvaluateOptions:
    checkpoint: Path | None = None  # default: the latest run's best checkpoint
    data: Path | None = None  # default: the run's dataset
    out: Path | None = None
    overwrite: bool = False  # replace a report that --out already holds
    as_json: bool = False
    pred: Path | None = None  # scene mode: a mask written by `rsseg predict`
    labels: Path | None = None  # scene mode: label raster or vector labels
    config_files: list[Path] = field(default_factory=list)  # --config, merged in order
    overrides: list[str] = field(default_factory=list)
    split: str | None = None
    device: str | None = None
    precision: str | None = None
    student: str | None = None
    protocol: str | None = None  # rsseg, co2s, unimatch, dwl, rs-mtdf (validated by the schema)
    label_field: str | None = None
    all_touched: bool | None = None
    reproject_labels: bool | None = None
    config: Config = field(init=False)

    def __post_init__(self) -> None:
        self._check_mode()
        flags = {flag: (key, getattr(self, name)) for name, (flag, key) in FLAGS.items()}
        self.config = load_config(self.config_files, self.overrides, flags=flags)

    def _given(self, names: tuple[str, ...]) -> list[str]:
        # A boolean switch counts when it is on: --no-all-touched asks for nothing.
        return [_flag(n) for n in names if getattr(self, n) not in (None, False)]

    def _check_mode(self) -> None:
        """Chip evaluation and scene evaluation take different flags; mixing them is a mistake to report."""
        if self.pred is not None:
            mixed = self._given(CHIP_ONLY)
            if mixed:
                raise UserError(
                    f"{', '.join(mixed)} belong to checkpoint evaluation on dataset chips and do not apply with "
                    "--pred, which scores a predicted mask against --labels. Use either --pred MASK --labels "
                    "LABELS, or --checkpoint/--data/--split without --pred."
                )
            if self.labels is None:
                raise UserError(
                    f"--pred {self.pred} needs the ground truth to compare with: add --labels LABELS.tif or "
                    "--labels LABELS.gpkg (a label raster on the mask's grid, or vector labels)."
                )
            return
        given = self._given(SCENE_ONLY)
        if given:
            raise UserError(
                f"{', '.join(given)} apply to scene evaluation only: add --pred MASK.tif (a mask written by "
                "`rsseg predict`) to score it against the labels."
            )


def run(options: EvaluateOptions) -> dict[str, Any]:
    settings = options.config.evaluate
    if options.pred is not None:
        from rsseg_cli.evaluation.scene import evaluate_scene

        assert options.labels is not None  # checked when the options were built
        return evaluate_scene(
            options.pred,
            options.labels,
            label_field=settings.label_field,
            reproject=settings.reproject_labels,
            all_touched=settings.all_touched,
            out=options.out,
            as_json=options.as_json,
            overwrite=options.overwrite,
        )
    from rsseg_cli.engine.evaluate import evaluate_chips, print_chip_metrics
    from rsseg_cli.evaluation.scene import check_report_out

    if options.out is not None:
        check_report_out(Path(options.out), options.overwrite)

    metrics = evaluate_chips(
        options.checkpoint,
        options.data,
        settings.split,
        options.out,
        settings.device,
        settings.precision,
        settings.student,
        settings.protocol,
        settings.exclude_classes,
    )
    print_chip_metrics(metrics, options.as_json)
    return metrics
