"""Settings and helpers shared by test modules: tiny random-init models, and a torchrun launcher."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TINY_MODEL = [
    "model.weights=none",
    "model.backbone_kwargs={depth: 2, embed_dim: 48, num_heads: 3, patch_size: 8, img_size: 64}",
]
# A narrower DPT head (the "s" preset is 64 features, [48, 96, 192, 384] channels, and dominates a tiny
# model's forward pass): for tests that check plumbing (splits, protocols, resumes), not what a model learns.
TINY_HEAD = ["model.head_features=8", "model.head_channels=[8, 8, 8, 8]"]
TINY_TRAIN = [
    *TINY_MODEL,
    "train.crop=48",
    "train.batch_size=2",
    "train.batch_size_unlabeled=2",
    "train.workers=0",
    "train.lr=2e-4",
    "train.head_lr_mult=10",
    "train.iterations=4",
    "train.eval_every=2",
    "train.log_every=1",
]


def torchrun(nproc: int, args: list[str], cwd: Path) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(nproc),
        "--master_port",
        str(29500 + os.getpid() % 1000),
        "-m",
        "rsseg_cli",
        *args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
