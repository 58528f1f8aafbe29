"""What training costs on a CPU with the real backbones (the README's worked example quotes it).

    python bench/cpu_cost_bench.py                                  # dinov2_s, crops 126 and 224, 2 threads
    python bench/cpu_cost_bench.py --backbones dinov2_s dinov2_b --crops 126 --methods supervised unimatch-v2

Real-size backbones with random weights (the same arithmetic as the pretrained ones; nothing is downloaded),
fp32, batch 4 labeled + 4 unlabeled as the default recipe, median of the steps after the first. Prints seconds
per step and the projected time for the default schedule: 60 epochs over the unlabeled pool of `--unlabeled`
chips, or for the supervised baseline its recipe (batch 2 x 4, epochs of 3000 samples). Run it on an idle machine: a busy second process
makes torch several times slower on 2 cores.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbones", nargs="+", default=["dinov2_s"])
    parser.add_argument("--crops", nargs="+", type=int, default=[126, 224])
    parser.add_argument("--methods", nargs="+", default=["supervised", "unimatch-v2"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--unlabeled", type=int, default=200, help="unlabeled train chips (sets the schedule)"
    )
    parser.add_argument("--classes", type=int, default=6)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    import torch

    from bench.common import median_after_first, timed_steps
    from rsseg_cli.config import load_config
    from rsseg_cli.methods import configured_model
    from rsseg_cli.synthetic.batches import synthetic_batch

    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    steps_per_epoch = math.ceil(args.unlabeled / args.batch)
    schedule = 60 * steps_per_epoch
    print(
        f"CPU, {args.threads} threads, fp32, batch {args.batch} + {args.batch}; schedule: 60 epochs x "
        f"{steps_per_epoch} steps = {schedule} steps ({args.unlabeled} unlabeled chips)"
    )
    print(f"{'backbone':<10} {'method':<12} {'crop':>5} {'s/step':>7} {'img/s':>6} {'schedule':>10}")
    for backbone in args.backbones:
        for method_name in args.methods:
            cfg = load_config(overrides=["model.weights=none", f"model.backbone={backbone}",
                                         f"train.method={method_name}"])  # fmt: skip
            classes = [{"name": f"class {i}"} for i in range(args.classes)]
            torch.manual_seed(0)
            method, model = configured_model(cfg, classes, 4, [0, 1, 2, None])
            groups = model.param_groups()
            for g in groups:
                g["lr"] = cfg.train.lr * method.lr_multiplier(g["name"], cfg.train.head_lr_mult)
            opt = torch.optim.AdamW(groups, weight_decay=cfg.train.weight_decay)
            method.setup(device, "fp32")
            # The labeled batch and epoch each method's recipe draws (the supervised baseline's: 2x batch,
            # epochs of 3000 samples); the unlabeled pool sets the epoch of the semi-supervised ones.
            batch, epoch_samples = method.labeled_stream(cfg.train)
            if method.uses_unlabeled:
                steps = schedule
            else:
                steps = 60 * math.ceil(max(args.unlabeled, epoch_samples or 0) / batch)
            for crop in args.crops:
                labeled, _ = synthetic_batch(batch, 4, crop, args.classes, device)
                _, unlabeled = synthetic_batch(args.batch, 4, crop, args.classes, device)
                teacher = None
                if method.uses_ema:
                    import copy

                    teacher = copy.deepcopy(model).eval()

                step = _step_fn(method, model, teacher, opt, labeled, unlabeled, steps)
                s = median_after_first(timed_steps(step, args.steps, device))
                images = batch + (args.batch if method.uses_unlabeled else 0)
                hours = s * steps / 3600
                print(
                    f"{backbone:<10} {method_name:<12} {crop:>5} {s:>7.2f} {images / s:>6.2f} {hours:>8.1f} h"
                )


def _step_fn(method, model, teacher, opt, labeled, unlabeled, schedule):
    """One optimizer step of `method` on fixed batches (a closure per configuration)."""

    def step(i: int) -> None:
        method.begin_step(i, schedule)
        out = method.step(model, teacher, labeled, unlabeled if method.uses_unlabeled else None)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()

    return step


if __name__ == "__main__":
    main()
