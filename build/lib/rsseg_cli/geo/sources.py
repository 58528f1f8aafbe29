"""Where a scene comes from: a local file, a VRT, a URL or object-store path handed to GDAL as it is, or a STAC
Item (a VRT of its chosen assets). Every command that reads scenes takes SceneSource objects: `uri` is what
rasterio opens, `name` names the outputs (a URL's file stem, a STAC Item's id)."""

from __future__ import annotations

import functools
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from rsseg_cli.errors import UserError

# scheme -> GDAL's virtual file system for it. http(s) is read with ranges through /vsicurl/; the object
# stores through their own handlers, which sign requests with the usual AWS_* / GS_* / AZURE_* settings.
SCHEMES = {"http": "/vsicurl/", "https": "/vsicurl/", "s3": "/vsis3/", "gs": "/vsigs/", "az": "/vsiaz/"}


@dataclass(frozen=True)
class SceneSource:
    given: str  # what the user wrote (a path, URL, /vsi path, STAC Item file or URL)
    uri: str  # what GDAL opens: a local path, /vsicurl/..., /vsis3/..., or a VRT built for a STAC Item
    name: str  # the stem of the outputs: the file stem, or the STAC Item id
    local: Path | None = None  # the local file, when there is one (existence and mtime are checked there)

    @property
    def remote(self) -> bool:
        return self.local is None

    def mtime(self) -> float | None:
        """The input's modification time (local files; None when unknown, e.g. a URL)."""
        try:
            return self.local.stat().st_mtime if self.local is not None else None
        except OSError:
            return None

    def __str__(self) -> str:
        return self.given

    @property
    def path(self) -> Path | GdalPath:
        """What describe_scene and the readers take: the local file, or the GDAL path of a remote one."""
        return GdalPath(self.uri) if is_remote(self.uri) else Path(self.uri)

    @classmethod
    def from_path(cls, path: Path | str) -> SceneSource:
        """A local file (no URL handling: geo.sources.parse_source does that)."""
        path = Path(path)
        return cls(str(path), str(path), path.stem, path)


class GdalPath(str):
    """A GDAL path that is not a local file (/vsicurl/https://..., /vsis3/..., a STAC VRT): a string, since
    pathlib would fold the '//' of a URL, with the few Path attributes that messages and records use."""

    @property
    def name(self) -> str:
        return PurePosixPath(urlsplit(_inner(self)).path).name or str(self)

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    def resolve(self) -> GdalPath:
        return self  # already absolute: there is no working directory to resolve against

    def exists(self) -> bool:
        return True  # not checked locally: GDAL's open says whether it is there (explain_open_failure)

    def is_dir(self) -> bool:
        return False


def _inner(uri: str) -> str:
    """The URL or key inside a /vsi path: /vsicurl/https://h/a.tif -> https://h/a.tif."""
    for prefix in ("/vsicurl/", "/vsis3/", "/vsigs/", "/vsiaz/", "/vsiadls/", "/vsioss/", "/vsiswift/"):
        if uri.startswith(prefix):
            return uri[len(prefix) :]
    return uri


def is_url(text: str) -> bool:
    return urlsplit(text).scheme.lower() in SCHEMES and "://" in text


def is_remote(text: str) -> bool:
    """A URL, object-store URI or GDAL virtual path: nothing to check on the local disk."""
    return is_url(text) or text.startswith("/vsi")


def gdal_uri(text: str) -> str:
    """What GDAL opens for what the user wrote: URLs and object-store URIs become /vsi paths, the rest is
    unchanged. s3://bucket/key -> /vsis3/bucket/key; https://h/a.tif -> /vsicurl/https://h/a.tif."""
    if is_url(text):
        scheme = urlsplit(text).scheme.lower()
        prefix = SCHEMES[scheme]
        return prefix + (text if prefix == "/vsicurl/" else text.split("://", 1)[1])
    return text


def source_name(text: str) -> str:
    """The stem that names a scene's outputs: the last path element without suffix; a URL's query string
    (signatures, tokens) is dropped."""
    path = unquote(urlsplit(_inner(text)).path) if is_remote(text) else text
    stem = PurePosixPath(path.rstrip("/")).stem
    return stem or "scene"


def is_stac_item(text: str) -> bool:
    """Whether `text` may be a STAC Item: a .json file or URL (the JSON itself decides, in geo.stac)."""
    path = urlsplit(text).path if is_url(text) else text
    return path.lower().endswith(".json")


