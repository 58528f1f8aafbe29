"""Train/val/test splits that do not leak, stratified by class and seeded.

Methods: `labels` (the default, `split_labels`): labeled units go to splits and pixels near another split's
labels are ignored, so a few polygons keep their pixels. `blocks`: spatial blocks of chips with a buffer gap so
that no chip footprint of one split touches another's (chips too close are dropped). `scene`: whole scenes.
`aoi`: polygons of a vector file name the split of the chips they hold.

Chips are compared in map coordinates within each group of scenes sharing a CRS, so overlapping scenes (two
dates of one place) share blocks (or units) and cannot leak across splits either.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from shapely import STRtree

from rsseg_cli.config import SplitConfig
from rsseg_cli.data.chips import SPLITS, Chip
from rsseg_cli.data.split_labels import LabelSplitInputs, band_width, pixel_conflicts, split_by_labels
from rsseg_cli.data.stratify import stratify
from rsseg_cli.errors import UserError
from rsseg_cli.geo.vector import read_vector

log = logging.getLogger("rsseg")

RANK = {"train": 0, "val": 1, "test": 2}
IDENTITY = Affine.identity()


@dataclass(frozen=True)
class SceneGeometry:
    group: str  # scenes in one group share a CRS and are compared with each other
    pixel_size: float  # map units per pixel
    crs: object  # rasterio CRS or None
    transform: Affine = IDENTITY  # pixel -> map (the identity for pixel-space scenes)


def assign_splits(
    chips: list[Chip],
    scenes: dict[str, SceneGeometry],
    cfg: SplitConfig,
    stride: int,
    seed: int,
    num_classes: int,
    labels: LabelSplitInputs | None = None,
) -> tuple[list[Chip], dict]:
    """The chips with their split (None for dropped chips) and the split report. The `labels` method needs
    `labels` (the label cells and the dataset folder) and may return more chips than it was given."""
    rng = np.random.default_rng(seed)
    fractions = {s: f for s, f in cfg.fractions.items() if f > 0}
    block_size, dropped_gap, extra = None, 0, {}
    if cfg.method == "labels" and labels is not None and num_classes:
        chips, extra = split_by_labels(chips, labels, cfg, fractions, rng, num_classes)
    elif cfg.method in ("labels", "blocks"):
        block_size = _assign_blocks(chips, scenes, cfg, fractions, stride, rng, num_classes)
    elif cfg.method == "scene":
        _assign_scenes(chips, cfg, fractions, rng, num_classes)
    else:
        _assign_aoi(chips, scenes, cfg)
    if not extra:
        for c in chips:
            if c.split is not None and c.core_pixels is None:
                c.core_pixels = c.class_pixels
        dropped_gap = _enforce_gap(chips, scenes, cfg.gap)
    report = _report(chips, cfg, fractions, block_size, dropped_gap, num_classes)
    if not extra:
        remaining = _conflicts(chips, scenes, cfg.gap)
        report["leakage_check"] = {
            "rule": f"no chip footprint within {cfg.gap:g} px of a chip of another split (touching counts)",
            "conflicting_pairs": len(remaining),
            "passed": not remaining,
        }
    else:
        report["method_details"] = extra
        width = band_width(cfg)
        conflicts = pixel_conflicts(chips, labels.root, width, num_classes)
        report["leakage_check"] = {
            "rule": f"no labeled pixel within {width} px of a labeled pixel of another split",
            "conflicting_pairs": conflicts,
            "passed": conflicts == 0,
        }
    return chips, report


# --------------------------------------------------------------------------------------------------
# Assignment


def _unit_vector(chips: list[Chip], num_classes: int) -> np.ndarray:
    """Class pixels of a unit (block or scene) plus, as a last entry, its number of labeled chips."""
    vec = np.zeros(num_classes + 1, np.float64)
    for c in chips:
        if c.labeled:
            vec[:num_classes] += c.class_pixels
            vec[num_classes] += 1
    return vec


def _assign_blocks(
    chips: list[Chip],
    scenes: dict[str, SceneGeometry],
    cfg: SplitConfig,
    fractions: dict[str, float],
    stride: int,
    rng: np.random.Generator,
    num_classes: int,
) -> int:
    needed = math.ceil(1.0 / min(fractions.values()) - 1e-9)
    origin: dict[str, tuple[float, float]] = {}
    for c in chips:
        g = scenes[c.scene].group
        xs, ys = zip(*c.corners)
        ox, oy = origin.get(g, (math.inf, -math.inf))
        origin[g] = (min(ox, *xs), max(oy, *ys))

    def blocks_of(size: int) -> dict[tuple, list[Chip]]:
        blocks: dict[tuple, list[Chip]] = defaultdict(list)
        for c in chips:
            geo = scenes[c.scene]
            side = size * stride * geo.pixel_size
            x, y = c.center
            ox, oy = origin[geo.group]
            blocks[(geo.group, int((x - ox) // side), int((oy - y) // side))].append(c)
        return blocks

    size = cfg.block_size
    blocks = blocks_of(size)
    while size > 1 and sum(any(c.labeled for c in b) for b in blocks.values()) < needed:
        size -= 1
        blocks = blocks_of(size)
    if size != cfg.block_size:
        log.info(
            "split: blocks of %d chips give too few blocks for the fractions; using blocks of %d chips",
            cfg.block_size,
            size,
        )
    labeled_blocks = [b for _, b in sorted(blocks.items()) if any(c.labeled for c in b)]
    for b in blocks.values():
        if not any(c.labeled for c in b):
            for c in b:
                c.split = "train"  # only unlabeled chips: fuel for semi-supervised training
    if labeled_blocks:
        choice = stratify(
            [_unit_vector(b, num_classes) for b in labeled_blocks], fractions, rng, cfg.stratify
        )
        for b, s in zip(labeled_blocks, choice):
            for c in b:
                c.split = s
    return size


def _assign_scenes(
    chips: list[Chip],
    cfg: SplitConfig,
    fractions: dict[str, float],
    rng: np.random.Generator,
    num_classes: int,
) -> None:
    by_scene: dict[str, list[Chip]] = defaultdict(list)
    for c in chips:
        by_scene[c.scene].append(c)
    unknown = sorted(set(cfg.scenes) - set(by_scene))
    if unknown:
        raise UserError(
            f"tile.split.scenes names scenes {', '.join(unknown)} that are not being tiled "
            f"(scenes: {', '.join(sorted(by_scene))}). Use the scene file names without extension."
        )
    free = []
    for name, members in sorted(by_scene.items()):
        split = cfg.scenes.get(name)
        if split is None and not any(c.labeled for c in members):
            split = "train"
        if split is None:
            free.append(name)
        for c in members:
            c.split = split
    if free:
        choice = stratify(
            [_unit_vector(by_scene[n], num_classes) for n in free], fractions, rng, cfg.stratify
        )
        for name, s in zip(free, choice):
            for c in by_scene[name]:
                c.split = s


def _assign_aoi(chips: list[Chip], scenes: dict[str, SceneGeometry], cfg: SplitConfig) -> None:

    if cfg.aoi is None:
        raise UserError(
            "tile.split.method is 'aoi' but tile.split.aoi names no file. Set it to a vector file."
        )
    path = Path(cfg.aoi)
    try:
        aoi = read_vector(path)
    except Exception as exc:
        raise UserError(f"The split AOI file {path} could not be read ({exc}).") from None
    if "split" not in aoi.columns:
        raise UserError(
            f"The split AOI file {path} needs a 'split' field with train, val or test "
            f"(fields: {', '.join(c for c in aoi.columns if c != 'geometry')})."
        )
    bad = sorted(set(aoi["split"].astype(str)) - set(SPLITS))
    if bad:
        raise UserError(f"The split AOI file {path} has split values {bad}; use train, val or test.")
    if aoi.crs is None:
        raise UserError(f"The split AOI file {path} has no CRS. Assign one (ogr2ogr -a_srs EPSG:xxxx).")
    projected: dict[str, tuple[STRtree, list[str], list]] = {}
    for c in chips:
        geo = scenes[c.scene]
        if geo.group not in projected:
            if geo.crs is None:
                raise UserError(
                    "Split by AOI needs georeferenced scenes; pixel-space scenes have no map position."
                )
            frame = aoi.to_crs(geo.crs)
            geoms = list(frame.geometry)
            projected[geo.group] = (STRtree(geoms), frame["split"].astype(str).tolist(), geoms)
        tree, names, geoms = projected[geo.group]
        # A chip straddling AOI boundaries goes to the split covering most of it (more than half), so chips
        # along the AOI edges are not all lost; the gap rule then separates the splits as everywhere.
        share: dict[str, float] = defaultdict(float)
        for i in tree.query(c.footprint, predicate="intersects"):
            share[names[i]] += geoms[i].intersection(c.footprint).area / c.footprint.area
        best = max(share, key=share.__getitem__, default=None)
        if best is not None and share[best] > 0.5:
            c.split = best
        else:
            c.split, c.drop_reason = None, "less than half inside any AOI polygon"


# --------------------------------------------------------------------------------------------------
# Buffer gap and leakage check


def _conflicts(chips: list[Chip], scenes: dict[str, SceneGeometry], gap_px: float) -> list[tuple[int, int]]:
    """Pairs (i, j) of kept chips of different splits closer than the gap (touching counts)."""
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(chips):
        if c.split is not None:
            by_group[scenes[c.scene].group].append(i)
    pairs = []
    for members in by_group.values():
        geoms = [chips[i].footprint for i in members]
        pixel = max(scenes[chips[i].scene].pixel_size for i in members)
        tree = STRtree(geoms)
        left, right = tree.query(geoms, predicate="dwithin", distance=gap_px * pixel)
        for a, b in zip(left.tolist(), right.tolist()):
            i, j = members[a], members[b]
            if i < j and chips[i].split != chips[j].split:
                pairs.append((i, j))
    return pairs


def _enforce_gap(chips: list[Chip], scenes: dict[str, SceneGeometry], gap_px: float) -> int:
    """Drop chips too close to a chip of a more protected split (test > val > train)."""
    dropped = 0
    for protected in ("test", "val"):
        losers = set()
        for i, j in _conflicts(chips, scenes, gap_px):
            a, b = chips[i], chips[j]
            if protected in (a.split, b.split):
                loser = i if RANK[a.split] < RANK[b.split] else j
                losers.add(loser)
        for i in losers:
            chips[i].split, chips[i].drop_reason = None, "buffer gap between splits"
            dropped += 1
    return dropped


def _report(
    chips: list[Chip],
    cfg: SplitConfig,
    fractions: dict[str, float],
    block_size: int | None,
    dropped_gap: int,
    num_classes: int,
) -> dict:
    per_split = {}
    for s in SPLITS:
        members = [c for c in chips if c.split == s]
        pixels = np.zeros(num_classes, np.int64)
        for c in members:
            if c.labeled:
                pixels += c.class_pixels
        per_split[s] = {
            "chips": len(members),
            "labeled_chips": sum(c.labeled for c in members),
            "class_pixels": pixels.tolist(),
        }
    reasons: dict[str, int] = defaultdict(int)
    for c in chips:
        if c.split is None:
            reasons[c.drop_reason or "dropped"] += 1
    labeled_total = sum(per_split[s]["labeled_chips"] for s in SPLITS) or 1
    for s in SPLITS:
        per_split[s]["labeled_share"] = round(per_split[s]["labeled_chips"] / labeled_total, 4)
    return {
        "method": cfg.method,
        "fractions": fractions,
        "block_size_chips": block_size,
        "gap_px": cfg.gap,
        "splits": per_split,
        "dropped": dict(reasons),
        "dropped_for_gap": dropped_gap,
    }


def labeled_pixel_report(chips: list[Chip], total: np.ndarray, class_names: list[str]) -> dict:
    """How many of the scene's labeled valid pixels the dataset kept, per class and split.

    `total` counts every labeled valid pixel once (window cores, skipped windows included); a chip's
    `core_pixels` are the labeled pixels of its core that it keeps, so no pixel is counted twice either.
    """
    kept = {s: np.zeros(len(total), np.int64) for s in SPLITS}
    for c in chips:
        if c.split is not None and c.labeled and c.core_pixels is not None:
            kept[c.split] += c.core_pixels
    all_kept = sum(kept.values())
    share = [round(float(k / t), 4) if t else None for k, t in zip(all_kept, total)]
    return {
        "classes": class_names,
        "total": total.tolist(),
        "kept": all_kept.tolist(),
        "kept_by_split": {s: v.tolist() for s, v in kept.items()},
        "lost": (total - all_kept).tolist(),
        "kept_share": round(float(all_kept.sum() / total.sum()), 4) if total.sum() else None,
        "kept_share_by_class": share,
    }
