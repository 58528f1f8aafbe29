"""Does semi-supervised learning pay off? Supervised vs FixMatch vs UniMatch V2 (and RS-MTDF with --methods)
at 1/8 labels, and supervised with every label as the ceiling, on the project's synthetic scene.

    python bench/ssl_bench.py                  # defaults below; well over an hour on 2 CPU cores
    python bench/ssl_bench.py --steps 300 --size 1024 --methods supervised unimatch-v2
    python bench/ssl_bench.py --methods supervised fixmatch unimatch-v2 rs-mtdf --equal-steps-baseline
    python bench/ssl_bench.py --seeds 0 1 2 --steps 300 --dim 48   # spread over seeds; ~1.5 h a seed, 2 busy cores

The semi-supervised runs train --steps steps. The supervised baseline trains as the released supervised
recipes do (methods.md): the same number of epochs as the semi-supervised runs (passes over the unlabeled
pool), but a doubled batch and epochs of max(labeled chips, 3000) samples, so it takes more steps; the rows
compare against it. --equal-steps-baseline adds the old, under-trained baseline (the SSL labeled batch and
step count), labelled "supervised (equal steps)".

The model is a small random-init ViT (DINOv2 layout) with a DPT head: nothing is pretrained, so all knowledge
comes from the labels and the unlabeled chips. Every run uses the same seed, split, crop and schedule; each
prints its validation mIoU (the best of its evaluations, as the papers report) and the final one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=2048, help="sample scene side in pixels")
    parser.add_argument("--chip", type=int, default=64)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=8, help="labeled and unlabeled chips per step")
    parser.add_argument("--labeled", default="1/8")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--methods", nargs="+", default=["supervised", "fixmatch", "unimatch-v2"])
    parser.add_argument("--no-full", action="store_true", help="skip supervised with every label")
    parser.add_argument(
        "--equal-steps-baseline",
        action="store_true",
        help="also run supervised at the SSL labeled batch and step count (under-trained; for comparison)",
    )
    parser.add_argument(
        "--epoch-samples", type=int, default=3000, help="the supervised recipe's epoch, in samples"
    )
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--dim", type=int, default=96)
    parser.add_argument("--tau", type=float, default=0.95)
    parser.add_argument(
        "--ema-decay", type=float, default=0.996, help="EMA teacher decay cap (recipe: 0.996)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample scene")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        help="run seeds (label draw and init); >1: mean and spread",
    )
    parser.add_argument("--work", type=Path, default=Path("bench/out/ssl"))
    args = parser.parse_args()

    from rsseg_cli.config import load_config
    from rsseg_cli.data.tiling import tile_scenes

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.common import run_finished
    from rsseg_cli.engine.run import run_training
    from rsseg_cli.synthetic import generate_sample

    args.work.mkdir(parents=True, exist_ok=True)
    data = args.work / f"data_{args.size}_{args.chip}"
    if not (data / "dataset.yaml").exists():
        sample = generate_sample(
            args.work / "sample", height=args.size, width=args.size, seed=args.seed, name=f"scene_{args.size}"
        )
        tile_scenes(
            [sample.scene],
            [sample.labels],
            data,
            load_config(overrides=[f"tile.chip_size={args.chip}", "tile.split.block_size=4"]),
        )
    common = [
        "model.weights=none",
        f"model.backbone_kwargs={{depth: {args.depth}, embed_dim: {args.dim}, num_heads: 3, patch_size: 8, "
        f"img_size: {args.crop}}}",
        f"train.crop={args.crop}",
        f"train.batch_size={args.batch}",
        f"train.batch_size_unlabeled={args.batch}",
        f"train.lr={args.lr}",
        "train.head_lr_mult=10",
        f"train.tau={args.tau}",
        f"train.ema_decay={args.ema_decay}",
        "train.workers=2",
        "train.log_every=50",
    ]
    # RS-MTDF's teachers, shrunk like the student: a DINOv2-layout teacher twice as wide on the student's
    # input, and an open_clip CLIP teacher at half the crop (as 224 is to 518), before its final LayerNorm.
    # Random weights carry no knowledge, so distillation cannot help here; this shows the method runs end to
    # end at the baselines' budget and what its extra terms cost.
    side = max(16, args.crop // 2 // 8 * 8)
    teachers = [
        f"train.rs_mtdf.teachers.dino.backbone_kwargs={{depth: {args.depth}, embed_dim: {2 * args.dim}, "
        f"num_heads: 3, patch_size: 8, img_size: {args.crop}}}",
        f"train.rs_mtdf.teachers.clip.backbone_kwargs={{embed_dim: 64, vision_cfg: {{image_size: {side}, "
        f"layers: {args.depth}, width: {2 * args.dim}, patch_size: 8, head_width: {2 * args.dim // 3}}}, "
        "text_cfg: {context_length: 77, vocab_size: 49408, width: 32, heads: 2, layers: 1}}",
        f"train.rs_mtdf.teachers.clip.resolution={side}",
        f"train.rs_mtdf.translator_hidden={4 * args.dim}",
    ]
    steps = [f"train.iterations={args.steps}", f"train.eval_every={max(1, args.steps // 6)}"]
    recipe = _recipe_schedule(data, args)
    # (row label, method, labels, settings): the semi-supervised runs and the equal-steps baseline train
    # --steps steps; the recipe baseline its own schedule.
    runs: list[tuple[str, str, str, list[str]]] = []
    for method in args.methods:
        if method != "supervised":
            runs.append((method, method, args.labeled, [*steps, *(teachers if method == "rs-mtdf" else [])]))
        else:
            runs.append(("supervised", method, args.labeled, recipe))
    if args.equal_steps_baseline:
        equal = ["train.supervised.batch_multiplier=1", "train.supervised.epoch_samples=1", *steps]
        runs.append(("supervised (equal steps)", "supervised", args.labeled, equal))
    if not args.no_full:
        runs.append(("supervised", "supervised", "1/1", recipe))
    results = []
    for seed, (label, method, labeled, sets) in ((s, r) for s in args.seeds for r in runs):
        # SSL runs keep their folder names (a finished run is reused); the baselines are told apart.
        kind = (
            ""
            if method != "supervised"
            else ("-equal" if "equal" in label else f"-recipe{args.epoch_samples}")
        )
        out = (
            args.work
            / "runs"
            / f"{method}-{labeled.replace('/', 'of')}{kind}-{args.steps}-ema{args.ema_decay}-tau{args.tau}"
            f"{f'-seed{seed}' if seed else ''}"
        )
        t0 = time.perf_counter()
        cfg = load_config(
            overrides=[*common, *sets, f"seed={seed}", f"train.method={method}", f"train.labeled={labeled}"]
        )
        if not run_finished(out):
            run_training(data, cfg, out=out, resume=(out / "checkpoints" / "last.pt").exists())
        records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        info = json.loads((out / "run.json").read_text())
        results.append(
            {
                "method": label,
                "seed": seed,
                "labeled": labeled,
                "labeled_chips": info["labeled_chips"],
                "steps": info.get("total_steps", args.steps),
                "best": max(r["mIoU"] for r in records),
                "final": records[-1]["mIoU"],
                "minutes": (time.perf_counter() - t0) / 60,
            }
        )
    print(
        f"\nsample {args.size} px, chips {args.chip}, crop {args.crop}, {args.steps} steps, batch {args.batch}"
        f"+{args.batch}, ViT depth {args.depth} dim {args.dim} (random init), tau {args.tau}, "
        f"seeds {' '.join(map(str, args.seeds))}"
    )
    _print_table(results, args.labeled)


def _print_table(results: list[dict], labeled: str) -> None:
    """One row per method: best mIoU (mean and spread over seeds), final mIoU, and the share of the gap
    between the supervised baseline at `labeled` and supervised with every label that each row closes."""
    import statistics

    rows: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        rows.setdefault((r["method"], r["labeled"]), []).append(r)

    def mean(key: tuple[str, str], field: str) -> float | None:
        return statistics.fmean(r[field] for r in rows[key]) if key in rows else None

    low, high = mean(("supervised", labeled), "best"), mean(("supervised", "1/1"), "best")
    print(
        f"{'method':<26}{'labeled':>8}{'chips':>6}{'steps':>6}{'best mIoU (mean ± sd)':>23}{'final':>7}"
        f"{'gap closed':>11}{'min':>6}"
    )
    for key, runs in rows.items():
        best = [100 * r["best"] for r in runs]
        sd = statistics.stdev(best) if len(best) > 1 else 0.0
        spread = f"{statistics.fmean(best):5.1f} ± {sd:3.1f} (n={len(best)})"
        closed = ""
        if low is not None and high is not None and high > low and key[1] == labeled:
            closed = f"{100 * (mean(key, 'best') - low) / (high - low):9.0f}%"
        print(
            f"{key[0]:<26}{key[1]:>8}{runs[0]['labeled_chips']:>6}{runs[0]['steps']:>6}{spread:>23}"
            f"{100 * mean(key, 'final'):6.1f}%{closed:>11}{sum(r['minutes'] for r in runs):6.1f}"
        )
    if len(next(iter(rows.values()))) > 1:
        for key, runs in rows.items():
            print(
                f"  {key[0]} {key[1]}: " + ", ".join(f"seed {r['seed']} {100 * r['best']:.1f}%" for r in runs)
            )


def _recipe_schedule(data: Path, args: argparse.Namespace) -> list[str]:
    """Settings of the supervised baseline trained as the released supervised recipes do: as many epochs as
    the semi-supervised runs make in --steps steps (passes over their unlabeled pool at --batch), each of
    max(labeled chips, --epoch-samples) samples at a doubled batch (validated every epoch: the default)."""
    from rsseg_cli.config_layers import parse_labeled
    from rsseg_cli.data.chipset import ChipDataset

    chips = ChipDataset.open(data)
    candidates = len(chips.split("train", labeled=True))
    spec = parse_labeled(args.labeled)
    # As many chips as training selects (select_labeled), so the unlabeled pool is the SSL runs' own.
    labeled = spec.count if spec.count is not None else round(spec.ratio * candidates)
    ssl_epochs = args.steps / max(1, (len(chips.split("train")) - labeled) // args.batch)
    return [
        f"train.epochs={ssl_epochs:.6g}",
        f"train.supervised.epoch_samples={args.epoch_samples}",
        "train.supervised.batch_multiplier=2",
    ]


if __name__ == "__main__":
    main()
