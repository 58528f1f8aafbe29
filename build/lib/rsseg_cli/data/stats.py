"""Per-band statistics over valid pixels, accumulated window by window and merged.

For 8- and 16-bit integer data a full histogram per band gives exact moments, extremes and percentiles at the
cost of one bincount per window. For other types mean and standard deviation are exact (float64 sums) and
percentiles come from a seeded sample of valid pixels of every window.
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
        self.count += n
        pixels = data.reshape(self.bands, -1) if n == valid.size else data[:, valid]  # (bands, n)
        if self.hist is not None:
            # Integer data: the histogram alone gives exact moments, extremes and percentiles.
            offset = self.histogram_offset or 0
            for b in range(self.bands):
                values = pixels[b] if offset == 0 else pixels[b].astype(np.int32) + offset
                self.hist[b] += np.bincount(values, minlength=self.histogram_bins)
            return
        as_float = pixels.astype(np.float64)
        self.total += as_float.sum(axis=1)
        self.total_sq += np.einsum("ij,ij->i", as_float, as_float)
        self.minimum = np.minimum(self.minimum, as_float.min(axis=1))
        self.maximum = np.maximum(self.maximum, as_float.max(axis=1))
        rng = np.random.default_rng(seed)
        take = rng.choice(n, size=min(n, SAMPLE_PER_WINDOW), replace=False)
        self.samples.append(as_float[:, np.sort(take)])

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

    def _moments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self.hist is None:
            mean = self.total / self.count
            var = np.maximum(self.total_sq / self.count - mean**2, 0.0)
            return mean, var, self.minimum, self.maximum
        values = np.arange(self.histogram_bins, dtype=np.float64) - (self.histogram_offset or 0)
        counts = self.hist.astype(np.float64)
        mean = counts @ values / self.count
        var = counts @ (values**2) / self.count - mean**2
        present = self.hist > 0
        minimum = np.array([values[np.argmax(p)] for p in present])
        maximum = np.array([values[len(p) - 1 - np.argmax(p[::-1])] for p in present])
        return mean, np.maximum(var, 0.0), minimum, maximum

    def summary(self) -> dict[str, list[float] | int | str]:
        if self.count == 0:
            nan = [float("nan")] * self.bands
            return {"valid_pixels": 0, "mean": nan, "std": nan, "min": nan, "max": nan, "p2": nan, "p98": nan}
        mean, var, minimum, maximum = self._moments()
        return {
            "valid_pixels": int(self.count),
            "mean": _round(mean),
            "std": _round(np.sqrt(var)),
            "min": _round(minimum),
            "max": _round(maximum),
            "p2": _round(self.percentile(2)),
            "p98": _round(self.percentile(98)),
            "percentiles": "exact" if self.hist is not None else "sampled",
        }


def _round(a: np.ndarray) -> list[float]:
    return [float(f"{x:.6g}") for x in a]
