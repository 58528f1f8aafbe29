"""Per-band statistics over valid pixels, accumulated window by window and merged.

Mean and standard deviation are exact (float64 sums). Percentiles are exact for 8- and 16-bit integer data
(full histograms); for other types they come from a seeded sample of valid pixels from every window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SAMPLE_PER_WINDOW = 4096


@dataclass
class BandStats:
    bands: int
    dtype: str
    count: int = 0
    total: np.ndarray = field(init=False)
    total_sq: np.ndarray = field(init=False)
    minimum: np.ndarray = field(init=False)
    maximum: np.ndarray = field(init=False)
    hist: np.ndarray | None = field(init=False, default=None)
    samples: list[np.ndarray] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.total = np.zeros(self.bands, np.float64)
        self.total_sq = np.zeros(self.bands, np.float64)
        self.minimum = np.full(self.bands, np.inf)
        self.maximum = np.full(self.bands, -np.inf)
        if self.histogram_offset is not None:
            self.hist = np.zeros((self.bands, self.histogram_bins), np.int64)

    @property
    def histogram_offset(self) -> int | None:
        return {"uint8": 0, "uint16": 0, "int16": 32768}.get(self.dtype)

    @property
    def histogram_bins(self) -> int:
        return 256 if self.dtype == "uint8" else 65536

    def add(self, data: np.ndarray, valid: np.ndarray, seed: int = 0) -> None:
        """Accumulate pixels of `data` (bands, h, w) where `valid` (h, w) is true."""
        n = int(valid.sum())
        if n == 0:
            return
        pixels = data[:, valid]  # (bands, n)
        as_float = pixels.astype(np.float64)
        self.count += n
        self.total += as_float.sum(axis=1)
        self.total_sq += np.einsum("ij,ij->i", as_float, as_float)
        self.minimum = np.minimum(self.minimum, as_float.min(axis=1))
        self.maximum = np.maximum(self.maximum, as_float.max(axis=1))
        if self.hist is not None:
            offset = self.histogram_offset or 0
            for b in range(self.bands):
                self.hist[b] += np.bincount(
                    pixels[b].astype(np.int64) + offset, minlength=self.histogram_bins
                )
        else:
            rng = np.random.default_rng(seed)
            take = rng.choice(n, size=min(n, SAMPLE_PER_WINDOW), replace=False)
            self.samples.append(pixels[:, np.sort(take)].astype(np.float64))

    def merge(self, other: BandStats) -> None:
        if other.count == 0:
            return
        self.count += other.count
        self.total += other.total
        self.total_sq += other.total_sq
        self.minimum = np.minimum(self.minimum, other.minimum)
        self.maximum = np.maximum(self.maximum, other.maximum)
        if self.hist is not None and other.hist is not None:
            self.hist += other.hist
        self.samples.extend(other.samples)

    def percentile(self, q: float) -> np.ndarray:
        if self.hist is not None:
            cdf = np.cumsum(self.hist, axis=1)
            target = q / 100.0 * cdf[:, -1]
            idx = np.array([np.searchsorted(cdf[b], target[b], side="left") for b in range(self.bands)])
            return idx.astype(np.float64) - (self.histogram_offset or 0)
        if not self.samples:
            return np.full(self.bands, np.nan)
        return np.percentile(np.concatenate(self.samples, axis=1), q, axis=1)

    def summary(self) -> dict[str, list[float] | int | str]:
        if self.count == 0:
            nan = [float("nan")] * self.bands
            return {"valid_pixels": 0, "mean": nan, "std": nan, "min": nan, "max": nan, "p2": nan, "p98": nan}
        mean = self.total / self.count
        var = np.maximum(self.total_sq / self.count - mean**2, 0.0)
        return {
            "valid_pixels": int(self.count),
            "mean": _round(mean),
            "std": _round(np.sqrt(var)),
            "min": _round(self.minimum),
            "max": _round(self.maximum),
            "p2": _round(self.percentile(2)),
            "p98": _round(self.percentile(98)),
            "percentiles": "exact" if self.hist is not None else "sampled",
        }


def _round(a: np.ndarray) -> list[float]:
    return [float(f"{x:.6g}") for x in a]
