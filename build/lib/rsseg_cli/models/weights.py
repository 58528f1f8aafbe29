"""Where a backbone's weights come from: 'none' | 'hub' | a file | a folder, and the errors when they fail.

Weights come from the Hugging Face hub, a local file or folder (offline clusters), or random init (tests,
demo). The choice is checked here before any model is built; the adapters then load it through timm or
open_clip and turn their failures into the user errors below, which say how to pass a local copy.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from rsseg_cli.errors import UserError
from rsseg_cli.models.presets import BackbonePreset

Weights = str | os.PathLike | None
WeightsKind = Literal["none", "hub", "file", "dir"]

LOCAL_DIR = "local-dir:"
_HOW_TO_PASS_LOCAL = (
    "pass a local copy instead: --set model.weights=/path/to/weights.safetensors (a .safetensors, .pth or "
    ".bin file), or a folder with --set model.weights=local-dir:/path/to/folder"
)

# Errors that mean "the weights could not be fetched or read", as opposed to programming errors.
LOAD_ERRORS = (OSError, RuntimeError, ValueError, KeyError)


def resolve_weights(weights: Weights, preset: BackbonePreset) -> tuple[WeightsKind, Path | None]:
    """'none' | 'hub' | a file | a folder (plain or `local-dir:`), checked before any model is built."""
    if weights is None or str(weights) == "none":
        return "none", None
    if str(weights) == "hub":
        return "hub", None
    text = str(weights)
    path = Path(text.removeprefix(LOCAL_DIR)).expanduser()
    if path.is_file() and not text.startswith(LOCAL_DIR):
        return "file", path
    if path.is_dir():
        return "dir", path
    if path.is_file():
        raise UserError(f"'{text}' names a file, but local-dir: takes a folder; pass the file path alone.")
    raise UserError(
        f"Weights '{text}' for backbone {preset.name} ({preset.hub_name}) do not exist. Give an existing "
        f"file (--set model.weights=/path/to/weights.safetensors), a folder (local-dir:/path/to/folder), "
        f"'hub' to download from the Hugging Face hub, or 'none' for random initialization."
    )


def _short(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0] if first else ''}"[:300]


def hub_error(preset: BackbonePreset, where: str, exc: BaseException) -> UserError:
    """The download failed: `where` names the files to fetch by hand."""
    return UserError(
        f"Could not get the pretrained weights of backbone {preset.name} ({preset.hub_name}) from the Hugging "
        f"Face hub ({_short(exc)}). Without network access, download them elsewhere ({where}) and {_HOW_TO_PASS_LOCAL}; "
        f"or train from random initial weights with --set model.weights=none (no download; far lower accuracy)."
    )


def load_error(preset: BackbonePreset, path: Path, exc: BaseException) -> UserError:
    """A local file or folder could not be loaded into the architecture."""
    return UserError(
        f"Could not load weights {path} into backbone {preset.name} ({preset.hub_name}): {_short(exc)}. "
        f"The file must hold this architecture's weights (timm or the original release format); "
        f"{_HOW_TO_PASS_LOCAL}, or use 'hub' or 'none'."
    )
