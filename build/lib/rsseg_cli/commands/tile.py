"""`rsseg tile`: scenes (and labels) -> a dataset folder of georeferenced chips, manifest and split."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rsseg_cli.config import Config, load_config

if TYPE_CHECKING:
    from rsseg_cli.data.tiling import TileResult

# Option -> (flag, config key). None means "not given": the configuration (file, --set, defaults) decides.
FLAGS = {
    "seed": ("--seed", "seed"),
    "chip_size": ("--chip-size", "tile.chip_size"),
    "stride": ("--stride", "tile.stride"),
    "overlap_px": ("--overlap-px", "tile.overlap"),
    "edge": ("--edge", "tile.edge"),
    "bands": ("--bands", "tile.bands"),
    "nodata": ("--nodata", "tile.nodata"),
    "max_nodata": ("--max-nodata", "tile.max_nodata"),
    "workers": ("--workers", "tile.workers"),
    "processes": ("--processes", "tile.processes"),
    "pixel_space": ("--pixel-space", "tile.pixel_space"),
    "label_field": ("--label-field", "tile.labels.field"),
    "all_touched": ("--all-touched", "tile.labels.all_touched"),
    "reproject_labels": ("--reproject-labels", "tile.labels.reproject"),
    "label_areas": ("--label-areas", "tile.labels.areas"),
}


@dataclass
class TileOptions:
    scenes: list[
        str
    ]  # paths, URLs, s3:// gs:// az:// or /vsi paths, STAC Items (as given: dataset.yaml records them)
    labels: list[str] = field(default_factory=list)  # raster or vector files, local or remote, in scene order
    unlabeled: list[str] = field(default_factory=list)
    out: Path = Path("data")
    overwrite: bool = False
    keep_incomplete: bool = False  # write a dataset whose split cannot train (the user asked for it)
    config_files: list[Path] = field(default_factory=list)  # --config, merged in order
    overrides: list[str] = field(default_factory=list)
    seed: int | None = None
    chip_size: int | None = None
    stride: int | None = None
    overlap_px: int | None = None
    edge: str | None = None
    bands: str | list[int | str] | None = None  # '4,3,2', 'red,green,blue' or a list
    nodata: str | list[float] | None = None  # '0' or '0,0,0,-9999' (one per selected band)
    max_nodata: float | None = None
    workers: int | None = None
    processes: int | None = None
    scenes_from: Path | None = None  # a text list, CSV or vector file of scenes
    assets: str | None = None  # STAC Items: asset keys or eo:bands common names, comma-separated
    pixel_space: bool | None = None
    label_field: str | None = None
    all_touched: bool | None = None
    reproject_labels: bool | None = None
    label_areas: list[str] | None = None  # polygons of areas labeled completely (vector labels)
    config: Config = field(init=False)

    def __post_init__(self) -> None:
        self.label_areas = [str(p) for p in self.label_areas] if self.label_areas else None  # None: not given
        flags = {flag: (key, getattr(self, name)) for name, (flag, key) in FLAGS.items()}
        self.config = load_config(self.config_files, self.overrides, flags=flags)


def run(options: TileOptions) -> TileResult:
    from rsseg_cli.data.summary import print_tile_summary
    from rsseg_cli.data.tiling import tile_scenes
    from rsseg_cli.geo.sources import read_scene_list, split_assets

    # Listed scenes follow the ones on the command line, so --labels pair with them in that order.
    listed = read_scene_list(options.scenes_from) if options.scenes_from is not None else []
    result = tile_scenes(
        [str(s) for s in options.scenes] + listed,
        [str(p) for p in options.labels],
        options.out,
        options.config,
        unlabeled=[str(s) for s in options.unlabeled],
        overwrite=options.overwrite,
        keep_incomplete=options.keep_incomplete,
        assets=split_assets(options.assets),
    )
    print_tile_summary(result)
    return result
