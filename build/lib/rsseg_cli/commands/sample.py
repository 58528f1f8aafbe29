"""`rsseg sample`: write the deterministic synthetic sample scene and its label raster."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rsseg_cli.errors import UserError

if TYPE_CHECKING:
    from rsseg_cli.synthetic import SampleScene

DTYPES = ("uint8", "uint16", "int16", "float32")
POLYGON_FIELD = "landcover"  # not one of the names tile finds by itself: the README shows --label-field


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


@dataclass
class SampleOptions:
    out_dir: Path = Path("sample")
    size: str = "4096"  # a side, or HEIGHTxWIDTH
    band_count: int = 4
    dtype: str = "uint16"
    crs: str = "EPSG:32633"
    resolution: float | None = None
    nodata: float | None = None
    seed: int = 0
    name: str = "scene"
    polygons: int = 0  # also write this many polygons digitized over the class map (<name>_polygons.gpkg)
    height: int = field(init=False)
    width: int = field(init=False)

    def __post_init__(self) -> None:
        from rasterio.crs import CRS
        from rasterio.errors import CRSError

        self.height, self.width = parse_size(self.size)
        if Path(self.out_dir).exists() and not Path(self.out_dir).is_dir():
            raise UserError(
                f"{self.out_dir} is a file; the sample is written into a folder. Choose a folder."
            )
        if self.dtype not in DTYPES:
            raise UserError(f"--dtype {self.dtype!r} is not supported; use one of {', '.join(DTYPES)}.")
        if not 3 <= self.band_count <= 16:
            raise UserError(f"--band-count {self.band_count} is out of range; use 3 (RGB) to 16.")
        if self.polygons < 0:
            raise UserError(f"--polygons {self.polygons} must be 0 (none) or a number of polygons.")
        if self.resolution is not None and not self.resolution > 0:
            raise UserError(f"--resolution {self.resolution} must be a positive pixel size in CRS units.")
        try:
            crs = CRS.from_user_input(self.crs)
        except CRSError as exc:
            raise UserError(
                f"--crs {self.crs!r} is not a CRS GDAL understands ({exc}). Try EPSG:32633."
            ) from None
        if self.resolution is not None and not _on_earth(crs, self.resolution, self.height, self.width):
            good, bad = 0.0, self.resolution  # the largest pixel size that keeps the scene on the globe
            for _ in range(60):
                mid = (good + bad) / 2
                good, bad = (mid, bad) if _on_earth(crs, mid, self.height, self.width) else (good, mid)
            raise UserError(
                f"--resolution {self.resolution:g} makes the {self.height} x {self.width} px scene reach beyond "
                f"the globe (latitudes beyond +-90 or outside what {self.crs} covers). For this --size use at "
                f"most --resolution {good:.4g}, or a smaller --size."
            )


def _on_earth(crs, resolution: float, height: int, width: int) -> bool:
    """Whether the sample scene (placed as synthetic.write places it) has its corners and edge midpoints on
    the globe: latitudes within +-90 and, for a projection, coordinates that map back to themselves."""
    import numpy as np
    from rasterio.warp import transform

    x0, y0 = (15.0, 47.0) if crs.is_geographic else (500000.0, 5500000.0)
    if crs.is_geographic:
        return y0 - height * resolution >= -90 and x0 + width * resolution <= 180
    xs = [x0 + width * resolution * f for f in (0, 0.5, 1) for _ in range(3)]
    ys = [y0 - height * resolution * f for _ in range(3) for f in (0, 0.5, 1)]
    try:
        lon, lat = transform(crs, "EPSG:4326", xs, ys)
        if not np.all(np.isfinite(lat)) or np.max(np.abs(lat)) > 90:
            return False
        bx, by = transform("EPSG:4326", crs, lon, lat)
    except Exception:  # GDAL: point outside of the projection's domain
        return False
    tol = 1 + 1e-6 * max(height, width) * resolution
    return bool(np.allclose(bx, xs, atol=tol) and np.allclose(by, ys, atol=tol))


def run(options: SampleOptions) -> SampleScene:
    from rsseg_cli.progress import console, progress
    from rsseg_cli.synthetic import generate_sample, sample_total_blocks

    o = options
    with progress("sample", sample_total_blocks(o.height, o.width), unit="blocks") as bar:
        result = generate_sample(
            Path(o.out_dir),
            height=o.height,
            width=o.width,
            bands=o.band_count,
            dtype=o.dtype,
            crs=o.crs,
            resolution=o.resolution,
            nodata=o.nodata,
            seed=o.seed,
            name=o.name,
            on_block=bar.advance,
        )
    console.print(
        f"wrote {result.scene} and {result.labels} ({o.width} x {o.height} px, {o.band_count} bands, {o.dtype})"
    )
    if o.polygons:
        from rsseg_cli.synthetic.analyst import digitize_polygons

        path = Path(o.out_dir) / f"{o.name}_polygons.gpkg"
        digitize_polygons(result.labels, path, o.polygons, seed=o.seed, field=POLYGON_FIELD)
        console.print(
            f"wrote {path}: training areas like hand-digitized ones, class names in '{POLYGON_FIELD}'"
        )
    return result
