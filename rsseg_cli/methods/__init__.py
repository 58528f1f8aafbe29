"""Training methods, one short file each. A method says what the teacher sees, what the student sees and
which losses combine; the loop, devices, precision, checkpoints and logging live in rsseg_cli.engine."""

from __future__ import annotations

from rsseg_cli.errors import UserError
from rsseg_cli.methods.base import Method
from rsseg_cli.methods.fixmatch import FixMatch
from rsseg_cli.methods.supervised import Supervised
from rsseg_cli.methods.unimatch_v2 import UniMatchV2

METHODS: dict[str, type[Method]] = {m.name: m for m in (Supervised, FixMatch, UniMatchV2)}


def build_method(name: str, **kwargs) -> Method:
    if name not in METHODS:
        raise UserError(f"Unknown method {name!r}. Choose one of: {', '.join(METHODS)}.")
    return METHODS[name](**kwargs)
