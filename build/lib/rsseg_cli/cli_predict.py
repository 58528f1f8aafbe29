"""The flags of `rsseg predict` (registered on the app in cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rsseg_cli.cli_options import (
    BANDS_HELP,
    AssetsOpt,
    CheckpointOpt,
    ClassesOpt,
    ConfigOpt,
    DeviceOpt,
    FillHolesOpt,
    MinAreaOpt,
    NodataOpt,
    OverwriteOpt,
    P,
    PixelSpaceOpt,
    PrecisionOpt,
    ScenesFromOpt,
    SetOpt,
    SieveOpt,
    SimplifyOpt,
    StudentOpt,
    renamed,
    with_default,
)


def predict(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Class mask (.tif, a COG) or, for several scenes, a folder.")
    ],
    scenes: Annotated[
        list[str] | None,
        typer.Argument(
            help="Scenes: GeoTIFFs, quoted globs ('tiles/*.tif'), VRTs, URLs (https://, s3://, gs://, az://, "
            "/vsi...) or STAC Items (JSON file or URL)."
        ),
    ] = None,
    checkpoint: CheckpointOpt = None,
    vector: Annotated[
        Path | None,
        typer.Option(help="Also write polygons: FILE.gpkg, FILE.geojson (EPSG:4326) or a folder."),
    ] = None,
    probs: Annotated[
        Path | None,
        typer.Option(
            help="Also write class probabilities (uint8, p x 255) and confidence: FILE.tif or a folder."
        ),
    ] = None,
    quicklook: Annotated[
        Path | None,
        typer.Option(help="Also write a PNG of the scene beside its predicted classes (or a folder)."),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    overlap_fraction: Annotated[
        float | None,
        typer.Option(
            help=with_default("Share of a window its neighbours overlap, 0 to <1.", P, "overlap_fraction")
        ),
    ] = None,
    overlap: Annotated[float | None, typer.Option("--overlap", hidden=True)] = None,  # deprecated
    batch_size: Annotated[
        int | None, typer.Option(help=with_default("Windows per forward pass.", P, "batch_size"))
    ] = None,
    tta: Annotated[
        str | None,
        typer.Option(
            help=with_default("Test-time augmentation: none, flip (4 views) or d4 (8 views).", P, "tta")
        ),
    ] = None,
    window: Annotated[
        int | None, typer.Option(help="Window size in pixels. [default: the training crop]")
    ] = None,
    bands: Annotated[
        str | None, typer.Option(help=f"{BANDS_HELP} to read. [default: as in training]")
    ] = None,
    nodata: NodataOpt = None,
    quicklook_bands: Annotated[
        str | None, typer.Option(help="Quick-look red,green,blue: '4,3,2' or names. [default: by name]")
    ] = None,
    compress: Annotated[
        str | None, typer.Option(help=with_default("COG compression: deflate, zstd or lzw.", P, "compress"))
    ] = None,
    sieve: SieveOpt = None,
    min_area: MinAreaOpt = None,
    simplify: SimplifyOpt = None,
    fill_holes: FillHolesOpt = None,
    classes: ClassesOpt = None,
    pixel_space: PixelSpaceOpt = None,
    student: StudentOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    scenes_from: ScenesFromOpt = None,
    assets: AssetsOpt = None,
    mosaic_cog: Annotated[
        bool, typer.Option(help="With an output folder: also write the mosaic of all masks as a COG.")
    ] = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Predict whole scenes with streaming sliding windows into COG class masks (and probabilities, polygons)."""
    from rsseg_cli.commands import predict as command

    options = command.PredictOptions(
        scenes=scenes or [], scenes_from=scenes_from, assets=assets, mosaic_cog=mosaic_cog, out=out, checkpoint=checkpoint, vector=vector, probs=probs, quicklook=quicklook,
        config_files=config or [], overrides=set_ or [],
        overlap_fraction=renamed("--overlap", "--overlap-fraction", overlap, overlap_fraction),
        batch_size=batch_size, tta=tta, window=window, bands=bands, nodata=nodata, quicklook_bands=quicklook_bands,
        compress=compress, pixel_space=pixel_space,
        device=device, precision=precision, student=student, sieve=sieve, min_area=min_area,
        simplify=simplify, fill_holes=fill_holes, classes=classes, overwrite=overwrite,
    )  # fmt: skip
    command.run(options)
