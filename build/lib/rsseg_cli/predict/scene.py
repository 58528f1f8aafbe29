"""One scene -> its outputs: the stream writes staging GeoTIFFs, which become the COGs (and polygons, a
quick-look), renamed into place only when all of them are complete.

A scene shared across processes (predict.across) is predicted a run of column bands per process
(`predict_bands`: staging files that hold only those columns, kept for the assembly), then one process copies
the parts' columns into one staging file per output and finishes as a whole scene does (`finish_from_parts`):
each band is computed exactly as in a single-process run, so the outputs are the same bytes.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.windows import Window

from rsseg_cli.atomic import atomic_file, partial_name, remove_stale_partials
from rsseg_cli.config import PredictConfig
from rsseg_cli.geo.class_raster import CONFIDENCE_BAND, class_sidecar_path, write_class_sidecar
from rsseg_cli.geo.raster import SceneInfo, read_window
from rsseg_cli.predict.cog import write_cog
from rsseg_cli.predict.inputs import SceneJob
from rsseg_cli.predict.model import InferenceModel
from rsseg_cli.predict.quicklook import quicklook_bands
from rsseg_cli.predict.stream import StreamPredictor
from rsseg_cli.predict.writer import BLOCK, OutputPaths, PredictionWriter
from rsseg_cli.progress import progress

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
    status: str = "done"  # done | skipped | failed (in a batch; a single file either succeeds or raises)
    reason: str = ""  # why skipped, or the error of a failed scene
    error: BaseException | None = None  # a failed scene's exception (bad input or not: the exit code)

    @property
    def megapixels_per_s(self) -> float:
        return self.height * self.width / 1e6 / max(self.seconds, 1e-9)


@dataclass
class PartResult:
    """Column bands [bands[0], bands[1]) of a scene, predicted by one process into staging files."""

    bands: tuple[int, int]
    columns: tuple[int, int]  # the pixel columns [x0, x1) those bands cover
    files: OutputPaths
    windows: int
    seconds: float
    model_seconds: float
    class_pixels: np.ndarray = field(repr=False)
    invalid_pixels: int = 0


@contextlib.contextmanager
def _scratch(path: Path, tag: str = "staging") -> Iterator[Path]:
    """A staging file beside `path`, always removed (stale ones from killed runs are removed first)."""
    staging = path.with_name(f"{path.name}.{tag}")
    remove_stale_partials(staging)
    tmp = partial_name(staging)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}.aux.xml").unlink(missing_ok=True)


def _staging(stack: contextlib.ExitStack, job: SceneJob, tag: str = "staging") -> OutputPaths:
    return OutputPaths(
        mask=stack.enter_context(_scratch(job.mask, tag)),
        probs=stack.enter_context(_scratch(job.probs, tag)) if job.probs else None,
        confidence=stack.enter_context(_scratch(job.vector, tag)) if job.vector and not job.probs else None,
    )


def _stream(im: InferenceModel, opts: PredictConfig) -> StreamPredictor:
    return StreamPredictor(
        im.predictor(opts.tta),
        prepare=lambda x: x,  # windows arrive normalized from the loader thread
        num_classes=im.num_classes,
        window=opts.window or im.window,
        overlap=opts.overlap_fraction,
        batch_size=opts.batch_size,
        band_width=opts.band_width,
        arrays=im.arrays,  # numpy for an .onnx model: it predicts without torch
    )


def _run_stream(
    im: InferenceModel,
    scene: SceneInfo,
    stream: StreamPredictor,
    staging: OutputPaths,
    bands: tuple[int, int] | None,
    windows: int,
) -> PredictionWriter:
    with rasterio.open(scene.path) as src:

        def read(row: int, col: int, size: int):
            data, valid = read_window(src, scene, Window(col, row, size, size))
            return im.prepare(data, valid), valid

        writer = PredictionWriter(scene, im.classes, staging)
        try:
            with progress(f"predict {scene.name}", windows, "windows") as bar:
                stream.run(read, scene.height, scene.width, writer, on_window=bar.advance, bands=bands)
        except BaseException:
            writer.close(abort=True)
            raise
        writer.close()
    return writer


def predict_scene(im: InferenceModel, job: SceneJob, scene: SceneInfo, opts: PredictConfig) -> SceneResult:
    stream = _stream(im, opts)
    plan = stream.plan(scene.height, scene.width)
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        staging = _staging(stack, job)
        writer = _run_stream(im, scene, stream, staging, None, plan.windows_total)
        polygons = _finish(im, job, scene, opts, staging)
    return _result(im, job, scene, plan.windows_total, time.perf_counter() - t0, stream.model_seconds,
                   writer.class_pixels, writer.invalid_pixels, polygons)  # fmt: skip


def predict_bands(
    im: InferenceModel, job: SceneJob, scene: SceneInfo, opts: PredictConfig, bands: tuple[int, int]
) -> PartResult:
    """The column bands `bands` of the scene into staging files that stay for finish_from_parts (which removes
    them); on failure nothing is left."""
    stream = _stream(im, opts)
    plan = stream.plan(scene.height, scene.width)
    t0 = time.perf_counter()
    tag = f"bands{bands[0]}-{bands[1]}"
    staging = OutputPaths(
        mask=_part_path(job.mask, tag),
        probs=_part_path(job.probs, tag) if job.probs else None,
        confidence=_part_path(job.vector, tag) if job.vector and not job.probs else None,
    )
    try:
        writer = _run_stream(im, scene, stream, staging, bands, plan.windows_in(bands))
    except BaseException:
        _remove_parts([staging])
        raise
    edges = [x0 for x0, _, _ in plan.bands()] + [scene.width]
    return PartResult(bands, (edges[bands[0]], edges[bands[1]]), staging, plan.windows_in(bands),
                      time.perf_counter() - t0, stream.model_seconds, writer.class_pixels.copy(),
                      writer.invalid_pixels)  # fmt: skip


def finish_from_parts(
    im: InferenceModel, job: SceneJob, scene: SceneInfo, opts: PredictConfig, parts: list[PartResult]
) -> SceneResult:
    """Copy each part's columns into whole staging files, then finish as predict_scene does."""
    parts = sorted(parts, key=lambda p: p.columns)
    try:
        with contextlib.ExitStack() as stack:
            staging = _staging(stack, job)
            for kind in ("mask", "probs", "confidence"):
                if getattr(staging, kind) is not None:
                    _assemble([getattr(p.files, kind) for p in parts], [p.columns for p in parts],
                              getattr(staging, kind))  # fmt: skip
            polygons = _finish(im, job, scene, opts, staging)
    finally:
        _remove_parts([p.files for p in parts])
    pixels = np.sum([p.class_pixels for p in parts], axis=0)
    return _result(im, job, scene, sum(p.windows for p in parts), max(p.seconds for p in parts),
                   max(p.model_seconds for p in parts), pixels, sum(p.invalid_pixels for p in parts),
                   polygons)  # fmt: skip


