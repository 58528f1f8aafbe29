"""Configuration: a validated schema with defaults, YAML files and `--set key.sub=value` overrides.

Layering, lowest to highest: schema defaults < `--config FILE.yaml` < `--set` < explicit CLI flags.
Every output folder gets the resolved configuration beside it (config.yaml), so a run can be repeated.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rsseg_cli.errors import UserError

HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
IGNORE_INDEX = 255


class Strict(BaseModel):
    """Base for every section: unknown keys are errors, values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ClassSpec(Strict):
    """One row of the class table."""

    id: int = Field(ge=0, le=254, description="training index, contiguous from 0")
    name: str = Field(min_length=1)
    color: str | None = Field(default=None, description="#RRGGBB; a palette colour when omitted")
    value: int | str | None = Field(
        default=None,
        description="label raster value or vector class-field value for this class (default: the id)",
    )
    concepts: list[str] = Field(default_factory=list, description="synonyms for text-guided methods")

    @field_validator("color")
    @classmethod
    def _hex(cls, v: str | None) -> str | None:
        if v is not None and not HEX_COLOR.match(v):
            raise ValueError(f"colour {v!r} must look like #1f77b4")
        return v


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
    reproject: bool = Field(
        default=False, description="raster labels on another grid are resampled (nearest) instead of refused"
    )


class SplitConfig(Strict):
    method: Literal["blocks", "scene", "aoi"] = "blocks"
    fractions: dict[Literal["train", "val", "test"], float] = Field(
        default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1}
    )
    block_size: int = Field(default=4, ge=1, description="spatial block side, in chips")
    gap: float = Field(
        default=0.0,
        ge=0,
        description="minimum distance in pixels between chips of different splits; 0 still forbids touching",
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
    max_nodata: float = Field(default=0.5, ge=0, le=1, description="skip chips with more invalid pixels")
    pixel_space: bool = Field(default=False, description="accept scenes without a CRS (pixel coordinates)")
    compress: Literal["zstd", "deflate", "lzw", "none"] = "zstd"
    workers: int = Field(default=2, ge=1, le=64, description="threads reading and writing chips")
    labels: LabelsConfig = Field(default_factory=LabelsConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)

    @model_validator(mode="after")
    def _stride(self) -> TileConfig:
        if self.overlap >= self.chip_size:
            raise ValueError(f"overlap {self.overlap} must be smaller than chip_size {self.chip_size}")
        return self

    @property
    def effective_stride(self) -> int:
        return self.stride if self.stride is not None else self.chip_size - self.overlap


class ModelConfig(Strict):
    backbone: str = Field(
        default="dinov2_s", description="backbone preset, see `rsseg models` / models/backbones.py"
    )
    head: Literal["s", "b", "l"] | None = Field(
        default=None, description="DPT head size; default from the backbone"
    )
    weights: str = Field(
        default="hub", description="hub (download), none (random init) or a local weights file"
    )
    band_map: list[int | None] | None = Field(
        default=None,
        description="per input band, the pretrained RGB filter (0 red, 1 green, 2 blue) it inherits, or null",
    )
    taps: list[int] | None = Field(default=None, description="backbone blocks feeding the head")
    backbone_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="extra constructor arguments (tests build tiny models with these)"
    )
    head_features: int | None = Field(
        default=None, ge=8, description="DPT fusion width; default from the preset"
    )
    head_channels: list[int] | None = Field(
        default=None, min_length=4, max_length=4, description="DPT per-level widths; default from the preset"
    )


class TeacherConfig(Strict):
    """One frozen RS-MTDF teacher: a foundation model whose last-block tokens the student learns to reproduce."""

    backbone: str = Field(description="backbone preset, or any timm:ARCH.TAG / open_clip:MODEL:TAG")
    weights: str | None = Field(
        default=None, description="hub, none or a local file; null: model.weights when that is hub or none"
    )
    resolution: int | None = Field(
        default=None, ge=16, description="square input side of the teacher; null: the student's input size"
    )
    norm: bool = Field(default=True, description="final LayerNorm on the teacher's tokens")
    loss_weight: float = Field(default=1.0, ge=0, description="weight of its MSE in the distillation loss")
    fusion_weight: float = Field(default=0.1, ge=0, description="weight of its branch in the fused 4th level")
    backbone_kwargs: dict[str, Any] = Field(default_factory=dict, description="constructor overrides")


# The paper's teachers: DINOv2-B/14 on the student's input, LayerNorm'd; OpenAI CLIP ViT-L/14 at 224 px,
# before its final LayerNorm and projection.
DEFAULT_TEACHERS: dict[str, dict[str, Any]] = {
    "dino": {"backbone": "dinov2_b"},
    "clip": {"backbone": "clip_l14", "resolution": 224, "norm": False},
}


