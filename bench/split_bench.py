"""How much of an analyst's labels survive the split: the label-aware default against the old block split.

    python bench/split_bench.py                    # 3 seeds, 64 px chips, the four shapes below
    python bench/split_bench.py --seeds 5 --chip-size 128

Scenes shaped like the real cases that failed (issue 12), built on the synthetic sample scene (400 x 480 px):
  sparse34   34 polygons digitized over the class map (a Landsat-7 scene with 34 polygons)
  sparse4    4 polygons (a Landsat-8 clip with 4 polygons)
  ragged     a dense class map on a scene with a tilted, jagged nodata edge (small scene, ragged footprint)
  ragged34   the 34 polygons on the ragged scene
For each shape, seed and method it tiles the scene and reads split_report.json: the share of the labeled
valid pixels kept (mean and range over seeds), whether train holds every class and val every class with
two or more polygons (regions), and whether the split can be trained at all. Both methods run in the same
process on the same files, so the comparison does not depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rsseg_cli.config import load_config  # noqa: E402
from rsseg_cli.data.tiling import tile_scenes  # noqa: E402
from rsseg_cli.synthetic import generate_sample  # noqa: E402
from rsseg_cli.synthetic.analyst import digitize_polygons, ragged_edge  # noqa: E402

METHODS = ("blocks", "labels")


def shapes(work: Path, seed: int) -> dict[str, tuple[Path, Path]]:
    sample = generate_sample(work / "sample", height=400, width=480, seed=seed)
    p34 = digitize_polygons(sample.labels, work / "p34.gpkg", 34, seed=seed)
    p4 = digitize_polygons(sample.labels, work / "p4.gpkg", 4, seed=seed)
    ragged = ragged_edge(sample.scene, work / "ragged.tif", seed=seed)
    return {
        "sparse34": (sample.scene, p34),
        "sparse4": (sample.scene, p4),
        "ragged": (ragged, sample.labels),
        "ragged34": (ragged, p34),
    }


def measure(scene: Path, labels: Path, out: Path, method: str, chip: int, seed: int) -> dict:
    cfg = load_config(overrides=[f"tile.chip_size={chip}", f"tile.split.method={method}", f"seed={seed}"])
    t0 = time.perf_counter()
    tile_scenes([scene], [labels], out, cfg, overwrite=True, keep_incomplete=True)
    seconds = time.perf_counter() - t0
    report = json.loads((out / "split_report.json").read_text())
    pixels = report["labeled_pixels"]
    return {
        "kept": pixels["kept_share"],
        "trainable": report["trainable"]["passed"],
        "problems": report["trainable"]["problems"],
        "val_chips": report["splits"]["val"]["labeled_chips"],
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--chip-size", type=int, default=64)
    args = parser.parse_args()
    logging.getLogger("rsseg").setLevel(logging.ERROR)
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            work = Path(tmp) / f"seed{seed}"
            for shape, (scene, labels) in shapes(work, seed).items():
                for method in METHODS:
                    r = measure(scene, labels, work / f"{shape}_{method}", method, args.chip_size, seed)
                    results.setdefault((shape, method), []).append(r)
    print(f"labeled valid pixels kept by the split ({args.seeds} seeds, {args.chip_size} px chips)")
    print(f"{'shape':<10} {'method':<7} {'kept mean':>9} {'min':>6} {'max':>6} {'trainable':>9} {'s/run':>6}")
    for (shape, method), runs in results.items():
        kept = np.array([r["kept"] for r in runs])
        ok = sum(r["trainable"] for r in runs)
        secs = np.mean([r["seconds"] for r in runs])
        print(
            f"{shape:<10} {method:<7} {kept.mean():>9.1%} {kept.min():>6.1%} {kept.max():>6.1%} "
            f"{ok:>4}/{len(runs):<4} {secs:>6.2f}"
        )
    for (shape, method), runs in results.items():
        for seed, r in enumerate(runs):
            if r["problems"]:
                print(f"  {shape} {method} seed {seed}: {'; '.join(r['problems'])}")


if __name__ == "__main__":
    main()
