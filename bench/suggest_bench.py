"""`rsseg suggest` over growing scenes: peak memory must not grow with the scene, and what scoring costs
against plain prediction of the same scene with the same model.

    python bench/suggest_bench.py                       # 2048^2 and 8192^2 scenes, tiny random-init ViT
    python bench/suggest_bench.py --sizes 2048 4096

Each command runs in a child process whose peak resident memory comes from the kernel (bench.common
.run_measured). Per size: `rsseg predict` (mask only) and `rsseg suggest --budget 20` (hybrid: flip views for
the disagreement of this supervised model, so 4 forward passes per window, plus the features of every
eligible 256 px window and the uncertainty COG), both on one core-limited CPU process.
Printed: seconds and peak MiB of each, the suggest/predict time ratio, and the memory ratio largest/smallest
scene for suggest (goal <= 1.3: memory does not grow with the scene).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import run_measured  # noqa: E402
from bench.predict_bench import make_checkpoint, make_scene  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[2048, 8192])
    p.add_argument("--work", type=Path, default=Path("/tmp/rsseg-suggest-bench"))
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    ckpt = args.work / "tiny.pt"
    if not ckpt.exists():
        make_checkpoint(ckpt, "tiny", 256)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    rsseg = [sys.executable, "-m", "rsseg_cli"]
    rows = []
    for size in args.sizes:
        scene = args.work / f"scene_{size}.tif"
        if not scene.exists():
            make_scene(scene, size)
        pred = run_measured([*rsseg, "predict", str(scene), "--checkpoint", str(ckpt), "--out",
                             str(args.work / f"mask_{size}.tif"), "--overwrite", "--device", "cpu"], env=env)  # fmt: skip
        sug = run_measured([*rsseg, "suggest", str(scene), "--checkpoint", str(ckpt), "--budget", "20", "--out",
                            str(args.work / f"s_{size}.gpkg"), "--overwrite", "--device", "cpu"], env=env)  # fmt: skip
        for name, m in (("predict", pred), ("suggest", sug)):
            if m.returncode != 0:
                raise SystemExit(f"{name} {size} failed:\n{m.stderr[-3000:]}")
        rows.append((size, pred, sug))
        print(f"{size:>6} px: predict {pred.seconds:7.1f} s {pred.peak_rss_mib:7.0f} MiB | suggest "
              f"{sug.seconds:7.1f} s {sug.peak_rss_mib:7.0f} MiB | suggest/predict time {sug.seconds / pred.seconds:.2f}",
              flush=True)  # fmt: skip
    first, last = rows[0], rows[-1]
    print(f"suggest peak memory {last[0]}^2 / {first[0]}^2: {last[2].peak_rss_mib / first[2].peak_rss_mib:.2f} "
          f"({(last[0] / first[0]) ** 2:.0f}x the pixels); predict: {last[1].peak_rss_mib / first[1].peak_rss_mib:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
