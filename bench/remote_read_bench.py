"""Reading a scene over HTTP against reading it from disk, window by window as `rsseg predict` reads it.

    python bench/remote_read_bench.py                       # 4096 x 4096 x 4 uint16 COG, 512 px windows
    python bench/remote_read_bench.py --size 2048 --window 256 --overlap 0.25

The COG (GDAL's COG driver: tiled 512, DEFLATE with predictor, overviews) is generated once into the work folder, then read
twice in one run: from the local file, and as /vsicurl/ from a range-capable HTTP server on 127.0.0.1 (the
tests' server, in a child process) with rsseg's GDAL cloud defaults (geo/gdal_env.py). Both passes go through
geo.raster.describe_scene + read_window over the same overlapping window grid; the pixels must be identical.
Printed: scene megapixels per second of each pass and the ratio, plus the requests and bytes the server sent.
Loopback has no latency, so the ratio measures GDAL's HTTP path (requests, caching), not a network.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_cog(path: Path, size: int, bands: int = 4) -> None:
    """Smooth fields plus noise (compresses like imagery, not like constant or random data)."""
    import rasterio
    import rasterio.shutil
    from rasterio.transform import from_origin

    rng = np.random.default_rng(0)
    tmp = path.with_suffix(".tmp.tif")
    profile = dict(driver="GTiff", width=size, height=size, count=bands, dtype="uint16", crs="EPSG:32633",
                   transform=from_origin(500000.0, 5500000.0, 10.0, 10.0), tiled=True, blockxsize=512,
                   blockysize=512, compress="deflate", predictor=2)  # fmt: skip
    with rasterio.open(tmp, "w", **profile) as dst:
        for row in range(0, size, 512):
            h = min(512, size - row)
            rows, cols = np.mgrid[row : row + h, 0:size]
            base = np.stack(
                [np.sin(rows / (90 + 20 * b)) + np.cos(cols / (120 + 15 * b)) for b in range(bands)]
            )
            data = 8000 + 2000 * base + rng.normal(0, 150, (bands, h, size))
            dst.write(data.astype("uint16"), window=((row, row + h), (0, size)))
    # GDAL's COG driver: tiles, overviews, and the header and overviews first (what /vsicurl/ reads well).
    rasterio.shutil.copy(tmp, path, driver="COG", COMPRESS="DEFLATE", PREDICTOR="YES", BLOCKSIZE=512,
                         OVERVIEW_RESAMPLING="AVERAGE")  # fmt: skip
    tmp.unlink()


def read_pass(uri: str, window: int, overlap: float) -> tuple[float, str, int]:
    """Seconds to read every window of the predict grid, a digest of the pixels, and the window count."""
    import rasterio

    from rsseg_cli.geo.grid import window_grid
    from rsseg_cli.geo.raster import describe_scene, read_window

    t0 = time.perf_counter()
    scene = describe_scene(uri)
    stride = max(1, round(window * (1 - overlap)))
    grid = window_grid(scene.height, scene.width, window, stride, "pad")
    digest = hashlib.sha256()
    with rasterio.open(scene.path) as src:
        for gw in grid:
            data, valid = read_window(src, scene, gw.window)
            digest.update(data.tobytes())
            digest.update(valid.tobytes())
    return time.perf_counter() - t0, digest.hexdigest(), len(grid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "rsseg_remote_read_bench")
    args = parser.parse_args()

    from rsseg_cli.geo.gdal_env import apply_cloud_defaults
    from tests.http_range_server import serve

    apply_cloud_defaults()
    os.environ.setdefault("GDAL_CACHEMAX", "128")  # as rsseg_cli.cli.main sets it
    args.work.mkdir(parents=True, exist_ok=True)
    scene = args.work / f"scene_{args.size}.tif"
    if not scene.exists():
        print(f"generating {scene} ({args.size} x {args.size} x 4 uint16 COG) ...", flush=True)
        make_cog(scene, args.size)
    megapixels = args.size * args.size / 1e6
    disk_s, disk_digest, windows = read_pass(str(scene), args.window, args.overlap)
    with serve(args.work) as server:
        http_s, http_digest, _ = read_pass(server.url(scene.name), args.window, args.overlap)
        traffic = server.traffic
    assert http_digest == disk_digest, "the pixels read over HTTP differ from the file's"
    print(f"scene {args.size} x {args.size} x 4 uint16 ({scene.stat().st_size / 2**20:.1f} MiB), "
          f"{windows} windows of {args.window} px, overlap {args.overlap}")  # fmt: skip
    print(f"disk : {disk_s:7.2f} s  {megapixels / disk_s:8.1f} MP/s")
    print(f"http : {http_s:7.2f} s  {megapixels / http_s:8.1f} MP/s  "
          f"({traffic.requests} requests, {traffic.range_requests} ranges, {traffic.bytes_sent / 2**20:.1f} MiB sent)")  # fmt: skip
    print(f"http / disk throughput: {disk_s / http_s:.2f}")


if __name__ == "__main__":
    main()
