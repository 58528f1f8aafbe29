"""Models: foundation-model backbones (timm / open_clip), the DPT head and the segmenter that joins them.

torchvision must be imported through `rsseg_cli.compat` before timm or open_clip (on CPU-only machines its
compiled ops fail to load); doing it here means every `rsseg_cli.models.*` module can import them safely.
The backbone code is split by job: `presets` (the registry), `weights` (where weights come from),
`band_adapter`, one adapter per library (`timm_adapter`, `open_clip_adapter`) and `backbones` (the module).
"""

from __future__ import annotations

from rsseg_cli.compat import import_torchvision

import_torchvision()

from rsseg_cli.models.backbones import Backbone, build_backbone  # noqa: E402
from rsseg_cli.models.dpt import DPT_PRESETS, DPTHead, build_dpt  # noqa: E402
from rsseg_cli.models.open_clip_adapter import create_open_clip  # noqa: E402
from rsseg_cli.models.presets import (  # noqa: E402
    BACKBONES,
    BackbonePreset,
    default_taps,
    imagenet_stats,
    tiny_overrides,
)
from rsseg_cli.models.segmenter import Segmenter, build_segmenter  # noqa: E402

__all__ = [
    "BACKBONES",
    "DPT_PRESETS",
    "Backbone",
    "BackbonePreset",
    "DPTHead",
    "Segmenter",
    "build_backbone",
    "build_dpt",
    "build_segmenter",
    "create_open_clip",
    "default_taps",
    "imagenet_stats",
    "tiny_overrides",
]
