"""Many scenes on one machine: 16 synthetic scenes predicted into a folder by one process and by two processes
(`torchrun --nproc_per_node 2 -m rsseg_cli predict`, gloo on CPU), in one run; prints scenes/s of each and the
ratio, and checks that both wrote the same masks.

    python bench/scenes_bench.py                      # 16 scenes of 1024 px, ViT-Ti-shaped model, 256 px windows
    python bench/scenes_bench.py --scenes 8 --size 512 --model tiny

Threads: one process gets every core (torch's intra-op threads), each of the two processes half of them
(OMP_NUM_THREADS), so both sides use the same cores; the ratio says what process-level parallelism adds over
thread-level parallelism on a CPU (on GPUs each rank has its own device and the ratio approaches the number
of devices). Random-init weights: the speed is a real model's of that shape, the masks mean nothing.
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
from bench.predict_bench import make_checkpoint, make_scene  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=16)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--model", choices=["tiny", "vit-ti"], default="vit-ti")
    p.add_argument("--work", type=Path, default=Path("bench/out/scenes"))
    args = p.parse_args()
    scenes = args.work / f"scenes_{args.size}"
    scenes.mkdir(parents=True, exist_ok=True)
    for i in range(args.scenes):
        path = scenes / f"scene_{i:02d}.tif"
        if not path.exists():
            make_scene(path, args.size + 64 * (i % 4))  # sizes differ: the largest-first sharing matters
    ckpt = args.work / f"{args.model}.pt"
    if not ckpt.exists():
        make_checkpoint(ckpt, args.model, 256)
    cores = len(os.sched_getaffinity(0))
    common = ["predict", str(scenes / "*.tif"), "--checkpoint", str(ckpt), "--set", "predict.device=cpu"]
    runs = {}
    for procs in (1, 2):
        out = args.work / f"out_{procs}"
        shutil.rmtree(out, ignore_errors=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // procs)), "HF_HUB_OFFLINE": "1"}
        if procs == 1:
            cmd = [sys.executable, "-m", "rsseg_cli", *common, "--out", str(out)]
        else:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs),
                   "--master_port", str(29600 + os.getpid() % 1000), "-m", "rsseg_cli", *common,
                   "--out", str(out)]  # fmt: skip
        t0 = time.perf_counter()
        run = run_measured(cmd, env=env)
        seconds = time.perf_counter() - t0
        if run.returncode != 0:
            print(run.stderr[-3000:])
            raise SystemExit(f"{procs} process(es): exit {run.returncode}")
        runs[procs] = seconds
        print(
            f"{procs} process(es): {args.scenes} scenes in {seconds:.1f} s, {args.scenes / seconds:.3f} scenes/s"
        )
    # Equal bytes need equal arithmetic: torch's matmuls split work by thread count, so 2 threads vs 1 can flip
    # the argmax of a near-tie pixel; count them.
    pairs = [
        (_mask(args.work / "out_1" / f.name), _mask(args.work / "out_2" / f.name))
        for f in sorted(scenes.glob("*.tif"))
    ]
    differ = sum(int((a != b).sum()) for a, b in pairs)
    total = sum(a.size for a, _ in pairs)
    print(
        f"\n{args.scenes} scenes of {args.size}-{args.size + 192} px, model {args.model}, {cores} cores, "
        f"wall time of each whole command (imports and model loading included)"
    )
    print(f"1 process   {args.scenes / runs[1]:.3f} scenes/s")
    print(f"2 processes {args.scenes / runs[2]:.3f} scenes/s")
    print(f"ratio       {runs[1] / runs[2]:.2f}x")
    print(
        f"mask pixels that differ: {differ} of {total} ({100 * differ / total:.4f} %; threads differ: "
        f"{cores} vs {max(1, cores // 2)} per process)"
    )


def _mask(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1)


if __name__ == "__main__":
    main()
