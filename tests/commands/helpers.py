"""Shared checks for the command tests: user errors, and a spy in place of the library call a command makes."""

from __future__ import annotations

import importlib
from typing import Any


def assert_user_error(result, *needles: str) -> None:
    """Exit code 2, one 'Error:' paragraph on stderr, no traceback, and every needle in the message."""
    assert result.code == 2, (result.code, result.err)
    assert "Traceback" not in result.err and "Traceback" not in result.out
    assert "Error:" in result.err
    text = " ".join(result.err.split())
    for needle in needles:
        assert needle in text, f"{needle!r} not in {text!r}"


class Spy:
    """Stands in for a library function: records its arguments and returns `result`."""

    def __init__(self, result: Any = None):
        self.calls: list[tuple[tuple, dict]] = []
        self.result = result

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        return self.result

    @property
    def args(self) -> tuple:
        assert len(self.calls) == 1, self.calls
        return self.calls[0][0]

    @property
    def kwargs(self) -> dict:
        assert len(self.calls) == 1, self.calls
        return self.calls[0][1]


def spy(monkeypatch, module: str, name: str, result: Any = None) -> Spy:
    """Replace `module.name` (looked up when the command runs) with a Spy."""
    s = Spy(result)
    monkeypatch.setattr(importlib.import_module(module), name, s)
    return s
