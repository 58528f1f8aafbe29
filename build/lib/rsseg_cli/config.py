"""Configuration: a validated schema with defaults, YAML files and `--set key.sub=value` overrides.

Layering, lowest to highest: schema defaults < `--config FILE.yaml` < `--set` < explicit CLI flags.
Every output folder gets the resolved configuration beside it (config.yaml), so a run can be repeated.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from rsseg_cli.config_layers import (
    band_list,
    check_sections,
    deep_merge,
    describe_validation_error,
    flag_tree,
    parse_labeled,
    parse_set,
    read_layers,
)
from rsseg_cli.config_rescale import RescaleConfig

# The tile section lives in config_tile; its classes are re-exported here, where the other sections are.
from rsseg_cli.config_suggest import SuggestConfig
from rsseg_cli.config_tile import LabelsConfig, SplitConfig, Strict, TileConfig  # noqa: F401
from rsseg_cli.errors import UserError
from rsseg_cli.geo.grid import DEFAULT_WINDOW
from rsseg_cli.geo.nodata import NodataList

HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
IGNORE_INDEX = 255
PRECISION = Literal["auto", "fp32", "bf16", "fp16"]


def _device(name: str) -> str:
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", name):
        raise ValueError(f"{name!r} is not a device; use auto, cpu, cuda or cuda:N (mps on a Mac)")
    return name


DEVICE = Annotated[str, AfterValidator(_device)]


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


class InputStatsConfig(Strict):
    """Explicit input statistics, red, green and blue in [0, 1] units."""

    mean: list[float] = Field(min_length=3, max_length=3)
    std: list[Annotated[float, Field(gt=0)]] = Field(min_length=3, max_length=3)


class ModelConfig(Strict):
    backbone: str = Field(default="dinov2_s", description="backbone preset, see models/presets.py")
    head: Literal["s", "b", "l", "g"] | None = Field(
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
    input_stats: Literal["auto", "imagenet"] | InputStatsConfig = Field(
        default="auto",
        description="input mean/std: auto (the backbone's pretrained ones), imagenet (the papers') or "
        "{mean: [r, g, b], std: [r, g, b]}",
    )
    input_scaling: Literal["percentile", "fixed"] = Field(
        default="percentile",
        description="raw values to [0, 1]: the dataset's 2-98 % per band, or fixed (0..the dtype's maximum)",
    )
    input_range: list[float] | None = Field(
        default=None,
        min_length=2,
        max_length=2,
        description="fixed scaling's [low, high]; float data needs it",
    )

    @model_validator(mode="after")
    def _input_range(self) -> ModelConfig:
        if self.input_range is not None:
            if self.input_scaling != "fixed":
                raise ValueError("model.input_range applies to model.input_scaling=fixed only")
            if not self.input_range[1] > self.input_range[0]:
                raise ValueError(f"model.input_range {self.input_range} must be [low, high] with high > low")
        return self


DEFAULT_METHOD = "unimatch-v2"
LOGGER = Literal["tensorboard", "mlflow"]


class MlflowConfig(Strict):
    """Where train.loggers' mlflow logs."""

    tracking_uri: str | None = Field(
        default=None, description="default: $MLFLOW_TRACKING_URI, else a file store in <run>/mlruns"
    )
    experiment: str | None = Field(default=None, description="default: the name of the run folder's parent")


