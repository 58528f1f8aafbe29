"""The flags of `rsseg tile` (registered on the app in cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rsseg_cli.cli_options import (
    BANDS_HELP,
    AllTouchedOpt,
    AssetsOpt,
    ConfigOpt,
    LabelFieldOpt,
    NodataOpt,
    PixelSpaceOpt,
    ReprojectOpt,
    ScenesFromOpt,
    SeedOpt,
    SetOpt,
    T,
    renamed,
    with_default,
)


def tile(
    scenes: Annotated[
        list[str] | None,
        typer.Argument(
            help="Scene rasters (GeoTIFF or any GDAL raster), URLs (https://, s3://, ...) or STAC Items."
        ),
    ] = None,
    labels: Annotated[
        list[str] | None,
        typer.Option(
            "--labels",
            "-l",
            metavar="FILE",
            help="Labels of the scenes, in order: raster or vector. Join vector files with '+' to label one "
            "scene with the polygons of all (round1.gpkg+round2.gpkg).",
        ),
    ] = None,
    label_areas: Annotated[
        list[str] | None,
        typer.Option(
            "--label-areas",
            metavar="FILE",
            help="Polygons of areas labeled completely (repeatable; any CRS). Vector labels then give "
            "tile.labels.background only inside them; outside them only the label polygons count.",
        ),
    ] = None,
    unlabeled: Annotated[
        list[str] | None,
        typer.Option("--unlabeled", metavar="SCENE", help="Scenes without labels (unlabeled chips)."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to write.")] = Path("data"),
    config: ConfigOpt = None,
    set_: SetOpt = None,
    chip_size: Annotated[
        int | None, typer.Option(help=with_default("Chip side in pixels.", T, "chip_size"))
    ] = None,
    stride: Annotated[
        int | None, typer.Option(help="Step between chips in pixels. [default: chip size - overlap]")
    ] = None,
    overlap_px: Annotated[
        int | None, typer.Option(help=with_default("Pixels shared by neighbouring chips.", T, "overlap"))
    ] = None,
    overlap: Annotated[int | None, typer.Option("--overlap", hidden=True)] = None,  # deprecated: --overlap-px
    edge: Annotated[
        str | None, typer.Option(help=with_default("Edge policy: pad, snap or drop.", T, "edge"))
    ] = None,
    bands: Annotated[str | None, typer.Option(help=f"{BANDS_HELP} in model order. [default: all]")] = None,
    nodata: NodataOpt = None,
    max_nodata: Annotated[
        float | None,
        typer.Option(help=with_default("Skip chips with more invalid pixels (0-1).", T, "max_nodata")),
    ] = None,
    label_field: LabelFieldOpt = None,
    all_touched: AllTouchedOpt = None,
    reproject_labels: ReprojectOpt = None,
    pixel_space: PixelSpaceOpt = None,
    workers: Annotated[
        int | None, typer.Option(help=with_default("Reader/writer threads.", T, "workers"))
    ] = None,
    seed: SeedOpt = None,
    scenes_from: ScenesFromOpt = None,
    assets: AssetsOpt = None,
    processes: Annotated[
        int | None,
        typer.Option(help=with_default("Scenes tiled at once, each in its own process.", T, "processes")),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing dataset in --out.")] = False,
    keep_incomplete: Annotated[
        bool, typer.Option(help="Write the dataset even if its split cannot train (no val chip, ...).")
    ] = False,
) -> None:
    """Cut scenes into georeferenced training chips with a manifest, band statistics and a leak-free split."""
    from rsseg_cli.commands import tile as command

    options = command.TileOptions(
        scenes=scenes or [], scenes_from=scenes_from, assets=assets, processes=processes, labels=labels or [], unlabeled=unlabeled or [], out=out, overwrite=overwrite,
        keep_incomplete=keep_incomplete, config_files=config or [], overrides=set_ or [], seed=seed, chip_size=chip_size, stride=stride,
        overlap_px=renamed("--overlap", "--overlap-px", overlap, overlap_px), edge=edge, bands=bands,
        nodata=nodata, max_nodata=max_nodata, workers=workers, pixel_space=pixel_space, label_field=label_field,
        all_touched=all_touched, reproject_labels=reproject_labels, label_areas=label_areas,
    )  # fmt: skip
    command.run(options)
