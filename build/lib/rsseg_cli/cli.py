"""The `rsseg` command line: flags -> a command's options object (validated as it is built, before any work)
-> `commands.<command>.run(options)`. Flags that set a config key default to None ("not given"): the schema
holds the defaults, and the layering is defaults < --config FILE < --set key=value < flags."""

from __future__ import annotations

import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from rsseg_cli import __version__
from rsseg_cli.cli_errors import guarded
from rsseg_cli.cli_export import export
from rsseg_cli.cli_help import install as install_help_fixes
from rsseg_cli.cli_options import (
    VECTOR_OUT_HELP,
    AllTouchedOpt,
    CheckpointOpt,
    ClassesOpt,
    ConfigOpt,
    DeviceOpt,
    E,
    FillHolesOpt,
    LabelFieldOpt,
    MinAreaOpt,
    OverwriteOpt,
    PrecisionOpt,
    ReprojectOpt,
    SeedOpt,
    SetOpt,
    SieveOpt,
    SimplifyOpt,
    StudentOpt,
    V,
    renamed,
    with_default,
)
from rsseg_cli.cli_predict import predict
from rsseg_cli.cli_prepare import prepare
from rsseg_cli.cli_suggest import suggest
from rsseg_cli.cli_tile import tile
from rsseg_cli.config import DEFAULT_METHOD
from rsseg_cli.errors import Interrupted
from rsseg_cli.geo.gdal_env import apply_cloud_defaults
from rsseg_cli.methods import METHODS
from rsseg_cli.progress import console, setup_logging

