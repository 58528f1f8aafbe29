"""Training methods, one file each, registered here by name. A method says what the teacher sees, what the
student sees and which losses combine, owns its configuration section (train.<section>) and extends the model
spec; the loop, devices, precision, checkpoints and logging live in rsseg_cli.engine.

Adding a method: one file in this package with a `Method` subclass, and one line below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, ClassVar

from rsseg_cli.compat import is_missing_torch
from rsseg_cli.errors import UserError

if TYPE_CHECKING:  # importing this package stays light (no torch): the CLI lists METHODS in its help
    from rsseg_cli.methods.base import Method

# name -> "module:class"; a method's module is imported when it is first asked for.
METHODS: dict[str, str] = {
    "supervised": "rsseg_cli.methods.supervised:Supervised",
    "fixmatch": "rsseg_cli.methods.fixmatch:FixMatch",
    "unimatch-v2": "rsseg_cli.methods.unimatch_v2:UniMatchV2",
    "rs-mtdf": "rsseg_cli.methods.rs_mtdf:RSMTDF",
    "co2s": "rsseg_cli.methods.co2s:Co2S",
}


def method_class(name: str) -> type[Method]:
    if name not in METHODS:
        raise UserError(f"Unknown method {name!r}. Choose one of: {', '.join(METHODS)}.")
    module, _, cls = METHODS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def schema_class(name: str) -> Any:
    """What the configuration schema reads of a method (options, defaults, section, check_options): the
    method's class, or, where torch is not installed (`rsseg predict` with an .onnx model, which reads no
    train.* setting), a stand-in whose section accepts any keys, so that a config file made for training
    still loads there."""
    try:
        return method_class(name)
    except ImportError as exc:
        if not is_missing_torch(exc):
            raise
        return _unloadable(name)


def _unloadable(name: str) -> type:
    from pydantic import BaseModel, ConfigDict

    class AnySection(BaseModel):
        """settings of a method that needs torch (not installed here): kept, not checked"""

        model_config = ConfigDict(extra="allow")

    class Unloadable:
        options = AnySection
        defaults: ClassVar[dict[str, Any]] = {}

        @classmethod
        def section(cls) -> str:
            return name.replace("-", "_")  # as Method.section

        @classmethod
        def check_options(cls, options: Any) -> None:
            return None

    return Unloadable


def method_from_config(cfg, classes, in_chans: int, band_map) -> Method:
    """The configured method for a dataset's class table, with whatever it loads (teachers) loaded."""
    return method_class(cfg.train.method).from_config(cfg, classes, in_chans, band_map)


def configured_model(cfg, classes, in_chans: int, band_map, *, pretrained: bool = True):
    """(method, model) as a run's configuration describes them: the method's spec of the configured model,
    built with the pretrained weights (pretrained False: the bare architecture, e.g. before a resume)."""
    from rsseg_cli.models.spec import ModelSpec, build

    method = method_from_config(cfg, classes, in_chans, band_map)
    spec = method.model_spec(ModelSpec.from_config(cfg.model, len(classes), in_chans, list(band_map)))
    return method, build(spec, method.model_weights(cfg.model.weights) if pretrained else None)
