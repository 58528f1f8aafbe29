"""`rsseg tile`: scenes (and their labels) -> a dataset folder of georeferenced chips with a manifest.

A scene is never loaded whole: windows are read one at a time by a small pool of threads (GDAL releases the
GIL), each with its own dataset handles, and at most a few windows per thread are in flight.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rsseg_cli.atomic import atomic_dir
from rsseg_cli.config import Config, reference_config
from rsseg_cli.data.chips import Chip
from rsseg_cli.data.classes import ClassTable, check_label_values
from rsseg_cli.data.label_areas import check_areas_used
from rsseg_cli.data.label_cells import LabelCells
from rsseg_cli.data.labels import label_source
from rsseg_cli.data.manifest import write_manifest
from rsseg_cli.data.split_labels import LabelSplitInputs
from rsseg_cli.data.splits import SceneGeometry, assign_splits, labeled_pixel_report
from rsseg_cli.data.stats import BandStats
from rsseg_cli.data.tile_workers import _Job, scene_outcomes
from rsseg_cli.data.trainable import check_trainable
from rsseg_cli.errors import UserError
from rsseg_cli.geo.grid import window_grid
from rsseg_cli.geo.raster import SceneInfo, describe_scene
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
    check_areas_used(tile.labels.areas, [j.labels for j in jobs])
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
            per_scene = scene_outcomes(tmp, jobs, grids, table, num_classes, tile.max_nodata,
                                       COMPRESSION[tile.compress], cells, tile.workers, cfg.seed,
                                       tile.processes)  # fmt: skip
            for job, outcomes in per_scene:
                for outcome in outcomes:
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
