"""RS-MTDF: what keeping each frozen teacher once (rsseg) saves over the released design, where the teachers are
submodules of the student and so are deep-copied into the EMA model, updated by every EMA step and saved in
every checkpoint.

    python bench/mtdf_bench.py                          # CPU: real model sizes, small crops, 8 steps each
    python bench/mtdf_bench.py --device cuda --crop 518 --clip-resolution 224 --batch 8 --precision bf16

Each variant runs in its own process (so peak memory is its own), the same model sizes, inputs and number of
steps, one after the other in one invocation; the table gives both and their ratio. Measured per variant:
peak resident memory (CPU) or peak allocated GPU memory, median step time (method step + backward + AdamW +
EMA update), the EMA update alone, and the size of a last.pt-like checkpoint (student, EMA model, optimizer).
Weights are random (nothing is downloaded): sizes and times do not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_variant(args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(ROOT))
    import torch

    from bench.common import median_after_first, peak_memory_mb, sync, timed_steps
    from rsseg_cli.config import load_config
    from rsseg_cli.engine.precision import autocast
    from rsseg_cli.engine.schedule import EMATeacher
    from rsseg_cli.methods import configured_model
    from rsseg_cli.synthetic.batches import synthetic_batch

    device = torch.device(args.device)
    torch.manual_seed(0)
    overrides = [
        "model.weights=none",
        f"model.backbone={args.student}",
        "train.method=rs-mtdf",
        f"train.rs_mtdf.teachers.dino.backbone={args.dino}",
        f"train.rs_mtdf.teachers.clip.backbone={args.clip}",
        f"train.rs_mtdf.teachers.clip.resolution={args.clip_resolution}",
    ]
    if args.depth:  # shallower models of the same widths, for a quick look
        kw = f"{{depth: {args.depth}}}"
        overrides += [
            f"model.backbone_kwargs={kw}",
            f"train.rs_mtdf.teachers.dino.backbone_kwargs={kw}",
            f"train.rs_mtdf.teachers.clip.backbone_kwargs={{vision_cfg: {{layers: {args.depth}}}}}",
        ]
    cfg = load_config(overrides=overrides)
    bands, classes = 3, 7
    method, student = configured_model(cfg, [{"name": f"class{i}"} for i in range(classes)], bands, [0, 1, 2])
    method.setup(device, args.precision)
    student.to(device)
    if args.variant == "released":
        # The released design: the teachers are submodules of the student, so the EMA deep copy, its update
        # and the checkpoints carry them too (they stay out of the optimizer, being frozen).
        student.add_module("frozen_teachers", torch.nn.ModuleList(method.teachers))
    ema = EMATeacher(student, 0.996)
    opt = torch.optim.AdamW(student.param_groups(), lr=1e-5)

    labeled, unlabeled = synthetic_batch(args.batch, 3, args.crop, classes, device)
    ema_times: list[float] = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step(i: int) -> None:
        with autocast(args.precision, device):
            out = method.step(student, ema.model, labeled, unlabeled)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        sync(device)
        t0 = time.perf_counter()
        ema.update(student, i)
        sync(device)
        ema_times.append(time.perf_counter() - t0)

    steps = timed_steps(step, args.steps, device)
    peak = peak_memory_mb(device)  # before the checkpoint is written
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "last.pt"
        state = {"student": student.state_dict(), "teacher": ema.model.state_dict()}
        torch.save({**state, "optimizer": opt.state_dict()}, path)
        checkpoint_mb = path.stat().st_size / 2**20
    step_s = median_after_first(steps)
    result = {
        "variant": args.variant,
        "step_s": step_s,
        "ema_s": median_after_first(ema_times),
        "images_per_s": 2 * args.batch / step_s,
        "checkpoint_mb": checkpoint_mb,
        "ema_params_m": sum(p.numel() for p in ema.model.parameters()) / 1e6,
        "student_params_m": sum(p.numel() for n_, p in student.named_parameters() if "frozen" not in n_)
        / 1e6,
        "teacher_params_m": sum(p.numel() for t in method.teachers for p in t.parameters()) / 1e6,
        "peak_mb": peak,
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--student", default="dinov2_s")
    parser.add_argument("--dino", default="dinov2_b")
    parser.add_argument("--clip", default="clip_l14")
    parser.add_argument("--depth", type=int, default=0, help="shrink every model to this depth (0: real)")
    parser.add_argument("--crop", type=int, default=98)
    parser.add_argument("--clip-resolution", type=int, default=112)
    parser.add_argument("--batch", type=int, default=2, help="labeled and unlabeled images per step")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--variants", nargs="+", default=["rsseg", "released"])
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args)))
        return

    results = []
    for variant in args.variants:
        child = [a for a in sys.argv[1:]]
        proc = subprocess.run(
            [sys.executable, __file__, *child, "--variant", variant], capture_output=True, text=True
        )
        if proc.returncode:
            sys.exit(f"{variant} failed:\n{proc.stderr[-3000:]}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(
        f"RS-MTDF step on {args.device} ({args.precision}): student {args.student}, teachers {args.dino} + "
        f"{args.clip} at {args.clip_resolution} px, crop {args.crop}, batch {args.batch} + {args.batch}, "
        f"depth {'real' if not args.depth else args.depth}, {args.steps} steps"
    )
    memory = "peak GPU MiB" if args.device.startswith("cuda") else "peak RSS MiB"
    print(
        f"{'variant':10} {memory:>13} {'step s':>8} {'EMA s':>7} {'img/s':>7} {'ckpt MiB':>9} {'EMA params M':>13}"
    )
    for r in results:
        print(
            f"{r['variant']:10} {r['peak_mb']:13.0f} {r['step_s']:8.3f} {r['ema_s']:7.3f} "
            f"{r['images_per_s']:7.2f} {r['checkpoint_mb']:9.0f} {r['ema_params_m']:13.1f}"
        )
    if len(results) == 2:
        a, b = results
        print(
            f"ratio {b['variant']}/{a['variant']}: memory {b['peak_mb'] / a['peak_mb']:.2f}, step time "
            f"{b['step_s'] / a['step_s']:.2f}, checkpoint {b['checkpoint_mb'] / a['checkpoint_mb']:.2f} "
            f"(student {a['student_params_m']:.1f} M params, teachers {a['teacher_params_m']:.1f} M)"
        )


if __name__ == "__main__":
    main()
