"""Training methods, one short file each. A method says what the teacher sees, what the student sees and
which losses combine; the loop, devices, precision, checkpoints and logging live in rsseg_cli.engine."""

from __future__ import annotations

from rsseg_cli.errors import UserError
from rsseg_cli.methods.base import Method
from rsseg_cli.methods.co2s import Co2S
from rsseg_cli.methods.fixmatch import FixMatch
from rsseg_cli.methods.rs_mtdf import RSMTDF
from rsseg_cli.methods.supervised import Supervised
from rsseg_cli.methods.unimatch_v2 import UniMatchV2

METHODS: dict[str, type[Method]] = {m.name: m for m in (Supervised, FixMatch, UniMatchV2, RSMTDF, Co2S)}


def _method_class(name: str) -> type[Method]:
    if name not in METHODS:
        raise UserError(f"Unknown method {name!r}. Choose one of: {', '.join(METHODS)}.")
    return METHODS[name]


def build_method(name: str, **kwargs) -> Method:
    return _method_class(name)(**kwargs)


def method_from_config(cfg, classes, in_chans: int, band_map) -> Method:
    """The configured method for a dataset's class table, with whatever it loads (teachers) loaded."""
    return _method_class(cfg.train.method).from_config(cfg, classes, in_chans, band_map)
