"""Checkpoints: last.pt holds the whole training state; best.pt only what prediction needs.

Both are self-contained for prediction: model config, inference weights (never frozen teachers), class
table and palette, band list and order, normalization statistics, chip and crop size, rsseg version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rsseg_cli import __version__
from rsseg_cli.atomic import atomic_file
from rsseg_cli.errors import UserError

KIND = "rsseg-checkpoint"


def save(path: Path, payload: dict[str, Any]) -> None:
    payload = {"kind": KIND, "rsseg_version": __version__, **payload}
    with atomic_file(Path(path)) as tmp:
        torch.save(payload, tmp)


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"The checkpoint {path} does not exist. Pass --checkpoint runs/<name>/checkpoints/best.pt."
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # truncated or foreign files raise many types
        raise UserError(f"{path} is not a readable rsseg checkpoint ({type(exc).__name__}: {exc}).") from None
    if not isinstance(payload, dict) or payload.get("kind") != KIND:
        raise UserError(
            f"{path} is not an rsseg checkpoint. Pass a best.pt or last.pt written by `rsseg train`."
        )
    return payload