def parse_source(
    text: str | Path, assets: list[str] | None = None, what: str = "scene", vrt_dir: Path | None = None
) -> SceneSource:
    """What the user wrote -> a SceneSource. Local files are checked here (a clear message before any work);
    remote ones are handed to GDAL as they are, and a failed open is explained by explain_open_failure.
    A STAC Item (.json with "type": "Feature" and "assets") becomes a VRT of `assets` (geo.stac)."""
    text = str(text).strip()
    if is_stac_item(text):
        from rsseg_cli.geo.stac import load_item, stac_scene

        item = load_item(text)
        if item is not None:
            return stac_scene(text, item, assets, vrt_dir)
    if is_remote(text):
        return SceneSource(text, gdal_uri(text), source_name(text), None)
    path = Path(text).expanduser()
    if path.is_dir():
        raise UserError(
            f"The {what} {path} is a folder. Pass the raster files in it, e.g. '{path}/*.tif' (quoted)."
        )
    if not path.exists():
        raise UserError(
            f"The {what} {path} does not exist. Check the path (URLs need their scheme: https://, s3://, gs://, "
            "az://, or a GDAL /vsi... path)."
        )
    return SceneSource(text, str(path), path.stem, path)


def split_assets(assets: list[str] | str | None) -> list[str] | None:
    """--assets red,green,blue (or a list) -> ['red', 'green', 'blue']; None when not given."""
    if assets is None:
        return None
    items = assets.split(",") if isinstance(assets, str) else list(assets)
    return [a.strip() for a in items if a.strip()] or None


# --------------------------------------------------------------------------------------------------------
# A failed open of a remote source, explained


def explain_open_failure(uri: str, message: str, what: str = "scene", given: str | None = None) -> UserError:
    """GDAL's error on opening `uri` -> one paragraph naming the cause (not found, no range requests,
    credentials, not a raster) and the fix."""
    shown = given or uri
    lowered = message.lower()
    head = f"The {what} {shown} could not be opened"
    if "range downloading not supported" in lowered:
        return UserError(
            f"{head}: the server does not answer HTTP range requests (it sends the whole file for a request "
            "of a few bytes), so GDAL cannot read it window by window. Serve it from a host that supports "
            "ranges (object storage, nginx, Apache, most CDNs do), or download it and pass the local file."
        )
    if _has_code(lowered, ("401", "403")) or any(
        w in lowered for w in ("access denied", "accessdenied", "credentials", "signature", "forbidden")
    ):
        return UserError(f"{head}: access was refused (GDAL: {message.strip()}). {credentials_hint(uri)}")
    if _has_code(lowered, ("404",)) or "does not exist" in lowered or "no such file" in lowered:
        return UserError(f"{head}: it was not found (GDAL: {message.strip()}). {_not_found_hint(uri)}")
    if "not recognized as being in a supported file format" in lowered or "not a supported" in lowered:
        return UserError(
            f"{head}: GDAL reached it but it is not a raster GDAL can read ({message.strip()}). Pass a GeoTIFF "
            "(ideally a Cloud-Optimized GeoTIFF), a VRT or a STAC Item."
        )
    return UserError(
        f"{head} (GDAL: {message.strip()}). Check the address and the network (a proxy needs GDAL_HTTP_PROXY "
        "or HTTPS_PROXY); CPL_CURL_VERBOSE=YES shows GDAL's requests."
    )