def _part_path(path: Path, tag: str) -> Path:
    """A part's staging file beside `path` (a temporary name: a killed run's are swept like any other)."""
    staging = path.with_name(f"{path.name}.{tag}")
    remove_stale_partials(staging)
    return partial_name(staging)


def _remove_parts(files: list[OutputPaths]) -> None:
    for paths in files:
        for path in (paths.mask, paths.probs, paths.confidence):
            if path is not None:
                Path(path).unlink(missing_ok=True)
                Path(f"{path}.aux.xml").unlink(missing_ok=True)


def remove_parts(parts: list[PartResult]) -> None:
    """The staging files of parts that will not be assembled."""
    _remove_parts([p.files for p in parts])


def _assemble(sources: list[Path], columns: list[tuple[int, int]], dest: Path) -> None:
    """The first part's file (with its metadata: class table, colours, scales) as the base, the others'
    columns written into it strip by strip, masks included: memory is one strip of one part."""
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        rasterio.shutil.copy(str(sources[0]), str(dest), driver="GTiff", TILED=True, BLOCKXSIZE=BLOCK,
                             BLOCKYSIZE=BLOCK, COMPRESS="ZSTD", ZSTD_LEVEL=1, BIGTIFF="IF_SAFER")  # fmt: skip
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(dest, "r+") as out:
        per_band = any(flag.name == "per_dataset" for flag in out.mask_flag_enums[0])
        for src_path, (x0, x1) in zip(sources[1:], columns[1:]):
            with rasterio.open(src_path) as src:
                for row in range(0, src.height, BLOCK):
                    window = Window(x0, row, x1 - x0, min(BLOCK, src.height - row))
                    out.write(src.read(window=window), window=window)
                    if per_band:
                        out.write_mask(src.dataset_mask(window=window), window=window)


