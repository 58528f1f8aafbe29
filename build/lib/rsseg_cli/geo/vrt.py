"""Single-band rasters of one footprint -> one multi-band GDAL VRT (an XML file that points at them).

`describe_band` reads what a VRT band needs from a file, `check_stack` refuses inputs that are not one grid
of single-band files of one pixel type, `band_names_from_files` turns file names into band descriptions and
`vrt_xml` writes the VRTDataset: one VRTRasterBand per input, each a SimpleSource of the file's band 1, with a
path relative to the VRT where the file lies in its folder (or below), so that the folder can be moved.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from rasterio.crs import CRS
from rasterio.enums import MaskFlags
from rasterio.transform import Affine
from rasterio.windows import Window

from rsseg_cli.errors import UserError
from rsseg_cli.geo.raster import (
    GRID_TOLERANCE_PX,
    SUPPORTED_DTYPES,
    gdal_type,
    mixed_dtypes_message,
    open_raster,
    same_crs,
    window_footprint,
)


@dataclass
class BandFile:
    """One input file: what its VRT band copies."""

    path: Path
    count: int
    dtype: str
    height: int
    width: int
    crs: CRS | None
    transform: Affine
    nodata: float | None
    block: tuple[int, int]  # (rows, cols) of band 1's blocks
    masked: bool = False  # validity from a mask (internal or .msk), not from a nodata value


def describe_band(path: Path) -> BandFile:
    with open_raster(path, "band file") as src:
        return BandFile(
            path=Path(path),
            count=src.count,
            dtype=src.dtypes[0],
            height=src.height,
            width=src.width,
            crs=src.crs,
            transform=src.transform,
            nodata=None if src.nodata is None else float(src.nodata),
            block=tuple(src.block_shapes[0]),
            masked=MaskFlags.per_dataset in src.mask_flag_enums[0],
        )


def _grid_difference(a: BandFile, b: BandFile) -> str | None:
    """What makes b's pixels other than a's, in words (None: the same grid)."""
    if (a.height, a.width) != (b.height, b.width):
        return f"their sizes differ ({a.width} x {a.height} px against {b.width} x {b.height} px)"
    if not same_crs(a.crs, b.crs):
        return f"their CRSs differ ({_crs_name(a.crs)} against {_crs_name(b.crs)})"
    tol = GRID_TOLERANCE_PX * min(abs(a.transform.a) or 1.0, abs(a.transform.e) or 1.0)
    full = Window(0, 0, a.width, a.height)
    corners = zip(window_footprint(a.transform, full), window_footprint(b.transform, full))
    if any(math.hypot(xa - xb, ya - yb) > tol for (xa, ya), (xb, yb) in corners):
        return (
            "their grids differ (origin and pixel size "
            f"{_grid_words(a.transform)} against {_grid_words(b.transform)})"
        )
    return None


def _warp_hint(first: BandFile, band: BandFile) -> str:
    t = first.transform
    xs = [x for x, _ in window_footprint(t, Window(0, 0, first.width, first.height))]
    ys = [y for _, y in window_footprint(t, Window(0, 0, first.width, first.height))]
    srs = f"-t_srs {_crs_name(first.crs)} " if first.crs is not None else ""
    return (
        f"gdalwarp {srs}-tr {abs(t.a):.10g} {abs(t.e):.10g} -te {min(xs):.10g} {min(ys):.10g} "
        f"{max(xs):.10g} {max(ys):.10g} {band.path} {band.path.stem}_aligned.tif"
    )


def _crs_name(crs: CRS | None) -> str:
    if crs is None:
        return "no CRS"
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else (crs.to_string() or crs.to_wkt())[:80]


def _grid_words(t: Affine) -> str:
    return f"({t.c:.10g}, {t.f:.10g}) / {t.a:.10g} x {-t.e:.10g}"


def check_stack(bands: list[BandFile], names: list[str]) -> None:
    """Refuse, naming files, what cannot become one rsseg scene: several bands in a file, other grids,
    unsupported or mixed pixel types (a VRT could mix them, but rsseg reads one type per scene)."""
    first = bands[0]
    for band in bands:
        if band.count != 1:
            raise UserError(
                f"{band.path} has {band.count} bands; rsseg stack takes single-band files. "
                f"Pass one band of it as a file of its own (gdal_translate -b N {band.path} band_N.tif)."
            )
        if band.dtype not in SUPPORTED_DTYPES:
            raise UserError(
                f"{band.path} is {band.dtype}; rsseg reads {', '.join(SUPPORTED_DTYPES)}. Convert it, e.g. "
                f"gdal_translate -ot Float32 {band.path} {band.path.stem}_float32.tif."
            )
    for band in bands[1:]:
        difference = _grid_difference(first, band)
        if difference:
            raise UserError(
                f"{first.path} and {band.path} are not one footprint: {difference}. "
                f"A stacked scene needs every band on the same pixels: resample it onto the grid of "
                f"{first.path.name}, e.g. {_warp_hint(first, band)}, and stack the result."
            )
    if len({b.dtype for b in bands}) > 1:
        raise UserError(mixed_dtypes_message(names, [b.dtype for b in bands], [b.path for b in bands]))


_TOKENS = re.compile(r"[^_\-.\s]+|[_\-.\s]+")


def band_names_from_files(paths: list[Path]) -> list[str]:
    """File stems less what they all share at the start and at the end, in whole words:
    LC08_..._B4.tif, LC08_..._B10.tif -> B4, B10. A name left with digits only keeps the word before it
    (band_4, band_5 stay as they are: '4' would read as a band number in --bands)."""
    stems = [p.stem for p in paths]
    if len(stems) < 2:
        return stems
    tokens = [_TOKENS.findall(s) for s in stems]
    shortest = min(len(t) for t in tokens)
    prefix = 0
    while prefix < shortest - 1 and len({t[prefix] for t in tokens}) == 1:
        prefix += 1
    suffix = 0
    while suffix < shortest - 1 - prefix and len({t[-1 - suffix] for t in tokens}) == 1:
        suffix += 1

    def cut(p: int) -> list[str]:
        return ["".join(t[p : len(t) - suffix]).strip("_-. ") for t in tokens]

    names = cut(prefix)
    while prefix > 0 and any(n.isdigit() or not n for n in names):
        prefix -= 1
        names = cut(prefix)
    if any(not n for n in names) or len({n.lower() for n in names}) < len(names):
        return stems
    return names


def check_names(names: list[str], count: int) -> list[str]:
    """Band names given by the user (--names): one per file, distinct, not band numbers."""
    names = [n.strip() for n in names]
    if len(names) != count:
        raise UserError(
            f"--names gives {len(names)} names for {count} files; give one name per file, in order."
        )
    if any(not n for n in names):
        raise UserError("--names has an empty name; give one name per file, e.g. blue,green,red,nir.")
    if len({n.lower() for n in names}) < count:
        raise UserError(f"--names {','.join(names)} names a band twice; band names must differ.")
    digits = [n for n in names if n.isdigit()]
    if digits:
        raise UserError(
            f"--names {digits[0]!r} is a number, which --bands would read as a band position; use e.g. "
            f"B{digits[0]}."
        )
    return names


def source_path(band: Path, vrt: Path) -> tuple[str, bool]:
    """The path a VRT stores for `band`: relative to the VRT's folder where the file is inside it (then
    the folder can be moved), else absolute. Returns (path, relative)."""
    band, folder = Path(os.path.abspath(band)), Path(os.path.abspath(vrt)).parent
    try:
        return band.relative_to(folder).as_posix(), True
    except ValueError:
        return str(band), False


def _number(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return repr(int(value)) if float(value).is_integer() else repr(float(value))


def vrt_xml(bands: list[BandFile], names: list[str], vrt: Path) -> str:
    """The VRTDataset text: grid and CRS of the first file, one band per file with its description, pixel
    type and nodata value."""
    first = bands[0]
    t = first.transform
    lines = [f'<VRTDataset rasterXSize="{first.width}" rasterYSize="{first.height}">']
    if first.crs is not None:
        lines.append(f"  <SRS>{escape(first.crs.to_wkt())}</SRS>")
    if t != Affine.identity():
        geo = ", ".join(repr(float(v)) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
        lines.append(f"  <GeoTransform>{geo}</GeoTransform>")
    for i, (band, name) in enumerate(zip(bands, names), start=1):
        band_type = gdal_type(band.dtype)
        path, relative = source_path(band.path, vrt)
        lines += [
            f'  <VRTRasterBand dataType="{band_type}" band="{i}">',
            f"    <Description>{escape(name)}</Description>",
        ]
        if band.nodata is not None:
            lines.append(f"    <NoDataValue>{_number(band.nodata)}</NoDataValue>")
        by, bx = band.block
        size = f'xOff="0" yOff="0" xSize="{band.width}" ySize="{band.height}"'
        lines += [
            "    <SimpleSource>",
            f"      <SourceFilename relativeToVRT={quoteattr(str(int(relative)))}>"
            f"{escape(path)}</SourceFilename>",
            "      <SourceBand>1</SourceBand>",
            f'      <SourceProperties RasterXSize="{band.width}" RasterYSize="{band.height}" '
            f'DataType="{band_type}" BlockXSize="{bx}" BlockYSize="{by}" />',
            f"      <SrcRect {size} />",
            f"      <DstRect {size} />",
            "    </SimpleSource>",
        ]
        if band.masked:  # the file's mask becomes the band's mask (a VRT would otherwise drop it)
            lines += [
                "    <MaskBand>",
                '      <VRTRasterBand dataType="Byte">',
                "        <SimpleSource>",
                f"          <SourceFilename relativeToVRT={quoteattr(str(int(relative)))}>"
                f"{escape(path)}</SourceFilename>",
                "          <SourceBand>mask,1</SourceBand>",
                f"          <SrcRect {size} />",
                f"          <DstRect {size} />",
                "        </SimpleSource>",
                "      </VRTRasterBand>",
                "    </MaskBand>",
            ]
        lines.append("  </VRTRasterBand>")
    lines.append("</VRTDataset>")
    return "\n".join(lines) + "\n"
