"""Checkpoints for prediction tests: a tiny random-init segmenter saved exactly as `rsseg train` saves one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rsseg_cli.config import load_config
from rsseg_cli.data.normalize import Normalization, default_band_map
from rsseg_cli.engine.checkpoint import Checkpoint

TINY_MODEL = [
    "model.weights=none",
    "model.backbone_kwargs={depth: 1, embed_dim: 24, num_heads: 2, patch_size: 8, img_size: 32}",
    "model.head_features=8",
    "model.head_channels=[8, 8, 8, 8]",
]
CLASSES = [
    {"id": 0, "name": "water", "color": "#1f77b4", "value": None},
    {"id": 1, "name": "forest", "color": "#2ca02c", "value": None},
    {"id": 2, "name": "building", "color": "#d62728", "value": None},
]


def save_checkpoint(
    path: Path,
    *,
    bands: int = 3,
    dtype: str = "uint16",
    crop: int = 32,
    band_indexes: list[int] | None = None,
    low: float = 0.0,
    high: float = 1000.0,
    seed: int = 0,
) -> Path:
    from rsseg_cli.methods import configured_model

    torch.manual_seed(seed)
    names = [f"band_{i}" for i in (band_indexes or range(1, bands + 1))]
    band_map = default_band_map(names)
    cfg = load_config(overrides=TINY_MODEL)
    _, model = configured_model(cfg, CLASSES, bands, band_map)
    norm = Normalization.from_dataset({"p2": [low] * bands, "p98": [high] * bands}, band_map)
    Checkpoint(
        model=model.spec.model_dump(mode="json"),
        state_dict=model.state_dict(),
        method="supervised",
        classes=CLASSES,
        bands=[{"index": i, "name": n} for i, n in zip(band_indexes or range(1, bands + 1), names)],
        dtype=dtype,
        normalization=norm.to_dict(),
        chip_size=crop,
        crop=crop,
        step=1,
        best={"mIoU": 0.0, "step": 1},
    ).save(path)
    return path


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    return save_checkpoint(tmp_path / "best.pt")
