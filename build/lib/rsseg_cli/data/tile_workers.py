"""Cutting one scene into chips: windows read by a small pool of threads (GDAL releases the GIL), each with
its own dataset handles, at most a few windows per thread in flight; and, for many scenes, several scenes at once
in worker processes (`tile.processes`): each process cuts whole scenes into the dataset's temporary folder and
returns their outcomes, which are merged in scene order, so the chips, the statistics and the split are the same
whatever the number of processes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import transform as window_transform

from rsseg_cli.config import IGNORE_INDEX
from rsseg_cli.data.chips import Chip
from rsseg_cli.data.classes import ClassTable
from rsseg_cli.data.label_cells import CellCounts, LabelCells, count_cells
from rsseg_cli.data.labels import LabelSource
from rsseg_cli.data.stats import BandStats
from rsseg_cli.geo.class_raster import MASK_NODATA, write_class_metadata
from rsseg_cli.geo.grid import GridWindow
from rsseg_cli.geo.raster import SceneInfo, read_window, window_footprint


@dataclass
class _Job:
    scene: SceneInfo
    labels: LabelSource | None


@dataclass
class _Outcome:
    chip: Chip | None
    stats: BandStats
    labeled_core: np.ndarray  # labeled valid pixels per class in the window's core (skipped or not)
    cells: CellCounts | None = None  # the same, per cell of the scene's label grid (kept windows)
    skip_reason: str | None = None


class _ChipWriter:
    """Reads windows of one scene and writes chips; thread-safe through per-thread dataset handles."""

    def __init__(
        self,
        root: Path,
        job: _Job,
        table: ClassTable | None,
        num_classes: int,
        max_nodata: float,
        compress: str | None,
    ):
        self.root = root
        self.job = job
        self.scene = job.scene
        self.table = table
        self.num_classes = num_classes
        self.max_nodata = max_nodata
        self.compress = compress
        self.cells: LabelCells | None = None  # the label grid's geometry (windows count into it)
        self.local = threading.local()
        self.handles: list = []
        self.lock = threading.Lock()
        (root / "images" / self.scene.name).mkdir(parents=True, exist_ok=True)
        if job.labels is not None:
            (root / "labels" / self.scene.name).mkdir(parents=True, exist_ok=True)

    def _handles(self):
        if not hasattr(self.local, "src"):
            self.local.src = rasterio.open(self.scene.path)
            self.local.labels = self.job.labels.reader() if self.job.labels is not None else None
            with self.lock:
                self.handles.append((self.local.src, self.local.labels))
        return self.local.src, self.local.labels

    def run(self, grid: list[GridWindow], workers: int, seed: int) -> Iterator[_Outcome]:
        """Yield outcomes in grid order, keeping at most 2 windows per worker in flight (bounded memory)."""
        try:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tile") as pool:
                pending: dict[int, Future] = {}
                ready: dict[int, _Outcome] = {}
                next_submit = next_yield = 0
                try:
                    while next_yield < len(grid):
                        while next_submit < len(grid) and len(pending) + len(ready) < 2 * workers:
                            gw = grid[next_submit]
                            pending[next_submit] = pool.submit(self._one, gw, seed + next_submit)
                            next_submit += 1
                        if next_yield in pending:
                            done, _ = wait(pending.values(), return_when=FIRST_COMPLETED)
                            for k in [k for k, f in pending.items() if f in done]:
                                ready[k] = pending.pop(k).result()
                        while next_yield in ready:
                            yield ready.pop(next_yield)
                            next_yield += 1
                finally:
                    for f in pending.values():
                        f.cancel()
        finally:
            for src, labels in self.handles:
                src.close()
                if labels is not None:
                    labels.close()

    def _one(self, gw: GridWindow, seed: int) -> _Outcome:
        src, labels = self._handles()
        scene = self.scene
        data, valid = read_window(src, scene, gw.window)
        stats = BandStats(len(scene.band_indexes), scene.dtype)
        r0, r1, c0, c1 = gw.core
        core = valid[r0 - gw.row : r1 - gw.row, c0 - gw.col : c1 - gw.col]
        stats.add(data[:, r0 - gw.row : r1 - gw.row, c0 - gw.col : c1 - gw.col], core, seed)
        valid_fraction = float(valid.mean())
        chip_id = f"{scene.name}_r{gw.row:06d}_c{gw.col:06d}"
        image_rel = f"images/{scene.name}/{chip_id}.tif"
        label_rel = None
        class_pixels = np.zeros(self.num_classes, np.int64)
        labeled_core = np.zeros(self.num_classes, np.int64)
        ignore = int(valid.size)
        mask = None
        if labels is not None:
            mask = labels.read(gw)
            mask[~valid] = IGNORE_INDEX
            counts = np.bincount(mask.ravel(), minlength=256)
            class_pixels = counts[: self.num_classes].astype(np.int64)
            ignore = int(counts[IGNORE_INDEX])
            core_mask = mask[r0 - gw.row : r1 - gw.row, c0 - gw.col : c1 - gw.col]
            labeled_core = np.bincount(core_mask.ravel(), minlength=256)[: self.num_classes].astype(np.int64)
        # A window mostly outside the scene's valid area is skipped, unless labels in it would be lost:
        # along a ragged nodata edge those are often the only labels of a polygon.
        if 1.0 - valid_fraction > self.max_nodata and not labeled_core.any():
            return _Outcome(None, stats, labeled_core, skip_reason="too many invalid pixels")
        cells = None
        if mask is not None and self.cells is not None and labeled_core.any():
            lc = self.cells
            cells = count_cells(core_mask, r0, c0, lc.cell, lc.shape[1], self.num_classes)
        if class_pixels.sum() > 0:
            label_rel = f"labels/{scene.name}/{chip_id}.tif"
            self._write_label(self.root / label_rel, mask, gw)
        self._write_image(self.root / image_rel, data, valid, gw)
        chip = Chip(
            id=chip_id,
            scene=scene.name,
            row=gw.row,
            col=gw.col,
            height=gw.height,
            width=gw.width,
            corners=window_footprint(scene.transform, gw.window),
            valid_fraction=round(valid_fraction, 6),
            labeled=label_rel is not None,
            class_pixels=class_pixels,
            ignore_pixels=ignore,
            image=image_rel,
            label=label_rel,
            core=gw.core,
            core_pixels=labeled_core,
        )
        return _Outcome(chip, stats, labeled_core, cells)

    def _profile(self, gw: GridWindow, count: int, dtype: str) -> dict:
        profile = {
            "driver": "GTiff",
            "width": gw.width,
            "height": gw.height,
            "count": count,
            "dtype": dtype,
            "crs": self.scene.crs,
            "transform": window_transform(gw.window, self.scene.transform),
            "interleave": "pixel" if count <= 4 else "band",
        }
        if gw.width >= 256 and gw.height >= 256 and gw.width % 16 == 0 and gw.height % 16 == 0:
            profile.update(tiled=True, blockxsize=256, blockysize=256)
        if self.compress:
            profile["compress"] = self.compress
            if self.compress in ("DEFLATE", "ZSTD", "LZW"):
                profile["predictor"] = 3 if np.issubdtype(np.dtype(dtype), np.floating) else 2
            # Chips are working files: the fastest levels cost ~6 % in size and save ~90 % of the time
            # (zstd level 1 vs GDAL's default 9 on a 512 x 512 x 4 uint16 chip: 6 ms vs 50 ms).
            if self.compress == "ZSTD":
                profile["zstd_level"] = 1
            elif self.compress == "DEFLATE":
                profile["zlevel"] = 1
        return profile

    def _write_image(self, path: Path, data: np.ndarray, valid: np.ndarray, gw: GridWindow) -> None:
        profile = self._profile(gw, data.shape[0], self.scene.dtype)
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
            dst.descriptions = tuple(self.scene.band_names)
            if not valid.all():
                # An internal mask, not a nodata value: padded and invalid pixels stay distinguishable from
                # real pixels of any value.
                dst.write_mask(valid.astype(np.uint8) * 255)

    def _write_label(self, path: Path, mask: np.ndarray, gw: GridWindow) -> None:
        profile = self._profile(gw, 1, "uint8")
        profile["nodata"] = MASK_NODATA
        if profile.get("predictor"):
            profile["predictor"] = 1  # class ids do not benefit from differencing
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(mask[None])
            assert self.table is not None
            write_class_metadata(dst, self.table.raster_classes())


def _scene_outcomes(
    root: Path, job: _Job, table, num_classes, max_nodata, compress, cells, grid, workers, seed
) -> list[_Outcome]:
    """One whole scene in a worker process: its outcomes, in grid order."""
    writer = _ChipWriter(root, job, table, num_classes, max_nodata, compress)
    writer.cells = cells
    return list(writer.run(grid, workers, seed))


def scene_outcomes(
    root: Path,
    jobs: list[_Job],
    grids: dict[str, list[GridWindow]],
    table: ClassTable | None,
    num_classes: int,
    max_nodata: float,
    compress: str | None,
    cells: dict[str, LabelCells],
    workers: int,
    seed: int,
    processes: int = 1,
) -> Iterator[tuple[_Job, Iterator[_Outcome]]]:
    """(job, its outcomes in grid order) per scene, in scene order. With `processes` > 1, that many scenes are
    cut at once, each in its own process (threads inside as with one); a scene's outcomes come when it is done."""
    args = [
        (root, j, table, num_classes, max_nodata, compress, cells.get(j.scene.name), grids[j.scene.name],
         workers, seed)
        for j in jobs
    ]  # fmt: skip
    if processes <= 1 or len(jobs) <= 1:
        for job, a in zip(jobs, args):
            writer = _ChipWriter(*a[:6])
            writer.cells = a[6]
            yield job, writer.run(a[7], workers, seed)
        return
    # spawn: the parent may hold threads (progress bar) and GDAL state that a forked child must not inherit.
    with ProcessPoolExecutor(max_workers=min(processes, len(jobs)), mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_scene_outcomes, *a) for a in args]
        try:
            for job, future in zip(jobs, futures):
                yield job, iter(future.result())
        finally:
            for f in futures:
                f.cancel()
