"""Vectorization throughput and peak memory on a large synthetic class mask.

    python bench/vectorize_bench.py                       # 16384^2, default options
    python bench/vectorize_bench.py --size 4096 --probs   # smaller, with a probability raster (mean_prob)

The mask is generated once into the work folder (reused on later runs) in strips of rows, never as a whole
array: blobby land-cover classes from smoothed multi-octave noise thresholded into 6 classes, speckle of
1-4 pixel blobs (what the sieve is for), and a nodata corner, written as a tiled DEFLATE GeoTIFF with the
rsseg class table. `rsseg vectorize` then runs in a child process whose peak resident memory is read from
the kernel (bench.common.run_measured), so generation does not count. Prints seconds, megapixels/s, polygons
and peak RSS.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import run_measured  # noqa: E402
from rsseg_cli.geo.grid import DEFAULT_WINDOW  # noqa: E402

CLASSES = ["water", "forest", "grass", "crop", "building", "road"]
STRIP = 512


def _octave(rng: np.random.Generator, size: int, cell: int) -> np.ndarray:
    """A coarse grid of random values, one every `cell` pixels, interpolated bilinearly per strip."""
    return rng.random((size // cell + 2, size // cell + 2)).astype(np.float32)


def _strip(grid: np.ndarray, cell: int, row0: int, rows: int, width: int) -> np.ndarray:
    y = (np.arange(row0, row0 + rows) / cell).astype(np.float32)
    x = (np.arange(width) / cell).astype(np.float32)
    y0, x0 = y.astype(np.int64), x.astype(np.int64)
    fy, fx = (y - y0)[:, None], (x - x0)[None, :]
    g00, g01 = grid[y0][:, x0], grid[y0][:, x0 + 1]
    g10, g11 = grid[y0 + 1][:, x0], grid[y0 + 1][:, x0 + 1]
    return (g00 * (1 - fx) + g01 * fx) * (1 - fy) + (g10 * (1 - fx) + g11 * fx) * fy


def generate_mask(path: Path, size: int, seed: int, probs: Path | None) -> None:
    import rasterio
    from rasterio.transform import from_origin

    from rsseg_cli.geo.class_raster import write_class_metadata

    rng = np.random.default_rng(seed)
    octaves = [(256, 1.0), (64, 0.35), (16, 0.12)]  # (cell px, weight): large fields with ragged edges
    grids = [(_octave(rng, size, cell), cell, weight) for cell, weight in octaves]

    def field(row0: int, rows: int) -> np.ndarray:
        return sum(w * _strip(g, c, row0, rows, size) for g, c, w in grids)

    # Class thresholds from a coarse sample of the field, so that the 6 classes have similar shares.
    sample = np.concatenate([field(r, 1)[0, ::16] for r in range(0, size, 16)])
    edges = np.quantile(sample, np.linspace(0, 1, len(CLASSES) + 1)[1:-1])
    profile = dict(
        driver="GTiff",
        width=size,
        height=size,
        count=1,
        dtype="uint8",
        nodata=255,
        crs="EPSG:32633",
        transform=from_origin(500000.0, 5500000.0, 0.5, 0.5),
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="deflate",
    )
    classes = [{"id": i, "name": n} for i, n in enumerate(CLASSES)]
    prob_dst = None
    if probs is not None:
        prob_dst = rasterio.open(probs, "w", **{**profile, "count": len(CLASSES) + 1, "nodata": None})
        prob_dst.set_band_description(len(CLASSES) + 1, "confidence")
    with rasterio.open(path, "w", **profile) as dst:
        write_class_metadata(dst, classes)
        for row0 in range(0, size, STRIP):
            rows = min(STRIP, size - row0)
            f = field(row0, rows)
            mask = np.digitize(f, edges).astype(np.uint8)
            # Speckle: ~0.3 % of the pixels start a 1-4 pixel blob of a random class.
            seeds = rng.random(mask.shape) < 0.003
            r, c = np.nonzero(seeds)
            cls = rng.integers(0, len(CLASSES), len(r)).astype(np.uint8)
            for dr, dc in ((0, 0), (0, 1), (1, 0), (1, 1)):
                keep = rng.random(len(r)) < (1.0 if dr == dc == 0 else 0.4)
                mask[np.minimum(r[keep] + dr, rows - 1), np.minimum(c[keep] + dc, size - 1)] = cls[keep]
            # Nodata: the top-left corner outside a tilted footprint, as in a rotated satellite scene.
            rr = np.arange(row0, row0 + rows)[:, None]
            cc = np.arange(size)[None, :]
            mask[rr + cc < size // 6] = 255
            dst.write(mask, 1, window=rasterio.windows.Window(0, row0, size, rows))
            if prob_dst is not None:
                conf = np.clip(160 + 80 * np.sin(f * 7), 0, 255).astype(np.uint8)
                conf[mask == 255] = 0
                prob_dst.write(conf, len(CLASSES) + 1, window=rasterio.windows.Window(0, row0, size, rows))
    if prob_dst is not None:
        prob_dst.close()


def run_once(size: int, args: argparse.Namespace) -> dict:
    import pyogrio

    mask = args.work / f"mask_{size}_{args.seed}.tif"
    probs = args.work / f"probs_{size}_{args.seed}.tif" if args.probs else None
    if not mask.exists() or (probs is not None and not probs.exists()):
        t0 = time.perf_counter()
        generate_mask(mask, size, args.seed, probs)
        print(f"generated {mask} in {time.perf_counter() - t0:.1f} s", flush=True)
    out = args.work / f"polygons_{size}.gpkg"
    cmd = [sys.executable, "-m", "rsseg_cli", "vectorize", str(mask), "--out", str(out)]
    cmd += ["--sieve", str(args.sieve), "--window", str(args.window)]
    if probs is not None:
        cmd += ["--probs", str(probs)]
    cmd += args.extra
    run = run_measured(cmd)
    if run.returncode != 0:
        print(run.stderr)
        raise SystemExit("vectorize failed")
    polygons = pyogrio.read_info(out, layer="polygons")["features"]
    if not args.keep:
        out.unlink()
    return {
        "size": size,
        "seconds": run.seconds,
        "polygons": polygons,
        "peak": run.peak_rss_mib * 2**20,
        "mask_bytes": size * size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, nargs="+", default=[16384], help="mask side(s) in pixels")
    parser.add_argument("--sieve", type=int, default=8)
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW)
    parser.add_argument("--probs", action="store_true", help="also a probability raster (mean_prob)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("bench/out/vectorize"))
    parser.add_argument("--keep", action="store_true", help="keep the GeoPackage afterwards")
    parser.add_argument("extra", nargs="*", help="more `rsseg vectorize` options, after --")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    rows = [run_once(size, args) for size in args.size]
    print(
        f"\nsieve {args.sieve} px, window {args.window} px, probs {'yes' if args.probs else 'no'}, "
        f"{os.cpu_count()} cores; wall time of the whole command (imports and GeoPackage writing included)"
    )
    print(f"{'mask':>13} {'Mpx':>7} {'s':>7} {'Mpx/s':>7} {'polygons':>9} {'peak MiB':>9} {'peak/mask':>9}")
    for r in rows:
        mpx = r["size"] ** 2 / 1e6
        print(
            f"{r['size']:>6} x {r['size']:<6}{mpx:7.1f} {r['seconds']:7.1f} {mpx / r['seconds']:7.2f} "
            f"{r['polygons']:9d} {r['peak'] / 2**20:9.0f} {100 * r['peak'] / r['mask_bytes']:8.1f}%"
        )


if __name__ == "__main__":
    main()
