"""The band adapter: a pretrained RGB patch embedding rebuilt for inputs with any number of bands.

Each input band inherits the pretrained filter of one RGB channel (`band_map`) or the mean filter, so the new
filters derive from the pretrained ones instead of starting random.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rsseg_cli.errors import UserError


def check_band_map(in_chans: int, band_map: Sequence[int | None] | None) -> list[int | None]:
    """The RGB channel (0, 1, 2) or None of each of `in_chans` bands; None gives the default map."""
    if not isinstance(in_chans, int) or in_chans < 1:
        raise UserError(f"The model needs at least one input band, got in_chans={in_chans}.")
    if band_map is None:
        # 1-2 bands have no natural RGB counterpart: they all start from the mean filter.
        return [0, 1, 2] + [None] * (in_chans - 3) if in_chans >= 3 else [None] * in_chans
    band_map = list(band_map)
    if len(band_map) != in_chans or any(m not in (0, 1, 2, None) for m in band_map):
        raise UserError(
            f"band_map {band_map} must list, for each of the {in_chans} input bands, the pretrained RGB "
            f"channel it inherits (0 red, 1 green, 2 blue) or null for the mean filter, e.g. "
            f"--set model.band_map=[2,1,0,null] for blue, green, red, near-infrared."
        )
    return band_map


def adapt_patch_conv(conv: nn.Conv2d, band_map: Sequence[int | None]) -> nn.Conv2d:
    """A copy of an RGB patch-embedding conv that takes len(band_map) bands.

    A band mapped to R, G or B inherits that pretrained filter; an unmapped band gets the mean RGB filter.
    All filters are then scaled by 3 / bands: the embedding sums one filter response per band, so with
    similar band statistics (the normalization gives extra bands the mean RGB scale) its output keeps the
    magnitude of the 3-band original that the following pretrained layers expect.
    """
    if conv.in_channels != 3:
        raise ValueError(f"the band adapter needs a 3-channel pretrained conv, got {conv.in_channels}")
    n = len(band_map)
    w = conv.weight.detach()
    mean = w.mean(dim=1)
    filters = [w[:, m] if m is not None else mean for m in band_map]
    new = nn.Conv2d(
        n,
        conv.out_channels,
        kernel_size=conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        bias=conv.bias is not None,
        device=w.device,
        dtype=w.dtype,
    )
    with torch.no_grad():
        new.weight.copy_(torch.stack(filters, dim=1) * (3.0 / n))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)  # type: ignore[union-attr]
    new.weight.requires_grad_(conv.weight.requires_grad)
    new.train(conv.training)
    return new
