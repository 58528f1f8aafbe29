"""The flags of `rsseg suggest` (registered on the app in cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rsseg_cli.cli_options import (
    CheckpointOpt,
    ConfigOpt,
    DeviceOpt,
    OverwriteOpt,
    PrecisionOpt,
    SeedOpt,
    SetOpt,
    StudentOpt,
)


def suggest(
    scenes: Annotated[list[str], typer.Argument(help="Scenes to search (GeoTIFF, VRT, URL or STAC Item).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The squares to label: a GeoPackage.")] = Path(
        "suggestions.gpkg"
    ),
    budget: Annotated[
        int | None, typer.Option(help="Windows to suggest, over all scenes. [default: 20]")
    ] = None,
    size: Annotated[
        int | None, typer.Option(help="Window side in px. [default: the --exclude dataset's chip size]")
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(help="entropy, margin, disagreement, hybrid or random. [default: hybrid]"),
    ] = None,
    exclude: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="DATASET|FILE",
            help="Labeled chips (a dataset folder) or areas (a vector file) never to suggest; repeatable.",
        ),
    ] = None,
    checkpoint: CheckpointOpt = None,
    uncertainty: Annotated[
        bool, typer.Option(help="Write <out>_uncertainty.tif, the per-pixel score as a COG.")
    ] = True,
    quicklook: Annotated[bool, typer.Option(help="Write <out>.png, the squares on the scene.")] = True,
    batch_size: Annotated[int | None, typer.Option(help="Windows per forward pass. [default: 8]")] = None,
    tta: Annotated[str | None, typer.Option(help="none, flip or d4. [default: none]")] = None,
    bands: Annotated[
        str | None, typer.Option(help="Scene bands in model order. [default: as trained]")
    ] = None,
    nodata: Annotated[str | None, typer.Option(help="Declared nodata value(s) of the scenes.")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    student: StudentOpt = None,
    seed: SeedOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Where to label next: chip-sized squares where the model is unsure (entropy of its blended
    probabilities, disagreement of its two students or of its EMA teacher and student) and that differ from
    each other and from what is labeled. Writes the squares (GeoPackage, styled for QGIS), an uncertainty COG
    and a quick-look PNG. Label the squares in QGIS, then `rsseg tile ... --label-areas` and
    `rsseg train --init-from`."""
    from rsseg_cli.commands import suggest as command

    options = command.SuggestOptions(
        scenes=scenes, out=out, checkpoint=checkpoint, exclude=exclude or [], uncertainty=uncertainty,
        quicklook=quicklook, config_files=config or [], overrides=set_ or [], budget=budget, size=size,
        strategy=strategy, batch_size=batch_size, tta=tta, bands=bands, nodata=nodata, device=device,
        precision=precision, student=student, seed=seed, overwrite=overwrite,
    )  # fmt: skip
    command.run(options)
