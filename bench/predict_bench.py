"""Whole-scene prediction: peak memory against scene size, throughput, and what the pipeline adds to the model.

    python bench/predict_bench.py                     # memory: 4096^2 vs 16384^2; overhead: 4096^2, ViT-Ti
    python bench/predict_bench.py --sizes 4096 8192 --overhead-size 2048

Scenes (4 bands uint16, smooth fields + noise) are generated once into the work folder. Each `rsseg predict`
runs in a child process whose peak resident memory comes from the kernel (bench.common.run_measured).

1. Memory: the same tiny random-init ViT predicts every size; the ratio of the peaks must stay <= 1.3.
2. Overhead: a small ViT (ViT-Ti shape: dim 192, depth 12, patch 16, 256 px windows) predicts one scene; in
   the same child, the model alone is then timed on the same number of windows in the same batches (random
   inputs, no reading, blending or writing). "pipeline adds" = wall time / model-alone time - 1; the goal is
   at most 15 %. The child also reports the time inside the model calls during prediction and the share of
   wall time outside them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import run_measured  # noqa: E402

MODELS = {
    # The memory runs need a model, not a good one: the tiniest that is still a ViT + DPT head.
    "tiny": "{depth: 2, embed_dim: 48, num_heads: 3, patch_size: 16, img_size: 256}",
    "vit-ti": "{depth: 12, embed_dim: 192, num_heads: 3, patch_size: 16, img_size: 256}",
}


def make_scene(path: Path, size: int, bands: int = 4) -> None:
    """Smooth per-band fields plus noise, written in 512-row strips (generation never holds the scene)."""
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(size)
    profile = dict(
        driver="GTiff", width=size, height=size, count=bands, dtype="uint16", crs="EPSG:32633",
        transform=from_origin(500000, 5600000, 0.5, 0.5), tiled=True, blockxsize=512, blockysize=512,
        compress="zstd", bigtiff="if_safer",
    )  # fmt: skip
    tmp = path.with_suffix(".partial.tif")
    cols = np.arange(size)
    with rasterio.open(tmp, "w", **profile) as dst:
        for row in range(0, size, 512):
            rows = np.arange(row, min(size, row + 512))[:, None]
            strip = np.stack(
                [
                    3000
                    + 1500 * np.sin(rows / (97 + 13 * b)) * np.cos(cols / (131 + 7 * b))
                    + rng.normal(0, 120, (len(rows), size))
                    for b in range(bands)
                ]
            )
            dst.write(np.clip(strip, 1, 65535).astype("uint16"), window=((row, row + len(rows)), (0, size)))
    os.replace(tmp, path)


def make_checkpoint(path: Path, model: str, window: int, bands: int = 4) -> None:
    import torch

    from rsseg_cli.config import load_config
    from rsseg_cli.data.normalize import Normalization, default_band_map
    from rsseg_cli.engine.checkpoint import Checkpoint
    from rsseg_cli.methods import configured_model

    torch.manual_seed(0)
    names = [f"band_{i}" for i in range(1, bands + 1)]
    band_map = default_band_map(names)
    cfg = load_config(overrides=["model.weights=none", f"model.backbone_kwargs={MODELS[model]}"])
    classes = [{"id": i, "name": f"class_{i}", "color": None, "value": None} for i in range(7)]
    _, net = configured_model(cfg, classes, bands, band_map)
    Checkpoint(
        model=net.spec.model_dump(mode="json"),
        state_dict=net.state_dict(),
        method="supervised",
        classes=classes,
        bands=[{"index": i + 1, "name": n} for i, n in enumerate(names)],
        dtype="uint16",
        normalization=Normalization.from_dataset(
            {"p2": [1500] * bands, "p98": [4500] * bands}, band_map
        ).to_dict(),
        chip_size=window,
        crop=window,
    ).save(path)


def child(args: argparse.Namespace) -> None:
    """Runs inside the measured process: predict, then (optionally) the model alone on as many windows."""
    # As `rsseg` does: GDAL's block cache would otherwise grow to 5 % of RAM while the COG is written.
    os.environ.setdefault("GDAL_CACHEMAX", "128")
    import torch

    from rsseg_cli.config import PredictConfig
    from rsseg_cli.predict.run import predict_scenes, print_predict_summary
    from rsseg_cli.progress import setup_logging

    setup_logging()
    opts = PredictConfig(overlap_fraction=args.overlap, batch_size=args.batch_size, device="cpu")
    t0 = time.perf_counter()
    [result] = predict_scenes([str(args.scene)], args.out, Path(args.checkpoint), settings=opts)
    print_predict_summary([result])
    wall = time.perf_counter() - t0
    report = {
        "startup_s": wall - result.seconds,  # imports done; checkpoint load, model build, scene checks
        "wall_s": result.seconds,  # the scene: read, predict, blend, write, COG
        "model_s": result.model_seconds,
        "windows": result.windows,
        "megapixels": result.height * result.width / 1e6,
    }
    if args.model_alone:
        from rsseg_cli.predict.model import load_inference_model

        im = load_inference_model(Path(args.checkpoint), torch.device("cpu"), "fp32")
        predict = im.predictor()
        x = torch.randn(args.batch_size, 4, im.window, im.window)
        predict(x[:1])  # the pipeline's first call paid the same one-time setup before it was timed
        t0 = time.perf_counter()
        left = result.windows
        while left > 0:
            n = min(left, args.batch_size)
            predict(x[:n]).float().cpu().numpy()
            left -= n
        report["model_alone_s"] = time.perf_counter() - t0
    print("RESULT " + json.dumps(report), flush=True)


def measure(scene: Path, ckpt: Path, work: Path, args: argparse.Namespace, model_alone: bool) -> dict:
    cmd = [
        sys.executable, __file__, "--child", "--scene", str(scene), "--checkpoint", str(ckpt),
        "--out", str(work / f"pred_{scene.stem}.tif"), "--overlap", str(args.overlap),
        "--batch-size", str(args.batch_size),
    ] + (["--model-alone"] if model_alone else [])  # fmt: skip
    run = run_measured(cmd)
    if run.returncode != 0:
        sys.exit(f"child failed:\n{run.stderr}")
    line = next(ln for ln in run.stdout.splitlines() if ln.startswith("RESULT "))
    report = json.loads(line[len("RESULT ") :])
    report["peak_mib"] = run.peak_rss_mib
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="*", default=[4096, 16384], help="none: skip the memory runs")
    p.add_argument("--overhead-size", type=int, default=4096, help="0 skips the overhead measurement")
    p.add_argument("--overlap", type=float, default=0.25)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--work", type=Path, default=Path("/tmp/rsseg_predict_bench"))
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model-alone", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--scene", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    sizes = sorted(set(args.sizes) | ({args.overhead_size} if args.overhead_size else set()))
    for size in sizes:
        scene = args.work / f"scene_{size}.tif"
        if not scene.exists():
            t0 = time.perf_counter()
            make_scene(scene, size)
            print(f"generated {scene} in {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"CPU threads: torch {__import__('torch').get_num_threads()}, cores {os.cpu_count()}")

    if args.sizes:
        ckpt = args.work / "tiny.pt"
        make_checkpoint(ckpt, "tiny", 256)
        rows = []
        for size in args.sizes:
            r = measure(args.work / f"scene_{size}.tif", ckpt, args.work, args, model_alone=False)
            rows.append((size, r))
            print(f"  done {size}: {r}", flush=True)
        print("\nmemory (tiny ViT d2/48/p16 + DPT, 256 px windows, overlap 0.25, batch 8, fp32 CPU)")
        print(f"{'scene':>14} {'MP':>7} {'windows':>8} {'s':>8} {'MP/s':>7} {'peak MiB':>9}")
        for size, r in rows:
            print(
                f"{size:>6} x {size:<6} {r['megapixels']:>7.1f} {r['windows']:>8} {r['wall_s']:>8.1f} "
                f"{r['megapixels'] / r['wall_s']:>7.2f} {r['peak_mib']:>9.0f}"
            )
        if len(rows) > 1:
            print(f"peak RSS ratio {rows[-1][1]['peak_mib'] / rows[0][1]['peak_mib']:.2f} for "
                  f"{rows[-1][1]['megapixels'] / rows[0][1]['megapixels']:.0f}x the pixels (goal <= 1.3)")  # fmt: skip

    if args.overhead_size:
        ckpt = args.work / "vit_ti.pt"
        make_checkpoint(ckpt, "vit-ti", 256)
        r = measure(args.work / f"scene_{args.overhead_size}.tif", ckpt, args.work, args, model_alone=True)
        print(f"\noverhead (ViT-Ti d12/192/p16 + DPT-s, 256 px windows, {args.overhead_size}^2, fp32 CPU)")
        print(f"  windows {r['windows']}, wall {r['wall_s']:.1f} s, {r['megapixels'] / r['wall_s']:.2f} MP/s, "
              f"peak {r['peak_mib']:.0f} MiB")  # fmt: skip
        print(f"  model alone on {r['windows']} windows: {r['model_alone_s']:.1f} s")
        print(
            f"  pipeline adds {100 * (r['wall_s'] / r['model_alone_s'] - 1):.1f} % to model compute (goal <= 15 %)"
        )
        print(f"  time inside model calls during prediction {r['model_s']:.1f} s; "
              f"outside {100 * (1 - r['model_s'] / r['wall_s']):.1f} % of wall time")  # fmt: skip


if __name__ == "__main__":
    main()
