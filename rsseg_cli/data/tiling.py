"""`rsseg tile`: scenes (and their labels) -> a dataset folder of georeferenced chips with a manifest.

A scene is never loaded whole: windows are read one at a time by a small pool of threads (GDAL releases the
GIL), each with its own dataset handles, and at most a few windows per thread are in flight.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import transform as window_transform

from rsseg_cli.atomic import atomic_dir
from rsseg_cli.config import IGNORE_INDEX, Config, reference_config
from rsseg_cli.data.chips import Chip
from rsseg_cli.data.classes import ClassTable, check_label_values
from rsseg_cli.data.label_cells import CellCounts, LabelCells, count_cells
from rsseg_cli.data.labels import LabelSource, label_source
from rsseg_cli.data.manifest import write_manifest
from rsseg_cli.data.split_labels import LabelSplitInputs
from rsseg_cli.data.splits import SceneGeometry, assign_splits, labeled_pixel_report
from rsseg_cli.data.stats import BandStats
from rsseg_cli.data.trainable import check_trainable
from rsseg_cli.errors import UserError
from rsseg_cli.geo.class_raster import MASK_NODATA, write_class_metadata
from rsseg_cli.geo.grid import GridWindow, window_grid
from rsseg_cli.geo.raster import SceneInfo, describe_scene, read_window, window_footprint
from rsseg_cli.geo.sources import SceneSource, parse_source
from rsseg_cli.progress import progress

log = logging.getLogger("rsseg")

COMPRESSION = {"deflate": "DEFLATE", "zstd": "ZSTD", "lzw": "LZW", "none": None}


@dataclass
class TileResult:
    out: Path
    chips: int
    splits: dict[str, int]
    dropped: dict[str, int]
    windows: int
    seconds: float


@dataclass
class _Job:
    scene: SceneInfo
    labels: LabelSource | None


def plan_scenes(
    scenes: list, labels: list, unlabeled: list, cfg: Config, assets: list | None = None
) -> list[_Job]:
    """Open and check every input (paths, URLs, /vsi paths, STAC Items, SceneSources) before writing."""
    if not scenes and not unlabeled:
        raise UserError("No scene given. Usage: rsseg tile SCENE.tif [SCENE ...] --labels LABELS.tif")
    if len(labels) > len(scenes):
        raise UserError(
            f"{len(labels)} label files were given for {len(scenes)} scenes. Give one --labels per scene, "
            "in the same order (scenes without labels go last, or use --unlabeled)."
        )
    tile = cfg.tile
    jobs: list[_Job] = []
    names: Counter = Counter()
    for i, given in enumerate([*scenes, *unlabeled]):
        source = given if isinstance(given, SceneSource) else parse_source(given, assets)
        info = describe_scene(source, tile.bands, tile.pixel_space, nodata=tile.nodata)
        names[info.name] += 1
        if names[info.name] > 1:
            info.name = f"{info.name}_{names[info.name]}"
        _check_chip_fits(info, tile.chip_size, tile.edge)
        labels_of = label_source(labels[i], info, tile.labels) if i < len(labels) else None
        jobs.append(_Job(info, labels_of))
    first = jobs[0].scene
    for job in jobs[1:]:
        s = job.scene
        if len(s.band_indexes) != len(first.band_indexes) or s.dtype != first.dtype:
            raise UserError(
                f"All scenes of a dataset need the same bands and data type: {first.path} has "
                f"{len(first.band_indexes)} x {first.dtype}, {s.path} has {len(s.band_indexes)} x {s.dtype}. "
                "Select matching bands with tile.bands or convert the scenes."
            )
    if not any(j.labels for j in jobs):
        log.warning("no labels given: every chip is unlabeled (fine for semi-supervised pools only)")
    return jobs


def _check_chip_fits(scene: SceneInfo, chip: int, edge: str) -> None:
    if chip > scene.height or chip > scene.width:
        raise UserError(
            f"The chip size {chip} px is larger than the scene {scene.path} ({scene.width} x {scene.height} px). "
            f"Use a smaller --chip-size (at most {min(scene.width, scene.height)})."
        )


def resolve_classes(jobs: list[_Job], cfg: Config) -> ClassTable | None:
    """The class table from the config, or inferred from label values (with a warning); checks all values."""
    labeled = [j for j in jobs if j.labels is not None]
    if not labeled:
        return ClassTable.from_specs(cfg.classes) if cfg.classes else None
    counts = {j.scene.name: j.labels.value_counts() for j in labeled}
    if cfg.classes:
        table = ClassTable.from_specs(cfg.classes)
    else:
        first = labeled[0].labels
        merged: Counter = Counter()
        for c in counts.values():
            merged.update(c)
        table = ClassTable.from_specs(first.inferred_classes(merged))
        if len(table) == 0:
            raise UserError("The labels hold no class values (all nodata or ignored). Check the label files.")
        mapping = ", ".join(f"{c.value if c.value is not None else c.id}->{c.name}" for c in table.classes)
        if all(c.name.startswith("class_") for c in table.classes):
            log.warning(
                "no class table given: inferred %d classes from the label values (%s). Name them and pick "
                "colours with 'classes' in a config file (see %s).",
                len(table),
                mapping,
                reference_config(),
            )
        elif first.kind == "vector":
            log.info(
                "classes from the values of the field %r of %s: %s (ids in sorted order; set ids, "
                "names and colours with 'classes' in a config file)",
                getattr(first, "field", None),
                first.path.name,
                ", ".join(c.name for c in table.classes),
            )
        else:
            log.info("class table read from the labels' embedded table: %s", mapping)
    for job in labeled:
        if job.labels.kind == "raster":  # vector labels are checked by prepare(), value by value
            check_label_values(
                counts[job.scene.name],
                table,
                f"the label raster {job.labels.path}",
                ignore_values=cfg.tile.labels.ignore_values,
            )
        job.labels.prepare(table, cfg.tile.labels)
    return table


def check_output(out: Path, overwrite: bool) -> None:
    if out.exists():
        if out.is_file():
            raise UserError(f"The output {out} is a file; choose a folder name with --out.")
        is_dataset = (out / "dataset.yaml").exists()
        if is_dataset and not overwrite:
            raise UserError(
                f"{out} already holds a dataset. Pass --overwrite to replace it (to add scenes, tile all of "
                "them again in one command), or choose another folder with --out."
            )
        if not is_dataset and any(out.iterdir()):
            raise UserError(
                f"{out} exists and is not an rsseg dataset; refusing to replace its contents. "
                "Choose another folder with --out or empty it."
            )


def tile_scenes(
    scenes: list[str | Path | SceneSource],
    labels: list[str | Path],
    out: Path,
    cfg: Config,
    *,
    unlabeled: list[str | Path | SceneSource] = (),
    overwrite: bool = False,
    keep_incomplete: bool = False,
    assets: list[str] | None = None,
) -> TileResult:
    import time

    t0 = time.perf_counter()
    out = Path(out)
    check_output(out, overwrite)
    jobs = plan_scenes(list(scenes), list(labels), list(unlabeled), cfg, assets)
    table = resolve_classes(jobs, cfg)
    num_classes = len(table) if table else 0
    tile = cfg.tile
    stride = tile.effective_stride
    grids = {
        j.scene.name: window_grid(j.scene.height, j.scene.width, tile.chip_size, stride, tile.edge)
        for j in jobs
    }
    total_windows = sum(len(g) for g in grids.values())
    first = jobs[0].scene
    stats = BandStats(len(first.band_indexes), first.dtype)
    chips: list[Chip] = []
    skipped = Counter()
    labeled_total = np.zeros(num_classes, np.int64)  # every labeled valid pixel of the scenes, once
    cells = {
        j.scene.name: LabelCells(j.scene.height, j.scene.width, num_classes)
        for j in jobs
        if j.labels is not None and num_classes
    }
    with atomic_dir(out) as tmp:
        with progress("tile", total_windows, unit="chips") as bar:
            for job in jobs:
                writer = _ChipWriter(
                    tmp, job, table, num_classes, tile.max_nodata, COMPRESSION[tile.compress]
                )
                if job.scene.name in cells:
                    writer.cells = cells[job.scene.name]
                for outcome in writer.run(grids[job.scene.name], tile.workers, cfg.seed):
                    stats.merge(outcome.stats)
                    labeled_total += outcome.labeled_core
                    if outcome.cells is not None and job.scene.name in cells:
                        cells[job.scene.name].add(outcome.cells)
                    if outcome.chip is None:
                        skipped[outcome.skip_reason] += 1
                    else:
                        chips.append(outcome.chip)
                    bar.advance(1, kept=len(chips))
        if not chips:
            raise UserError(
                f"No chip was kept: every window had more than {tile.max_nodata:.0%} invalid pixels. Check the "
                "scene's nodata/mask, or raise tile.max_nodata."
            )
        geometry = {j.scene.name: _scene_geometry(j.scene) for j in jobs}
        label_inputs = LabelSplitInputs(
            root=tmp,
            cells=cells,
            transforms={n: g.transform for n, g in geometry.items()},
            groups={n: g.group for n, g in geometry.items()},
            chip_size=tile.chip_size,
            stride=stride,
        )
        chips, report = assign_splits(
            chips, geometry, tile.split, stride, cfg.seed, num_classes, label_inputs
        )
        if not any(c.split is not None for c in chips):
            reasons = Counter(c.drop_reason for c in chips)
            raise UserError(
                f"No chip was kept by the {tile.split.method} split: "
                + ", ".join(f"{n} {reason}" for reason, n in reasons.most_common())
                + ". Check the split settings (for an AOI split, that its polygons cover the scenes in their CRS)."
            )
        used = {c.image for c in chips if c.split is not None}
        for chip in chips:
            if chip.split is None:
                if chip.image not in used:
                    (tmp / chip.image).unlink(missing_ok=True)
                if chip.label:
                    (tmp / chip.label).unlink(missing_ok=True)
        report["skipped_windows"] = dict(skipped)
        if table is not None and labeled_total.sum():
            report["labeled_pixels"] = labeled_pixel_report(chips, labeled_total, table.names)
            check_trainable(report, tile.split, keep_incomplete)
        write_manifest(tmp, jobs, chips, table, stats, cfg, report)
        kept = [c for c in chips if c.split is not None]
    seconds = time.perf_counter() - t0
    splits = {s: sum(c.split == s for c in kept) for s in ("train", "val", "test")}
    dropped = {**dict(skipped), **report["dropped"]}
    return TileResult(out, len(kept), splits, dropped, total_windows, seconds)


def _scene_geometry(scene: SceneInfo) -> SceneGeometry:
    if scene.crs is None:
        return SceneGeometry(group=f"pixels:{scene.name}", pixel_size=1.0, crs=None)
    return SceneGeometry(
        group=scene.crs.to_wkt(), pixel_size=max(scene.res), crs=scene.crs, transform=scene.transform
    )


# --------------------------------------------------------------------------------------------------
# Reading windows and writing chips


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
