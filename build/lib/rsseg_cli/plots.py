"""Pictures that say more than tables: training curves of a run."""

from __future__ import annotations

import json
from pathlib import Path

from rsseg_cli.atomic import atomic_file


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def training_curves(run_dir: Path) -> Path:
    """plots/training_curves.png: losses and confident share per step, learning rate, validation mIoU."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    train = _read_jsonl(run_dir / "train_log.jsonl")
    val = _read_jsonl(run_dir / "metrics.jsonl")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    steps = [r["step"] for r in train]
    for key in ("loss", "loss_x", "loss_u"):
        if train and key in train[0]:
            axes[0].plot(steps, [r[key] for r in train], label=key)
    if train and "confident" in train[0]:
        twin = axes[0].twinx()
        twin.plot(steps, [r["confident"] for r in train], color="grey", alpha=0.5, label="confident share")
        twin.set_ylim(0, 1)
        twin.set_ylabel("confident pseudo-label share")
    axes[0].set_title("training loss")
    axes[0].set_xlabel("step")
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(loc="upper right")
    axes[1].plot(steps, [r["lr"] for r in train])
    axes[1].set_title("backbone learning rate")
    axes[1].set_xlabel("step")
    if val:
        axes[2].plot([r["step"] for r in val], [100 * r["mIoU"] for r in val], marker="o", label="mIoU")
        axes[2].plot([r["step"] for r in val], [100 * r["OA"] for r in val], marker=".", label="OA")
        axes[2].legend()
    axes[2].set_title("validation (%)")
    axes[2].set_xlabel("step")
    fig.tight_layout()
    out = run_dir / "plots" / "training_curves.png"
    with atomic_file(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out
