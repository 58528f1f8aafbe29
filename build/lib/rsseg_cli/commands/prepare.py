"""`rsseg prepare NAME SRC`: a public benchmark's folder -> an rsseg dataset that uses its images in place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rsseg_cli.errors import UserError


@dataclass
class PrepareOptions:
    name: str
    src: Path
    out: Path | None = None  # default data/<name>
    overwrite: bool = False
    workers: int | None = None

    def __post_init__(self) -> None:
        from rsseg_cli.benchmarks.preset import unknown_preset
        from rsseg_cli.benchmarks.presets import PRESETS

        self.name = self.name.strip().lower()
        if self.name not in PRESETS:
            raise unknown_preset(self.name, list(PRESETS))
        if self.workers is not None and self.workers < 1:
            raise UserError(f"--workers {self.workers} must be 1 or more.")
        if self.out is None:
            self.out = Path("data") / self.name


def run(options: PrepareOptions) -> dict:
    from rsseg_cli.benchmarks.prepare import prepare_benchmark
    from rsseg_cli.benchmarks.presets import PRESETS
    from rsseg_cli.progress import console

    preset = PRESETS[options.name]
    assert options.out is not None
    summary = prepare_benchmark(preset, options.src, options.out, options.overwrite, options.workers)
    splits = ", ".join(f"{n} {s}" for s, n in summary["splits"].items())
    console.print(
        f"[bold]{preset.title}[/] -> {summary['out']}: {summary['chips']} chips of {summary['chip_size']} px "
        f"({splits}), {len(summary['classes'])} classes, images used in place from {Path(options.src).resolve()}"
    )
    if summary["published"]:
        first = summary["published"][0]
        console.print(
            f"published splits: {', '.join(summary['published'])}; train with e.g. "
            f"`rsseg train --data {summary['out']} --split {first} --config configs/<recipe>.yaml`"
        )
    return summary
