"""Tiling throughput and peak memory on large synthetic scenes.

    python bench/tile_bench.py                          # 8192^2 and 20000^2, 4 bands uint16
    python bench/tile_bench.py --sizes 20000 --workers 1

Each scene is generated once into the work folder (reused on later runs), then `rsseg tile` runs in a child
process whose peak resident memory is read from the kernel (bench.common.run_measured), so generation does
not count. Prints chips/s, MiB/s of pixels, and the peak RSS beside the scene's uncompressed size; with two
sizes also the ratio of the peaks, which stays near 1 when memory does not grow with the scene.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import run_measured  # noqa: E402
from rsseg_cli.config import TileConfig  # noqa: E402


def tile_once(size: int, args: argparse.Namespace) -> dict:
    from rsseg_cli.synthetic import generate_sample

    name = f"scene_{size}_{args.bands}_{args.dtype}"
    scene = args.work / f"{name}.tif"
    labels = args.work / f"{name}_labels.tif"
    if not (scene.exists() and labels.exists()):
        t0 = time.perf_counter()
        generate_sample(args.work, height=size, width=size, bands=args.bands, dtype=args.dtype, name=name)
        print(f"generated {scene} in {time.perf_counter() - t0:.1f} s", flush=True)
    out = args.work / f"data_{size}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "rsseg_cli",
        "tile",
        str(scene),
        "--labels",
        str(labels),
        "--out",
        str(out),
        "--chip-size",
        str(args.chip_size),
        "--workers",
        str(args.workers),
        "--set",
        f"tile.compress={args.compress}",
    ]
    run = run_measured(cmd)
    if run.returncode != 0:
        print(run.stderr)
        raise SystemExit("tile failed")
    import pandas as pd

    chips = len(pd.read_csv(out / "chips.csv"))
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    return {
        "size": size,
        "windows": int(np.ceil(size / args.chip_size)) ** 2,
        "chips": chips,
        "seconds": run.seconds,
        "scene_bytes": size * size * args.bands * np.dtype(args.dtype).itemsize,
        "peak": run.peak_rss_mib * 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[8192, 20000])
    parser.add_argument("--bands", type=int, default=4)
    parser.add_argument("--dtype", default="uint16")
    parser.add_argument("--chip-size", type=int, default=TileConfig().chip_size)  # rsseg tile's default
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--compress", default="zstd", help="chip compression (the product default is zstd)")
    parser.add_argument("--work", type=Path, default=Path("bench/out/tile"))
    parser.add_argument("--keep", action="store_true", help="keep the datasets afterwards")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    rows = [tile_once(size, args) for size in args.sizes]
    print(
        f"\nchips {args.chip_size} px, {args.bands} x {args.dtype}, workers {args.workers}, "
        f"compress {args.compress}, {os.cpu_count()} cores; wall time of the whole command (imports, class "
        "scan, splits, manifest included)"
    )
    print(
        f"{'scene':>13} {'GiB':>6} {'windows':>8} {'chips':>6} {'s':>7} {'chips/s':>8} {'MiB/s':>7} "
        f"{'peak MiB':>9} {'peak/scene':>10}"
    )
    for r in rows:
        print(
            f"{r['size']:>6} x {r['size']:<6}{r['scene_bytes'] / 2**30:6.2f} {r['windows']:8d} {r['chips']:6d} "
            f"{r['seconds']:7.1f} {r['windows'] / r['seconds']:8.1f} {r['scene_bytes'] / 2**20 / r['seconds']:7.1f} "
            f"{r['peak'] / 2**20:9.0f} {100 * r['peak'] / r['scene_bytes']:9.1f}%"
        )
    if len(rows) > 1:
        print(
            f"peak RSS ratio largest/smallest scene: {rows[-1]['peak'] / rows[0]['peak']:.2f} "
            f"for {rows[-1]['scene_bytes'] / rows[0]['scene_bytes']:.1f}x the pixels"
        )


if __name__ == "__main__":
    main()
