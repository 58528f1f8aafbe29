"""A tiny random-init checkpoint and a scene for the suggest tests (the prediction tests' helpers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsseg_cli.engine.checkpoint import Checkpoint
from tests.predict.conftest import save_checkpoint


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """A random-init model with a sharpened last layer: confident in places, unsure in others (a plain
    random init is unsure everywhere, so its uncertainty would not vary over the scene)."""
    (tmp_path / "ckpt").mkdir()
    path = save_checkpoint(tmp_path / "ckpt" / "best.pt")
    ckpt = Checkpoint.read(path)
    ckpt.state_dict["head.scratch.output_conv.2.weight"] *= 30
    ckpt.save(path)
    return path


@pytest.fixture
def scene(make_scene):
    return make_scene(h=200, w=264)
