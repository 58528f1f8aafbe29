"""train.deterministic: torch's deterministic mode is switched on and off, loader workers are seeded, and two
runs with workers give bitwise-identical weights."""

from __future__ import annotations

import random

import numpy as np
import torch

from rsseg_cli.config import load_config
from rsseg_cli.engine.determinism import configure_determinism, loader_generator, seed_worker
from tests.helpers import TINY_TRAIN


def _state() -> tuple[bool, bool, bool, bool]:
    return (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )


def _restore(state: tuple[bool, bool, bool, bool]) -> None:
    torch.use_deterministic_algorithms(state[0], warn_only=state[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = state[2], state[3]


def test_configure_determinism_toggles_torch_state(monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # restored (unset) after the test
    before = _state()
    try:
        configure_determinism(True)
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()  # a kernel without one raises
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        configure_determinism(False)
        assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic
        # CUDA lacks deterministic kernels for interpolation's backward pass and NLL loss: warn there.
        configure_determinism(True, "cuda")
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        configure_determinism(True, "cpu")
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        _restore(before)
    assert _state() == before


def test_workers_are_seeded_from_the_run_seed():
    assert (
        loader_generator(5).initial_seed()
        == loader_generator(5).initial_seed()
        != loader_generator(6).initial_seed()
    )
    draws = []
    for _ in range(2):
        torch.manual_seed(1234)  # a worker's torch seed: the loader's base seed + worker id
        seed_worker(0)
        draws.append((np.random.random(), random.random()))
    assert draws[0] == draws[1]


def test_deterministic_runs_give_bitwise_identical_weights(dataset, tmp_path):
    from rsseg_cli.engine.run import run_training

    cfg = load_config(
        overrides=[
            *TINY_TRAIN,
            "model.head_features=8",  # a narrow head: the run is about the loaders and kernels, not the model
            "model.head_channels=[8, 8, 8, 8]",
            "train.method=fixmatch",  # labeled and unlabeled loaders, strong augmentation in the workers
            "train.labeled=1/4",
            "train.deterministic=true",
            "train.workers=1",
            "train.iterations=2",
            "train.eval_every=2",
        ]
    )
    before = _state()
    try:
        runs = [run_training(dataset, cfg, out=tmp_path / name) for name in ("a", "b")]
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        _restore(before)
    a, b = (_tensors(torch.load(r / "checkpoints" / "last.pt", weights_only=False)) for r in runs)
    assert a.keys() == b.keys() and len(a) > 10  # weights, EMA teacher, optimizer state
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


def _tensors(obj, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint, by its path of keys."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list | tuple) else ()
    out: dict[str, torch.Tensor] = {}
    for k, v in items:
        out.update(_tensors(v, f"{prefix}.{k}" if prefix else str(k)))
    return out
