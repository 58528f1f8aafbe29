"""The label-aware split (the default): labeled units go to splits, and each chip carries the labels of one split.

1. Find the labeled units (`split_units`) and give them to splits, stratified by class with the promises of
   `stratify` (train holds every class, val every class with two units or more).
2. Each window becomes one chip per split whose labels it holds: the labels of other splits are set to
   ignore in it, and so are the labels within the gap of a more protected split's labels (test > val > train).
   Windows without labels are unlabeled train chips, as in every split method.

The guarantee is on the labels: no labeled pixel of one split lies within max(gap, 1) px of a labeled pixel of
another split (checked pixel by pixel on the written chips). Imagery is not exclusive: a window holding train
and val labels gives a train chip and a val chip of the same image, each seeing only its own labels. This is
what keeps the pixels of a few polygons instead of dropping whole chips for the gap; the `blocks` method keeps
chip footprints apart instead, for datasets with labels to spare.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from scipy import ndimage

from rsseg_cli.config import IGNORE_INDEX, SplitConfig
from rsseg_cli.data.chips import Chip
from rsseg_cli.data.label_cells import LabelCells
from rsseg_cli.data.split_units import Units, find_units
from rsseg_cli.data.stratify import promise_classes, stratify

CODE = {"train": 1, "val": 2, "test": 3}  # also the protection order: a higher code keeps contested pixels
SPLIT_OF = {v: k for k, v in CODE.items()}


@dataclass(frozen=True)
class LabelSplitInputs:
    root: Path  # the dataset being written: chips are rewritten in place
    cells: dict[str, LabelCells]
    transforms: dict[str, Affine]
    groups: dict[str, str]
    chip_size: int
    stride: int


def band_width(cfg: SplitConfig) -> int:
    """Pixels set to ignore along another split's labels: the gap, and at least 1 so that none touch."""
    return max(1, math.ceil(cfg.gap))


def split_by_labels(
    chips: list[Chip],
    inputs: LabelSplitInputs,
    cfg: SplitConfig,
    fractions: dict[str, float],
    rng: np.random.Generator,
    num_classes: int,
) -> tuple[list[Chip], dict]:
    """The chips of the dataset (new ones for windows holding several splits) and the method's report."""
    needed = math.ceil(1.0 / min(fractions.values()) - 1e-9)
    units = find_units(
        inputs.cells,
        inputs.transforms,
        inputs.groups,
        num_classes,
        side=cfg.block_size * inputs.stride,
        min_side=max(16, 2 * max((c.cell for c in inputs.cells.values()), default=1)),
        needed=needed,
    )
    choice = _assign(units, fractions, rng, cfg.stratify)
    codes = np.array([CODE[s] for s in choice], np.uint8)
    split_cells = {
        name: np.where(grid >= 0, codes[np.maximum(grid, 0)] if len(codes) else 0, 0).astype(np.uint8)
        for name, grid in units.grids.items()
    }
    width = band_width(cfg)
    out: list[Chip] = []
    for chip in chips:
        if not chip.labeled:
            chip.split = "train"
            out.append(chip)
            continue
        out.extend(_chips_of_window(chip, inputs, split_cells[chip.scene], width, num_classes))
    return out, _unit_report(units, choice, num_classes)


def _assign(
    units: Units, fractions: dict[str, float], rng: np.random.Generator, stratify_: bool
) -> list[str]:
    if not len(units):
        return []
    fixed = promise_classes(units.vectors, fractions, rng)
    vectors = [np.append(v, v.sum()) for v in units.vectors]  # classes, then all labeled pixels
    return stratify(vectors, fractions, rng, stratify_, fixed)


def _chips_of_window(
    chip: Chip, inputs: LabelSplitInputs, split_cells: np.ndarray, width: int, num_classes: int
) -> list[Chip]:
    lc = inputs.cells[chip.scene]
    path = inputs.root / chip.label
    with rasterio.open(path) as src:
        mask = src.read(1)
        profile = src.profile
        tags = src.tags()
        colormap = _colormap(src)
    # Split code of every pixel of the window and of a margin of `width` px around it: exact inside (the
    # labels themselves), from the cell grid outside (whole cells, so the margin errs on the safe side).
    h, w = mask.shape
    context = _cell_codes(
        split_cells, lc.cell, chip.row - width, chip.col - width, h + 2 * width, w + 2 * width
    )
    inner = context[width : width + h, width : width + w]
    inner[:] = np.where(mask < num_classes, inner, 0)
    # A pixel is contested when a more protected split's label lies within `width` px of it.
    nearest = ndimage.maximum_filter(context, size=2 * width + 1, mode="constant", cval=0)
    nearest = nearest[width : width + h, width : width + w]
    codes = np.where(nearest > inner, 0, inner)
    r0, r1, c0, c1 = chip.core
    core = np.zeros_like(mask, bool)
    core[r0 - chip.row : r1 - chip.row, c0 - chip.col : c1 - chip.col] = True
    parts = []
    for code in np.unique(codes[codes > 0]).tolist():
        keep = codes == code
        labels = np.where(keep, mask, IGNORE_INDEX).astype(np.uint8)
        pixels = np.bincount(labels[keep], minlength=num_classes)[:num_classes].astype(np.int64)
        core_pixels = np.bincount(labels[keep & core], minlength=num_classes)[:num_classes].astype(np.int64)
        parts.append((int(pixels.sum()), code, labels, pixels, core_pixels))
    if not parts:  # every label of the window is within the gap of another split's: unlabeled train chip
        path.unlink()
        return [
            replace(
                chip,
                split="train",
                labeled=False,
                label=None,
                class_pixels=chip.class_pixels * 0,
                core_pixels=chip.class_pixels * 0,
                ignore_pixels=h * w,
            )
        ]
    parts.sort(key=lambda p: (-p[0], p[1]))
    out = []
    for rank, (_, code, labels, pixels, core_pixels) in enumerate(parts):
        split = SPLIT_OF[code]
        # The split holding most of the window's labels keeps the window's id and label file.
        chip_id = chip.id if rank == 0 else f"{chip.id}_{split}"
        label = chip.label if rank == 0 else f"{Path(chip.label).parent.as_posix()}/{chip_id}.tif"
        _write_labels(inputs.root / label, labels, profile, tags, colormap)
        out.append(
            replace(
                chip,
                id=chip_id,
                split=split,
                label=label,
                class_pixels=pixels,
                core_pixels=core_pixels,
                ignore_pixels=int(labels.size - pixels.sum()),
                extra={**chip.extra, "window": chip.id},
            )
        )
    return out


