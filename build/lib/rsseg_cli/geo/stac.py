"""A STAC Item as a scene: the chosen assets (by key or common band name) stacked into one VRT, every band on
the grid of the finest asset, so a Sentinel-2 Item's 10 m and 20 m bands read as one raster.

The VRT is written by hand (GDAL's BuildVRT lives in the osgeo bindings, which are not a dependency): one
band per asset band, each a source whose DstRect places the asset on the finest grid; GDAL resamples it
(nearest neighbour: reflectances keep their measured values) when a window is read.
"""

from __future__ import annotations

import atexit
import json
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit
from xml.sax.saxutils import escape

import rasterio
from rasterio.errors import RasterioIOError

from rsseg_cli.atomic import atomic_file
from rsseg_cli.errors import UserError
from rsseg_cli.geo.raster import gdal_type, same_crs
from rsseg_cli.geo.sources import (
    SceneSource,
    check_range_support,
    explain_open_failure,
    gdal_uri,
    is_remote,
    is_url,
)

RASTER_MEDIA = ("image/tiff", "image/geotiff", "image/jp2", "application/x-hdf")
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img")


@dataclass(frozen=True)
class AssetBand:
    key: str  # the asset key in the Item
    band: int  # 1-based band of the asset's file
    name: str  # the common name (red, nir ...) or the key: the VRT band's description
    href: str  # what GDAL opens


def load_item(location: str) -> dict | None:
    """The Item's JSON, or None when `location` is JSON but not a STAC Item (then it is not a scene list
    either: the caller hands it to GDAL)."""
    try:
        if is_url(location):
            if urlsplit(location).scheme not in ("http", "https"):
                return None  # an object-store JSON: GDAL's business, not a STAC Item we fetch
            with urllib.request.urlopen(location, timeout=60) as response:
                text = response.read().decode("utf-8")
        else:
            path = Path(location).expanduser()
            if not path.is_file():
                raise UserError(f"The STAC Item {location} does not exist. Check the path.")
            text = path.read_text()
    except urllib.error.HTTPError as exc:
        raise explain_open_failure(location, f"HTTP response code: {exc.code}", "STAC Item") from None
    except urllib.error.URLError as exc:
        raise UserError(
            f"The STAC Item {location} could not be fetched ({exc.reason}). Check the URL and the network."
        ) from None
    try:
        item = json.loads(text)
    except ValueError:
        raise UserError(f"{location} is not valid JSON, so it cannot be a STAC Item.") from None
    if isinstance(item, dict) and item.get("type") == "Feature" and isinstance(item.get("assets"), dict):
        return item
    return None


def stac_scene(
    location: str, item: dict, wanted: list[str] | None, vrt_dir: Path | None = None
) -> SceneSource:
    """The Item at `location` -> a SceneSource whose uri is a VRT of the `wanted` assets (keys or common
    names, in that band order), named by the Item id."""
    item_id = str(item.get("id") or Path(urlsplit(location).path).stem)
    bands = select_assets(item, wanted, location)
    vrt = (vrt_dir or _session_dir()) / f"{_safe(item_id)}.vrt"
    vrt.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(vrt) as tmp:
        tmp.write_text(build_vrt(bands, location))
    local = None if is_url(location) else Path(location).expanduser()
    return SceneSource(location, str(vrt), item_id, local)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "item"


_SESSION: list[Path] = []


