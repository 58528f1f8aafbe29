"""The typer option declarations that several commands share, with help texts that show the schema's
defaults (flags default to None, "not given", so that the configuration decides), and deprecated spellings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from rsseg_cli.config import EvaluateConfig, PredictConfig, TileConfig, VectorizeConfig
from rsseg_cli.errors import UserError
from rsseg_cli.progress import console

ConfigOpt = Annotated[
    list[Path] | None,
    typer.Option("--config", "-c", metavar="FILE", help="YAML config file (repeatable; later ones win)."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        metavar="KEY=VALUE",
        help="Override a config key, e.g. tile.chip_size=256 (repeatable).",
    ),
]
SeedOpt = Annotated[int | None, typer.Option(help="Random seed (splits, sampling). [default: 0]")]


def with_default(text: str, section: type[BaseModel], key: str) -> str:
    """Help text with the schema's default (flags themselves default to None: not given)."""
    value = section.model_fields[key].get_default(call_default_factory=True)
    shown = {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value
    return f"{text} [default: {shown}]"


def renamed(old: str, new: str, old_value: Any, new_value: Any) -> Any:
    """A deprecated spelling of a flag: its value (old meaning) with a note on stderr naming the new flag."""
    if old_value is None:
        return new_value
    if new_value is not None:
        raise UserError(f"{old} is the old name of {new}; give {new} only.")
    console.print(
        f"[yellow]Deprecated:[/] {old} is now {new} (same meaning here); the old name will be removed.",
        highlight=False,
        soft_wrap=True,
    )
    return old_value


DeviceOpt = Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N. [default: auto]")]
PrecisionOpt = Annotated[
    str | None, typer.Option(help="auto (bf16/fp16 on a GPU, else fp32), fp32, bf16 or fp16. [default: auto]")
]
VECTOR_OUT_HELP = (
    "Polygons: FILE.gpkg or FILE.geojson (EPSG:4326); an existing file is replaced. [default: MASK.gpkg]"
)
BANDS_HELP = "Band selection, '4,3,2' or 'red,green,blue',"
NodataOpt = Annotated[
    str | None,
    typer.Option(
        metavar="VALUE[,VALUE...]",
        help="Nodata of the scenes, one value or one per selected band ('0' or '0,0,0,-9999'); replaces "
        "the files' nodata value (for scenes without one, e.g. a zero collar). [default: the files']",
    ),
]
T, P, E, V = TileConfig, PredictConfig, EvaluateConfig, VectorizeConfig
CheckpointOpt = Annotated[Path | None, typer.Option(help="Default: the latest run's best checkpoint.")]
OverwriteOpt = Annotated[bool, typer.Option(help="Replace existing outputs instead of refusing them.")]
StudentOpt = Annotated[
    str | None, typer.Option(help="Co2S checkpoints: clip, dinov3 or ensemble. [default: the best validated]")
]
PixelSpaceOpt = Annotated[
    bool | None, typer.Option(help="Accept scenes without a CRS (pixel coordinates). [default: off]")
]
# Polygons (vectorize, and predict with --vector).
SieveOpt = Annotated[
    int | None,
    typer.Option(help=with_default("Merge regions smaller than this many pixels (0: off).", V, "sieve")),
]
MinAreaOpt = Annotated[
    float | None, typer.Option(help=with_default("Drop polygons smaller than this, m².", V, "min_area"))
]
SimplifyOpt = Annotated[
    float | None,
    typer.Option(help=with_default("Simplification tolerance in metres (0: pixel edges).", V, "simplify")),
]
FillHolesOpt = Annotated[
    float | None, typer.Option(help=with_default("Fill holes smaller than this, m².", V, "fill_holes"))
]
# Labels (tile, and evaluate --pred).
LabelFieldOpt = Annotated[
    str | None,
    typer.Option(
        help="Vector labels: the class field. [default: the first of class, class_id, label, classname]"
    ),
]
AllTouchedOpt = Annotated[
    bool | None, typer.Option(help="Vector labels: burn every pixel a polygon touches. [default: off]")
]
ReprojectOpt = Annotated[
    bool | None,
    typer.Option(help="Labels on another grid: resample (nearest) instead of refusing. [default: off]"),
]
ClassesOpt = Annotated[
    str | None, typer.Option(help="Only these classes, by name or id: 'water,building' or '1,4'.")
]

# Scene inputs shared by tile and predict.
ScenesFromOpt = Annotated[
    Path | None,
    typer.Option(help="Read the scenes from a file: a text list, a CSV or a vector file with a path column."),
]
AssetsOpt = Annotated[
    str | None,
    typer.Option(
        help="STAC Items: the assets to stack, by key or eo:bands common name (red,green,blue,nir)."
    ),
]
