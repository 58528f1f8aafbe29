"""The `rsseg` command line: parse, build a configuration, call one function per command."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from rsseg_cli import __version__
from rsseg_cli.errors import Interrupted, UserError
from rsseg_cli.progress import console, setup_logging

log = logging.getLogger("rsseg")

app = typer.Typer(
    name="rsseg",
    help="Semi-supervised semantic segmentation of GeoTIFF scenes with vision foundation models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML configuration file.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config key, e.g. --set tile.chip_size=256 (repeatable)."),
]
SeedOpt = Annotated[int | None, typer.Option(help="Random seed (splits, sampling).")]


def guarded(command: Callable[..., None]) -> Callable[..., None]:
    """Turn a command's UserError into a one-paragraph message with exit code 2, and an interruption into
    exit code 130, inside typer's own handling (which keeps usage errors at exit code 2)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except UserError as exc:
            console.print(f"[bold red]Error:[/] {exc}", highlight=False, soft_wrap=True)
            raise SystemExit(exc.exit_code) from None
        except (KeyboardInterrupt, Interrupted):
            console.print(
                "[yellow]Interrupted[/]: outputs in progress were removed; nothing half-written is left."
            )
            raise SystemExit(130) from None

    return run


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


def _cli_overrides(**flags: Any) -> dict[str, Any]:
    """Nested config dict from dotted flag names, leaving out flags the user did not give."""
    tree: dict[str, Any] = {}
    for dotted, value in flags.items():
        if value is None:
            continue
        node = tree
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def _parse_bands(text: str | None) -> list[int | str] | None:
    if text is None:
        return None
    return [int(b) if b.strip().isdigit() else b.strip() for b in text.split(",") if b.strip()]


