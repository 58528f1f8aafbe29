"""vectorize_mask: a class mask (and optionally its probabilities) to polygons, window by window."""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import rasterio
from rasterio.errors import NotGeoreferencedWarning

from rsseg_cli.atomic import atomic_file, remove_stale_partials
from rsseg_cli.errors import UserError
from rsseg_cli.geo.grid import DEFAULT_WINDOW
from rsseg_cli.geo.qml import qml_path
from rsseg_cli.progress import progress
from rsseg_cli.vectorize.inputs import check_probs, describe_mask, resolve_classes
from rsseg_cli.vectorize.measure import Measurer, PolygonOptions, finish
from rsseg_cli.vectorize.merge import SeamMerger
from rsseg_cli.vectorize.polygonize import Pieces, polygonize_core
from rsseg_cli.vectorize.summary import VectorizeSummary
from rsseg_cli.vectorize.windows import core_rows, read_confidence, read_core
from rsseg_cli.vectorize.writers import (
    LAYER,
    check_vector_output,
    open_writer,
    polygons_qml_path,
    write_polygons_qml,
)

log = logging.getLogger("rsseg")

# Regions smaller than this many pixels are merged into their largest neighbour before polygonizing: model
# speckle is mostly 1-4 pixel blobs, each of which would otherwise be a polygon of its own.
DEFAULT_SIEVE = 8
# Window side: geo.grid.DEFAULT_WINDOW (4096). One window (uint8 classes, a bool mask, and with
# probabilities a 64 MiB summed-area table) is the unit of memory.
MIN_WINDOW = 16

ProgressCallback = Callable[[int, int], None]  # (windows done, windows in all)


def vectorize_mask(
    mask: Path,
    out: Path,
    *,
    probs: Path | None = None,
    classes: Sequence[str | int] | None = None,
    sieve: int = DEFAULT_SIEVE,
    min_area_m2: float = 0.0,
    simplify: float = 0.0,
    fill_holes_m2: float = 0.0,
    window: int = DEFAULT_WINDOW,
    on_progress: ProgressCallback | None = None,
    shown_as: Path | None = None,
) -> VectorizeSummary:
    """Polygons of a class mask, written to `out` (.gpkg: raster CRS, layer "polygons"; .geojson/.json:
    EPSG:4326), with class_id, class_name, area_m2, perimeter_m (holes' boundaries included) and, with
    `probs` (a `predict --probs` raster, or its confidence band alone), mean_prob: the mean probability of
    the predicted class over the polygon's pixels, in [0, 1]. Each 4-connected region of a class is one
    polygon, wherever the windows cut it.

    sieve: merge regions smaller than this many pixels into their largest neighbour first (< 2: off).
    min_area_m2, fill_holes_m2: drop polygons / fill holes smaller than this area in square metres.
    simplify: topology-preserving simplification tolerance in metres (0: exact pixel edges).
    window: side of the windows read at a time; memory depends on it, not on the scene.
    on_progress(done, total) is called after each window; without it a progress bar is shown.
    shown_as: the path messages name instead of `out` (predict writes to a temporary name first).

    An existing `out` is replaced (atomically: the previous file stays intact until the new one is
    complete). A vector file is a product derived from the mask, cheap to re-create, so refusing to
    replace it would only add a flag to every re-run.
    """
    t0 = time.perf_counter()
    mask, out = Path(mask), Path(out)
    _check_options(sieve, min_area_m2, simplify, fill_holes_m2, window)
    info = describe_mask(mask)
    fmt = check_vector_output(out, info.crs)
    if out.resolve() == mask.resolve() or (probs is not None and out.resolve() == Path(probs).resolve()):
        raise UserError(f"The vector output {out} is one of the input rasters; pass another --out.")
    selected = resolve_classes(info.names, classes, str(mask), info.nodata)
    conf_band = check_probs(info, Path(probs)) if probs is not None else None
    measurer = Measurer(info.crs, info.transform, info.height, info.width)
    (log.warning if measurer.kind == "pixels" else log.info)("vectorize: %s", measurer.description)
    options = PolygonOptions(min_area_m2=min_area_m2, simplify_m=simplify, fill_holes_m2=fill_holes_m2)
    rows = core_rows(info.height, info.width, window)
    total = sum(len(r) for r in rows)
    per_class: Counter[int] = Counter()

    remove_stale_partials(out)
    classes = list(info.classes) or None
    # `rsseg vectorize` writes the polygons' style beside them (predict writes its own, beside its outputs).
    qml = polygons_qml_path(out, taken=[qml_path(mask)]) if shown_as is None and classes else None
    with atomic_file(out) as tmp, _open(mask) as src, contextlib.ExitStack() as styles:
        if qml is not None:
            write_polygons_qml(styles.enter_context(atomic_file(qml)), classes)
        prob_src = _open(probs) if probs is not None else None
        writer = open_writer(fmt, tmp, info.crs, with_prob=prob_src is not None, classes=classes)

        def emit(pieces: Pieces) -> None:
            if not len(pieces):
                return
            polygons = finish(
                pieces.geoms,
                pieces.class_id,
                pieces.conf_sum if prob_src is not None else None,
                measurer,
                options,
            )
            names = [info.name_of(c) for c in polygons.class_id]
            writer.write(polygons, names)
            per_class.update(polygons.class_id.tolist())

        try:
            with _progress(on_progress, total) as advance:
                merger = SeamMerger(info.height, info.width, window)
                for row in rows:
                    for core in row:
                        classes_, select = read_core(src, info, core, sieve, selected)
                        conf = read_confidence(prob_src, conf_band, core) if prob_src is not None else None
                        pieces = polygonize_core(classes_, select, core.row0, core.col0, conf)
                        emit(merger.add(pieces, core))
                        advance()
                    emit(merger.end_row(row[0].row1))
            writer.close()
        except BaseException:
            writer.abort()
            raise
        finally:
            if prob_src is not None:
                prob_src.close()

    seconds = time.perf_counter() - t0
    n = sum(per_class.values())
    summary = VectorizeSummary(
        out=out,
        format=fmt,
        layer=LAYER if fmt == "GPKG" else None,
        crs="EPSG:4326" if fmt == "GeoJSON" else _crs_name(info.crs),
        polygons=n,
        per_class={info.name_of(c): k for c, k in sorted(per_class.items())},
        windows=total,
        megapixels=info.pixels / 1e6,
        seconds=seconds,
        area_unit=measurer.area_unit,
    )
    if n == 0:
        log.warning(
            "vectorize: no polygon in %s (every pixel is nodata, outside the class selection, or filtered "
            "by --min-area); wrote an empty layer to %s",
            mask,
            shown_as or out,
        )
    else:
        log.info("vectorize: %d polygons -> %s in %.1f s", n, shown_as or out, seconds)
    return summary


