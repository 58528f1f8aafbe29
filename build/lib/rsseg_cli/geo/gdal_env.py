"""GDAL's settings for reading Cloud-Optimized GeoTIFFs over HTTP and object storage.

GDAL's defaults are made for local disks: on open it lists the "directory" of a remote file (one slow request,
thousands of keys on a bucket prefix) and probes sidecar files (.aux.xml, .ovr, .msk) that usually do not
exist, each a round trip. These defaults are what COG readers (rio-tiler, TiTiler, GDAL's own COG guide)
recommend. They are environment defaults: a value the user exported wins.
"""

from __future__ import annotations

import os

# Extensions GDAL may request over /vsicurl/: rasters, VRTs, and the vector/JSON formats labels and scene
# lists come in. Anything else (e.g. a probe for scene.tif.aux.xml) is answered "not found" without a request.
CLOUD_EXTENSIONS = (".tif", ".tiff", ".vrt", ".jp2", ".json", ".geojson", ".gpkg", ".fgb", ".img", ".nc")

CLOUD_DEFAULTS: dict[str, str] = {
    # TRUE, not EMPTY_DIR: no directory listing on open, but sidecars are still probed, so a local mask's
    # .aux.xml (class names) keeps being read; remotely the allowed extensions below keep those probes off the
    # network (scene.tif.aux.xml is not an allowed name), which is what EMPTY_DIR buys COG readers.
    "GDAL_DISABLE_READDIR_ON_OPEN": "TRUE",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ",".join(CLOUD_EXTENSIONS),
    # Object stores answer 429/503 under load; a few retries with a growing delay ride that out.
    "GDAL_HTTP_MAX_RETRY": "4",
    "GDAL_HTTP_RETRY_DELAY": "1",
    # One cache of what was fetched over HTTP (headers, overviews, neighbouring tiles), shared by every remote
    # file, bounded: 64 MB. (Not VSI_CACHE: that wraps every file GDAL opens, local ones included, with a cache
    # of its own, and threads x files x 64 MB exhausts memory.)
    "CPL_VSIL_CURL_CACHE_SIZE": str(64 * 1024 * 1024),
    # Adjacent tiles of a window in one request instead of one per tile; parallel single ranges rather than
    # multipart ranges, which S3 and many static hosts do not support.
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIRANGE": "PARALLEL",
}


def apply_cloud_defaults(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Set CLOUD_DEFAULTS in `environ` (os.environ) where the user has not; returns what was set. GDAL reads
    these at first use, so call this before any dataset is opened (rsseg_cli.cli.main does)."""
    env = os.environ if environ is None else environ
    applied = {}
    for key, value in CLOUD_DEFAULTS.items():
        if key not in env:
            env[key] = value
            applied[key] = value
    return applied
