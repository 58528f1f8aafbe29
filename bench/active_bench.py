"""Does `rsseg suggest` save labels? An analyst simulated with an oracle (the scene's ground truth), active
selection against random selection of the same number of chips, with the same training.

    python bench/active_bench.py                                  # both scenes, 3 seeds (about 1.5 h on 2 cores)
    python bench/active_bench.py --scenes sample --seeds 0 --rounds 3 --steps 60   # a quick look

Per scene and seed, both arms start from the same few labeled chips (drawn at random) and run the loop the
README describes, through the CLI in this process:
  round 0: tile (labels = the oracle's inside the labeled chips, unlabeled elsewhere), train from scratch;
  round r: suggest --budget N (active: --strategy hybrid; random: --strategy random, the same eligibility and
           no-overlap rules) -> the oracle labels the N squares -> tile again -> train --init-from the
           previous round's checkpoint for the same number of steps;
  after each round: predict a held-out test scene (generated with another seed) and score it (mIoU).
Scenes: `sample` is the project's sample scene (rsseg sample); `second` is generated differently: another
layout seed, 3 bands, uint8, and a ragged nodata edge (synthetic.analyst.ragged_edge).

Printed: mIoU per round and arm (mean +- sd over seeds), the label budget (chips) at which active selection
reaches random selection's final mIoU (linear between rounds), and the share of the picked pixels per class
(whether active selection finds the rare classes). Writes active_bench.json and active_bench.png in --work.

What random-init models can show: the models know nothing but the labels, so the comparison measures which
chips teach more; it cannot show how much a pretrained backbone would change the gap.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODEL = [
    "model.weights=none",
    "model.backbone_kwargs={depth: 4, embed_dim: 48, num_heads: 3, patch_size: 8, img_size: 64}",
]


def rsseg(*args: str | Path) -> None:
    """One rsseg command in this process (no interpreter start per command); fails loudly."""
    from rsseg_cli.cli import main

    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            main([str(a) for a in args])
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise RuntimeError(
                f"rsseg {' '.join(map(str, args))} exited {exc.code}:\n{out.getvalue()[-3000:]}"
            ) from None


def make_scene(kind: str, out: Path, seed: int, size: int) -> tuple[Path, Path]:
    from rsseg_cli.synthetic import generate_sample
    from rsseg_cli.synthetic.analyst import ragged_edge

    if kind == "sample":
        s = generate_sample(out, height=size, width=size, seed=seed)
        return s.scene, s.labels
    s = generate_sample(out, height=size, width=size, seed=seed + 7, bands=3, dtype="uint8", name="second")
    ragged = ragged_edge(s.scene, out / "second_ragged.tif", seed=seed)
    return ragged, s.labels


def chip_windows(scene: Path, labels: Path, chip: int) -> list[tuple[int, int]]:
    """Grid windows whose pixels are all labeled in the ground truth and valid in the scene (where the
    initial chips are drawn)."""
    with rasterio.open(labels) as src:
        good = src.read(1) != 255
    with rasterio.open(scene) as src:
        good &= src.dataset_mask() > 0
    h, w = good.shape
    return [(r, c) for r in range(0, h - chip + 1, chip) for c in range(0, w - chip + 1, chip)
            if good[r : r + chip, c : c + chip].all()]  # fmt: skip


def oracle_labels(gt_path: Path, squares: list[tuple[int, int]], chip: int, out: Path) -> Path:
    """The ground truth inside the labeled squares, unlabeled (255) everywhere else."""
    with rasterio.open(gt_path) as src:
        gt, profile = src.read(1), src.profile
    labels = np.full_like(gt, 255)
    for r, c in squares:
        labels[r : r + chip, c : c + chip] = gt[r : r + chip, c : c + chip]
    profile.update(nodata=255)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(labels, 1)
    return out


def run_arm(arm: str, scene: Path, gt: Path, test: tuple[Path, Path], start: list, args, work: Path) -> dict:
    import shutil

    import geopandas as gpd

    shutil.rmtree(work, ignore_errors=True)  # a fresh arm: no run folder to resume
    squares = list(start)
    curve, picked_pixels = [], []
    previous = None
    for r in range(args.rounds + 1):
        d = work / f"round{r}"
        d.mkdir(parents=True, exist_ok=True)
        labels = oracle_labels(gt, squares, args.chip, d / "labels.tif")
        rsseg("tile", scene, "--labels", labels, "--out", d / "data", "--chip-size", args.chip, "--config", args.classes,
              "--set", "tile.split.method=scene", "--keep-incomplete", "--overwrite")  # fmt: skip
        steps = args.first_steps if r == 0 else args.steps
        settings = [
            *MODEL,
            "train.crop=64",
            f"train.batch_size={args.batch}",
            "train.workers=0",
            "train.lr=2e-4",
            "train.head_lr_mult=10",
            f"train.iterations={steps}",
            "train.log_every=50",
        ]
        train = ["train", "--data", d / "data", "--out", d / "run", "--method", "supervised", "--no-val",
                 "--seed", args.seed_now, *(x for s in settings for x in ("--set", s))]  # fmt: skip
        if previous is not None and not args.cold:
            train += ["--init-from", previous]
        rsseg(*train)
        best = d / "run" / "checkpoints" / "best.pt"
        rsseg("predict", test[0], "--out", d / "test_pred.tif", "--checkpoint", best, "--overwrite")
        rsseg(
            "evaluate",
            "--pred",
            d / "test_pred.tif",
            "--labels",
            test[1],
            "--out",
            d / "report",
            "--overwrite",
        )
        miou = 100 * json.loads((d / "report" / "metrics.json").read_text())["mean_iou"]
        curve.append({"round": r, "chips": len(squares), "mIoU": miou})
        logging.getLogger("bench").warning(
            "%s round %d: %d chips, test mIoU %.2f", arm, r, len(squares), miou
        )
        previous = best
        if r == args.rounds:
            break
        strategy = args.strategy if arm == "active" else "random"
        rsseg("suggest", scene, "--checkpoint", best, "--budget", args.per_round, "--strategy", strategy,
              "--exclude", d / "data", "--out", d / "suggestions.gpkg", "--seed", args.seed_now * 100 + r,
              "--no-quicklook", "--no-uncertainty", "--overwrite",
              *(x for v in (args.suggest_set if arm == "active" else []) for x in ("--set", v)))  # fmt: skip
        picks = gpd.read_file(d / "suggestions.gpkg", layer="suggestions")
        new = [(int(p.row), int(p.col)) for p in picks.itertuples()]
        with rasterio.open(gt) as src:
            g = src.read(1)
        picked_pixels.append([np.bincount(g[rr : rr + args.chip, cc : cc + args.chip].ravel(), minlength=256)[:255].tolist()
                              for rr, cc in new])  # fmt: skip
        squares += new
    return {"curve": curve, "picked_pixels": picked_pixels}


def budget_to_reach(curve: list[dict], target: float) -> float | None:
    """Chips at which a curve first reaches `target` (linear between rounds), None if never."""
    for a, b in itertools.pairwise(curve):
        if a["mIoU"] >= target:
            return a["chips"]
        if b["mIoU"] >= target:
            t = (target - a["mIoU"]) / max(b["mIoU"] - a["mIoU"], 1e-9)
            return a["chips"] + t * (b["chips"] - a["chips"])
    return curve[0]["chips"] if curve and curve[0]["mIoU"] >= target else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", nargs="+", default=["sample", "second"], choices=["sample", "second"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--size", type=int, default=1024, help="pool and test scene side, px")
    p.add_argument("--test-size", type=int, default=None, help="test scene side, px [default: --size]")
    p.add_argument("--chip", type=int, default=64)
    p.add_argument("--start", type=int, default=4, help="labeled chips before the first round")
    p.add_argument("--per-round", type=int, default=4, help="chips labeled per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--first-steps", type=int, default=200, help="steps of the round-0 training")
    p.add_argument("--steps", type=int, default=100, help="steps of each warm-started round")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--strategy", default="hybrid")
    p.add_argument(
        "--arms",
        nargs="+",
        default=["active", "random"],
        choices=["active", "random"],
        help="arms to run; the others are read from --work's active_bench.json (same settings)",
    )
    p.add_argument("--suggest-set", nargs="*", default=[], help="--set values for the active arm's suggest")
    p.add_argument("--report-only", action="store_true", help="print the report of --work's results and stop")
    p.add_argument("--cold", action="store_true", help="train each round from scratch (no --init-from)")
    p.add_argument("--work", type=Path, default=Path("/tmp/rsseg-active-bench"))
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("rsseg").setLevel(logging.ERROR)
    args.work.mkdir(parents=True, exist_ok=True)
    # The oracle's rasters carry no class table: name the classes (all of them, found or not yet).
    import yaml

    from rsseg_cli.synthetic.classes import SAMPLE_CLASSES

    args.classes = args.work / "classes.yaml"
    args.classes.write_text(yaml.safe_dump({"classes": SAMPLE_CLASSES}))
    saved = args.work / "active_bench.json"
    results: dict = json.loads(saved.read_text()) if saved.exists() else {}
    if args.report_only:
        report(results, args)
        return
    t0 = time.perf_counter()
    for kind in args.scenes:
        scene, gt = make_scene(kind, args.work / kind / "pool", 0, args.size)
        test = make_scene(kind, args.work / kind / "test", 100, args.test_size or args.size)
        windows = chip_windows(scene, gt, args.chip)
        for seed in args.seeds:
            args.seed_now = seed
            rng = np.random.default_rng(seed)
            start = [windows[i] for i in rng.choice(len(windows), args.start, replace=False)]
            for arm in args.arms:
                key = f"{kind}/{seed}/{arm}"
                results[key] = run_arm(
                    arm, scene, gt, test, start, args, args.work / kind / f"seed{seed}" / arm
                )
            (args.work / "active_bench.json").write_text(json.dumps(results, indent=1))
    report(results, args)
    print(f"total {time.perf_counter() - t0:.0f} s")


def report(results: dict, args) -> None:
    from rsseg_cli.synthetic.classes import SAMPLE_CLASSES

    names = [c["name"] for c in SAMPLE_CLASSES]
    for kind in args.scenes:
        print(f"\n== {kind}: test mIoU (%) per round, mean +- sd over seeds {args.seeds} ==")
        curves = {
            arm: [results[f"{kind}/{s}/{arm}"]["curve"] for s in args.seeds] for arm in ("active", "random")
        }
        print(f"{'round':>5} {'chips':>5} {'active':>14} {'random':>14}")
        for r in range(args.rounds + 1):
            row = [f"{r:>5}", f"{curves['active'][0][r]['chips']:>5}"]
            for arm in ("active", "random"):
                v = [c[r]["mIoU"] for c in curves[arm]]
                row.append(f"{statistics.mean(v):>7.1f} +- {statistics.pstdev(v):4.1f}")
            print(" ".join(row))
        mean = {arm: [{"chips": curves[arm][0][r]["chips"], "mIoU": statistics.mean(c[r]["mIoU"] for c in curves[arm])}
                      for r in range(args.rounds + 1)] for arm in curves}  # fmt: skip
        target = mean["random"][-1]["mIoU"]
        reach = budget_to_reach(mean["active"], target)
        final = mean["random"][-1]["chips"]
        if reach is None:
            print(f"active never reaches random's final {target:.1f} within {final} chips")
        else:
            print(f"active reaches random's final mIoU {target:.1f} at {reach:.1f} chips vs {final}: "
                  f"{100 * (1 - reach / final):.0f} % fewer labels")  # fmt: skip
        for seed in args.seeds:
            per = {arm: budget_to_reach(results[f"{kind}/{seed}/{arm}"]["curve"],
                                        results[f"{kind}/{seed}/random"]["curve"][-1]["mIoU"]) for arm in ("active",)}  # fmt: skip
            print(f"  seed {seed}: active reaches that seed's random final at {per['active']} chips")
        for arm in ("active", "random"):
            px = np.sum(
                [np.sum(results[f"{kind}/{s}/{arm}"]["picked_pixels"], axis=(0, 1)) for s in args.seeds],
                axis=0,
            )
            share = px[: len(names)] / max(px.sum(), 1)
            print(
                f"  {arm:>6} picks, pixel share per class: "
                + ", ".join(f"{n} {100 * v:.0f}%" for n, v in zip(names, share))
            )
            ious = []
            for s in args.seeds:
                path = args.work / kind / f"seed{s}" / arm / f"round{args.rounds}" / "report" / "metrics.json"
                if path.exists():
                    per = json.loads(path.read_text())["per_class"]
                    per = per.values() if isinstance(per, dict) else per
                    ious.append([100 * (c.get("iou") or 0.0) for c in per])
            if ious:
                mean_iou = np.mean(ious, axis=0)
                print(
                    f"  {arm:>6} final IoU per class: "
                    + ", ".join(f"{n} {v:.0f}" for n, v in zip(names, mean_iou))
                )
    plot(results, args)


def plot(results: dict, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(args.scenes), figsize=(6 * len(args.scenes), 4.5), squeeze=False)
    for ax, kind in zip(axes[0], args.scenes):
        for arm, color in (("active", "tab:red"), ("random", "tab:blue")):
            curves = [results[f"{kind}/{s}/{arm}"]["curve"] for s in args.seeds]
            x = [p["chips"] for p in curves[0]]
            y = np.array([[p["mIoU"] for p in c] for c in curves])
            ax.plot(x, y.mean(0), color=color, marker="o", label=f"{arm} (mean of {len(curves)} seeds)")
            ax.fill_between(x, y.min(0), y.max(0), color=color, alpha=0.15)
        ax.set_xlabel("labeled chips")
        ax.set_ylabel("test mIoU (%)")
        ax.set_title(kind)
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.work / "active_bench.png", dpi=100)


if __name__ == "__main__":
    main()
