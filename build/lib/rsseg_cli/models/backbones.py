"""Vision foundation-model backbones (DINOv2, DINOv3, CLIP) as multi-level feature extractors.

A `Backbone` wraps a timm or open_clip ViT and returns, for each tapped block, the LayerNorm'd patch tokens as
an NCHW map at stride `patch_size` (class and register tokens dropped), as UniMatch V2 feeds its DPT head.
`build_backbone` looks the name up in the registry (`presets`), builds the model with its weights
(`weights`) through the library's adapter (`timm_adapter`, `open_clip_adapter`), and for inputs with other
than 3 bands rebuilds the patch-embedding filters from the pretrained RGB ones (`band_adapter`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rsseg_cli.errors import UserError
from rsseg_cli.models.band_adapter import check_band_map
from rsseg_cli.models.input_stats import Restandardize, Stats, pretrained_stats
from rsseg_cli.models.open_clip_adapter import (
    adapt_open_clip_bands,
    create_open_clip_visual,
    open_clip_geometry,
    open_clip_intermediates,
)
from rsseg_cli.models.presets import BackbonePreset, Library, default_taps, get_preset
from rsseg_cli.models.timm_adapter import adapt_timm_bands, create_timm, timm_geometry, timm_intermediates
from rsseg_cli.models.weights import Weights


class Backbone(nn.Module):
    """A ViT returning one (B, embed_dim, ceil(H/p), ceil(W/p)) map per tapped block.

    Inputs of any size are zero-padded right and bottom to a multiple of the patch size. Input standardized
    with other statistics than the backbone's own is converted first (`fit_input_stats`, `Restandardize`).
    """

    def __init__(
        self,
        preset: BackbonePreset,
        model: nn.Module,
        taps: Sequence[int] | None,
        in_chans: int,
        band_map: Sequence[int | None],
        norm: bool = True,
    ) -> None:
        super().__init__()
        self.model = model
        # The final LayerNorm on every tapped block (UniMatch V2); False gives the raw block outputs
        # (RS-MTDF's CLIP teacher is distilled before CLIP's ln_post).
        self.norm = norm
        self.preset = preset.name
        self.library: Library = preset.library
        self.license = preset.license
        self.in_chans = in_chans
        self.band_map = list(band_map)
        geometry = timm_geometry if preset.library == "timm" else open_clip_geometry
        self.patch_size, self.embed_dim, self.depth = geometry(model)
        self.taps = self._resolve_taps(preset, taps)
        self._blocks = sorted(set(self.taps))  # a block tapped twice is computed once
        self.restandardize = Restandardize()  # identity unless fit_input_stats says otherwise

    def fit_input_stats(self, stats: Stats) -> None:
        """Take input standardized with `stats` (RGB mean, std): where they differ from the statistics this
        backbone was pretrained with, its input is re-standardized exactly before the patch embedding."""
        device = next(self.model.parameters()).device
        self.restandardize.fit(stats, pretrained_stats(self.preset), self.band_map, device)

    def _resolve_taps(self, preset: BackbonePreset, taps: Sequence[int] | None) -> list[int]:
        if taps is None:
            # A preset's own taps hold for its real depth; shrunk test models follow the spacing rule.
            return list(preset.taps) if self.depth == preset.depth else default_taps(self.depth)
        out = []
        for t in taps:
            if isinstance(t, bool) or not isinstance(t, int) or not -self.depth <= t < self.depth:
                raise UserError(
                    f"Tap {t!r} is not a block of backbone {preset.name}, which has {self.depth} blocks "
                    f"(0..{self.depth - 1}); e.g. --set model.taps=[{','.join(map(str, default_taps(self.depth)))}]."
                )
            out.append(t % self.depth)
        if not out:
            raise UserError(f"Backbone {preset.name} needs at least one tapped block (model.taps is empty).")
        return out

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[1] != self.in_chans:
            raise ValueError(f"backbone {self.preset} takes {self.in_chans} bands, got {x.shape[1]}")
        x = self.restandardize(x)  # before padding: the padding stays this backbone's own mean
        h, w = x.shape[-2:]
        p = self.patch_size
        if h % p or w % p:
            x = F.pad(x, (0, -w % p, 0, -h % p))
        intermediates = timm_intermediates if self.library == "timm" else open_clip_intermediates
        feats = intermediates(self.model, x, self._blocks, self.norm)
        by_block = dict(zip(self._blocks, feats))
        return [by_block[t] for t in self.taps]


def build_backbone(
    name: str,
    weights: Weights = "none",
    in_chans: int = 3,
    band_map: Sequence[int | None] | None = None,
    taps: Sequence[int] | None = None,
    norm: bool = True,
    **overrides: Any,
) -> Backbone:
    """Build a preset's backbone (a registry name, or timm:ARCH.TAG / open_clip:MODEL:TAG).

    weights: 'none' (random init), 'hub' (timm / open_clip download from the Hugging Face hub), or a local
    .safetensors / .pth / .bin file or folder (`local-dir:/path` or a plain folder path).
    band_map: for each input band, the RGB channel (0, 1, 2) whose pretrained filter it inherits, or None.
    overrides: passed to the timm / open_clip constructor (see `tiny_overrides`).
    """
    preset = get_preset(name)
    band_map = check_band_map(in_chans, band_map)
    if "in_chans" in overrides:
        raise ValueError("pass in_chans as its own argument: the band adapter needs it")
    # The model is built with 3 channels and its pretrained weights loaded first, then adapted, so the
    # new filters derive from the pretrained ones and no later init overwrites them.
    if preset.library == "timm":
        model = create_timm(preset, weights, overrides)
    else:
        model = create_open_clip_visual(preset, weights, overrides)
    if in_chans != 3 or band_map != [0, 1, 2]:
        adapt_bands = adapt_timm_bands if preset.library == "timm" else adapt_open_clip_bands
        adapt_bands(model, band_map)
    return Backbone(preset, model, taps, in_chans, band_map, norm)