@app.command()
@guarded
def tile(
    scenes: Annotated[list[Path], typer.Argument(help="Scene rasters (GeoTIFF or any GDAL raster).")],
    labels: Annotated[
        list[Path] | None,
        typer.Option(
            "--labels", "-l", help="Labels for the scenes, in order: a class raster or vector file."
        ),
    ] = None,
    unlabeled: Annotated[
        list[Path] | None, typer.Option("--unlabeled", help="Scenes without labels (unlabeled chips).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to write.")] = Path("data"),
    config: ConfigOpt = None,
    set_: SetOpt = None,
    chip_size: Annotated[int | None, typer.Option(help="Chip side in pixels.")] = None,
    stride: Annotated[
        int | None, typer.Option(help="Step between chips (default chip size - overlap).")
    ] = None,
    overlap: Annotated[int | None, typer.Option(help="Overlap between neighbouring chips in pixels.")] = None,
    edge: Annotated[str | None, typer.Option(help="Edge policy: pad, snap or drop.")] = None,
    bands: Annotated[
        str | None, typer.Option(help="Bands in model order: '4,3,2' or 'red,green,blue'.")
    ] = None,
    max_nodata: Annotated[
        float | None, typer.Option(help="Skip chips with more invalid pixels (0-1).")
    ] = None,
    label_field: Annotated[str | None, typer.Option(help="Vector labels: the class field.")] = None,
    all_touched: Annotated[bool | None, typer.Option(help="Vector labels: burn all touched pixels.")] = None,
    reproject_labels: Annotated[
        bool | None, typer.Option(help="Resample labels on another grid (nearest) instead of refusing.")
    ] = None,
    pixel_space: Annotated[
        bool | None, typer.Option(help="Accept scenes without a CRS (pixel coordinates).")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Reader/writer threads.")] = None,
    seed: SeedOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing dataset in --out.")] = False,
) -> None:
    """Cut scenes into georeferenced training chips with a manifest, band statistics and a leak-free split."""
    from rsseg_cli.config import load_config
    from rsseg_cli.data.tiling import tile_scenes
    from rsseg_cli.report import print_tile_summary

    cfg = load_config(
        config,
        set_,
        _cli_overrides(
            seed=seed,
            tile__chip_size=chip_size,
            tile__stride=stride,
            tile__overlap=overlap,
            tile__edge=edge,
            tile__bands=_parse_bands(bands),
            tile__max_nodata=max_nodata,
            tile__workers=workers,
            tile__pixel_space=pixel_space,
            tile__labels__field=label_field,
            tile__labels__all_touched=all_touched,
            tile__labels__reproject=reproject_labels,
        ),
    )
    result = tile_scenes(scenes, labels or [], out, cfg, unlabeled=unlabeled or [], overwrite=overwrite)
    print_tile_summary(result)


@app.command()
@guarded
def train(
    data: Annotated[Path, typer.Option(help="Dataset folder written by `rsseg tile`.")] = Path("data"),
    labeled: Annotated[
        str | None, typer.Option(help="Labeled share of the training chips: 1/8, 12.5%, 0.125, or a count.")
    ] = None,
    method: Annotated[
        str | None, typer.Option(help="supervised, fixmatch, unimatch-v2, rs-mtdf or co2s.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run folder (default runs/<method>-...).")
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    split_file: Annotated[
        Path | None, typer.Option(help="Reuse a labeled.txt instead of drawing one.")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in --out (default: the latest run).")
    ] = False,
    stop_after: Annotated[
        int | None,
        typer.Option(
            help="Stop and save after this step (the schedule still spans the whole run); --resume later."
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N.")] = None,
    precision: Annotated[str | None, typer.Option(help="auto, fp32, bf16 or fp16.")] = None,
    seed: SeedOpt = None,
) -> None:
    """Train a segmentation model with a few labels (semi-supervised) and validate it."""
    from rsseg_cli.config import load_config
    from rsseg_cli.train import run_training

    cfg = load_config(
        config,
        set_,
        _cli_overrides(
            seed=seed,
            train__labeled=labeled,
            train__method=method,
            train__device=device,
            train__precision=precision,
        ),
    )
    run_training(data, cfg, out=out, split_file=split_file, resume=resume, stop_after=stop_after)


@app.command()
@guarded
def evaluate(
    checkpoint: Annotated[
        Path | None, typer.Option(help="Default: the latest run's best checkpoint.")
    ] = None,
    data: Annotated[Path | None, typer.Option(help="Dataset folder (default: the run's dataset).")] = None,
    split: Annotated[str | None, typer.Option(help="Split to evaluate: val or test (default: val).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Report folder.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the metrics JSON on stdout.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    precision: Annotated[str, typer.Option(help="auto, fp32, bf16 or fp16.")] = "auto",
    pred: Annotated[
        Path | None,
        typer.Option(help="Scene mode: a predicted class mask (rsseg predict) to score against --labels."),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(help="Scene mode: label raster on the mask's grid, or vector labels (any CRS)."),
    ] = None,
    label_field: Annotated[
        str | None, typer.Option(help="Scene mode: the vector labels' class field (default: class).")
    ] = None,
    reproject_labels: Annotated[
        bool, typer.Option(help="Scene mode: resample a label raster on another grid (nearest).")
    ] = False,
    all_touched: Annotated[
        bool, typer.Option(help="Scene mode: vector labels burn every pixel a polygon touches.")
    ] = False,
    student: Annotated[
        str | None,
        typer.Option(help="Co2S checkpoints: the prediction reported in full (clip, dinov3 or ensemble)."),
    ] = None,
) -> None:
    """Measure a checkpoint on a split, or a predicted mask against labels over a whole scene (--pred,
    --labels): OA, mIoU, per-class IoU/F1/precision/recall, FWIoU, kappa."""
    scene_only = {
        "--labels": labels is not None,
        "--label-field": label_field is not None,
        "--reproject-labels": reproject_labels,
        "--all-touched": all_touched,
    }
    if pred is not None:
        chip_only = {"--checkpoint": checkpoint, "--data": data, "--split": split, "--student": student}
        mixed = [name for name, value in chip_only.items() if value is not None]
        if mixed:
            raise UserError(
                f"{', '.join(mixed)} belong to checkpoint evaluation on dataset chips and do not apply with "
                "--pred, which scores a predicted mask against --labels. Use either --pred MASK --labels LABELS, or "
                "--checkpoint/--data/--split without --pred."
            )
        if labels is None:
            raise UserError(
                f"--pred {pred} needs the ground truth to compare with: add --labels LABELS.tif or "
                "--labels LABELS.gpkg (a label raster on the mask's grid, or vector labels)."
            )
        from rsseg_cli.evaluation.scene import evaluate_scene

        evaluate_scene(
            pred,
            labels,
            label_field=label_field,
            reproject=reproject_labels,
            all_touched=all_touched,
            out=out,
            as_json=json_,
        )
        return
    given = [name for name, on in scene_only.items() if on]
    if given:
        raise UserError(
            f"{', '.join(given)} apply to scene evaluation only: add --pred MASK.tif (a mask written by "
            "`rsseg predict`) to score it against the labels."
        )
    from rsseg_cli.evaluate_cmd import run_evaluate

    run_evaluate(checkpoint, data, split or "val", out, json_, device, precision, student)


@app.command()
@guarded
def predict(
    scenes: Annotated[list[str], typer.Argument(help="GeoTIFF scenes or quoted globs ('tiles/*.tif').")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Class mask (.tif, a COG) or, for several scenes, a folder.")
    ],
    checkpoint: Annotated[
        Path | None, typer.Option(help="Default: the latest run's best checkpoint.")
    ] = None,
    vector: Annotated[
        Path | None,
        typer.Option(
            help="Also write polygons: FILE.gpkg (raster CRS), FILE.geojson (EPSG:4326) or a folder."
        ),
    ] = None,
    probs: Annotated[
        Path | None,
        typer.Option(
            help="Also write per-class probabilities (uint8, p x 255) and a confidence band: FILE.tif or a folder."
        ),
    ] = None,
    quicklook: Annotated[
        Path | None,
        typer.Option(help="Also write a PNG of the scene beside its predicted classes (or a folder)."),
    ] = None,
    overlap: Annotated[float, typer.Option(help="Window overlap, 0 to <1.")] = 0.25,
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass.")] = 8,
    tta: Annotated[
        str, typer.Option(help="Test-time augmentation: none, flip (4 views) or d4 (8 views).")
    ] = "none",
    window: Annotated[
        int | None, typer.Option(help="Window size in pixels (default: the training crop).")
    ] = None,
    bands: Annotated[
        str | None,
        typer.Option(help="Bands to read, e.g. '3,2,1' or 'red,green,blue' (default: as in training)."),
    ] = None,
    compress: Annotated[str, typer.Option(help="COG compression: deflate, zstd or lzw.")] = "deflate",
    sieve: Annotated[
        int, typer.Option(help="With --vector: merge regions smaller than this many pixels (0: off).")
    ] = 8,
    min_area: Annotated[
        float, typer.Option(help="With --vector: drop polygons smaller than this (m²).")
    ] = 0.0,
    simplify: Annotated[float, typer.Option(help="With --vector: simplification tolerance (m).")] = 0.0,
    fill_holes: Annotated[
        float, typer.Option(help="With --vector: fill holes smaller than this (m²).")
    ] = 0.0,
    classes: Annotated[
        str | None, typer.Option(help="With --vector: only these classes, by name or id ('water,building').")
    ] = None,
    pixel_space: Annotated[
        bool, typer.Option(help="Accept scenes without a CRS (outputs are then in pixel coordinates).")
    ] = False,
    student: Annotated[
        str | None,
        typer.Option(
            help="Co2S checkpoints: clip, dinov3 or ensemble (average of both); default the one that "
            "validated best."
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    precision: Annotated[str, typer.Option(help="auto (bf16/fp16 on GPU), fp32, bf16 or fp16.")] = "auto",
) -> None:
    """Predict whole scenes with streaming sliding windows into COG class masks (and probabilities, polygons)."""
    from rsseg_cli.predict_cmd import PredictOptions, run_predict

    opts = PredictOptions(
        overlap=overlap,
        batch_size=batch_size,
        tta=tta,
        window=window,
        bands=_parse_bands(bands),
        pixel_space=pixel_space,
        compress=compress,
        student=student,
        vector=dict(
            sieve=sieve,
            min_area_m2=min_area,
            simplify=simplify,
            fill_holes_m2=fill_holes,
            classes=[c.strip() for c in classes.split(",") if c.strip()] if classes else None,
        )
        if vector
        else {},
    )
    run_predict(
        scenes,
        out,
        checkpoint,
        probs,
        vector,
        opts,
        quicklook=quicklook,
        device_name=device,
        precision_name=precision,
    )


@app.command()
@guarded
def sample(
    out_dir: Annotated[Path, typer.Argument(help="Folder for scene.tif and scene_labels.tif.")] = Path(
        "sample"
    ),
    size: Annotated[str, typer.Option(help="Scene size: '4096' or 'HEIGHTxWIDTH'.")] = "4096",
    bands: Annotated[int, typer.Option(help="Number of bands (3: RGB, 4: +NIR, 6: +SWIR).")] = 4,
    dtype: Annotated[str, typer.Option(help="uint8, uint16, int16 or float32.")] = "uint16",
    crs: Annotated[
        str, typer.Option(help="Any CRS GDAL understands: EPSG code, WKT or PROJ string.")
    ] = "EPSG:32633",
    resolution: Annotated[float | None, typer.Option(help="Pixel size in CRS units.")] = None,
    nodata: Annotated[float | None, typer.Option(help="Nodata value (default depends on dtype).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same scene.")] = 0,
    name: Annotated[str, typer.Option(help="File name stem.")] = "scene",
) -> None:
    """Generate a deterministic synthetic scene with its label raster (7 land-cover classes)."""
    from rsseg_cli.sample_cmd import run_sample

    run_sample(out_dir, size, bands, dtype, crs, resolution, nodata, seed, name)


@app.command()
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
    from rsseg_cli.demo import run_demo

    run_demo(out, size, overwrite, steps)


@app.command()
@guarded
def vectorize(
    mask: Annotated[
        Path, typer.Argument(help="Class mask from `rsseg predict` (uint8 class ids, nodata 255).")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Polygons: FILE.gpkg (raster CRS, layer 'polygons') or FILE.geojson / FILE.json (EPSG:4326). "
            "An existing file is replaced. Default: the mask's name with .gpkg.",
        ),
    ] = None,
    probs: Annotated[
        Path | None,
        typer.Option(help="Probabilities from `rsseg predict --probs`: adds mean_prob (mean confidence)."),
    ] = None,
    classes: Annotated[
        str | None, typer.Option(help="Only these classes, by name or id: 'water,building' or '1,4'.")
    ] = None,
    sieve: Annotated[
        int,
        typer.Option(
            help="Merge regions smaller than this many pixels into their largest neighbour (0: off)."
        ),
    ] = 8,
    min_area: Annotated[float, typer.Option(help="Drop polygons smaller than this, in m².")] = 0.0,
    simplify: Annotated[
        float, typer.Option(help="Topology-preserving simplification tolerance in metres (0: pixel edges).")
    ] = 0.0,
    fill_holes: Annotated[float, typer.Option(help="Fill holes smaller than this, in m².")] = 0.0,
    window: Annotated[
        int, typer.Option(help="Window side in pixels; memory depends on it, not on the scene.")
    ] = 4096,
) -> None:
    """Polygons of a class mask: sieve, polygonize window by window, merge across seams, measure in metres.

    Areas and perimeters are in metres (geographic CRSs: a local equal-area projection; no CRS: pixels).
    """
    from rsseg_cli.vectorize import print_vectorize_summary, vectorize_mask

    summary = vectorize_mask(
        mask,
        out if out is not None else mask.with_suffix(".gpkg"),
        probs=probs,
        classes=[c.strip() for c in classes.split(",")] if classes is not None else None,
        sieve=sieve,
        min_area_m2=min_area,
        simplify=simplify,
        fill_holes_m2=fill_holes,
        window=window,
    )
    print_vectorize_summary(summary)


def _on_sigterm(signum, frame) -> None:
    raise Interrupted(f"terminated by signal {signum}")


def main(argv: list[str] | None = None) -> None:
    """Entry point. User errors exit 2 with one paragraph, interruptions 130, internal errors 1 (traceback)."""
    setup_logging()
    signal.signal(signal.SIGTERM, _on_sigterm)
    # GDAL's block cache defaults to 5 % of RAM; windowed work needs little, and a bounded cache keeps peak
    # memory independent of the machine. Users can still set it.
    os.environ.setdefault("GDAL_CACHEMAX", "128")
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