def _finish(im: InferenceModel, job: SceneJob, scene: SceneInfo, opts: PredictConfig, staging) -> int | None:
    """Staging files -> the outputs, all renamed into place together when every one is complete."""
    with contextlib.ExitStack() as stack:
        mask_tmp = stack.enter_context(atomic_file(job.mask))
        # The class names for GIS (GDAL category names, attribute table): a sidecar renamed with the mask.
        mask_aux_tmp = stack.enter_context(atomic_file(class_sidecar_path(job.mask)))
        probs_tmp = stack.enter_context(atomic_file(job.probs)) if job.probs else None
        vector_tmp = stack.enter_context(atomic_file(job.vector)) if job.vector else None
        quicklook_tmp = stack.enter_context(atomic_file(job.quicklook)) if job.quicklook else None
        # QGIS styles beside the outputs, renamed with them (a style never points at a missing file).
        for path, document in _styles(im, job).items():
            Path(stack.enter_context(atomic_file(path))).write_text(document, encoding="utf-8")
        write_cog(staging.mask, mask_tmp, "classes", opts.compress)
        write_class_sidecar(mask_aux_tmp, im.classes)
        if job.probs:
            write_cog(staging.probs, probs_tmp, "continuous", opts.compress)
        polygons = None
        if job.vector:
            from rsseg_cli.vectorize import vectorize_mask
            from rsseg_cli.vectorize.writers import style_gpkg, vector_format

            summary = vectorize_mask(
                staging.mask,
                vector_tmp,
                probs=staging.probs or staging.confidence,
                shown_as=job.vector,
                **opts.vector.vectorize_kwargs(),
            )
            polygons = summary.polygons
            if vector_format(job.vector) == "GPKG":
                style_gpkg(vector_tmp, im.classes)
        if job.quicklook:
            from rsseg_cli.predict.quicklook import write_quicklook

            bands = quicklook_bands(scene, im.checkpoint.band_map, opts.quicklook_bands)
            declared = scene.nodata if scene.nodata_source == "declared" else []
            nodata = {b: v for b, v in zip(scene.band_indexes, declared) if v is not None}
            title = f"{scene.name} - {im.path.name}"
            write_quicklook(scene.path, mask_tmp, quicklook_tmp, bands, title=title, nodata=nodata)
    return polygons


def _styles(im: InferenceModel, job: SceneJob) -> dict[Path, str]:
    """The .qml documents beside the outputs: the mask's (paletted classes), the probabilities' (the
    confidence band, 0..1) and the polygons' (categorized classes). QGIS looks for NAME.qml only, so when
    outputs share a stem the mask's style wins (see polygons_qml_path)."""
    from rsseg_cli.geo.qml import mask_qml, polygons_qml, probability_qml, qml_path
    from rsseg_cli.vectorize.writers import polygons_qml_path

    styles = {qml_path(job.mask): mask_qml(im.classes)}
    if job.probs:
        styles.setdefault(qml_path(job.probs), probability_qml(im.num_classes + 1, CONFIDENCE_BAND))
    if job.vector and (path := polygons_qml_path(job.vector, taken=styles)) is not None:
        styles[path] = polygons_qml(im.classes)
    return styles


def _result(im, job, scene, windows, seconds, model_seconds, class_pixels, invalid, polygons) -> SceneResult:
    if invalid == scene.height * scene.width:
        log.warning("%s has no valid pixel: its mask is all nodata (255).", scene.path)
    return SceneResult(
        job=job,
        height=scene.height,
        width=scene.width,
        windows=windows,
        seconds=seconds,
        model_seconds=model_seconds,
        class_pixels={c["name"]: int(n) for c, n in zip(im.classes, class_pixels)},
        invalid_pixels=int(invalid),
        polygons=polygons,
    )
