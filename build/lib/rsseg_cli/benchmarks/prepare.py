"""`rsseg prepare NAME SRC`: a public benchmark's prepared folder as an rsseg dataset, in place.

The images are already chip-sized, so nothing is copied or re-encoded: chips.csv points at them (paths relative
to SRC, recorded as the dataset's `chip_root`), dataset.yaml carries the benchmark's class table and its label
convention (`label_encoding`: chips are read with the raw values mapped to class ids, e.g. reduce-zero-label),
and the split column follows the published val/test lists. The published labeled/unlabeled lists are selected at
training time (`rsseg train --split co2s/1_8`, benchmarks.published).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from rsseg_cli import __version__
from rsseg_cli.atomic import atomic_dir
from rsseg_cli.benchmarks import lists
from rsseg_cli.benchmarks.layouts import Pair, chip_id
from rsseg_cli.benchmarks.preset import Preset
from rsseg_cli.benchmarks.scan import PairInfo, default_workers, scan_pairs
from rsseg_cli.config import IGNORE_INDEX
from rsseg_cli.data.classes import ClassTable, check_label_values
from rsseg_cli.data.manifest import CHIPS_CSV, DATASET_FILE
from rsseg_cli.data.stats import BandStats
from rsseg_cli.errors import UserError
from rsseg_cli.progress import progress

log = logging.getLogger("rsseg")
RGB = ("red", "green", "blue")


def prepare_benchmark(
    preset: Preset, src: Path, out: Path, overwrite: bool = False, workers: int | None = None
) -> dict:
    """Write the dataset folder `out` for the benchmark folder `src`; returns the summary."""
    src = Path(src).expanduser().resolve()
    out = Path(out)
    if not src.is_dir():
        raise UserError(
            f"The {preset.title} folder {src} does not exist. Pass the folder that holds the data."
        )
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists. Pass --overwrite to replace it, or choose another --out.")
    layout = preset.layout_of(src)
    found, lonely = layout.pairs(src)
    if not found:
        raise UserError(
            f"{src} holds no image with its label for {preset.title}. The expected layout is:\n{layout.drawing}"
        )
    if lonely:
        shown = ", ".join(lonely[:3]) + (f" and {len(lonely) - 3} more" if len(lonely) > 3 else "")
        raise UserError(
            f"{len(lonely)} image(s) in {src} have no label file: {shown}. Every image needs its label "
            f"({layout.drawing.strip()}); restore the missing labels or remove those images."
        )
    _check_unique_ids(found, src)
    splits, left_out, missing = _assign_splits(preset, found)
    kept = [p for p in found if chip_id(p.image) in splits]
    if not kept:
        raise UserError(
            f"None of the {len(found)} images in {src} is in the published {preset.title} train/val lists "
            f"({preset.lists}). Check that SRC is the {preset.title} folder of the released layout."
        )
    if missing:
        log.warning(
            "%s is partial: %d of the images the published %s lists name are not there (e.g. %s). Training "
            "with a published split that names them (--split) will be refused.",
            src,
            missing[0],
            preset.lists,
            ", ".join(missing[1][:3]),
        )
    if left_out:
        log.warning(
            "%d image(s) of %s are in none of the published train/val/test lists and are left out (e.g. %s).",
            len(left_out),
            src,
            ", ".join(left_out[:3]),
        )
    table = ClassTable.from_specs(_specs(preset))
    ignore = preset.ignored_values()
    rows, stats, sizes = _scan(preset, src, kept, splits, table, ignore, workers or default_workers())
    frame = pd.DataFrame(rows)
    chip_size = Counter(max(h, w) for h, w in sizes).most_common(1)[0][0]
    meta = _dataset_meta(preset, layout.name, src, table, ignore, stats, chip_size, frame, len(left_out))
    with atomic_dir(out) as tmp:
        frame.to_csv(tmp / CHIPS_CSV, index=False)
        (tmp / DATASET_FILE).write_text(yaml.safe_dump(meta, sort_keys=False, allow_unicode=True))
        (tmp / "split_report.json").write_text(json.dumps(_report(frame, table), indent=2))
    return {
        "out": str(out),
        "chips": len(frame),
        "splits": meta["splits"],
        "classes": table.names,
        "chip_size": chip_size,
        "published": meta["benchmark"]["splits"],
        "left_out": len(left_out),
    }


def _specs(preset: Preset):
    from rsseg_cli.config import ClassSpec

    return [ClassSpec(**c) for c in preset.classes()]


def _check_unique_ids(pairs: list[Pair], src: Path) -> None:
    seen: dict[str, str] = {}
    for p in pairs:
        other = seen.setdefault(chip_id(p.image), p.image)
        if other != p.image:
            raise UserError(
                f"{src} holds two images with the name {chip_id(p.image)!r} ({other} and {p.image}); the "
                "published lists name images by file name, so each must be unique. Remove the duplicate."
            )


def _assign_splits(
    preset: Preset, pairs: list[Pair]
) -> tuple[dict[str, str], list[str], tuple[int, list[str]]]:
    """chip id -> split, the images of no list (left out), and (count, names) of listed images not present.

    A layout that gives splits itself (LoveDA's release) keeps them; otherwise the family's val.txt -> val,
    test.txt -> test, and train.txt (or every ratio's labeled + unlabeled lists) -> train."""
    present = {chip_id(p.image) for p in pairs}
    listed: dict[str, str] = {}
    for split in ("train", "val", "test"):
        for entry in _family_entries(preset, split):
            listed.setdefault(chip_id(entry[0]), split)
    absent = sorted(set(listed) - present)
    missing = (len(absent), absent)
    if all(p.split for p in pairs):
        return {chip_id(p.image): p.split for p in pairs}, [], missing
    splits = {i: s for i, s in listed.items() if i in present}
    left_out = sorted(p.image for p in pairs if chip_id(p.image) not in splits)
    return splits, left_out, missing


def _family_entries(preset: Preset, split: str) -> list[tuple[str, ...]]:
    name = f"{preset.lists}/{split}.txt"
    if lists.has_list(name):
        return list(lists.read_list(name))
    if split != "train":
        return []
    entries = []
    for ratio in lists.ratios(preset.family, preset.lists.split("/", 1)[1]):
        for part in ("labeled", "unlabeled"):
            if lists.has_list(f"{preset.lists}/{ratio}/{part}.txt"):
                entries += lists.read_list(f"{preset.lists}/{ratio}/{part}.txt")
    return entries


def _scan(preset, src, pairs, splits, table, ignore, workers):
    """Chip rows, band statistics and image sizes; a label value outside the class table stops here."""
    classes = table.raster_values()
    lut_values = {v: i for i, v in enumerate(classes)}
    first = _first_header(src, pairs[0].image)
    stats = BandStats(first[0], first[1])
    rows, sizes, problems = [], [], []
    unknown: Counter = Counter()
    where: dict[int, str] = {}
    with progress(f"prepare {preset.name}", len(pairs), unit="images") as bar:
        for start, infos, part in scan_pairs(src, [(p.image, p.label) for p in pairs], *first, workers):
            stats.merge(part)
            for pair, info in zip(pairs[start : start + len(infos)], infos):
                problem = info.problem or _mismatch(info, first, pair)
                if problem:
                    problems.append(problem)
                    continue
                px = np.zeros(len(classes), np.int64)
                ignored = 0
                for v, n in zip(info.values.tolist(), info.counts.tolist()):
                    if v in lut_values:
                        px[lut_values[v]] += n
                    elif v in ignore:
                        ignored += n
                    else:
                        unknown[v] += n
                        where.setdefault(v, pair.label)
                sizes.append((info.height, info.width))
                rows.append(_row(pair, splits[chip_id(pair.image)], info, px, ignored))
            bar.advance(len(infos))
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise UserError(f"{len(problems)} file(s) in {src} cannot be used: {shown}.")
    if unknown:
        first_file = where[min(where)]
        check_label_values(
            dict(unknown),
            table,
            f"the {preset.title} labels (e.g. {src / first_file})",
            ignore_values=ignore,
            table_name=f"the {preset.title} class table",
            fix="Check that SRC holds the released layout's labels (class ids, not colours).",
        )
    return rows, stats, sizes


def _first_header(src: Path, image: str) -> tuple[int, str]:
    import warnings

    import rasterio
    from rasterio.errors import RasterioError

    warnings.filterwarnings("ignore", category=rasterio.errors.NotGeoreferencedWarning)
    try:
        with rasterio.open(src / image) as f:
            return f.count, f.dtypes[0]
    except (RasterioError, OSError) as exc:
        raise UserError(f"The image {src / image} cannot be read ({exc}).") from None


def _mismatch(info: PairInfo, first: tuple[int, str], pair: Pair) -> str | None:
    if (info.bands, info.dtype) != first:
        return (
            f"{pair.image} has {info.bands} band(s) of {info.dtype}, the first image {first[0]} of {first[1]}"
        )
    if info.label_shape != (info.height, info.width):
        return (
            f"{pair.label} is {info.label_shape[1]} x {info.label_shape[0]} px, its image "
            f"{info.width} x {info.height} px"
        )
    return None


def _row(pair: Pair, split: str, info: PairInfo, px: np.ndarray, ignored: int) -> dict:
    row = {
        "id": chip_id(pair.image),
        "scene": pair.scene or "",
        "split": split,
        "labeled": True,
        "valid_fraction": 1.0,
        "row": 0,
        "col": 0,
        "height": info.height,
        "width": info.width,
        "image": pair.image,
        "label": pair.label,
        "ignore_pixels": ignored,
    }
    row.update({f"px_{k}": int(n) for k, n in enumerate(px)})
    return row


def _dataset_meta(preset, layout, src, table, ignore, stats, chip_size, frame, left_out) -> dict:
    bands = stats.bands
    names = list(RGB) if bands == 3 else [f"band_{i + 1}" for i in range(bands)]
    dataset = {
        "rsseg_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "chip_size": int(chip_size),
        "ignore_index": IGNORE_INDEX,
        "dtype": stats.dtype,
        "bands": [{"index": i + 1, "name": n} for i, n in enumerate(names)],
        "classes": table.as_dicts(),
        # Chip labels hold the benchmark's raw values: readers map them with the classes' `value`.
        "label_encoding": {"kind": "values", "ignore_values": [int(v) for v in ignore]},
        "chip_root": str(src),
        "statistics": stats.summary(),
        "splits": {s: int(n) for s, n in frame["split"].value_counts().sort_index().items()},
        "benchmark": {
            "name": preset.name,
            "title": preset.title,
            "layout": layout,
            "source": str(src),
            "label_conversion": preset.conversion,
            "lists": preset.lists,
            "splits": [
                f"{preset.family}/{r}" for r in lists.ratios(preset.family, preset.lists.split("/")[1])
            ],
            "protocol": preset.protocol,
            "exclude_classes": list(preset.exclude_classes),
            "test_is_val": preset.test_is_val,
            "left_out_images": left_out,
        },
    }
    return dataset


def _report(frame: pd.DataFrame, table: ClassTable) -> dict:
    out = {}
    for split, rows in frame.groupby("split"):
        px = {name: int(rows[f"px_{k}"].sum()) for k, name in enumerate(table.names)}
        out[str(split)] = {
            "chips": len(rows),
            "class_pixels": px,
            "ignored_pixels": int(rows["ignore_pixels"].sum()),
        }
    return {"splits": out}