def check_vectorize_options(
    class_table: list[dict] | None = None,
    *,
    classes: Sequence[str | int] | None = None,
    sieve: int = DEFAULT_SIEVE,
    min_area_m2: float = 0.0,
    simplify: float = 0.0,
    fill_holes_m2: float = 0.0,
    window: int = DEFAULT_WINDOW,
) -> None:
    """Check vectorize_mask's options (and a class selection against a class table) without reading any
    raster, so that `predict --vector` can refuse bad options before inference rather than after it."""
    _check_options(sieve, min_area_m2, simplify, fill_holes_m2, window)
    if classes is not None:
        names = {int(c["id"]): str(c["name"]) for c in class_table or []}
        resolve_classes(names, classes, "the checkpoint")


def _check_options(sieve: int, min_area: float, simplify: float, fill_holes: float, window: int) -> None:
    for name, value in (("sieve", sieve), ("min-area", min_area), ("simplify", simplify)):
        if value < 0:
            raise UserError(f"--{name} is {value}; it must be 0 or more.")
    if fill_holes < 0:
        raise UserError(f"--fill-holes is {fill_holes}; it must be 0 or more.")
    if window < MIN_WINDOW:
        raise UserError(f"--window is {window}; use at least {MIN_WINDOW} pixels (default {DEFAULT_WINDOW}).")


def _open(path: Path) -> rasterio.DatasetReader:
    # A mask without CRS was accepted above (areas in pixels, logged); GDAL's warning would only repeat it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path)


def _crs_name(crs) -> str:
    if crs is None:
        return "none (pixel coordinates)"
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else "custom CRS (WKT in the file)"


class _progress:
    """A callable advance() backed by the caller's callback, or by rsseg's progress bar."""

    def __init__(self, callback: ProgressCallback | None, total: int):
        self.callback = callback
        self.total = total
        self.done = 0
        self._bar = None

    def __enter__(self) -> Callable[[], None]:
        if self.callback is None:
            self._bar = progress("vectorize", self.total, unit="windows")
            reporter = self._bar.__enter__()

            def advance() -> None:
                reporter.advance(1)

            return advance

        def call() -> None:
            self.done += 1
            self.callback(self.done, self.total)

        return call

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
