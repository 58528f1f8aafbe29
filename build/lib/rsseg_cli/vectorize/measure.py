"""From pixel pieces to output polygons: map coordinates, metric measures, hole filling, simplification.

Areas, perimeters and every threshold given in metres are evaluated in a *work space* whose unit is a known
number of metres:
- projected CRS: the CRS itself, scaled by its linear unit (1 for metres, 0.3048 for feet, ...): planar
  areas, as GIS tools report them for a layer in that CRS;
- geographic CRS (axes in degrees): a Lambert azimuthal equal-area projection centred
  on the scene, on the CRS's own datum. It is equal-area everywhere, so areas match geodesic areas; lengths
  (perimeter, simplification tolerance) are exact at the centre and within a fraction of a percent over
  scenes a few hundred kilometres wide;
- no CRS (pixel space): the raster's own coordinates, so areas are in square pixels (logged as such).

Order: holes are filled, then polygons simplified, then measured, then filtered by area, so every polygon
written has area_m2 >= the minimum and its attributes describe the geometry written. mean_prob is over the
polygon's pixels as predicted (before hole filling or simplification).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pyproj
import shapely
from pyproj.crs import ProjectedCRS
from pyproj.crs.coordinate_operation import LambertAzimuthalEqualAreaConversion
from rasterio.crs import CRS
from rasterio.transform import Affine

log = logging.getLogger("rsseg")


def _transform_coords(transformer: pyproj.Transformer):
    def apply(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return apply


class Measurer:
    """Maps pixel pieces to the raster CRS and measures them in metres (see the module docstring)."""

    def __init__(self, crs: CRS | None, transform: Affine, height: int, width: int):
        self.transform = transform
        self.crs = crs
        self._to_work: pyproj.Transformer | None = None
        self._from_work: pyproj.Transformer | None = None
        self.scale = 1.0  # metres per work-space unit
        if crs is None:
            self.kind = "pixels"
            self.description = "no CRS: area_m2 and perimeter_m are in pixel units (square pixels, pixels)"
            return
        pc = pyproj.CRS.from_wkt(crs.to_wkt())
        if pc.is_compound:
            pc = pc.sub_crs_list[0]
        if not pc.is_geographic:
            # Projected (or engineering) CRS: its linear unit says how many metres one unit is.
            unit = pc.axis_info[0] if pc.axis_info else None
            self.kind = "projected"
            self.scale = float(unit.unit_conversion_factor) if unit and unit.unit_conversion_factor else 1.0
            name = unit.unit_name if unit else "unknown unit, taken as metre"
            self.description = f"areas in m2 from the CRS unit ({name}, {self.scale:g} m)"
            return
        self.kind = "geographic"
        cx, cy = transform @ (width / 2, height / 2)
        lon, lat = pyproj.Transformer.from_crs(pc, pc.geodetic_crs, always_xy=True).transform(cx, cy)
        laea = ProjectedCRS(
            conversion=LambertAzimuthalEqualAreaConversion(
                latitude_natural_origin=float(lat), longitude_natural_origin=float(lon)
            ),
            geodetic_crs=pc.geodetic_crs,
        )
        self._to_work = pyproj.Transformer.from_crs(pc, laea, always_xy=True)
        self._from_work = pyproj.Transformer.from_crs(laea, pc, always_xy=True)
        self.description = (
            f"geographic CRS: areas in m2 in a Lambert azimuthal equal-area projection centred on the scene "
            f"(lat {lat:.4f}, lon {lon:.4f})"
        )

    @property
    def area_unit(self) -> str:
        return "pixels" if self.kind == "pixels" else "m2"

    def to_crs(self, pixel_geoms: np.ndarray) -> np.ndarray:
        """Apply the raster's affine transform to pixel coordinates (x = column, y = row)."""
        t = self.transform
        matrix = np.array([[t.a, t.d], [t.b, t.e]])
        offset = np.array([t.c, t.f])
        return shapely.transform(pixel_geoms, lambda c: c @ matrix + offset)

    def to_work(self, crs_geoms: np.ndarray) -> np.ndarray:
        if self._to_work is None:
            return crs_geoms
        return shapely.transform(crs_geoms, _transform_coords(self._to_work))

    def from_work(self, work_geoms: np.ndarray) -> np.ndarray:
        if self._from_work is None:
            return work_geoms
        return shapely.transform(work_geoms, _transform_coords(self._from_work))


@dataclass(frozen=True)
class PolygonOptions:
    min_area_m2: float = 0.0
    simplify_m: float = 0.0
    fill_holes_m2: float = 0.0


@dataclass(frozen=True)
class Polygons:
    """Finished polygons in the raster CRS with their attributes."""

    geoms: np.ndarray
    class_id: np.ndarray
    area_m2: np.ndarray
    perimeter_m: np.ndarray
    mean_prob: np.ndarray | None

    def __len__(self) -> int:
        return len(self.geoms)


def finish(
    geoms: np.ndarray,
    class_id: np.ndarray,
    conf_sum: np.ndarray | None,
    measurer: Measurer,
    options: PolygonOptions,
) -> Polygons:
    """Pixel pieces -> polygons in the raster CRS: holes filled, simplified, measured, filtered by area."""
    pixels = shapely.area(geoms)  # exact: pixel polygons have integer vertices; the mean_prob denominator
    crs_geoms = measurer.to_crs(geoms)
    work = measurer.to_work(crs_geoms)
    scale = measurer.scale
    changed = False
    if options.fill_holes_m2 > 0:
        filled = fill_small_holes(work, options.fill_holes_m2 / scale**2)
        changed = filled is not work
        work = filled
    if options.simplify_m > 0:
        work = shapely.simplify(work, options.simplify_m / scale, preserve_topology=True)
        changed = True
    area = shapely.area(work) * scale**2
    perimeter = shapely.length(work) * scale
    # Reprojecting back is only needed when the work space is not the CRS and the shapes changed; otherwise
    # the exact CRS coordinates are kept (no round trip through the local projection).
    out = work
    if measurer.kind == "geographic":
        out = measurer.from_work(work) if changed else crs_geoms
    keep = area >= options.min_area_m2 if options.min_area_m2 > 0 else slice(None)
    mean = None
    if conf_sum is not None:
        mean = conf_sum / np.maximum(pixels, 1) / 255.0
        mean = mean[keep]
    return Polygons(out[keep], class_id[keep], area[keep], perimeter[keep], mean)


def fill_small_holes(geoms: np.ndarray, max_area: float) -> np.ndarray:
    """Remove the interior rings whose area is below max_area (work-space units); returns the input array
    itself when no ring is removed. Polygons inside a filled hole are left as they are (they may be other
    classes' polygons, which would then overlap the filled one)."""
    rings, owner = shapely.get_rings(geoms, return_index=True)
    if not len(rings):
        return geoms
    exterior = np.r_[True, owner[1:] != owner[:-1]]
    holes = np.flatnonzero(~exterior)
    drop = np.zeros(len(rings), dtype=bool)
    drop[holes] = shapely.area(shapely.polygons(rings[holes])) < max_area
    if not drop.any():
        return geoms
    affected = np.unique(owner[drop])
    kept = np.flatnonzero(~drop & np.isin(owner, affected))
    rebuilt = shapely.polygons(rings[kept], indices=np.searchsorted(affected, owner[kept]))
    out = geoms.copy()
    out[affected] = rebuilt
    return out