class RSMTDFConfig(Strict):
    teachers: dict[str, TeacherConfig | None] = Field(
        default_factory=lambda: {k: TeacherConfig(**v) for k, v in DEFAULT_TEACHERS.items()},
        description="name -> teacher; entries merge into the defaults (dino, clip); null disables one",
    )
    student_weight: float = Field(default=0.8, ge=0, description="weight of the student's own 4th level")
    fusion: bool = Field(default=True, description="fuse translated features into the decoder")
    translator_hidden: int = Field(default=1024, ge=1, description="hidden width of the translator MLPs")
    distill_weight: float = Field(default=1.0, ge=0, description="loss = (L_x + L_u + this x L_distill) / 3")

    @field_validator("teachers", mode="before")
    @classmethod
    def _merge_defaults(cls, v: Any) -> Any:
        """`teachers: {clip: null}` keeps the default DINO teacher and disables CLIP; a partial entry such as
        `{dino: {weights: /path}}` keeps the rest of the default DINO teacher."""
        if not isinstance(v, dict):
            return v
        merged: dict[str, Any] = {k: dict(d) for k, d in DEFAULT_TEACHERS.items()}
        for name, entry in v.items():
            if isinstance(entry, TeacherConfig):
                entry = entry.model_dump()
            if isinstance(entry, dict) and isinstance(merged.get(name), dict):
                merged[name] = {**merged[name], **entry}
            else:
                merged[name] = entry
        return merged

    @property
    def active_teachers(self) -> dict[str, TeacherConfig]:
        return {name: t for name, t in self.teachers.items() if t is not None}


class Co2SConfig(Strict):
    """Co2S's two students, their text/learned class queries and the stability loss."""

    clip: str = Field(default="clip_b16", description="CLIP student: open_clip preset or open_clip:MODEL:TAG")
    dinov3: str = Field(default="dinov3_b", description="DINOv3 student: timm preset or timm:ARCH.TAG")
    clip_weights: str | None = Field(
        default=None, description="hub, none or a local file; null: model.weights when that is hub or none"
    )
    dinov3_weights: str | None = Field(default=None, description="as clip_weights, for the DINOv3 student")
    clip_kwargs: dict[str, Any] = Field(default_factory=dict, description="CLIP constructor overrides")
    dinov3_kwargs: dict[str, Any] = Field(default_factory=dict, description="DINOv3 constructor overrides")
    head: dict[str, Any] = Field(default_factory=dict, description="cost-aggregation head overrides")
    query_lr_mult: float = Field(
        default=100.0, gt=0, description="learnable class queries learn at lr x this (paper: base lr x1)"
    )
    stability_weight: float = Field(default=0.5, ge=0, description="final weight of the stability loss")
    stability_ramp: float = Field(
        default=0.2, ge=0, le=1, description="share of the iterations its cosine ramp from 0 takes"
    )
    concepts: dict[str, list[str]] = Field(
        default_factory=dict,
        description="class name -> concepts for its text query; default: the class table's, else the name",
    )


# Where a method's paper differs from the UniMatch V2 defaults; keys a user sets explicitly win.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "rs-mtdf": {"batch_size": 8, "batch_size_unlabeled": 8},
    # Co2S: AdamW base lr 1e-4 with backbone x0.01 and head x10, i.e. backbone 1e-6 and head 1e-3 = x1000.
    "co2s": {
        "crop": 512,
        "epochs": 80,
        "lr": 1e-6,
        "head_lr_mult": 1000.0,
        "batch_size": 2,
        "batch_size_unlabeled": 2,
    },
}