@functools.lru_cache(maxsize=256)
def check_range_support(uri: str, what: str = "scene") -> None:
    """Refuse an http(s) source whose server ignores Range headers. GDAL opens such a file when its header
    fits in the first answer, then fails (or warns) on every window, so the check is made up front: one
    request for one byte, with the headers GDAL would send (GDAL_HTTP_HEADERS)."""
    url = _inner(uri)
    if not uri.startswith("/vsicurl/") or urlsplit(url).scheme not in ("http", "https"):
        return
    request = urllib.request.Request(url, headers={**_gdal_headers(), "Range": "bytes=0-0"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            ranged = response.status == 206 or response.headers.get("Content-Range") is not None
    except (urllib.error.URLError, OSError, ValueError):
        return  # GDAL opened it; a probe that cannot get through (proxy, auth we cannot copy) proves nothing
    if not ranged:
        raise explain_open_failure(uri, "Range downloading not supported by this server!", what)


def _gdal_headers() -> dict[str, str]:
    text = os.environ.get("GDAL_HTTP_HEADERS", "")
    lines = text.replace("\r\n", "\n").split("\n") if "\n" in text else text.split(",")
    pairs = (line.split(":", 1) for line in lines if ":" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def _has_code(lowered: str, codes: tuple[str, ...]) -> bool:
    return any(
        f"response code: {c}" in lowered or f"http {c}" in lowered or f" {c} " in f" {lowered} "
        for c in codes
    )


def credentials_hint(uri: str) -> str:
    if uri.startswith("/vsis3/"):
        return (
            "Set AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE), and AWS_REGION "
            "for the bucket's region; for a public bucket set AWS_NO_SIGN_REQUEST=YES; for an S3-compatible "
            "store also AWS_S3_ENDPOINT."
        )
    if uri.startswith("/vsigs/"):
        return (
            "Set Google Cloud credentials (GOOGLE_APPLICATION_CREDENTIALS with a service-account file, or "
            "GS_ACCESS_KEY_ID and GS_SECRET_ACCESS_KEY); for a public bucket set GS_NO_SIGN_REQUEST=YES."
        )
    if uri.startswith(("/vsiaz/", "/vsiadls/")):
        return (
            "Set Azure credentials (AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with "
            "AZURE_STORAGE_ACCESS_KEY or AZURE_STORAGE_SAS_TOKEN); for a public container set "
            "AZURE_NO_SIGN_REQUEST=YES."
        )
    return (
        "The server wants credentials: pass a signed URL (in quotes, so the shell keeps the query string), or "
        "set GDAL_HTTP_HEADERS='Authorization: Bearer TOKEN' (or GDAL_HTTP_USERPWD=user:password). For an "
        "object store, use its s3://, gs:// or az:// address with that store's credentials instead."
    )


def _not_found_hint(uri: str) -> str:
    hint = "Check the address (for a URL, `curl -I` on it shows what the server answers)."
    allowed = os.environ.get("CPL_VSIL_CURL_ALLOWED_EXTENSIONS")
    suffix = GdalPath(uri).suffix.lower()
    if allowed and suffix not in {e.strip().lower() for e in allowed.split(",")}:
        hint += (
            f" GDAL only requests files ending in {allowed} (CPL_VSIL_CURL_ALLOWED_EXTENSIONS); for this one "
            f"export CPL_VSIL_CURL_ALLOWED_EXTENSIONS={allowed},{suffix or '{noext}'}."
        )
    return hint


# --------------------------------------------------------------------------------------------------------
# --scenes-from FILE

LIST_COLUMNS = ("path", "scene", "href", "url", "uri", "file", "filename", "location")
VECTOR_LISTS = {".gpkg", ".geojson", ".shp", ".fgb", ".parquet"}


def read_scene_list(file: Path) -> list[str]:
    """The scenes named in `file`: a text list (one per line, # comments), a CSV (a column named path, scene,
    href, url, uri or file, else the first column) or a vector file with such a column. Relative paths are
    relative to the list's folder, so a list travels with its scenes."""
    file = Path(file)
    if not file.is_file():
        raise UserError(f"--scenes-from {file} does not exist. Pass a text list, a CSV or a vector file.")
    suffix = file.suffix.lower()
    if suffix in VECTOR_LISTS or (suffix == ".json" and _is_geojson(file)):
        entries = _vector_list(file)
    elif suffix in (".csv", ".tsv"):
        entries = _csv_list(file, "\t" if suffix == ".tsv" else ",")
    else:
        entries = [
            line.strip()
            for line in file.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
    if not entries:
        raise UserError(f"--scenes-from {file} names no scene. Put one path or URL per line (or row).")
    return [_relative_to(e, file.parent) for e in entries]


def _relative_to(entry: str, folder: Path) -> str:
    if is_remote(entry) or Path(entry).expanduser().is_absolute():
        return entry
    return str(folder / entry)


def _pick_column(columns: list[str], file: Path, vector: bool) -> str:
    lowered = {c.lower(): c for c in columns}
    for name in LIST_COLUMNS:
        if name in lowered:
            return lowered[name]
    if vector:
        raise UserError(
            f"--scenes-from {file} has no column of scene paths: name one of {', '.join(LIST_COLUMNS)} "
            f"(its columns: {', '.join(columns) or 'none'})."
        )
    return columns[0]


def _csv_list(file: Path, delimiter: str) -> list[str]:
    import csv

    with file.open(newline="") as f:
        rows = [r for r in csv.reader(f, delimiter=delimiter) if r and any(c.strip() for c in r)]
    if not rows:
        return []
    header = [c.strip() for c in rows[0]]
    if any(h.lower() in LIST_COLUMNS for h in header):
        col = header.index(_pick_column(header, file, vector=False))
        body = rows[1:]
    else:  # no header we know: the first column, and the first row is a scene too
        col, body = 0, rows
    return [r[col].strip() for r in body if len(r) > col and r[col].strip() and not r[0].startswith("#")]


def _is_geojson(file: Path) -> bool:
    try:
        return json.loads(file.read_text()).get("type") == "FeatureCollection"
    except (ValueError, AttributeError):
        return False


def _vector_list(file: Path) -> list[str]:
    import geopandas as gpd

    try:
        frame = gpd.read_file(file)
    except Exception as exc:  # GDAL/pyogrio raise many types for an unreadable file
        raise UserError(f"--scenes-from {file} could not be read as a vector file ({exc}).") from None
    column = _pick_column([c for c in frame.columns if c != frame.geometry.name], file, vector=True)
    return [str(v).strip() for v in frame[column] if v is not None and str(v).strip()]
