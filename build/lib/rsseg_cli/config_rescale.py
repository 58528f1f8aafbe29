"""The `train.rescale` section: how a training chip is rescaled before its random crop, and the size at which
validation chips are predicted. Two rules:

- ratio (default, UniMatch): the chip scaled by r ~ U(ratio_range) of its own size.
- short_side (Co2S's released mmseg pipeline, `Resize(img_scale=(max_long, short_side), ratio_range,
  keep_ratio=True)`): factor = min(int(max_long x r) / long side, int(short_side x r) / short side), so a
  256 px chip is trained at about 512 x U(0.5, 2) px, whatever its own size.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rsseg_cli.config_tile import Strict

__all__ = ["RescaleConfig"]


class RescaleConfig(Strict):
    """Rescale before the training crop (labeled and unlabeled chips alike), and the validation size."""

    mode: Literal["ratio", "short_side"] = Field(
        default="ratio",
        description="ratio: scale each chip by r ~ U(ratio_range) of its own size; short_side: scale it so its "
        "short side is short_side x r, the long side capped at max_long x r (mmseg Resize, Co2S recipes)",
    )
    ratio_range: tuple[float, float] = Field(
        default=(0.5, 2.0), description="[low, high] of the random ratio r, drawn once per chip (both modes)"
    )
    short_side: int = Field(default=512, ge=1, description="short_side mode: target short side at r = 1")
    max_long: int = Field(
        default=2048,
        ge=1,
        description="short_side mode and val_short_side: cap on the long side (x r in training)",
    )
    val_short_side: int | None = Field(
        default=None,
        ge=1,
        description="null: validate chips at their own size; N: resize each validation chip (bilinear) to "
        "short side N (long side capped at max_long), predict, resize the logits back to the label's size",
    )

    @model_validator(mode="after")
    def _consistent(self) -> RescaleConfig:
        low, high = self.ratio_range
        if not 0 < low <= high:
            raise ValueError(
                f"train.rescale.ratio_range must be [low, high] with 0 < low <= high, got [{low}, {high}]"
            )
        if self.max_long < self.short_side:
            raise ValueError(
                f"train.rescale.max_long ({self.max_long}) must be at least train.rescale.short_side "
                f"({self.short_side})"
            )
        if self.val_short_side is not None and self.max_long < self.val_short_side:
            raise ValueError(
                f"train.rescale.max_long ({self.max_long}) must be at least train.rescale.val_short_side "
                f"({self.val_short_side})"
            )
        return self
