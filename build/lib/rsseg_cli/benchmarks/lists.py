"""The papers' published split lists, shipped verbatim in splits.zip (origin: benchmarks/README in the zip).

Each line is `IMAGE LABEL` (labeled, unlabeled, train, val, test lists) or `IMAGE` (pred lists), paths relative
to the dataset root of the released code's prepared layout. Names inside the zip: `<family>/<dataset>/...`,
e.g. `co2s/loveda/1_40/labeled.txt`, `rs-mtdf/Potsdam/5/unlabeled.txt`, `co2s/whdld/val.txt`.
"""

from __future__ import annotations

import functools
import zipfile
from pathlib import Path, PurePosixPath

ARCHIVE = Path(__file__).with_name("splits.zip")


@functools.lru_cache(maxsize=1)
def _names() -> frozenset[str]:
    with zipfile.ZipFile(ARCHIVE) as z:
        return frozenset(n for n in z.namelist() if n.endswith(".txt"))


def list_names(prefix: str = "") -> list[str]:
    """Names of the shipped lists under `prefix` (e.g. 'co2s/whdld/'), sorted."""
    return sorted(n for n in _names() if n.startswith(prefix))


def has_list(name: str) -> bool:
    return name in _names()


@functools.lru_cache(maxsize=64)
def read_list(name: str) -> tuple[tuple[str, ...], ...]:
    """The lines of one list as tuples of paths: (image, label) or (image,)."""
    with zipfile.ZipFile(ARCHIVE) as z:
        text = z.read(name).decode("utf-8")
    return tuple(tuple(line.split()) for line in text.splitlines() if line.strip())


def ratios(family: str, dataset: str) -> list[str]:
    """The labeled ratios a family publishes for a dataset ('1_40', '5', 'all', ...), i.e. the folders that
    hold a labeled.txt."""
    prefix = f"{family}/{dataset}/"
    found = {
        str(PurePosixPath(n).parent.name)
        for n in list_names(prefix)
        if n.endswith("/labeled.txt") and n.count("/") == 3
    }
    return sorted(found, key=lambda r: (not r[0].isdigit(), len(r), r))
