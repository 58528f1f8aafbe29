"""Wall and CPU seconds of each phase of `rsseg demo` (sample, tile, train, evaluate, predict, check).

    python bench/demo_bench.py                    # the demo as shipped (configs/demo.yaml), in a temp folder
    python bench/demo_bench.py --steps 200        # fewer training steps
    python bench/demo_bench.py --out /tmp/demo    # keep the outputs (quicklook.png, metrics)

The README's "about 3 minutes on 2 CPU cores" is for an idle machine; CPU seconds (user + system of this
process and its data loader workers) do not depend on what else runs, wall seconds do, so the load average
before and after is printed too. The last lines are the map's whole-scene mIoU and per-class IoU, the
numbers the demo's quick-look carries in its title.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import rsseg_cli.models  # noqa: E402,F401  (imports timm the way this CPU torch needs)
from rsseg_cli.commands.demo import DemoOptions, cpu_seconds, run  # noqa: E402
from rsseg_cli.progress import setup_logging  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, help="demo folder (default: a temporary one)")
    parser.add_argument("--size", type=int, default=DemoOptions.size)
    parser.add_argument("--steps", type=int, default=DemoOptions.steps)
    args = parser.parse_args()

    import torch

    setup_logging()
    load_before = os.getloadavg()[0]
    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "demo"
        times = run(DemoOptions(out=out, size=args.size, steps=args.steps, overwrite=True))
        metrics_file = out / "predictions" / "scene_vs_labels" / "metrics.json"
        metrics = metrics_file.read_text() if metrics_file.exists() else None
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0

    print(f"\nrsseg demo --size {args.size} --steps {args.steps}: {os.cpu_count()} CPUs, "
          f"torch {torch.get_num_threads()} threads, load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after")  # fmt: skip
    print(f"{'phase':<10} {'wall s':>8} {'CPU s':>8}")
    for t in times:
        print(f"{t.name:<10} {t.wall_s:8.1f} {t.cpu_s:8.1f}")
    print(f"{'total':<10} {wall:8.1f} {cpu:8.1f}   (with imports and set-up)")
    if metrics:
        import json

        m = json.loads(metrics)
        print(
            f"map vs the scene's labels: OA {100 * m['overall_accuracy']:.1f} %, mIoU {100 * m['mean_iou']:.1f} %"
        )
        print("IoU %: " + ", ".join(f"{r['name']} {100 * (r['iou'] or 0):.0f}" for r in m["per_class"]))


if __name__ == "__main__":
    main()