def _session_dir() -> Path:
    """A folder for this command's VRTs, removed when the process ends."""
    if not _SESSION:
        folder = Path(tempfile.mkdtemp(prefix="rsseg-stac-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _SESSION.append(folder)
    return _SESSION[0]


# --------------------------------------------------------------------------------------------------------
# Asset selection


def _asset_bands(asset: dict) -> list[dict]:
    """Band metadata of an asset: STAC 1.1 `bands` or the eo extension's `eo:bands`."""
    return list(asset.get("bands") or asset.get("eo:bands") or [])


def _common_name(band: dict) -> str | None:
    name = band.get("eo:common_name") or band.get("common_name")
    return str(name) if name else None


def _is_raster(asset: dict) -> bool:
    media = str(asset.get("type", "")).lower()
    roles = asset.get("roles") or []
    if any(m in media for m in RASTER_MEDIA):
        return "thumbnail" not in roles and "overview" not in roles
    path = urlsplit(str(asset.get("href", ""))).path.lower()
    return path.endswith(RASTER_SUFFIXES) and "thumbnail" not in roles


def select_assets(item: dict, wanted: list[str] | None, location: str) -> list[AssetBand]:
    """`wanted` (asset keys or common band names, case-insensitive) -> the bands to stack, in that order.
    Without `wanted`, an Item with a single raster asset is that asset."""
    assets: dict[str, dict] = item["assets"]
    rasters = {k: a for k, a in assets.items() if _is_raster(a)}
    if not wanted:
        if len(rasters) == 1:
            wanted = list(rasters)
        else:
            raise UserError(
                f"The STAC Item {location} has {len(rasters)} raster assets ({_available(rasters)}). Choose the "
                "bands with --assets, e.g. --assets red,green,blue,nir (asset keys or common band names)."
            )
    chosen: list[AssetBand] = []
    for want in wanted:
        chosen.extend(_match(want.strip(), assets, rasters, location))
    return chosen


def _match(want: str, assets: dict[str, dict], rasters: dict[str, dict], location: str) -> list[AssetBand]:
    lowered = {k.lower(): k for k in assets}
    if want.lower() in lowered:
        key = lowered[want.lower()]
        meta = _asset_bands(assets[key])
        count = max(1, len(meta))
        href = _href(assets[key], location)
        names = [(_common_name(meta[i]) if i < len(meta) else None) for i in range(count)]
        # A band keeps its common name (the same across Items and sensors' products), else the key.
        return [
            AssetBand(key, i + 1, names[i] or (key if count == 1 else f"{key}_{i + 1}"), href)
            for i in range(count)
        ]
    for key, asset in rasters.items():
        for i, band in enumerate(_asset_bands(asset), start=1):
            if (_common_name(band) or "").lower() == want.lower():
                return [AssetBand(key, i, _common_name(band) or key, _href(asset, location))]
    raise UserError(
        f"The STAC Item {location} has no asset or band named {want!r}. Available: {_available(rasters)}. "
        "Pass asset keys or common band names with --assets."
    )


def _available(rasters: dict[str, dict]) -> str:
    shown = []
    for key, asset in rasters.items():
        names = [n for n in (_common_name(b) for b in _asset_bands(asset)) if n and n.lower() != key.lower()]
        shown.append(f"{key} ({', '.join(names)})" if names else key)
    return ", ".join(shown) or "none"


def _href(asset: dict, location: str) -> str:
    """The asset's href as GDAL opens it: relative hrefs against the Item's own location."""
    href = str(asset.get("href", ""))
    if is_remote(href):
        return gdal_uri(href)
    if href.startswith("file://"):
        return urlsplit(href).path
    if is_url(location):
        return gdal_uri(urljoin(location, href))
    base = Path(location).expanduser().resolve().parent
    return str((base / href).resolve()) if not Path(href).is_absolute() else href


# --------------------------------------------------------------------------------------------------------
# The VRT


@dataclass(frozen=True)
class _Grid:
    width: int
    height: int
    transform: rasterio.Affine
    crs: object
    dtype: str
    nodata: float | None
    block: tuple[int, int]


def _grid(band: AssetBand, location: str) -> _Grid:
    given = f"{band.key} of the STAC Item {location} ({band.href})"
    try:
        check_range_support(band.href, f"asset {given}")  # before GDAL half-reads it (geo.sources)
        with rasterio.open(band.href) as src:
            if band.band > src.count:
                raise UserError(
                    f"The asset {band.key} of the STAC Item {location} has {src.count} band(s), but its metadata "
                    f"lists band {band.band}. Choose the asset by key instead."
                )
            return _Grid(
                src.width,
                src.height,
                src.transform,
                src.crs,
                src.dtypes[band.band - 1],
                src.nodatavals[band.band - 1],
                tuple(src.block_shapes[band.band - 1]),
            )
    except RasterioIOError as exc:
        raise explain_open_failure(
            band.href, str(exc), f"asset {band.key} of the STAC Item {location}"
        ) from None


def build_vrt(bands: list[AssetBand], location: str) -> str:
    """The VRT XML: one band per AssetBand on the grid of the finest asset."""
    grids = [_grid(b, location) for b in bands]
    for b, g in zip(bands, grids):
        if g.transform.b or g.transform.d:
            raise UserError(
                f"The asset {b.key} of {location} has a rotated grid; rsseg stacks north-up assets."
            )
        if not same_crs(g.crs, grids[0].crs):
            raise UserError(
                f"The assets of the STAC Item {location} are on different CRSs: {bands[0].key} on "
                f"{grids[0].crs}, {b.key} on {g.crs}. Choose assets of one CRS, or warp them (gdalwarp) first."
            )
    fine = min(grids, key=lambda g: abs(g.transform.a) * abs(g.transform.e))
    t = fine.transform
    srs = f"  <SRS>{escape(fine.crs.to_wkt())}</SRS>\n" if fine.crs else ""
    lines = [
        f'<VRTDataset rasterXSize="{fine.width}" rasterYSize="{fine.height}">',
        srs.rstrip("\n"),
        f"  <GeoTransform>{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}</GeoTransform>",
    ]
    for i, (b, g) in enumerate(zip(bands, grids), start=1):
        x_off = (g.transform.c - t.c) / t.a
        y_off = (g.transform.f - t.f) / t.e
        x_size = g.width * g.transform.a / t.a
        y_size = g.height * g.transform.e / t.e
        nodata = f"    <NoDataValue>{g.nodata!r}</NoDataValue>\n" if g.nodata is not None else ""
        source_nodata = f"      <NODATA>{g.nodata!r}</NODATA>\n" if g.nodata is not None else ""
        lines.append(
            f'  <VRTRasterBand dataType="{gdal_type(g.dtype)}" band="{i}">\n'
            f"    <Description>{escape(b.name)}</Description>\n{nodata}"
            f'    <ComplexSource resampling="nearest">\n'
            f'      <SourceFilename relativeToVRT="0">{escape(b.href)}</SourceFilename>\n'
            f"      <SourceBand>{b.band}</SourceBand>\n"
            f'      <SourceProperties RasterXSize="{g.width}" RasterYSize="{g.height}" '
            f'DataType="{gdal_type(g.dtype)}" BlockXSize="{g.block[1]}" BlockYSize="{g.block[0]}"/>\n'
            f'      <SrcRect xOff="0" yOff="0" xSize="{g.width}" ySize="{g.height}"/>\n'
            f'      <DstRect xOff="{x_off!r}" yOff="{y_off!r}" xSize="{x_size!r}" ySize="{y_size!r}"/>\n'
            f"{source_nodata}"
            "    </ComplexSource>\n"
            "  </VRTRasterBand>"
        )
    lines.append("</VRTDataset>\n")
    return "\n".join(line for line in lines if line)
