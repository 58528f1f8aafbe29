"""The `suggest` section of the configuration: how `rsseg suggest` scores and picks windows to label."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rsseg_cli.config_tile import Strict

__all__ = ["SuggestConfig"]


class SuggestConfig(Strict):
    """`rsseg suggest SCENE ...`: uncertain and diverse chip-sized windows to label next."""

    budget: int = Field(default=20, ge=1, description="windows to suggest (over all scenes)")
    size: int | None = Field(
        default=None, ge=16, description="window side in px; default the --exclude dataset's chip size, else the checkpoint's"
    )  # fmt: skip
    stride: int | None = Field(
        default=None, ge=1, description="step between candidate windows; default the dataset's stride, else the size"
    )  # fmt: skip
    strategy: Literal["entropy", "margin", "disagreement", "hybrid", "random"] = Field(
        default="hybrid", description="what ranks windows: entropy, margin, disagreement, hybrid (entropy + disagreement) or random"
    )  # fmt: skip
    selection: Literal["clusters", "spread"] = Field(
        default="clusters",
        description="clusters: one typical, uncertain window per group of windows the labels do not cover yet "
        "(few labels); spread: the most uncertain windows, spread out in feature space and space",
    )
    uncertainty_weight: float = Field(
        default=1.0,
        ge=0,
        description="clusters: exponent of the uncertainty against typicality within a group",
    )
    min_valid: float = Field(default=0.5, ge=0, le=1, description="least share of valid pixels in a window")
    pool: int = Field(
        default=10, ge=1, description="the selection scans the budget x this many most uncertain windows"
    )
    diversity: float = Field(
        default=1.0, ge=0, description="weight of the spread (feature space and space); 0: plain top-N"
    )
    max_feature_windows: int = Field(
        default=20000, ge=1, description="windows whose features are computed (the most uncertain ones)"
    )
    max_labeled_windows: int = Field(
        default=2000, ge=1, description="labeled windows whose features are computed (a random sample beyond)"
    )
    feature_weight: float = Field(
        default=0.7, ge=0, le=1, description="share of feature distance (vs spatial) in the spread"
    )
