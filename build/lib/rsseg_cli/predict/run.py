"""Scenes -> Cloud-Optimized GeoTIFF class masks (and probabilities, polygons, quick-looks).

Per scene: a loader thread reads and normalizes windows, the model predicts them in batches, the stream
blends them, a writer thread writes finished block rows to a staging GeoTIFF; then the staging file becomes
a COG (and polygons), and every output is renamed into place only when all of them are complete.
`rsseg predict` and `rsseg demo` call predict_scenes, then print_predict_summary. Into a folder, the scenes
are a batch (predict.batch: manifest, skips, failed scenes recorded) with a mosaic (predict.mosaic).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from rich.table import Table

from rsseg_cli.config import PredictConfig
from rsseg_cli.console_tables import keep_headers
from rsseg_cli.engine import distributed
from rsseg_cli.engine.precision import resolve_precision
from rsseg_cli.errors import Interrupted, UserError
from rsseg_cli.geo.raster import SceneInfo
from rsseg_cli.predict.across import join, portable, run_across
from rsseg_cli.predict.batch import (
    MANIFEST_NAME,
    Decision,
    Manifest,
    ScenesFailed,
    Stopwatch,
    as_source,
    decide,
    ends_batch,
    error_text,
    is_bad_input,
    scene_label,
)
from rsseg_cli.predict.guard import check_window, output_folders
from rsseg_cli.predict.inputs import SceneJob, expand_scenes, match_scene, plan_jobs
from rsseg_cli.predict.inputs import _is_folder as is_folder
from rsseg_cli.predict.model import InferenceModel, load_inference_model
from rsseg_cli.predict.mosaic import (
    FOOTPRINTS_NAME,
    Footprint,
    raster_outline,
    write_footprints,
    write_mosaic,
)
from rsseg_cli.predict.quicklook import quicklook_bands
from rsseg_cli.predict.scene import SceneResult, predict_scene
from rsseg_cli.progress import console
from rsseg_cli.runs import default_checkpoint

log = logging.getLogger("rsseg")


def _not_predicted(
    job: SceneJob,
    status: str,
    reason: str,
    seconds: float = 0.0,
    class_pixels: dict[str, int] | None = None,
    error: BaseException | None = None,
) -> SceneResult:
    return SceneResult(
        job, 0, 0, 0, seconds, 0.0, class_pixels or {}, 0, status=status, reason=reason, error=error
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
    scenes_from: Path | None = None,
    assets: str | None = None,
    mosaic_cog: bool = False,
) -> list[SceneResult]:
    """Predict `scenes` (paths or globs) into `out` (a mask file, or a folder for several scenes) with
    `checkpoint` (default: the latest run's best), and the optional outputs; `settings` is the validated
    `predict` section of the configuration.

    A mask file: an existing output is refused before any work unless `overwrite`, and any error ends the
    run. A folder (a batch): scenes whose outputs are complete and newer are skipped unless `overwrite`, a
    failing scene is recorded in the manifest and the others go on (the results say which failed; the
    caller decides the exit code), and with 2+ masks the mosaic and footprints are written."""
    opts = settings if settings is not None else PredictConfig()
    dist, device = join(opts)  # one process, or this rank's share under torchrun
    try:
        return _predict(scenes, Path(out), checkpoint, probs, vector, opts, quicklook, overwrite, scenes_from,
                        assets, mosaic_cog, dist, device)  # fmt: skip
    finally:
        if dist.enabled:
            distributed.teardown()


def _predict(scenes, out, checkpoint, probs, vector, opts, quicklook, overwrite, scenes_from, assets,
             mosaic_cog, dist, device) -> list[SceneResult]:  # fmt: skip
    sources = expand_scenes(scenes, scenes_from=scenes_from, assets=assets)
    if not sources:
        raise UserError(
            "No scene was given. Pass one or more GeoTIFFs (or a quoted glob such as 'tiles/*.tif')."
        )
    batch = is_folder(out)
    if mosaic_cog and not batch and dist.main:
        log.warning("--mosaic-cog is for an output folder of several scenes: --out %s is one mask.", out)
    # A folder's existing outputs are decided scene by scene (skip or redo) below, not refused.
    jobs = plan_jobs(sources, out, probs, vector, quicklook, overwrite=overwrite or batch)
    path = default_checkpoint(checkpoint)
    stamp = {"rank": dist.rank, "world": dist.world} if dist.enabled else None
    manifest = Manifest(out / MANIFEST_NAME, path.resolve(), stamp) if batch else None
    decisions = [decide(j, manifest, overwrite) if manifest else Decision(False, "") for j in jobs]
    decisions = distributed.broadcast_object(decisions)  # every rank acts on rank 0's reading of the folder
    for job, d in zip(jobs, decisions):
        if d.reason and not d.skip and dist.main:
            log.info("%s: predicting again: %s", scene_label(job.scene), d.reason)
    todo = [j for j, d in zip(jobs, decisions) if not d.skip]
    im = _load_model(path, opts, vector is not None, device) if todo else None
    checked = _check_scenes(im, todo, opts, isolate=batch) if im is not None and dist.main else {}
    checked = distributed.broadcast_object({k: portable(v) if isinstance(v, BaseException) else v
                                            for k, v in checked.items()})  # fmt: skip
    results: list[SceneResult] = []
    # One run at a time per output folder (rank 0 holds the locks for all ranks); temporaries that killed
    # runs left there are swept first, before any rank writes.
    folders = [*(p.parent for job in jobs for p in job.outputs), *([out] if batch else [])]
    with _folders(folders, dist):
        ready = []
        for job, d in zip(jobs, decisions):
            if d.skip:
                shares = (manifest.last_for(job.mask) or {}).get("class_pixels") or {}
                results.append(_not_predicted(job, "skipped", d.reason, class_pixels=shares))
                if dist.main:
                    manifest.append(job, "skipped", reason=d.reason, class_pixels=shares)
                continue
            scene = checked[job.mask]
            if isinstance(scene, BaseException):
                results.append(_not_predicted(job, "failed", error_text(scene), error=scene))
                if dist.main:
                    manifest.append(job, "failed", error=error_text(scene))
                    log.warning("%s failed: %s", scene_label(job.scene), error_text(scene))
                continue
            if not dist.enabled:
                results.append(_predict_recorded(im, job, scene, opts, manifest))
            else:
                results.append(None)  # filled from the ranks' work below
                ready.append((len(results) - 1, job, scene))
        if ready:
            done = run_across(im, [j for _, j, _ in ready], [s for _, _, s in ready], opts, manifest, dist,
                              _predict_recorded)  # fmt: skip
            if done is None:
                return []  # not rank 0: rank 0 reports
            for (slot, _, _), result in zip(ready, done):
                results[slot] = result
        if batch and len(jobs) > 1 and dist.main:
            try:
                _write_mosaic(out, results, mosaic_cog, opts.compress)
            except (KeyboardInterrupt, Interrupted):
                raise
            except Exception as exc:  # the scenes are done and recorded: a mosaic problem must not hide that
                log.warning("the mosaic of %s could not be written: %s", out, error_text(exc))
    return results if dist.main else []


@contextlib.contextmanager
def _folders(folders: list[Path], dist) -> Iterator[None]:
    """output_folders on rank 0 (locks, sweep) while the other ranks wait; its refusal stops every rank."""
    with contextlib.ExitStack() as stack:
        problem = None
        if dist.main:
            try:
                stack.enter_context(output_folders(folders))
            except UserError as exc:
                problem = exc
        problem = distributed.broadcast_object(problem)
        if problem is not None:
            raise problem
        yield


def _load_model(path: Path, opts: PredictConfig, vector: bool, device) -> InferenceModel:
    precision = resolve_precision(opts.precision, device)
    im = load_inference_model(path, device, precision, opts.student)
    check_window(opts.window or im.window, im.model, im.window, opts.batch_size, len(im.checkpoint.bands))
    if im.checkpoint.best.get("validated") is False:
        log.warning("%s was trained without validation (--no-val): its quality was never measured", path)
    if vector:
        from rsseg_cli.vectorize import check_vectorize_options

        check_vectorize_options(im.classes, **opts.vector.vectorize_kwargs())
    log.info(
        "predicting with %s (%s, %s on %s, window %d, overlap %.2f, tta %s)",
        path,
        im.checkpoint.method,
        precision,
        device,
        opts.window or im.window,
        opts.overlap_fraction,
        opts.tta,
    )
    return im


def _check_scenes(
    im: InferenceModel, jobs: list[SceneJob], opts: PredictConfig, isolate: bool
) -> dict[Path, SceneInfo | BaseException]:
    """Check every scene before predicting any, so a bad third scene does not fail after an hour; in a
    batch (`isolate`) a scene that fails the check is a failed scene, not the end of the batch."""
    checked: dict[Path, SceneInfo | BaseException] = {}
    for job in jobs:
        try:
            scene = match_scene(job.scene, im.checkpoint, opts.bands, opts.pixel_space, opts.nodata)
            if job.quicklook:  # a wrong --quicklook-bands fails now, not after the first scene
                quicklook_bands(scene, im.checkpoint.band_map, opts.quicklook_bands)
            checked[job.mask] = scene
        except Exception as exc:
            if not isolate or ends_batch(exc):
                raise
            checked[job.mask] = exc
    return checked


def _predict_recorded(
    im: InferenceModel, job: SceneJob, scene: SceneInfo, opts: PredictConfig, manifest: Manifest | None
) -> SceneResult:
    """predict_scene, and in a batch its manifest line; a failure of the scene is its result there."""
    if manifest is None:
        return predict_scene(im, job, scene, opts)
    clock = Stopwatch()
    try:
        result = predict_scene(im, job, scene, opts)
    except (KeyboardInterrupt, Interrupted):
        manifest.append(job, "interrupted", clock.seconds, error="interrupted")
        raise
    except Exception as exc:
        manifest.append(job, "failed", clock.seconds, error=error_text(exc))
        if ends_batch(exc):
            raise
        log.warning("%s failed: %s", scene_label(job.scene), error_text(exc))
        return _not_predicted(job, "failed", error_text(exc), clock.seconds, error=exc)
    manifest.append(job, "done", result.seconds, class_pixels=result.class_pixels)
    return result


def _write_mosaic(out: Path, results: list[SceneResult], cog: bool, compress: str) -> None:
    masks = [r.job.mask for r in results if r.status in ("done", "skipped")]
    write_mosaic(out, masks, cog=cog, compress=compress)
    rows = []
    for r in results:
        outline = raster_outline(r.job.mask if r.status != "failed" else as_source(r.job.scene).uri)
        crs, corners = outline if outline is not None else (None, None)
        rows.append(
            Footprint(
                scene=as_source(r.job.scene).given,
                status=r.status,
                mask=r.job.mask if r.status != "failed" else None,
                seconds=r.seconds,
                error=r.reason if r.status == "failed" else None,
                class_pixels=r.class_pixels,
                crs=crs,
                corners=corners,
            )
        )
    names = list(dict.fromkeys(name for r in results for name in r.class_pixels))
    write_footprints(out / FOOTPRINTS_NAME, rows, names)


def print_predict_summary(results: list[SceneResult]) -> None:
    """A table of the predicted scenes (size, windows, seconds, MP/s, model share), then each one's files and
    class shares, then the skipped and failed scenes with their reason. The files are lines under the table,
    not a column: paths would squeeze an 80-column table."""
    done = [r for r in results if r.status == "done"]
    if done:
        table = Table(title="rsseg predict", show_lines=False)
        table.add_column("scene", overflow="fold")
        for col in ("size", "windows", "s", "MP/s", "model %"):
            table.add_column(col, justify="right", no_wrap=True)
        for r in done:
            table.add_row(
                scene_label(r.job.scene),
                f"{r.width} x {r.height}",
                str(r.windows),
                f"{r.seconds:.1f}",
                f"{r.megapixels_per_s:.2f}",
                f"{100 * r.model_seconds / max(r.seconds, 1e-9):.0f}",
            )
        console.print(keep_headers(table))
    others = [r for r in results if r.status != "done"]
    if others:
        table = Table(title="not predicted", show_lines=False)
        table.add_column("scene", overflow="fold")
        table.add_column("status", no_wrap=True)
        table.add_column("reason", overflow="fold")
        for r in others:
            table.add_row(scene_label(r.job.scene), r.status, r.reason)
        console.print(keep_headers(table))
    for r in done:
        polygons = f" ({r.polygons} polygons)" if r.polygons is not None else ""
        files = ", ".join(str(p) for p in r.job.outputs)
        console.print(f"{scene_label(r.job.scene)} -> {files}{polygons}", highlight=False, soft_wrap=True)
    for r in done:
        total = sum(r.class_pixels.values())
        if total:
            shares = ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in r.class_pixels.items() if v)
            log.info(
                "%s: %s%s",
                r.job.mask,
                shares,
                f"; {r.invalid_pixels} nodata pixels" if r.invalid_pixels else "",
            )


def raise_for_failures(results: list[SceneResult], out: Path) -> None:
    """After the summary: exit non-zero when any scene of a batch failed (ScenesFailed says 2 or 1)."""
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise ScenesFailed(
            [(scene_label(r.job.scene), r.reason) for r in failed],
            len(results),
            Path(out) / MANIFEST_NAME,
            bad_input=all(r.error is not None and is_bad_input(r.error) for r in failed),
        )
