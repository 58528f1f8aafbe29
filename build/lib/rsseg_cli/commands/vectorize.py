"""`rsseg vectorize`: a class mask (and its probabilities) -> polygons measured in metres (GPKG / GeoJSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rsseg_cli.config import Config, load_config

if TYPE_CHECKING:
    from rsseg_cli.vectorize import VectorizeSummary

# Option -> (flag, config key). None means "not given": the configuration (file, --set, defaults) decides.
FLAGS = {
    "classes": ("--classes", "vectorize.classes"),
    "sieve": ("--sieve", "vectorize.sieve"),
    "min_area": ("--min-area", "vectorize.min_area"),
    "simplify": ("--simplify", "vectorize.simplify"),
    "fill_holes": ("--fill-holes", "vectorize.fill_holes"),
    "window": ("--window", "vectorize.window"),
}


@dataclass
class VectorizeOptions:
    mask: Path
    out: Path | None = None  # default: the mask's name with .gpkg
    probs: Path | None = None
    config_files: list[Path] = field(default_factory=list)  # --config, merged in order
    overrides: list[str] = field(default_factory=list)
    classes: str | list[int | str] | None = None  # 'water,building', '1,4' or a list
    sieve: int | None = None
    min_area: float | None = None
    simplify: float | None = None
    fill_holes: float | None = None
    window: int | None = None
    config: Config = field(init=False)

    def __post_init__(self) -> None:
        flags = {flag: (key, getattr(self, name)) for name, (flag, key) in FLAGS.items()}
        self.config = load_config(self.config_files, self.overrides, flags=flags)
        if self.out is None:
            self.out = Path(self.mask).with_suffix(".gpkg")


def run(options: VectorizeOptions) -> VectorizeSummary:
    from rsseg_cli.vectorize import print_vectorize_summary, vectorize_mask

    assert options.out is not None  # set when the options were built
    summary = vectorize_mask(
        options.mask,
        options.out,
        probs=options.probs,
        **options.config.vectorize.vectorize_kwargs(),
    )
    print_vectorize_summary(summary)
    return summary
