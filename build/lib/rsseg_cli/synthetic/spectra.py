"""Surface spectra of the sample scene's classes and objects, and their resampling to the output bands.

Reflectance (0..1) is tabulated at six wavelengths (blue, green, red, nir, swir1, swir2) roughly like
Sentinel-2; any requested band count is served by linear interpolation, so 3-band and 8-band scenes share
one landscape.  Rows 0..6 of SPECTRA are the class means (in class-id order); the others are object variants.
"""

from __future__ import annotations

import numpy as np

from rsseg_cli.synthetic.classes import BARE, CROP, GRASS

__all__ = [
    "CROP_STAGES",
    "N_FIXED",
    "ROOFS",
    "ROOF_P",
    "ROOF_PITCHED",
    "ROW",
    "SPECTRA",
    "TEX",
    "band_names",
    "band_wavelengths",
    "to_bands",
]

# The wavelengths (nm) the spectra below are tabulated at.
_WL = np.array([490.0, 560.0, 665.0, 842.0, 1610.0, 2190.0])
_BAND_WL = {"blue": 490.0, "green": 560.0, "red": 665.0, "nir": 842.0, "swir1": 1610.0, "swir2": 2190.0}
# Output band order: red, green, blue first, so that any scene of three or more bands is a true-colour RGB.
_BAND_ORDER = ["red", "green", "blue", "nir", "swir1", "swir2"]

# Rows of the spectra table.  0..6 are the class means; the others are variants used by objects.
SPECTRA: dict[str, tuple[list[float], list[float]]] = {
    # name: (mean, variation direction scaled by a regional field t in [-1, 1])
    "water": ([0.042, 0.040, 0.022, 0.012, 0.006, 0.004], [0.010, 0.016, 0.012, 0.005, 0.002, 0.001]),
    "forest": ([0.022, 0.045, 0.026, 0.290, 0.140, 0.062], [0.004, 0.010, 0.004, 0.070, 0.030, 0.012]),
    "grass": ([0.040, 0.078, 0.058, 0.280, 0.225, 0.125], [0.008, 0.008, 0.020, -0.050, 0.035, 0.035]),
    "crop": ([0.035, 0.075, 0.040, 0.420, 0.220, 0.100], [0.0] * 6),
    "bare": ([0.095, 0.128, 0.158, 0.230, 0.320, 0.270], [0.030, 0.035, 0.045, 0.050, 0.050, 0.045]),
    "building": ([0.150, 0.160, 0.170, 0.200, 0.230, 0.210], [0.0] * 6),
    "road": ([0.070, 0.075, 0.080, 0.092, 0.110, 0.100], [0.006, 0.006, 0.006, 0.006, 0.008, 0.008]),
    "river": ([0.048, 0.056, 0.040, 0.022, 0.010, 0.006], [0.010, 0.015, 0.015, 0.006, 0.002, 0.001]),
    "roof_tile": ([0.055, 0.070, 0.190, 0.270, 0.300, 0.230], [0.0] * 6),
    "roof_grey": ([0.150, 0.160, 0.170, 0.200, 0.230, 0.210], [0.0] * 6),
    "roof_white": ([0.420, 0.440, 0.450, 0.470, 0.430, 0.380], [0.0] * 6),
    "roof_dark": ([0.065, 0.068, 0.072, 0.085, 0.095, 0.090], [0.0] * 6),
    "roof_metal": ([0.140, 0.150, 0.145, 0.160, 0.150, 0.130], [0.0] * 6),
    "road_gravel": ([0.130, 0.142, 0.155, 0.185, 0.225, 0.205], [0.010] * 6),
    "street": ([0.095, 0.100, 0.105, 0.115, 0.130, 0.120], [0.006] * 6),
}
ROW = {name: i for i, name in enumerate(SPECTRA)}
ROOFS = ["roof_tile", "roof_grey", "roof_white", "roof_dark", "roof_metal"]
ROOF_P = [0.36, 0.24, 0.12, 0.18, 0.10]
ROOF_PITCHED = np.array([True, True, False, True, False])
N_FIXED = len(SPECTRA)

# Crop stages an agricultural sub-parcel is drawn from (class, spectrum, row-stripe amplitude range).
CROP_STAGES: list[tuple[int, list[float], tuple[float, float], float]] = [
    # (class, mean spectrum, stripe amplitude range, probability)
    (CROP, [0.030, 0.075, 0.035, 0.450, 0.210, 0.090], (0.03, 0.08), 0.40),  # green, dense
    (CROP, [0.060, 0.105, 0.120, 0.320, 0.310, 0.210], (0.02, 0.05), 0.18),  # ripening / yellow
    (CROP, [0.060, 0.092, 0.090, 0.320, 0.265, 0.180], (0.10, 0.18), 0.12),  # young rows on soil
    (CROP, [0.080, 0.110, 0.125, 0.250, 0.300, 0.235], (0.04, 0.08), 0.06),  # stubble after harvest
    (GRASS, [0.038, 0.082, 0.052, 0.330, 0.220, 0.115], (0.00, 0.02), 0.12),  # meadow
    (BARE, [0.068, 0.090, 0.108, 0.190, 0.280, 0.245], (0.03, 0.07), 0.12),  # ploughed / fallow
]

# Per-class texture amplitudes (fine canopy-scale, medium, regional) of the multiplicative brightness.
TEX = np.array(
    [
        [0.010, 0.030, 0.10],  # water: smooth
        [0.220, 0.100, 0.12],  # forest: rough canopy
        [0.040, 0.070, 0.12],  # grassland
        [0.030, 0.050, 0.06],  # cropland
        [0.050, 0.090, 0.12],  # bare soil
        [0.015, 0.000, 0.04],  # building
        [0.030, 0.020, 0.05],  # road
    ],
    dtype=np.float32,
)


def band_names(bands: int) -> list[str]:
    return [_BAND_ORDER[i] if i < 6 else f"b{i + 1}" for i in range(bands)]


def band_wavelengths(bands: int) -> np.ndarray:
    """Centre wavelengths: the six named bands, then red-edge-like and further bands for the b7.. extras."""
    wl = [_BAND_WL[n] for n in _BAND_ORDER[: min(bands, 6)]]
    extra = bands - len(wl)
    if extra > 0:
        seq = [705.0, 740.0, 783.0, 865.0, 945.0]
        more = list(np.linspace(1000.0, 2100.0, max(extra - len(seq), 0)))
        wl += (seq + more)[:extra]
    return np.array(wl)


def to_bands(spec: np.ndarray, wl: np.ndarray) -> np.ndarray:
    """Resample (..., 6) spectra at the output band wavelengths by linear interpolation."""
    flat = spec.reshape(-1, 6)
    out = np.stack([np.interp(wl, _WL, row) for row in flat]) if len(flat) else np.zeros((0, len(wl)))
    return out.reshape(*spec.shape[:-1], len(wl))
