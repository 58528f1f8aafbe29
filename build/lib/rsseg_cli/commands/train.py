"""`rsseg train`: a dataset folder + a method + a model -> a run folder with checkpoints and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rsseg_cli.config import Config, load_config
from rsseg_cli.errors import UserError

# Option -> (flag, config key). None means "not given": the configuration (file, --set, defaults) decides.
FLAGS = {
    "seed": ("--seed", "seed"),
    "labeled": ("--labeled", "train.labeled"),
    "method": ("--method", "train.method"),
    "device": ("--device", "train.device"),
    "precision": ("--precision", "train.precision"),
    "validate": ("--no-val", "train.validation"),
}


@dataclass
class TrainOptions:
    data: Path = Path("data")
    out: Path | None = None  # default: runs/<method>-<labeled>-<time>, or the latest run with resume
    split_file: Path | None = None
    split: str | None = None  # a prepared benchmark's published split, e.g. co2s/1_8
    resume: bool = False
    stop_after: int | None = None
    init_from: Path | None = None  # an earlier run's last.pt/best.pt to start from (ignored when resuming)
    config_files: list[Path] = field(default_factory=list)  # --config, merged in order
    overrides: list[str] = field(default_factory=list)
    seed: int | None = None
    labeled: str | None = None  # 1/8, 12.5%, 0.125 or a number of chips (validated by the schema)
    method: str | None = None
    device: str | None = None
    precision: str | None = None
    validate: bool | None = None  # --val/--no-val
    config: Config = field(init=False)

    def __post_init__(self) -> None:
        flags = {flag: (key, getattr(self, name)) for name, (flag, key) in FLAGS.items()}
        self.config = load_config(self.config_files, self.overrides, flags=flags)
        if self.stop_after is not None and self.stop_after < 1:
            raise UserError(f"--stop-after {self.stop_after} must be a step number, 1 or more.")
        if self.split is not None and (self.split_file is not None or self.labeled is not None):
            other = "--split-file" if self.split_file is not None else "--labeled"
            raise UserError(
                f"--split {self.split} and {other} both choose the labeled chips. Give one of them: --split "
                "for a paper's published list, --labeled or --split-file for your own."
            )
        if self.init_from is not None and not Path(self.init_from).is_file():
            raise UserError(
                f"--init-from {self.init_from} does not exist. Pass an earlier run's "
                "runs/<name>/checkpoints/last.pt (student and EMA) or best.pt."
            )
        if self.split_file is not None and not Path(self.split_file).is_file():
            raise UserError(
                f"The split file {self.split_file} does not exist. Pass a labeled.txt written by an earlier "
                "run (runs/<name>/splits/labeled.txt) or a list of chip ids, one per line."
            )


def run(options: TrainOptions) -> Path:
    from rsseg_cli.engine.run import run_training

    return run_training(
        options.data,
        options.config,
        out=options.out,
        split_file=options.split_file,
        resume=options.resume,
        stop_after=options.stop_after,
        published=options.split,
        init_from=options.init_from,
    )
