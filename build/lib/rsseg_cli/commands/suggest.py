"""`rsseg suggest SCENE... --budget N --out suggestions.gpkg`: where the next labels help the model most."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rsseg_cli.config import Config, load_config
from rsseg_cli.errors import UserError

FLAGS = {
    "budget": ("--budget", "suggest.budget"),
    "size": ("--size", "suggest.size"),
    "strategy": ("--strategy", "suggest.strategy"),
    "batch_size": ("--batch-size", "predict.batch_size"),
    "tta": ("--tta", "predict.tta"),
    "bands": ("--bands", "predict.bands"),
    "nodata": ("--nodata", "predict.nodata"),
    "device": ("--device", "predict.device"),
    "precision": ("--precision", "predict.precision"),
    "student": ("--student", "predict.student"),
}
VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json")


@dataclass
class SuggestOptions:
    scenes: list[str]
    out: Path = Path("suggestions.gpkg")
    checkpoint: Path | None = None  # default: the latest run's best checkpoint
    exclude: list[Path] = field(default_factory=list)  # dataset folders or vector files of labeled areas
    uncertainty: bool = True  # <out stem>_uncertainty.tif (one per scene)
    quicklook: bool = True  # <out stem>.png (one per scene)
    config_files: list[Path] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    budget: int | None = None
    size: int | None = None
    strategy: str | None = None
    batch_size: int | None = None
    tta: str | None = None
    bands: str | list[int | str] | None = None
    nodata: str | list[float] | None = None
    device: str | None = None
    precision: str | None = None
    student: str | None = None
    seed: int | None = None
    overwrite: bool = False
    config: Config = field(init=False)

    def __post_init__(self) -> None:
        if Path(self.out).suffix.lower() not in VECTOR_SUFFIXES:
            raise UserError(
                f"--out {self.out} must be a .gpkg (or .geojson) file, e.g. --out suggestions.gpkg."
            )
        flags = {flag: (key, getattr(self, name)) for name, (flag, key) in FLAGS.items()}
        flags["--seed"] = ("seed", self.seed)
        self.config = load_config(self.config_files, self.overrides, flags=flags)


def outputs(options: SuggestOptions, names: list[str]) -> dict[str, dict[str, Path]]:
    """Per scene name: its uncertainty COG and quick-look (one scene: <stem>_uncertainty.tif, <stem>.png;
    several: <stem>_<scene>_uncertainty.tif, <stem>_<scene>.png)."""
    out = Path(options.out)
    files: dict[str, dict[str, Path]] = {}
    for name in names:
        stem = out.stem if len(names) == 1 else f"{out.stem}_{name}"
        files[name] = {}
        if options.uncertainty:
            files[name]["uncertainty"] = out.with_name(f"{stem}_uncertainty.tif")
        if options.quicklook:
            files[name]["quicklook"] = out.with_name(f"{stem}.png")
    return files


def run(options: SuggestOptions):
    from rsseg_cli.predict.inputs import expand_scenes
    from rsseg_cli.runs import default_checkpoint
    from rsseg_cli.suggest.report import print_suggestions, write_outputs
    from rsseg_cli.suggest.run import suggest

    names = [s.name for s in expand_scenes(options.scenes)]
    files = outputs(options, names)
    written = [Path(options.out), *(p for f in files.values() for p in f.values())]
    existing = [p for p in written if p.exists()]
    if existing and not options.overwrite:
        raise UserError(
            f"{existing[0]} already exists. Pass --overwrite to replace it, or choose another --out."
        )
    checkpoint = default_checkpoint(options.checkpoint)
    result = suggest(
        options.scenes,
        options.config,
        checkpoint,
        [Path(p) for p in options.exclude],
        {name: f["uncertainty"] for name, f in files.items() if "uncertainty" in f},
        seed=options.config.seed,
    )
    write_outputs(
        result, Path(options.out), {n: f.get("quicklook") for n, f in files.items()}, options.config
    )
    print_suggestions(result, Path(options.out))
    return result
