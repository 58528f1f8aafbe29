"""`rsseg predict`: scenes -> Cloud-Optimized GeoTIFF class masks (and probabilities, polygons, quick-looks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rsseg_cli.config import Config, load_config

if TYPE_CHECKING:
    from rsseg_cli.predict.run import SceneResult

# Option -> (flag, config key). None means "not given": the configuration (file, --set, defaults) decides.
FLAGS = {
    "overlap_fraction": ("--overlap-fraction", "predict.overlap_fraction"),
    "batch_size": ("--batch-size", "predict.batch_size"),
    "tta": ("--tta", "predict.tta"),
    "window": ("--window", "predict.window"),
    "bands": ("--bands", "predict.bands"),
    "nodata": ("--nodata", "predict.nodata"),
    "quicklook_bands": ("--quicklook-bands", "predict.quicklook_bands"),
    "compress": ("--compress", "predict.compress"),
    "pixel_space": ("--pixel-space", "predict.pixel_space"),
    "device": ("--device", "predict.device"),
    "precision": ("--precision", "predict.precision"),
    "student": ("--student", "predict.student"),
    "sieve": ("--sieve", "predict.vector.sieve"),
    "min_area": ("--min-area", "predict.vector.min_area"),
    "simplify": ("--simplify", "predict.vector.simplify"),
    "fill_holes": ("--fill-holes", "predict.vector.fill_holes"),
    "classes": ("--classes", "predict.vector.classes"),
}


@dataclass
class PredictOptions:
    scenes: list[str]  # paths, globs, URLs, /vsi paths, VRTs or STAC Items
    out: Path  # a mask file, or a folder for several scenes
    scenes_from: Path | None = None  # a text list, CSV or vector file of scenes
    assets: str | None = None  # STAC Items: asset keys or eo:bands common names, comma-separated
    mosaic_cog: bool = False  # with a folder: also the mosaic of all masks as a COG
    checkpoint: Path | None = None  # default: the latest run's best checkpoint
    vector: Path | None = None
    probs: Path | None = None
    quicklook: Path | None = None
    config_files: list[Path] = field(default_factory=list)  # --config, merged in order
    overrides: list[str] = field(default_factory=list)
    overlap_fraction: float | None = None
    batch_size: int | None = None
    tta: str | None = None
    window: int | None = None
    bands: str | list[int | str] | None = None  # a band selection: '3,2,1' or 'red,green,blue'
    nodata: str | list[float] | None = None  # '0' or '0,0,0,-9999' (one per selected band)
    quicklook_bands: str | list[int | str] | None = None  # the quick-look's red, green, blue: '4,3,2'
    compress: str | None = None
    pixel_space: bool | None = None
    device: str | None = None
    precision: str | None = None
    student: str | None = None
    sieve: int | None = None
    min_area: float | None = None
    simplify: float | None = None
    fill_holes: float | None = None
    classes: str | list[int | str] | None = None  # 'water,building' or a list
    # Redo every scene. Otherwise a mask file that exists is refused before any work, and in an output folder
    # scenes whose outputs are complete and newer than the scene are skipped.
    overwrite: bool = False
    config: Config = field(init=False)

    def __post_init__(self) -> None:
        flags = {flag: (key, getattr(self, name)) for name, (flag, key) in FLAGS.items()}
        self.config = load_config(self.config_files, self.overrides, flags=flags)


def run(options: PredictOptions) -> list[SceneResult]:
    """Predict, print the summary, then fail (exit 2 when every failed scene was bad input, else 1) when any
    scene of a folder batch failed: the others are done by then."""
    from rsseg_cli.predict.run import predict_scenes, print_predict_summary, raise_for_failures

    results = predict_scenes(
        options.scenes,
        options.out,
        options.checkpoint,
        probs=options.probs,
        vector=options.vector,
        settings=options.config.predict,
        quicklook=options.quicklook,
        overwrite=options.overwrite,
        scenes_from=options.scenes_from,
        assets=options.assets,
        mosaic_cog=options.mosaic_cog,
    )
    if not results:  # a torchrun rank other than 0: rank 0 reports for all
        return results
    print_predict_summary(results)
    raise_for_failures(results, options.out)
    return results
