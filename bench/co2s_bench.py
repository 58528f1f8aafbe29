"""Co2S: training step time and memory of the two students (CLIP ViT-B/16 + DINOv3 ViT-B/16, cost-aggregation
heads), and inference throughput of each student and of their ensemble.

    python bench/co2s_bench.py                          # CPU: real ViT-B/16 sizes, crop 128, batch 2 + 2
    python bench/co2s_bench.py --depth 4 --crop 64      # smaller, for a quick look
    python bench/co2s_bench.py --device cuda --crop 512 --batch 2 --precision bf16   # the paper's crop

A step is everything `rsseg train --method co2s` does per iteration: both students on cat(labeled, weak), the
feature-perturbed weak view, both strong views and (without gradient) the weak view of the second unlabeled
batch the CutMix boxes come from, the UniMatch losses, the stability loss, backward and
AdamW over both students' groups. Weights are random (nothing is downloaded): times do not depend on them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--depth", type=int, default=0, help="shrink both students to this depth (0: real)")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2, help="labeled and unlabeled images per step")
    parser.add_argument("--classes", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    import torch

    from bench.common import median_after_first, peak_memory_mb, timed_steps
    from rsseg_cli.config import load_config
    from rsseg_cli.engine.precision import autocast
    from rsseg_cli.methods import configured_model
    from rsseg_cli.synthetic.batches import synthetic_batch

    device = torch.device(args.device)
    torch.manual_seed(0)
    overrides = ["model.weights=none", "train.method=co2s"]
    if args.depth:
        overrides += [
            f"train.co2s.clip_kwargs={{vision_cfg: {{layers: {args.depth}}}}}",
            f"train.co2s.dinov3_kwargs={{depth: {args.depth}}}",
        ]
    cfg = load_config(overrides=overrides)
    classes = [{"name": f"class {i}"} for i in range(args.classes)]
    method, model = configured_model(cfg, classes, 3, [0, 1, 2])
    model = model.to(device)
    groups = model.param_groups()
    for g in groups:
        g["lr"] = cfg.train.lr * method.lr_multiplier(g["name"], cfg.train.head_lr_mult)
    opt = torch.optim.AdamW(groups, weight_decay=cfg.train.weight_decay)
    labeled, unlabeled = synthetic_batch(args.batch, 3, args.crop, args.classes, device)
    # The second unlabeled batch the CutMix boxes come from, pseudo-labelled by both students (no gradient).
    unlabeled["mix"] = synthetic_batch(args.batch, 3, args.crop, args.classes, device, seed=2)[1]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step(i: int) -> None:
        method.begin_step(i, 100)
        with autocast(args.precision, device):
            out = method.step(model, None, labeled, unlabeled)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()

    step_s = median_after_first(timed_steps(step, args.steps, device))
    train_peak = peak_memory_mb(device)

    model.eval()
    x = labeled["image"]
    infer = {}
    for student in ("clip", "dinov3", "ensemble"):
        model.use(student)

        def forward(i: int) -> None:
            with torch.inference_mode(), autocast(args.precision, device):
                model(x)

        infer[student] = len(x) / median_after_first(timed_steps(forward, max(3, args.steps), device))

    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    backbone = sum(p.numel() for s in model.students.values() for p in s.backbone.parameters())
    backbone_trainable = sum(
        p.numel() for s in model.students.values() for p in s.backbone.parameters() if p.requires_grad
    )
    print(
        f"Co2S on {args.device} ({args.precision}): CLIP {cfg.train.co2s.clip} + DINOv3 {cfg.train.co2s.dinov3}, "
        f"depth {'real' if not args.depth else args.depth}, crop {args.crop}, batch {args.batch} + "
        f"{args.batch}, {args.classes} classes, {args.steps} steps"
    )
    print(
        f"parameters: {total / 1e6:.1f} M, trainable {trainable / 1e6:.1f} M (backbones {backbone / 1e6:.1f} M "
        f"of which attention {backbone_trainable / 1e6:.1f} M trainable)"
    )
    memory = "peak GPU memory" if device.type == "cuda" else "peak RSS"
    print(
        f"training step: {step_s:.3f} s, {2 * args.batch / step_s:.2f} images/s (labeled + unlabeled), "
        f"{memory} {train_peak:.0f} MiB"
    )
    print(
        "inference images/s at the crop: "
        + ", ".join(f"{name} {rate:.2f}" for name, rate in infer.items())
        + f" (ensemble / clip time ratio {infer['clip'] / infer['ensemble']:.2f})"
    )


if __name__ == "__main__":
    main()