class TrainConfig(Strict):
    """The training settings every method shares. Each method adds its own section (train.<section>, e.g.
    train.rs_mtdf) and the defaults where its paper differs; `schema()` assembles them from the registry."""

    method: str = Field(default=DEFAULT_METHOD, description="a method of rsseg_cli.methods.METHODS")
    labeled: str = Field(
        default="1/1", description="labeled share of the training chips: 1/8, 12.5%, or a count"
    )
    crop: int = Field(default=518, ge=16, description="training crop in pixels")
    rescale: RescaleConfig = Field(
        default_factory=RescaleConfig, description="rescale before the crop, and the validation size"
    )
    batch_size: int = Field(
        default=4,
        ge=1,
        description="labeled chips per step (per process; supervised: x its batch_multiplier)",
    )
    batch_size_unlabeled: int = Field(default=4, ge=1, description="unlabeled chips per step (per process)")
    epochs: float = Field(
        default=60,
        gt=0,
        description="passes over the unlabeled pool (supervised: of max(labeled chips, its epoch_samples))",
    )
    iterations: int | None = Field(default=None, ge=1, description="total steps; overrides epochs")
    lr: float = Field(default=5e-6, gt=0, description="backbone learning rate")
    head_lr_mult: float = Field(default=40.0, gt=0, description="head learning rate = lr x this")
    weight_decay: float = Field(default=0.01, ge=0)
    tau: float = Field(default=0.95, ge=0, le=1, description="pseudo-label confidence threshold")
    ema_decay: float = Field(default=0.996, ge=0, lt=1, description="EMA teacher decay (cap)")
    grad_clip: float | None = Field(default=None, gt=0, description="clip the gradient norm at this value")
    precision: PRECISION = Field(default="auto", description="auto: bf16 on GPUs that have it, fp32 on CPU")
    device: DEVICE = Field(default="auto", description="auto, cpu, cuda, cuda:1, ...")
    workers: int = Field(default=2, ge=0, description="data loader processes per training process")
    eval_every: int | None = Field(
        default=None,
        ge=1,
        description="steps between validations; default an epoch (at most 20 validations per run)",
    )
    log_every: int = Field(default=10, ge=1, description="steps between log lines / progress updates")
    validation: bool = Field(
        default=True,
        description="validate on the val split; false (--no-val): nothing is validated, best.pt is the last model",
    )
    deterministic: bool = Field(default=False, description="deterministic torch algorithms (slower)")
    loggers: list[LOGGER] = Field(
        default_factory=list, description="experiment loggers besides metrics.jsonl: tensorboard, mlflow"
    )
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig, description="the mlflow logger's settings")

    @field_validator("loggers", mode="before")
    @classmethod
    def _loggers(cls, v: Any) -> Any:
        if isinstance(v, str):  # --set train.loggers=tensorboard,mlflow
            v = [name.strip() for name in v.split(",") if name.strip()]
        return list(dict.fromkeys(v)) if isinstance(v, list) else v

    @field_validator("labeled", mode="before")
    @classmethod
    def _labeled(cls, v: Any) -> Any:
        """The same parser training uses, so a bad value stops every path (resume, --split-file) at once."""
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = str(v)  # --set train.labeled=0.125 arrives as a YAML number
        if isinstance(v, str):
            try:
                parse_labeled(v)
            except UserError as exc:
                raise ValueError(str(exc).replace(f"--labeled {v.strip()!r}", repr(v.strip()))) from None
        return v

    @field_validator("method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        known = _methods()
        if v not in known:
            raise ValueError(f"unknown method {v!r}; choose one of {', '.join(known)}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _method_defaults(cls, data: Any) -> Any:
        """The chosen method's defaults (where its paper differs); keys the user sets win."""
        if isinstance(data, dict) and data.get("method", DEFAULT_METHOD) in _methods():
            data = {**_method_class(data.get("method", DEFAULT_METHOD)).defaults, **data}
        return data

    @model_validator(mode="after")
    def _method_options(self) -> TrainConfig:
        options = getattr(self, _method_class(self.method).section(), None)
        if options is not None:
            _method_class(self.method).check_options(options)
        return self


class PolygonConfig(Strict):
    """Polygons from a class mask: `rsseg vectorize`, and `rsseg predict --vector`."""

    sieve: int = Field(default=8, ge=0, description="merge regions of fewer pixels into their neighbour")
    min_area: float = Field(default=0.0, ge=0, description="drop polygons smaller than this, in m²")
    simplify: float = Field(default=0.0, ge=0, description="simplification tolerance in metres (0: off)")
    fill_holes: float = Field(default=0.0, ge=0, description="fill holes smaller than this, in m²")
    classes: list[int | str] | None = Field(
        default=None, description="only these classes, by name or id ('water,building'); default all"
    )

    @field_validator("classes", mode="before")
    @classmethod
    def _classes(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [c.strip() for c in v.split(",") if c.strip()]
        if v == []:
            raise ValueError("name at least one class, by name or id ('water,building' or '1,4')")
        return v

    def vectorize_kwargs(self) -> dict[str, Any]:
        """These settings as rsseg_cli.vectorize.vectorize_mask's keyword arguments."""
        kwargs = self.model_dump()
        kwargs["min_area_m2"], kwargs["fill_holes_m2"] = kwargs.pop("min_area"), kwargs.pop("fill_holes")
        return kwargs


class VectorizeConfig(PolygonConfig):
    """`rsseg vectorize MASK`."""

    window: int = Field(
        default=DEFAULT_WINDOW, ge=16, description="window side in pixels; memory depends on it"
    )


class PredictConfig(Strict):
    """`rsseg predict SCENE ...`: sliding windows over whole scenes."""

    overlap_fraction: float = Field(
        default=0.25, ge=0, lt=1, description="share of a window its neighbours overlap, 0 to <1"
    )
    batch_size: int = Field(default=8, ge=1, description="windows per forward pass")
    tta: Literal["none", "flip", "d4"] = Field(
        default="none", description="test-time augmentation: none, flip (4 views) or d4 (8 views)"
    )
    window: int | None = Field(default=None, ge=1, description="window side; default the training crop")
    bands: list[int | str] | None = Field(default=None, description="band selection; default as in training")
    nodata: NodataList = Field(default=None, description="declared nodata: one value, or one per band")
    quicklook_bands: list[int | str] | None = Field(
        default=None, description="quick-look red, green, blue: scene bands (1-based or names); default RGB"
    )
    compress: Literal["deflate", "zstd", "lzw"] = Field(default="deflate", description="COG compression")
    pixel_space: bool = Field(default=False, description="accept scenes without a CRS (pixel coordinates)")
    device: DEVICE = Field(default="auto", description="auto, cpu, cuda, cuda:N")
    precision: PRECISION = Field(default="auto", description="auto: bf16/fp16 autocast on a GPU, fp32 on CPU")
    student: str | None = Field(default=None, description="Co2S: clip, dinov3 or ensemble; default the best")
    band_width: int = Field(
        default=4096, ge=64, description="column band width in px: memory ~ band width x window x classes"
    )
    split_megapixels: float = Field(
        default=256.0,
        gt=0,
        description="under torchrun, a scene above this size is split into column bands across the processes",
    )
    vector: PolygonConfig = Field(default_factory=PolygonConfig, description="polygons with --vector")

    @field_validator("bands", "quicklook_bands", mode="before")
    @classmethod
    def _bands(cls, v: Any) -> Any:
        return band_list(v)


class EvaluateConfig(Strict):
    """`rsseg evaluate`: a checkpoint on dataset chips, or (--pred) a predicted mask against labels."""

    split: Literal["val", "test"] = Field(default="val", description="chips: the split to evaluate")
    device: DEVICE = Field(default="auto", description="chips: auto, cpu, cuda, cuda:N")
    precision: PRECISION = Field(default="auto", description="chips: auto, fp32, bf16 or fp16")
    student: str | None = Field(default=None, description="chips, Co2S: the prediction reported in full")
    protocol: Literal["rsseg", "co2s", "unimatch", "dwl", "rs-mtdf"] | None = Field(
        default=None,
        description="chips: windows and scoring as a paper's release (also validation during training); "
        "default: the run's, else rsseg",
    )
    exclude_classes: list[str] | None = Field(
        default=None,
        description="chips: classes left out of the means; default: the run's, else a prepared benchmark's "
        "for its protocol (Potsdam DWL: clutter)",
    )
    label_field: str | None = Field(default=None, description="scene: the vector labels' class field")
    all_touched: bool = Field(default=False, description="scene: vector labels burn every touched pixel")
    reproject_labels: bool = Field(default=False, description="scene: resample labels on another grid")


class Config(Strict):
    seed: int = 0
    classes: list[ClassSpec] | None = Field(
        default=None, description="class table; inferred from the label values when omitted"
    )
    tile: TileConfig = Field(default_factory=TileConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    predict: PredictConfig = Field(default_factory=PredictConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    vectorize: VectorizeConfig = Field(default_factory=VectorizeConfig)
    suggest: SuggestConfig = Field(default_factory=SuggestConfig)

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


def _methods() -> dict[str, str]:
    # Plug-in discovery: the method registry is read by name, so that this core schema imports no method
    # (methods import the schema's base classes).
    return importlib.import_module("rsseg_cli.methods").METHODS


def _method_class(name: str) -> Any:
    return importlib.import_module("rsseg_cli.methods").schema_class(name)  # works without torch


@functools.cache
def schema() -> type[Config]:
    """The full configuration schema: the core sections plus each registered method's own section as
    train.<section> (always present, with its defaults, so config.yaml records every setting)."""
    sections: dict[str, Any] = {}
    for name in _methods():
        method = _method_class(name)
        if method.options is not None:
            doc = (method.options.__doc__ or name).strip().splitlines()[0]
            sections[method.section()] = (
                method.options,
                Field(default_factory=method.options, description=doc),
            )
    train = create_model("TrainConfig", __base__=TrainConfig, **sections)
    return create_model(
        "Config",
        __base__=Config,
        train=(train, Field(default_factory=train)),  # type: ignore[call-overload]
    )


def reference_config(name: str = "default.yaml") -> Path:
    """A configuration file shipped with rsseg (rsseg_cli/configs/), where this installation holds it."""
    return Path(str(resources.files("rsseg_cli").joinpath("configs", name)))


def parse_config(data: dict[str, Any], source: str, flags: dict[str, str] | None = None) -> Config:
    """A validated Config from a nested dict (a YAML file's content), with a clear message naming `source`
    (and, through `flags` {dotted key: flag}, the command-line flag that set a bad value)."""
    try:
        return schema().model_validate(data)
    except ValidationError as exc:
        message = describe_validation_error(exc, source, schema(), str(reference_config()), flags)
        raise UserError(message) from None


def load_config(
    config_file: Path | Sequence[Path] | None = None,
    overrides: list[str] | None = None,
    cli: dict[str, Any] | None = None,
    flags: dict[str, tuple[str, Any]] | None = None,
) -> Config:
    """Resolve defaults < files (in order) < --set < command-line flags into a validated Config. Flags come
    either as a nested dict (`cli`) or as {"--flag": ("dotted.key", value or None when not given)}
    (`flags`), which lets a message about a bad value name the flag."""
    data, sources = read_layers(config_file)
    check_sections(data, schema(), f"the config file {' / '.join(sources)}")
    if overrides:
        set_tree = parse_set(overrides)
        check_sections(set_tree, schema(), "--set")
        data = deep_merge(data, set_tree)
        sources.append("--set")
    given = {flag: kv for flag, kv in (flags or {}).items() if kv[1] is not None}
    cli = deep_merge(cli or {}, flag_tree(given))
    if cli:
        data = deep_merge(data, cli)
        sources.append("command-line flags")
    names = {key: flag for flag, (key, _) in given.items()}
    return parse_config(data, ", ".join(sources) or "defaults", names)


def config_to_yaml(config: BaseModel) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
