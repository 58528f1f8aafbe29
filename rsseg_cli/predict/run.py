"""Scenes -> Cloud-Optimized GeoTIFF class masks (and probabilities, polygons, quick-looks).

Per scene: a loader thread reads and normalizes windows, the model predicts them in batches, the stream
blends them, a writer thread writes finished block rows to a staging GeoTIFF; then the staging file becomes
a COG (and polygons), and every output is renamed into place only when all of them are complete.
`rsseg predict` and `rsseg demo` call predict_scenes, then print_predict_summary.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import rasterio
from rasterio.windows import Window
from rich.table import Table

from rsseg_cli.atomic import atomic_file, partial_name, remove_stale_partials
from rsseg_cli.config import PredictConfig
from rsseg_cli.console_tables import keep_headers
from rsseg_cli.engine.precision import resolve_device, resolve_precision
from rsseg_cli.errors import UserError
from rsseg_cli.geo.class_raster import class_sidecar_path, write_class_sidecar
from rsseg_cli.geo.raster import SceneInfo, read_window
from rsseg_cli.predict.cog import write_cog
from rsseg_cli.predict.guard import check_window, output_folders
from rsseg_cli.predict.inputs import SceneJob, expand_scenes, match_scene, plan_jobs
from rsseg_cli.predict.model import InferenceModel, load_inference_model
from rsseg_cli.predict.quicklook import quicklook_bands
from rsseg_cli.predict.stream import StreamPredictor
from rsseg_cli.predict.writer import OutputPaths, PredictionWriter
from rsseg_cli.progress import console, progress
from rsseg_cli.runs import default_checkpoint

log = logging.getLogger("rsseg")


@dataclass
class SceneResult:
    job: SceneJob
    height: int
    width: int
    windows: int
    seconds: float
    model_seconds: float
    class_pixels: dict[str, int]
    invalid_pixels: int
    polygons: int | None = None

    @property
    def megapixels_per_s(self) -> float:
        return self.height * self.width / 1e6 / max(self.seconds, 1e-9)


@contextlib.contextmanager
def _scratch(path: Path) -> Iterator[Path]:
    """A staging file beside `path`, always removed (stale ones from killed runs are removed first)."""
    staging = path.with_name(f"{path.name}.staging")
    remove_stale_partials(staging)
    tmp = partial_name(staging)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}.aux.xml").unlink(missing_ok=True)


def predict_scene(im: InferenceModel, job: SceneJob, scene: SceneInfo, opts: PredictConfig) -> SceneResult:
    window = opts.window or im.window
    stream = StreamPredictor(
        im.predictor(opts.tta),
        prepare=lambda x: x,  # windows arrive normalized from the loader thread
        num_classes=im.num_classes,
        window=window,
        overlap=opts.overlap_fraction,
        batch_size=opts.batch_size,
    )
    plan = stream.plan(scene.height, scene.width)
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        # Final outputs: temp names now, renamed together when the block ends without error.
        mask_tmp = stack.enter_context(atomic_file(job.mask))
        # The class names for GIS (GDAL category names, attribute table): a sidecar renamed with the mask.
        mask_aux_tmp = stack.enter_context(atomic_file(class_sidecar_path(job.mask)))
        probs_tmp = stack.enter_context(atomic_file(job.probs)) if job.probs else None
        vector_tmp = stack.enter_context(atomic_file(job.vector)) if job.vector else None
        quicklook_tmp = stack.enter_context(atomic_file(job.quicklook)) if job.quicklook else None
        staging = OutputPaths(
            mask=stack.enter_context(_scratch(job.mask)),
            probs=stack.enter_context(_scratch(job.probs)) if job.probs else None,
            confidence=stack.enter_context(_scratch(job.vector)) if job.vector and not job.probs else None,
        )
        src = stack.enter_context(rasterio.open(scene.path))

        def read(row: int, col: int, size: int):
            data, valid = read_window(src, scene, Window(col, row, size, size))
            return im.prepare(data, valid), valid

        writer = PredictionWriter(scene, im.classes, staging)
        try:
            with progress(f"predict {scene.name}", plan.windows_total, "windows") as bar:
                stream.run(read, scene.height, scene.width, writer, on_window=bar.advance)
        except BaseException:
            writer.close(abort=True)
            raise
        writer.close()
        write_cog(staging.mask, mask_tmp, "classes", opts.compress)
        write_class_sidecar(mask_aux_tmp, im.classes)
        if job.probs:
            write_cog(staging.probs, probs_tmp, "continuous", opts.compress)
        polygons = None
        if job.vector:
            from rsseg_cli.vectorize import vectorize_mask

            summary = vectorize_mask(
                staging.mask,
                vector_tmp,
                probs=staging.probs or staging.confidence,
                shown_as=job.vector,
                **opts.vector.vectorize_kwargs(),
            )
            polygons = summary.polygons
        if job.quicklook:
            from rsseg_cli.predict.quicklook import write_quicklook

            bands = quicklook_bands(scene, im.checkpoint.band_map, opts.quicklook_bands)
            declared = scene.nodata if scene.nodata_source == "declared" else []
            nodata = {b: v for b, v in zip(scene.band_indexes, declared) if v is not None}
            title = f"{scene.name} - {im.path.name}"
            write_quicklook(scene.path, mask_tmp, quicklook_tmp, bands, title=title, nodata=nodata)
    seconds = time.perf_counter() - t0
    if writer.invalid_pixels == scene.height * scene.width:
        log.warning("%s has no valid pixel: its mask is all nodata (255).", scene.path)
    return SceneResult(
        job=job,
        height=scene.height,
        width=scene.width,
        windows=plan.windows_total,
        seconds=seconds,
        model_seconds=stream.model_seconds,
        class_pixels={c["name"]: int(n) for c, n in zip(im.classes, writer.class_pixels)},
        invalid_pixels=writer.invalid_pixels,
        polygons=polygons,
    )


def predict_scenes(
    scenes: list[str],
    out: Path,
    checkpoint: Path | None = None,
    probs: Path | None = None,
    vector: Path | None = None,
    settings: PredictConfig | None = None,
    quicklook: Path | None = None,
    overwrite: bool = False,
) -> list[SceneResult]:
    """Predict `scenes` (paths or globs) into `out` (a mask file, or a folder for several scenes) with
    `checkpoint` (default: the latest run's best), and the optional outputs; `settings` is the validated
    `predict` section of the configuration. Existing outputs are refused, before any work, unless
    `overwrite`."""
    opts = settings if settings is not None else PredictConfig()
    paths = expand_scenes(scenes)
    if not paths:
        raise UserError(
            "No scene was given. Pass one or more GeoTIFFs (or a quoted glob such as 'tiles/*.tif')."
        )
    jobs = plan_jobs(paths, Path(out), probs, vector, quicklook, overwrite=overwrite)
    path = default_checkpoint(checkpoint)
    device = resolve_device(opts.device)
    precision = resolve_precision(opts.precision, device)
    im = load_inference_model(path, device, precision, opts.student)
    check_window(opts.window or im.window, im.model, im.window, opts.batch_size, len(im.checkpoint.bands))
    if im.checkpoint.best.get("validated") is False:
        log.warning("%s was trained without validation (--no-val): its quality was never measured", path)
    # Check every scene before predicting any, so a bad third scene does not fail after an hour.
    scene_infos = [
        match_scene(j.scene, im.checkpoint, opts.bands, opts.pixel_space, opts.nodata) for j in jobs
    ]
    for job, scene in zip(jobs, scene_infos):
        if job.quicklook:  # a wrong --quicklook-bands fails now, not after the first scene
            quicklook_bands(scene, im.checkpoint.band_map, opts.quicklook_bands)
    if vector is not None:
        from rsseg_cli.vectorize import check_vectorize_options

        check_vectorize_options(im.classes, **opts.vector.vectorize_kwargs())
    log.info(
        "predicting %d scene(s) with %s (%s, %s on %s, window %d, overlap %.2f, tta %s)",
        len(jobs),
        path,
        im.checkpoint.method,
        precision,
        device,
        opts.window or im.window,
        opts.overlap_fraction,
        opts.tta,
    )
    results = []
    # One run at a time per output folder; temporaries that killed runs left there are swept first.
    with output_folders(p.parent for job in jobs for p in job.outputs):
        for job, scene in zip(jobs, scene_infos):
            results.append(predict_scene(im, job, scene, opts))
    return results


def print_predict_summary(results: list[SceneResult]) -> None:
    """A table of the scenes (size, windows, seconds, MP/s, model share), then each one's files and class
    shares. The files are lines under the table, not a column: paths would squeeze an 80-column table."""
    table = Table(title="rsseg predict", show_lines=False)
    table.add_column("scene", overflow="fold")
    for col in ("size", "windows", "s", "MP/s", "model %"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in results:
        table.add_row(
            r.job.scene.name,
            f"{r.width} x {r.height}",
            str(r.windows),
            f"{r.seconds:.1f}",
            f"{r.megapixels_per_s:.2f}",
            f"{100 * r.model_seconds / max(r.seconds, 1e-9):.0f}",
        )
    console.print(keep_headers(table))
    for r in results:
        polygons = f" ({r.polygons} polygons)" if r.polygons is not None else ""
        files = ", ".join(str(p) for p in r.job.outputs)
        console.print(f"{r.job.scene.name} -> {files}{polygons}", highlight=False, soft_wrap=True)
    for r in results:
        total = sum(r.class_pixels.values())
        if total:
            shares = ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in r.class_pixels.items() if v)
            log.info(
                "%s: %s%s",
                r.job.mask,
                shares,
                f"; {r.invalid_pixels} nodata pixels" if r.invalid_pixels else "",
            )