class TrainConfig(Strict):
    method: Literal["supervised", "fixmatch", "unimatch-v2", "rs-mtdf", "co2s"] = "unimatch-v2"
    labeled: str = Field(
        default="1/1", description="labeled share of the training chips: 1/8, 12.5%, or a count"
    )
    crop: int = Field(default=518, ge=16, description="training crop in pixels")
    batch_size: int = Field(default=4, ge=1, description="labeled chips per step (per process)")
    batch_size_unlabeled: int = Field(default=4, ge=1, description="unlabeled chips per step (per process)")
    epochs: float = Field(
        default=60, gt=0, description="passes over the unlabeled pool (labeled for supervised)"
    )
    iterations: int | None = Field(default=None, ge=1, description="total steps; overrides epochs")
    lr: float = Field(default=5e-6, gt=0, description="backbone learning rate")
    head_lr_mult: float = Field(default=40.0, gt=0, description="head learning rate = lr x this")
    weight_decay: float = Field(default=0.01, ge=0)
    tau: float = Field(default=0.95, ge=0, le=1, description="pseudo-label confidence threshold")
    ema_decay: float = Field(default=0.996, ge=0, lt=1, description="EMA teacher decay (cap)")
    grad_clip: float | None = Field(default=None, gt=0, description="clip the gradient norm at this value")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        default="auto", description="auto: bf16 on GPUs that have it, fp32 on CPU"
    )
    device: str = Field(default="auto", description="auto, cpu, cuda, cuda:1, ...")
    workers: int = Field(default=2, ge=0, description="data loader processes per training process")
    eval_every: int | None = Field(
        default=None, ge=1, description="steps between validations; default an epoch"
    )
    log_every: int = Field(default=10, ge=1, description="steps between log lines / progress updates")
    deterministic: bool = Field(default=False, description="deterministic torch algorithms (slower)")
    rs_mtdf: RSMTDFConfig = Field(default_factory=RSMTDFConfig, description="RS-MTDF teachers and fusion")
    co2s: Co2SConfig = Field(default_factory=Co2SConfig, description="Co2S students and stability loss")

    @model_validator(mode="before")
    @classmethod
    def _method_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("method") in METHOD_DEFAULTS:
            data = {**METHOD_DEFAULTS[data["method"]], **data}
        return data

    @model_validator(mode="after")
    def _teachers(self) -> TrainConfig:
        if self.method == "rs-mtdf" and not self.rs_mtdf.active_teachers:
            raise ValueError(
                "rs-mtdf needs at least one teacher in train.rs_mtdf.teachers (without teachers it is "
                "fixmatch: use --method fixmatch)"
            )
        return self


class Config(Strict):
    seed: int = 0
    classes: list[ClassSpec] | None = Field(
        default=None, description="class table; inferred from the label values when omitted"
    )
    tile: TileConfig = Field(default_factory=TileConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    @field_validator("classes")
    @classmethod
    def _class_table(cls, v: list[ClassSpec] | None) -> list[ClassSpec] | None:
        if v is None:
            return v
        ids = sorted(c.id for c in v)
        if ids != list(range(len(v))):
            raise ValueError(f"class ids must be 0..{len(v) - 1} without gaps or repeats, got {ids}")
        names = [c.name for c in v]
        if len(set(names)) != len(names):
            raise ValueError(f"class names must be unique, got {names}")
        return sorted(v, key=lambda c: c.id)


# --------------------------------------------------------------------------------------------------
# Loading and overriding


def parse_set(items: list[str]) -> dict[str, Any]:
    """Turn ['tile.chip_size=256', 'tile.bands=[4,3,2]'] into a nested dict; values are parsed as YAML."""
    tree: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise UserError(
                f"--set {item!r} is not of the form key.sub=value, for example --set tile.chip_size=256."
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise UserError(f"--set {item!r}: the value is not valid YAML ({exc}).") from None
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {item!r} conflicts with another --set for {part!r}.")
        node[parts[-1]] = value
    return tree


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"Config file {path} does not exist. Pass an existing YAML file with --config.")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"Config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(
            f"Config file {path} must hold a mapping of keys (for example 'tile:'), not a list or value."
        )
    return data


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The schema model that owns the key at `loc` (to list the allowed keys in error messages)."""
    model: Any = Config
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return None
        annotation = fields[part].annotation
        model = _find_model(annotation)
        if model is None:
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def describe_validation_error(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            owner = _model_at(loc)
            allowed = ", ".join(owner.model_fields) if owner else "see configs/default.yaml"
            lines.append(f"unknown key '{key}'; allowed here: {allowed}")
        else:
            got = err.get("input")
            got_txt = f" (got {got!r})" if not isinstance(got, dict) and got is not None else ""
            lines.append(f"'{key}': {err['msg']}{got_txt}")
    return (
        f"Invalid configuration ({source}): " + "; ".join(lines) + ". See configs/default.yaml for every key."
    )


def load_config(
    config_file: Path | None = None,
    overrides: list[str] | None = None,
    cli: dict[str, Any] | None = None,
) -> Config:
    """Resolve defaults < file < --set < CLI flags into a validated Config."""
    data: dict[str, Any] = {}
    sources = []
    if config_file is not None:
        data = read_yaml(Path(config_file))
        sources.append(str(config_file))
    if overrides:
        data = deep_merge(data, parse_set(overrides))
        sources.append("--set")
    if cli:
        data = deep_merge(data, cli)
        sources.append("command-line flags")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise UserError(describe_validation_error(exc, ", ".join(sources) or "defaults")) from None


def config_to_yaml(config: BaseModel) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
