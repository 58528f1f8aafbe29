"""All masks of an output folder as one map: a VRT mosaic (and on request a COG), plus the scenes' footprints.

`mosaic.vrt` points at every mask by a path relative to it (the folder can be moved), on the finest pixel
size among them, with the class colour table, category names, the RSSEG_CLASSES tag and nodata 255. Each
mask is a ComplexSource with NODATA 255, so where scenes overlap a later scene's nodata never hides an
earlier scene's classes (a later scene's classes win). Masks are not warped: scenes on several CRSs get
one VRT per CRS (`mosaic_EPSG_32633.vrt`, ...; a warp would resample classes), and the log says so.
Rotated or south-up masks cannot sit on one north-up grid and are left out of the VRT (logged).
`footprints.gpkg` has one polygon per scene (its outline in its CRS, reprojected to WGS 84 when the scenes
are on several CRSs) with its mask, status, seconds, error and class shares; a failed scene whose input
cannot even be opened has no known extent and no row (logged).
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.windows import Window

from rsseg_cli.atomic import atomic_file
from rsseg_cli.geo.class_raster import (
    CLASS_TAG,
    MASK_NODATA,
    class_colormap,
    class_sidecar_path,
    class_sidecar_xml,
    read_class_table,
    write_class_sidecar,
)
from rsseg_cli.geo.qml import mask_qml, qml_path
from rsseg_cli.geo.raster import same_crs, window_footprint
from rsseg_cli.predict.cog import write_cog

log = logging.getLogger("rsseg")

MOSAIC_NAME = "mosaic"
FOOTPRINTS_NAME = "footprints.gpkg"


@dataclass
class Footprint:
    """One scene's row in footprints.gpkg."""

    scene: str
    status: str  # done | skipped | failed
    mask: Path | None = None
    seconds: float = 0.0
    error: str | None = None
    class_pixels: dict[str, int] = field(default_factory=dict)
    crs: CRS | None = None
    corners: list[tuple[float, float]] | None = None  # None: the extent is unknown


def raster_outline(path: Path | str) -> tuple[CRS | None, list[tuple[float, float]]] | None:
    """The CRS and four corners of a raster, or None when it cannot be opened."""
    try:
        with rasterio.open(path) as src:
            return src.crs, window_footprint(src.transform, Window(0, 0, src.width, src.height))
    except (rasterio.errors.RasterioError, OSError):
        return None


@dataclass
class _Mask:
    path: Path
    crs: CRS
    transform: Affine
    width: int
    height: int


