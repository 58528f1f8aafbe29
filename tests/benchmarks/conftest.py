"""Fixtures shared by the benchmark test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmarks.fixtures import make_fixture


@pytest.fixture(scope="session")
def mer_full(tmp_path_factory) -> Path:
    """Every image MER's lists name (1064, 32 px) prepared once per session (test_prepare and
    test_protocol_runs both read it, neither writes into it): the only benchmark small enough."""
    from tests.benchmarks.test_prepare import SIZE, _main

    root = tmp_path_factory.mktemp("mer-full")
    fixture = make_fixture("mer", root / "src", full=True, size=SIZE)
    assert len(fixture["chips"]) == 1064
    assert _main("prepare", "mer", fixture["src"], "--out", root / "data") == 0
    return root / "data"
