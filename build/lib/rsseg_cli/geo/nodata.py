"""Declared nodata (`--nodata`, tile.nodata, predict.nodata): for scenes whose file says nothing about invalid
pixels, or says it wrongly. Parsing the flag's text, and checking the values against one scene's bands."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BeforeValidator

from rsseg_cli.errors import UserError


def nodata_list(value: Any) -> Any:
    """'0' -> [0.0], '0,0,0,-9999' -> [0.0, 0.0, 0.0, -9999.0], 'nan' -> [nan]; a number -> [number].
    Anything else is left to the schema's validation (which names the key)."""
    if isinstance(value, bool):
        return value  # refused by the schema: True is not a nodata value
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        try:
            return [float(p) for p in parts]
        except ValueError:
            raise ValueError(
                f"{value!r} is not a nodata value: give one number for all bands (0) or one per selected "
                "band, comma-separated (0,0,0,-9999)"
            ) from None
    return value


# The schema's type of tile.nodata and predict.nodata: None (the files' own) or one value per band.
NodataList = Annotated[list[float] | None, BeforeValidator(nodata_list)]


def _fmt(v: float) -> str:
    return str(int(v)) if math.isfinite(v) and float(v).is_integer() else str(v)


def format_nodata(values: list[float | None]) -> str:
    """[0.0, 0.0] -> '0', [0.0, -9999.0] -> '0,-9999': the form --nodata takes."""
    shown = ["none" if v is None else _fmt(v) for v in values]
    return shown[0] if len(set(shown)) == 1 else ",".join(shown)


def check_declared(values: list[float], dtype: str, band_names: list[str], path: Path) -> list[float]:
    """One value per selected band, each stored exactly as the scene's pixel type holds it; UserError for a
    wrong count or a value the pixel type cannot hold (it could never match a pixel)."""
    n = len(band_names)
    if len(values) == 1:
        values = values * n
    elif len(values) != n:
        raise UserError(
            f"--nodata (or tile.nodata / predict.nodata) gives {len(values)} values but {n} bands of {path} "
            f"are selected ({', '.join(band_names)}). Give one value for all bands (--nodata 0) or exactly one "
            "per selected band, in band order (--nodata " + ",".join(["0"] * n) + ")."
        )
    kind = np.dtype(dtype)
    out = []
    for name, v in zip(band_names, values):
        if np.issubdtype(kind, np.integer):
            info = np.iinfo(kind)
            ok = math.isfinite(v) and float(v).is_integer() and info.min <= v <= info.max
            limits = f"whole numbers {info.min}..{info.max}"
        else:
            ok = not math.isfinite(v) or abs(v) <= float(np.finfo(kind).max)
            limits = f"values up to ±{float(np.finfo(kind).max):.4g}, nan or inf"
        if not ok:
            raise UserError(
                f"The nodata value {_fmt(v)} (band {name}) cannot occur in {path}, whose pixels are {dtype} "
                f"({limits}). Give a value the pixel type holds, e.g. the fill value of the scene's collar."
            )
        # Float32 scenes compare against the float32 value (0.1 is stored as 0.100000001...).
        out.append(float(np.asarray(v, dtype=kind).item()))
    return out
