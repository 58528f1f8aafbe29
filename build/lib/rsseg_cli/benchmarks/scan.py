"""Read what `rsseg prepare` needs from every image/label pair, in worker processes: the image's header (size,
bands, type: nothing decoded), the label's value histogram (one decode and one bincount), and, for an even
sample of the images, their pixels for the band statistics. Chunks of pairs go to a process pool, so 40,000
pairs take minutes on a few cores and memory stays that of a few images per worker."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from rsseg_cli.data.stats import BandStats

CHUNK = 48


@dataclass
class PairInfo:
    width: int
    height: int
    bands: int
    dtype: str
    label_shape: tuple[int, int]
    values: np.ndarray  # label values present
    counts: np.ndarray  # their pixel counts
    problem: str | None = None  # an unreadable file, named


def _read_pair(src: Path, image: str, label: str, stats: BandStats | None) -> PairInfo:
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(src / image) as f:
            width, height, bands, dtype = f.width, f.height, f.count, f.dtypes[0]
            if stats is not None and stats.bands == bands and stats.dtype == dtype:
                stats.add(f.read(), np.ones((height, width), bool))
    except (RasterioError, OSError) as exc:
        return PairInfo(0, 0, 0, "", (0, 0), np.zeros(0), np.zeros(0), f"{image}: {_reason(exc)}")
    try:
        with rasterio.open(src / label) as f:
            values = f.read(1)
    except (RasterioError, OSError) as exc:
        return PairInfo(
            width, height, bands, dtype, (0, 0), np.zeros(0), np.zeros(0), f"{label}: {_reason(exc)}"
        )
    if values.dtype.kind in "ui" and values.dtype.itemsize <= 2 and values.min() >= 0:
        counts = np.bincount(values.ravel())
        present = np.flatnonzero(counts)
        found, n = present, counts[present]
    else:  # float or wide labels: exact, if slower
        found, n = np.unique(values, return_counts=True)
    return PairInfo(width, height, bands, dtype, values.shape, found.astype(np.int64), n.astype(np.int64))


def _reason(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def _scan_chunk(
    src: str, pairs: list[tuple[str, str]], sampled: list[bool], bands: int, dtype: str
) -> tuple[list[PairInfo], BandStats]:
    warnings.filterwarnings("ignore")  # PNG/JPG have no georeferencing: rasterio says so for every file
    stats = BandStats(bands, dtype)
    infos = [
        _read_pair(Path(src), image, label, stats if take else None)
        for (image, label), take in zip(pairs, sampled)
    ]
    return infos, stats


def scan_pairs(
    src: Path, pairs: list[tuple[str, str]], bands: int, dtype: str, workers: int, sample: int = 256
) -> Iterator[tuple[int, list[PairInfo], BandStats]]:
    """(start index, infos, band statistics of the sampled images) per chunk, in order. `sample` images,
    evenly spread, contribute to the statistics (all of them in small datasets)."""
    step = max(1, len(pairs) // sample)
    sampled = [i % step == 0 for i in range(len(pairs))]
    starts = range(0, len(pairs), CHUNK)
    args = [(str(src), pairs[s : s + CHUNK], sampled[s : s + CHUNK], bands, dtype) for s in starts]
    if workers <= 1 or len(args) <= 1:
        for s, a in zip(starts, args):
            yield (s, *_scan_chunk(*a))
        return
    # spawn: the parent may hold threads (progress bar) and torch; a forked child would inherit their locks.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        for s, result in zip(starts, pool.map(_scan_chunk, *zip(*args), chunksize=1)):
            yield (s, *result)


def default_workers() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0))))
