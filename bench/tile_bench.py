"""Tiling throughput and peak memory on a large synthetic scene.

    python bench/tile_bench.py                       # 20000 x 20000, 4 bands uint16 (3.2 GB of pixels)
    python bench/tile_bench.py --size 8192 --workers 1

The scene is generated (or reused) in a work folder, then `rsseg tile` runs in a child process whose peak
resident memory is read from the kernel (wait4), so generation does not count. Prints chips/s, MB/s of
pixels and the peak RSS beside the scene's uncompressed size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=20000)
    parser.add_argument("--bands", type=int, default=4)
    parser.add_argument("--dtype", default="uint16")
    parser.add_argument("--chip-size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--compress", default="deflate")
    parser.add_argument("--work", type=Path, default=Path("bench/out/tile"))
    parser.add_argument("--keep", action="store_true", help="keep the scene and dataset afterwards")
    args = parser.parse_args()

    from rsseg_cli.data.sample import generate_sample

    args.work.mkdir(parents=True, exist_ok=True)
    name = f"scene_{args.size}_{args.bands}_{args.dtype}"
    scene = args.work / f"{name}.tif"
    labels = args.work / f"{name}_labels.tif"
    if not (scene.exists() and labels.exists()):
        t0 = time.perf_counter()
        generate_sample(args.work, height=args.size, width=args.size, bands=args.bands, dtype=args.dtype,
                        name=name)
        print(f"generated {scene} in {time.perf_counter() - t0:.1f} s")
    out = args.work / "data"
    shutil.rmtree(out, ignore_errors=True)

    cmd = [sys.executable, "-m", "rsseg_cli", "tile", str(scene), "--labels", str(labels), "--out", str(out),
           "--chip-size", str(args.chip_size), "--workers", str(args.workers),
           "--set", f"tile.compress={args.compress}"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    err = proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        print(err)
        raise SystemExit("tile failed")

    import pandas as pd

    chips = len(pd.read_csv(out / "chips.csv"))
    windows = int(np.ceil(args.size / args.chip_size)) ** 2
    scene_bytes = args.size * args.size * args.bands * np.dtype(args.dtype).itemsize
    peak = usage.ru_maxrss * 1024  # Linux reports KiB
    print(f"scene            {args.size} x {args.size} x {args.bands} {args.dtype} = {scene_bytes / 2**30:.2f} GiB")
    print(f"chip size        {args.chip_size}, workers {args.workers}, compress {args.compress}, cores {os.cpu_count()}")
    print(f"windows / chips  {windows} / {chips}")
    print(f"wall time        {seconds:.1f} s (whole command, including imports, splits and manifest)")
    print(f"throughput       {windows / seconds:.1f} chips/s, {scene_bytes / 2**20 / seconds:.1f} MiB/s of pixels")
    print(f"peak RSS         {peak / 2**20:.0f} MiB = {100 * peak / scene_bytes:.1f} % of the scene")
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
