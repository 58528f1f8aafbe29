"""`rsseg prepare loveda` throughput and peak memory on a synthetic LoveDA-sized dataset.

    python bench/prepare_bench.py                                 # 4000 images of 1024 px, Co2S layout
    python bench/prepare_bench.py --layout official --workers 4   # the Zenodo layout (Train|Val/Urban|Rural)
    python bench/prepare_bench.py --images 50 --size 256          # a quick check

The dataset is generated once into --work (a process pool; reused while --layout, --images, --size and --seed
stay the same): smooth RGB PNGs and blob labels with LoveDA's values (0 = no data, 1..7), named as the real
release names them (the Co2S lists' numbers, or the official numbering). Then `rsseg prepare loveda` runs in a
child process (bench.common.run_measured) and the benchmark prints the images, the wall time of the whole
command, images/s, the peak resident memory, and the sizes of dataset.yaml and chips.csv. The peak is the
kernel's ru_maxrss of the prepare process tree as wait4 reports it once the command is waited for: the largest
single process of that tree (the main process or one worker), not their sum; generating the input does not
count.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import run_measured  # noqa: E402

# The official release: Train holds 0..2521 (Rural 0..1365, Urban 1366..2521), Val 2522..4190.
OFFICIAL = {("Train", "Rural"): range(0, 1366), ("Train", "Urban"): range(1366, 2522),
            ("Val", "Rural"): range(2522, 3514), ("Val", "Urban"): range(3514, 4191)}  # fmt: skip
LOVEDA_IMAGES = 4191
STAMP = "generated.json"


def co2s_names(n: int) -> list[tuple[str, str]]:
    """(image, label) paths of n images from the Co2S LoveDA lists, val and train in their proportion."""
    from rsseg_cli.benchmarks.lists import read_list

    val = [line[:2] for line in read_list("co2s/loveda/val.txt")]
    train = [line[:2] for line in read_list("co2s/loveda/train.txt")]
    n_val = round(n * len(val) / (len(val) + len(train)))
    return val[:n_val] + train[: n - n_val]


def official_names(n: int) -> list[tuple[str, str]]:
    """(image, label) paths of n images spread over the four official folders in their proportion."""
    total = sum(len(r) for r in OFFICIAL.values())
    pairs = []
    for (part, domain), numbers in OFFICIAL.items():
        take = max(1, round(n * len(numbers) / total))
        for i in numbers[:take]:
            pairs.append((f"{part}/{domain}/images_png/{i}.png", f"{part}/{domain}/masks_png/{i}.png"))
    return pairs[:n]


def write_pair(task: tuple[Path, str, str, int, int]) -> None:
    """One smooth RGB image (bilinear upsampling of an 8 x 8 grid: it PNG-compresses well) and one label of
    blocky blobs of 0..7."""
    from PIL import Image

    src, image, label, size, seed = task
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    rgb = Image.fromarray(coarse, "RGB").resize((size, size), Image.Resampling.BILINEAR)
    cells = rng.integers(0, 8, size=(16, 16), dtype=np.uint8)
    blobs = np.kron(cells, np.ones((-(-size // 16),) * 2, dtype=np.uint8))[:size, :size]
    for path, picture in (
        (src / image, rgb),
        (src / label, Image.fromarray(np.ascontiguousarray(blobs), "L")),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        picture.save(path, compress_level=1)


def generate(src: Path, args: argparse.Namespace) -> None:
    """Write the dataset unless --work already holds this very one (its stamp says so)."""
    wanted = {"layout": args.layout, "images": args.images, "size": args.size, "seed": args.seed}
    stamp = src / STAMP
    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        print(f"reusing {src}", flush=True)
        return
    shutil.rmtree(src, ignore_errors=True)
    pairs = co2s_names(args.images) if args.layout == "co2s" else official_names(args.images)
    tasks = [
        (src, image, label, args.size, args.seed * 1_000_003 + i) for i, (image, label) in enumerate(pairs)
    ]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        list(pool.map(write_pair, tasks, chunksize=16))
    stamp.write_text(json.dumps(wanted))  # last: an interrupted generation is redone
    print(f"generated {len(tasks)} images in {src} in {time.perf_counter() - t0:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--layout", choices=["co2s", "official"], default="co2s")
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workers", type=int, default=None, help="rsseg prepare --workers (default: its own)"
    )
    parser.add_argument("--work", type=Path, default=Path("bench/out/prepare"))
    args = parser.parse_args()
    if not 1 <= args.images <= LOVEDA_IMAGES:  # names beyond the release would be in no list
        parser.error(f"--images must be 1..{LOVEDA_IMAGES}, the images LoveDA has")

    src = args.work / f"loveda-{args.layout}"
    out = args.work / f"data-{args.layout}"
    generate(src, args)
    cmd = [sys.executable, "-m", "rsseg_cli", "prepare", "loveda", str(src), "--out", str(out), "--overwrite"]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    run = run_measured(cmd)
    if run.returncode != 0:
        print(run.stderr)
        raise SystemExit(f"rsseg prepare exited {run.returncode}")
    import pandas as pd

    chips = len(pd.read_csv(out / "chips.csv"))
    print(
        f"\nrsseg prepare loveda, {args.layout} layout, {args.size} px, workers {args.workers or 'default'}, "
        f"{os.cpu_count()} cores; wall time of the whole command (imports included)"
    )
    print(f"images            {chips}")
    print(f"seconds           {run.seconds:.1f}")
    print(f"images/s          {chips / run.seconds:.1f}")
    print(f"peak RSS MiB      {run.peak_rss_mib:.0f}  (largest single process of the prepare tree)")
    print(f"dataset.yaml B    {(out / 'dataset.yaml').stat().st_size}")
    print(f"chips.csv B       {(out / 'chips.csv').stat().st_size}")


if __name__ == "__main__":
    main()
