"""The `tile` section of the configuration: chips, labels and splits (and `Strict`, every section's base)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rsseg_cli.config_layers import band_list
from rsseg_cli.geo.nodata import NodataList

__all__ = ["LabelsConfig", "SplitConfig", "Strict", "TileConfig"]


class Strict(BaseModel):
    """Base for every section: unknown keys are errors, values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LabelsConfig(Strict):
    field: str | None = Field(default=None, description="vector labels: the attribute holding the class")
    all_touched: bool = Field(default=False, description="vector labels: burn every pixel a polygon touches")
    burn_order: Literal["file", "largest-first"] = Field(
        default="largest-first", description="largest-first: small polygons are drawn over large ones"
    )
    ignore_buffer: float = Field(
        default=0.0, ge=0, description="vector labels: pixels within this many pixels of an edge are ignored"
    )
    background: int | None = Field(
        default=None, description="vector labels: class id for pixels no polygon covers (default: ignore)"
    )
    ignore_values: list[int | str] = Field(
        default_factory=list, description="label values that mean 'unlabeled' and become the ignore index"
    )
    areas: list[str] = Field(
        default_factory=list,
        description="vector labels: polygon files of areas labeled completely; background (if set) applies "
        "only inside them, and outside them only the label polygons label pixels",
    )
    reproject: bool = Field(
        default=False, description="raster labels on another grid are resampled (nearest) instead of refused"
    )


class SplitConfig(Strict):
    method: Literal["labels", "blocks", "scene", "aoi"] = Field(
        default="labels",
        description=(
            "labels: labeled regions (polygons, label regions, blocks of dense labels) stratified by class, "
            "pixels within the gap of another split's labels ignored; blocks: spatial blocks of chips, chips "
            "within the gap of another split dropped; scene: whole scenes; aoi: a vector file's polygons"
        ),
    )
    fractions: dict[Literal["train", "val", "test"], float] = Field(
        default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1}
    )
    block_size: int = Field(
        default=4, ge=1, description="spatial block side, in chips (labels: regions larger than it are cut)"
    )
    gap: float = Field(
        default=0.0,
        ge=0,
        description=(
            "minimum distance in pixels between labels (labels) or chips (blocks) of different splits; "
            "0 still forbids touching"
        ),
    )
    scenes: dict[str, Literal["train", "val", "test"]] = Field(
        default_factory=dict, description="method 'scene': scene name -> split (others are assigned)"
    )
    aoi: Path | None = Field(default=None, description="method 'aoi': vector file with a 'split' attribute")
    stratify: bool = True

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: dict[str, float]) -> dict[str, float]:
        if any(f < 0 for f in v.values()) or abs(sum(v.values()) - 1.0) > 1e-6:
            raise ValueError(f"split fractions must be >= 0 and add up to 1, got {v}")
        if v.get("train", 0) <= 0:
            raise ValueError("the train fraction must be > 0")
        return v


class TileConfig(Strict):
    chip_size: int = Field(default=512, ge=16, le=8192)
    stride: int | None = Field(default=None, ge=1, description="default: chip_size - overlap")
    overlap: int = Field(default=0, ge=0)
    edge: Literal["pad", "snap", "drop"] = Field(
        default="pad",
        description="windows past the scene edge: pad (padding marked invalid), snap back inside, or drop",
    )
    bands: list[int | str] | None = Field(
        default=None, description="1-based band indices or band descriptions, in model order; default all"
    )
    nodata: NodataList = Field(default=None, description="declared nodata: one value, or one per band")
    max_nodata: float = Field(default=0.5, ge=0, le=1, description="skip chips with more invalid pixels")
    pixel_space: bool = Field(default=False, description="accept scenes without a CRS (pixel coordinates)")
    compress: Literal["zstd", "deflate", "lzw", "none"] = "zstd"
    workers: int = Field(default=2, ge=1, le=64, description="threads reading and writing chips")
    processes: int = Field(
        default=1, ge=1, le=64, description="scenes tiled at once, each in its own process"
    )
    labels: LabelsConfig = Field(default_factory=LabelsConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)

    @field_validator("bands", mode="before")
    @classmethod
    def _bands(cls, v: Any) -> Any:
        return band_list(v)

    @model_validator(mode="after")
    def _stride(self) -> TileConfig:
        if self.overlap >= self.chip_size:
            raise ValueError(f"overlap {self.overlap} must be smaller than chip_size {self.chip_size}")
        return self

    @property
    def effective_stride(self) -> int:
        return self.stride if self.stride is not None else self.chip_size - self.overlap
