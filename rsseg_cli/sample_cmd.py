"""`rsseg sample`: write the synthetic sample scene with a progress bar."""

from __future__ import annotations

import logging
from pathlib import Path

from rsseg_cli.errors import UserError
from rsseg_cli.progress import console, progress

log = logging.getLogger("rsseg")

DTYPES = ("uint8", "uint16", "int16", "float32")


def parse_size(text: str) -> tuple[int, int]:
    """'4096' -> (4096, 4096); '1000x1500' -> (1000, 1500) as (height, width)."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 16:
        raise UserError(
            f"--size {text!r} must be a side ('4096') or HEIGHTxWIDTH ('1000x1500'), at least 16 px."
        )
    return values[0], values[1]


def run_sample(
    out_dir: Path,
    size: str,
    bands: int,
    dtype: str,
    crs: str,
    resolution: float | None,
    nodata: float | None,
    seed: int,
    name: str,
):
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    from rsseg_cli.data.sample import generate_sample, sample_total_blocks

    height, width = parse_size(size)
    if dtype not in DTYPES:
        raise UserError(f"--dtype {dtype!r} is not supported; use one of {', '.join(DTYPES)}.")
    if not 3 <= bands <= 16:
        raise UserError(f"--bands {bands} is out of range; use 3 (RGB) to 16.")
    try:
        CRS.from_user_input(crs)
    except CRSError as exc:
        raise UserError(f"--crs {crs!r} is not a CRS GDAL understands ({exc}). Try EPSG:32633.") from None
    with progress("sample", sample_total_blocks(height, width), unit="blocks") as bar:
        result = generate_sample(
            Path(out_dir),
            height=height,
            width=width,
            bands=bands,
            dtype=dtype,
            crs=crs,
            resolution=resolution,
            nodata=nodata,
            seed=seed,
            name=name,
            on_block=bar.advance,
        )
    console.print(f"wrote {result.scene} and {result.labels} ({width} x {height} px, {bands} bands, {dtype})")
    return result