def _crs_label(crs: CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG_{epsg}" if epsg else f"crs{abs(hash(crs.to_wkt())) % 10_000:04d}"


def _group_by_crs(masks: list[Path]) -> list[list[_Mask]]:
    groups: list[list[_Mask]] = []
    for path in masks:
        with rasterio.open(path) as src:
            m = _Mask(Path(path), src.crs, src.transform, src.width, src.height)
        t = m.transform
        if m.crs is None or t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
            log.warning("%s has no CRS or is not north-up: it is left out of the mosaic.", path)
            continue
        for group in groups:
            if same_crs(group[0].crs, m.crs):
                group.append(m)
                break
        else:
            groups.append([m])
    return groups


def mosaic_vrt_xml(masks: list[_Mask], vrt: Path, classes: list[dict]) -> str:
    """The VRTDataset of masks on one CRS, on the finest pixel size among them."""
    res_x = min(m.transform.a for m in masks)
    res_y = min(-m.transform.e for m in masks)
    left = min(m.transform.c for m in masks)
    top = max(m.transform.f for m in masks)
    right = max(m.transform.c + m.width * m.transform.a for m in masks)
    bottom = min(m.transform.f + m.height * m.transform.e for m in masks)
    width = max(1, math.ceil((right - left) / res_x - 1e-6))
    height = max(1, math.ceil((top - bottom) / res_y - 1e-6))
    cmap = class_colormap(classes)
    entries = "".join(
        '      <Entry c1="{}" c2="{}" c3="{}" c4="{}"/>\n'.format(*cmap.get(i, (0, 0, 0, 0)))
        for i in range(256)
    )
    # The category names and attribute table of the masks' own sidecar, inside the VRT's band.
    pam = class_sidecar_xml(classes)
    names_and_rat = pam[pam.index("    <CategoryNames>") : pam.index("  </PAMRasterBand>")]
    table = [{k: c[k] for k in ("id", "name", "color", "value") if c.get(k) is not None} for c in classes]
    sources = []
    for m in masks:
        rel = os.path.relpath(m.path.resolve(), vrt.parent.resolve())
        x_off = (m.transform.c - left) / res_x
        y_off = (top - m.transform.f) / res_y
        x_size = m.width * m.transform.a / res_x
        y_size = m.height * -m.transform.e / res_y
        sources.append(
            "    <ComplexSource>\n"
            f'      <SourceFilename relativeToVRT="1">{escape(rel)}</SourceFilename>\n'
            "      <SourceBand>1</SourceBand>\n"
            f'      <SrcRect xOff="0" yOff="0" xSize="{m.width}" ySize="{m.height}"/>\n'
            f'      <DstRect xOff="{x_off:.10g}" yOff="{y_off:.10g}" xSize="{x_size:.10g}" '
            f'ySize="{y_size:.10g}"/>\n'
            f"      <NODATA>{MASK_NODATA}</NODATA>\n"
            "      <ResampleAlg>nearest</ResampleAlg>\n"
            "    </ComplexSource>\n"
        )
    return (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">\n'
        f"  <SRS>{escape(masks[0].crs.to_wkt())}</SRS>\n"
        f"  <GeoTransform>{left:.17g}, {res_x:.17g}, 0, {top:.17g}, 0, {-res_y:.17g}</GeoTransform>\n"
        f"  <Metadata>\n    <MDI key={quoteattr(CLASS_TAG)}>{escape(json.dumps(table))}</MDI>\n  </Metadata>\n"
        '  <VRTRasterBand dataType="Byte" band="1">\n'
        "    <Description>class</Description>\n"
        f"    <NoDataValue>{MASK_NODATA}</NoDataValue>\n"
        "    <ColorInterp>Palette</ColorInterp>\n"
        f"{names_and_rat}"
        f"    <ColorTable>\n{entries}    </ColorTable>\n"
        f"{''.join(sources)}"
        "  </VRTRasterBand>\n"
        "</VRTDataset>\n"
    )


def write_mosaic(out: Path, masks: list[Path], cog: bool = False, compress: str = "deflate") -> list[Path]:
    """`out`/mosaic.vrt over `masks` (one VRT per CRS), and with `cog` the same as COGs; returns the files."""
    if len(masks) < 2:
        return []
    with rasterio.open(masks[0]) as src:
        classes = read_class_table(src) or []
    groups = _group_by_crs(masks)
    if len(groups) > 1:
        log.info(
            "the masks are on %d CRSs: one mosaic per CRS (%s), since warping would resample classes",
            len(groups),
            ", ".join(_crs_label(g[0].crs) for g in groups),
        )
    written = []
    for group in groups:
        stem = MOSAIC_NAME if len(groups) == 1 else f"{MOSAIC_NAME}_{_crs_label(group[0].crs)}"
        vrt = out / f"{stem}.vrt"
        with atomic_file(vrt) as tmp, atomic_file(qml_path(vrt)) as style:
            tmp.write_text(mosaic_vrt_xml(group, vrt, classes), encoding="utf-8")
            style.write_text(mask_qml(classes), encoding="utf-8")  # QGIS opens it with the class colours
        written.append(vrt)
        if cog:
            tif = out / f"{stem}.tif"
            with atomic_file(tif) as tmp, atomic_file(class_sidecar_path(tif)) as aux_tmp:
                # mosaic.qml beside the VRT serves mosaic.tif too: QGIS looks for <stem>.qml
                write_cog(vrt, tmp, "classes", compress)
                Path(f"{tmp}.aux.xml").unlink(missing_ok=True)  # GDAL's own copy of the PAM, renamed below
                write_class_sidecar(aux_tmp, classes)
            written.append(tif)
    return written


def write_footprints(path: Path, rows: list[Footprint], classes: list[str]) -> Path | None:
    """One polygon per scene with a known extent; `classes`: the class names, one share column each."""
    import geopandas as gpd
    from rasterio.warp import transform_geom
    from shapely.geometry import Polygon, mapping, shape

    known = [r for r in rows if r.corners is not None]
    for r in rows:
        if r.corners is None:
            log.info(
                "%s (%s): its extent is unknown, so footprints.gpkg has no row for it", r.scene, r.status
            )
    if not known:
        return None
    crss = [r.crs for r in known if r.crs is not None]
    one_crs = bool(crss) and len(crss) == len(known) and all(same_crs(crss[0], c) for c in crss)
    target = crss[0] if one_crs else CRS.from_epsg(4326)
    records, geoms = [], []
    for r in known:
        polygon = Polygon(r.corners)
        if not one_crs:
            if r.crs is None:
                log.info("%s has no CRS: footprints.gpkg has no row for it", r.scene)
                continue
            polygon = shape(transform_geom(r.crs, target, mapping(polygon), antimeridian_cutting=True))
        total = sum(r.class_pixels.values())
        shares = {f"share_{c}": (r.class_pixels.get(c, 0) / total if total else None) for c in classes}
        records.append(
            {
                "scene": r.scene,
                "mask": str(r.mask) if r.mask is not None else None,
                "status": r.status,
                "seconds": round(r.seconds, 3),
                "error": r.error,
                **shares,
            }
        )
        geoms.append(polygon)
    frame = gpd.GeoDataFrame(records, geometry=geoms, crs=target.to_wkt())
    with atomic_file(path) as tmp, warnings.catch_warnings():
        # The temporary name does not end in .gpkg; the file is renamed to one that does.
        warnings.filterwarnings("ignore", message=".*extension should be 'gpkg'")
        frame.to_file(tmp, driver="GPKG", layer="footprints")
    return path