def _cell_codes(split_cells: np.ndarray, cell: int, row: int, col: int, h: int, w: int) -> np.ndarray:
    """Split codes of a pixel window (may reach past the scene: code 0 there) from the cell grid."""
    rows = np.arange(row, row + h) // cell
    cols = np.arange(col, col + w) // cell
    gh, gw = split_cells.shape
    ok_r = (rows >= 0) & (rows < gh)
    ok_c = (cols >= 0) & (cols < gw)
    out = np.zeros((h, w), np.uint8)
    out[np.ix_(ok_r, ok_c)] = split_cells[np.ix_(rows[ok_r], cols[ok_c])]
    return out


def _colormap(src: rasterio.DatasetReader) -> dict | None:
    try:
        return src.colormap(1)
    except ValueError:
        return None


def _write_labels(path: Path, labels: np.ndarray, profile: dict, tags: dict, colormap: dict | None) -> None:
    # Written in place: the whole dataset is still in tiling's temporary folder (atomic_dir).
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(labels[None])
        dst.update_tags(**tags)
        if colormap:
            dst.write_colormap(1, colormap)


def _unit_report(units: Units, choice: list[str], num_classes: int) -> dict:
    per_split: dict[str, dict] = {}
    for split in CODE:
        members = [i for i, s in enumerate(choice) if s == split]
        vec = units.vectors[members].sum(axis=0) if members else np.zeros(num_classes, np.int64)
        per_split[split] = {
            "units": len(members),
            "units_per_class": [int((units.vectors[members, k] > 0).sum()) for k in range(num_classes)]
            if members
            else [0] * num_classes,
            "unit_pixels": vec.tolist(),
        }
    # Regions cut into pieces that went to different splits: their evaluation is optimistic (same polygon).
    shared: set[int] = set()
    by_region: dict[int, set[str]] = defaultdict(set)
    for i, s in enumerate(choice):
        by_region[int(units.region[i])].add(s)
    for i, s in enumerate(choice):
        if len(by_region[int(units.region[i])]) > 1 and s != "train":
            shared.update(np.flatnonzero(units.vectors[i] > 0).tolist())
    return {
        "units": len(units),
        "unit_block_px": units.side,
        "units_by_split": per_split,
        "classes_cut_across_splits": sorted(shared),
    }


def pixel_conflicts(chips: list[Chip], root: Path, width: int, num_classes: int) -> int:
    """Pairs of chips of different splits (one scene) with labeled pixels closer than `width` px: the
    label-aware split's leakage check, on the label files as written."""
    by_scene: dict[str, list[Chip]] = defaultdict(list)
    for c in chips:
        if c.split is not None and c.labeled:
            by_scene[c.scene].append(c)
    conflicts = 0
    for members in by_scene.values():
        rows = np.array([c.row for c in members])
        cols = np.array([c.col for c in members])
        heights = np.array([c.height for c in members])
        widths = np.array([c.width for c in members])
        for i, a in enumerate(members):
            near = (
                (rows < a.row + a.height + width)
                & (rows + heights > a.row - width)
                & (cols < a.col + a.width + width)
                & (cols + widths > a.col - width)
            )
            for j in np.flatnonzero(near).tolist():
                b = members[j]
                if j <= i or b.split == a.split:
                    continue
                if _labels_too_close(root, a, b, width, num_classes):
                    conflicts += 1
    return conflicts


def _labels_too_close(root: Path, a: Chip, b: Chip, width: int, num_classes: int) -> bool:
    top, left = min(a.row, b.row), min(a.col, b.col)
    h = max(a.row + a.height, b.row + b.height) - top
    w = max(a.col + a.width, b.col + b.width) - left
    frames = []
    for c in (a, b):
        with rasterio.open(root / c.label) as src:
            labeled = src.read(1) < num_classes
        frame = np.zeros((h, w), bool)
        frame[c.row - top : c.row - top + c.height, c.col - left : c.col - left + c.width] = labeled
        frames.append(frame)
    grown = ndimage.maximum_filter(frames[1], size=2 * width + 1)
    return bool((grown & frames[0]).any())
