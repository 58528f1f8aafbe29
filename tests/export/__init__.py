"""Tiny random-init checkpoints of each method, saved as `rsseg train` saves them, for the ONNX tests."""

from __future__ import annotations

from pathlib import Path

import torch

from rsseg_cli.config import load_config
from rsseg_cli.data.normalize import Normalization, default_band_map
from rsseg_cli.engine.checkpoint import Checkpoint
from tests.methods.test_co2s import TINY_CO2S
from tests.methods.test_rs_mtdf import TINY_TEACHERS
from tests.predict.conftest import CLASSES, TINY_MODEL

CROP = 32
OVERRIDES = {
    "supervised": TINY_MODEL,
    "rs-mtdf": [*TINY_MODEL, *TINY_TEACHERS],
    "co2s": ["model.weights=none", *TINY_CO2S],
}


def save_method_checkpoint(
    path: Path, method: str, *, bands: int = 3, dtype: str = "uint16", variant: str | None = None
) -> Path:
    """best.pt of a tiny `method` model (random init, percentile stretch over 0..1000)."""
    from rsseg_cli.methods import configured_model

    torch.manual_seed(0)
    names = [f"band_{i}" for i in range(1, bands + 1)]
    band_map = default_band_map(names)
    _, model = configured_model(load_config(overrides=OVERRIDES[method]), CLASSES, bands, band_map)
    norm = Normalization.from_dataset({"p2": [0.0] * bands, "p98": [1000.0] * bands}, band_map)
    Checkpoint(
        model=model.spec.model_dump(mode="json"),
        state_dict=model.state_dict(),
        method=method,
        classes=CLASSES,
        bands=[{"index": i, "name": n} for i, n in enumerate(names, start=1)],
        dtype=dtype,
        normalization=norm.to_dict(),
        chip_size=CROP,
        crop=CROP,
        step=1,
        best={"mIoU": 0.0, "step": 1},
        variant=variant,
    ).save(path)
    return path