app = typer.Typer(
    name="rsseg",
    help="Semi-supervised semantic segmentation of GeoTIFF scenes with vision foundation models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain help: flags as --x/--no-x, no type tags such as <bool>
)
install_help_fixes()  # arguments as `SCENES...` and `<path>`, not `{scenes}...` and `<list[Path]>`


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rsseg {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    setup_logging(verbose)


app.command(short_help="Cut scenes into training chips with a leak-free split.")(guarded(tile))


@app.command(short_help="Train a model with a few labels (semi-supervised).")
@guarded
def train(
    data: Annotated[Path, typer.Option(help="Dataset folder written by `rsseg tile`.")] = Path("data"),
    labeled: Annotated[
        str | None,
        typer.Option(help="Labeled share: 1/8, 12.5%, 0.125, or a number of chips. [default: 1/1]"),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(help=f"Training method: {', '.join(METHODS)}. [default: {DEFAULT_METHOD}]"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run folder (default runs/<method>-...).")
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    split_file: Annotated[
        Path | None, typer.Option(help="Reuse a labeled.txt instead of drawing one.")
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            help="A prepared benchmark's published split, e.g. co2s/1_8 or rs-mtdf/5 (rsseg prepare)."
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in --out (default: the latest run).")
    ] = False,
    stop_after: Annotated[
        int | None,
        typer.Option(help="Stop and save after this step (the schedule spans the run); --resume later."),
    ] = None,
    init_from: Annotated[
        Path | None,
        typer.Option(
            help="Start from an earlier run's checkpoint (last.pt: its model and EMA; best.pt: its weights) "
            "with a fresh schedule. Same model and bands; a changed class table keeps the rest. "
            "--resume of an existing run wins (that run already started from it)."
        ),
    ] = None,
    val: Annotated[
        bool | None,
        typer.Option(
            "--val/--no-val", help="Validate on the val split; --no-val keeps the last step's model."
        ),
    ] = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    seed: SeedOpt = None,
) -> None:
    """Train a segmentation model with a few labels (semi-supervised) and validate it."""
    from rsseg_cli.commands import train as command

    options = command.TrainOptions(
        data=data, out=out, split_file=split_file, split=split, resume=resume, stop_after=stop_after, init_from=init_from, config_files=config or [],
        overrides=set_ or [], seed=seed, labeled=labeled, method=method, device=device, precision=precision,
        validate=val,
    )  # fmt: skip
    command.run(options)


@app.command(short_help="Score a checkpoint on a split, or a mask over a scene.")
@guarded
def evaluate(
    checkpoint: CheckpointOpt = None,
    data: Annotated[Path | None, typer.Option(help="Dataset folder (default: the run's dataset).")] = None,
    split: Annotated[
        str | None, typer.Option(help=with_default("Split to evaluate: val or test.", E, "split"))
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Report folder.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the metrics JSON on stdout.")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    pred: Annotated[
        Path | None, typer.Option(help="Scene mode: a mask from `rsseg predict` to score.")
    ] = None,
    labels: Annotated[Path | None, typer.Option(help="Scene mode: label raster or vector labels.")] = None,
    label_field: LabelFieldOpt = None,
    reproject_labels: ReprojectOpt = None,
    all_touched: AllTouchedOpt = None,
    student: StudentOpt = None,
    protocol: Annotated[
        str | None,
        typer.Option(help="Score as a paper: rsseg, co2s, unimatch, dwl, rs-mtdf. [default: the run's]"),
    ] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Measure a checkpoint on a split, or a predicted mask against labels over a whole scene (--pred,
    --labels): OA, mIoU, per-class IoU/F1/precision/recall, FWIoU, kappa."""
    from rsseg_cli.commands import evaluate as command

    options = command.EvaluateOptions(
        checkpoint=checkpoint, data=data, out=out, overwrite=overwrite, as_json=json_, pred=pred, labels=labels,
        config_files=config or [], overrides=set_ or [], split=split, device=device, precision=precision,
        student=student, protocol=protocol, label_field=label_field, all_touched=all_touched, reproject_labels=reproject_labels,
    )  # fmt: skip
    command.run(options)


app.command(short_help="Predict whole scenes into COG class masks.")(guarded(predict))


@app.command(short_help="Generate a synthetic scene with its labels.")
@guarded
def sample(
    out_dir: Annotated[Path, typer.Argument(help="Folder for scene.tif and scene_labels.tif.")] = Path(
        "sample"
    ),
    size: Annotated[str, typer.Option(help="Scene size: '4096' or 'HEIGHTxWIDTH'.")] = "4096",
    band_count: Annotated[
        int | None, typer.Option(help="Number of bands (3: RGB, 4: +NIR, 6: +SWIR). [default: 4]")
    ] = None,
    bands: Annotated[int | None, typer.Option("--bands", hidden=True)] = None,  # deprecated: --band-count
    dtype: Annotated[str, typer.Option(help="uint8, uint16, int16 or float32.")] = "uint16",
    crs: Annotated[
        str, typer.Option(help="Any CRS GDAL understands: EPSG code, WKT or PROJ string.")
    ] = "EPSG:32633",
    resolution: Annotated[float | None, typer.Option(help="Pixel size in CRS units.")] = None,
    nodata: Annotated[float | None, typer.Option(help="Nodata value (default depends on dtype).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same scene.")] = 0,
    name: Annotated[str, typer.Option(help="File name stem.")] = "scene",
    polygons: Annotated[
        int, typer.Option(help="Also write N hand-digitized-like polygons (<name>_polygons.gpkg).")
    ] = 0,
) -> None:
    """Generate a deterministic synthetic scene with its label raster (7 land-cover classes)."""
    from rsseg_cli.commands import sample as command

    count = renamed("--bands", "--band-count", bands, band_count)
    options = command.SampleOptions(
        out_dir=out_dir, size=size, dtype=dtype, crs=crs, resolution=resolution, nodata=nodata, seed=seed,
        name=name, polygons=polygons, **({} if count is None else {"band_count": count}),
    )  # fmt: skip
    command.run(options)


@app.command(short_help="Stack single-band files into one scene (a VRT).")
@guarded
def stack(
    bands: Annotated[list[Path], typer.Argument(help="Single-band rasters of one grid, in band order.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The scene to write: a GDAL VRT (.vrt).")],
    names: Annotated[
        str | None, typer.Option(help="Band names, e.g. blue,green,red,nir. [default: from the file names]")
    ] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Stack single-band files of one footprint, such as Landsat bands, into one multi-band scene (a VRT)."""
    from rsseg_cli.commands import stack as command

    command.run(command.StackOptions(bands=bands, out=out, names=names, overwrite=overwrite))


@app.command(short_help="Run the main job end to end on a sample scene.")
@guarded
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for everything the demo writes.")] = Path(
        "demo"
    ),
    size: Annotated[int, typer.Option(help="Side of the generated sample scene in pixels.")] = 1536,
    steps: Annotated[int, typer.Option(help="Training steps.")] = 500,
    overwrite: Annotated[bool, typer.Option(help="Replace a previous demo in --out.")] = False,
) -> None:
    """Run the main job end to end on a generated sample scene: sample, tile, train, evaluate, predict."""
    from rsseg_cli.commands import demo as command

    command.run(command.DemoOptions(out=out, size=size, steps=steps, overwrite=overwrite))


@app.command(short_help="Polygons of a class mask, measured in metres.")
@guarded
def vectorize(
    mask: Annotated[
        Path, typer.Argument(help="Class mask from `rsseg predict` (uint8 class ids, nodata 255).")
    ],
    out: Annotated[Path | None, typer.Option("--out", "-o", help=VECTOR_OUT_HELP)] = None,
    probs: Annotated[
        Path | None,
        typer.Option(help="Probabilities from `rsseg predict --probs`: adds mean_prob (mean confidence)."),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    classes: ClassesOpt = None,
    sieve: SieveOpt = None,
    min_area: MinAreaOpt = None,
    simplify: SimplifyOpt = None,
    fill_holes: FillHolesOpt = None,
    window: Annotated[
        int | None,
        typer.Option(help=with_default("Window side in pixels; memory depends on it.", V, "window")),
    ] = None,
) -> None:
    """Polygons of a class mask: sieve, polygonize window by window, merge across seams, measure in metres.

    Areas and perimeters are in metres (geographic CRSs: a local equal-area projection; no CRS: pixels).
    """
    from rsseg_cli.commands import vectorize as command

    options = command.VectorizeOptions(
        mask=mask, out=out, probs=probs, config_files=config or [], overrides=set_ or [], classes=classes,
        sieve=sieve, min_area=min_area, simplify=simplify, fill_holes=fill_holes, window=window,
    )  # fmt: skip
    command.run(options)


app.command(short_help="Export a checkpoint as an ONNX model for onnxruntime and QGIS (Deepness).")(
    guarded(export)
)
app.command(short_help="A public benchmark folder as a dataset with its published splits.")(guarded(prepare))
app.command(short_help="Where to label next: uncertain, diverse squares.")(guarded(suggest))


def _on_sigterm(signum, frame) -> None:
    raise Interrupted(f"terminated by signal {signum}")


def main(argv: list[str] | None = None) -> None:
    """Entry point. User errors exit 2 with one paragraph, interruptions 130, internal errors 1 (traceback)."""
    setup_logging()
    signal.signal(signal.SIGTERM, _on_sigterm)
    # GDAL's block cache defaults to 5 % of RAM; windowed work needs little, and a bounded cache keeps peak
    # memory independent of the machine. Users can still set it.
    os.environ.setdefault("GDAL_CACHEMAX", "128")
    # Cloud inputs: no directory listing on open, retries, a bounded cache (each unless the user set it).
    apply_cloud_defaults()
    try:
        app(args=argv, prog_name="rsseg")
    except SystemExit:
        raise
    except Exception:
        traceback.print_exc()
        console.print(
            "[bold red]Internal error[/] (a bug in rsseg): please report it with the traceback above."
        )
        sys.exit(1)
