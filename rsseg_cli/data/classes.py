"""The class table: ids, names, colours, the label values they come from, and a vectorized value -> id map."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rsseg_cli.config import IGNORE_INDEX, ClassSpec

# Tag written into every class raster rsseg produces, so a later `tile` can recover names and colours.
CLASS_TAG = "RSSEG_CLASSES"

# A qualitative palette (tab10 followed by tab20's light tones) for classes without a colour.
PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
    "#dbdb8d", "#9edae5",
]  # fmt: skip


@dataclass(frozen=True)
class ClassTable:
    classes: tuple[ClassSpec, ...]

    @classmethod
    def from_specs(cls, specs: Sequence[ClassSpec]) -> ClassTable:
        filled = []
        for spec in sorted(specs, key=lambda c: c.id):
            color = spec.color or PALETTE[spec.id % len(PALETTE)]
            filled.append(spec.model_copy(update={"color": color}))
        return cls(tuple(filled))

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    def raster_values(self) -> list[int]:
        """The label raster value of each class (its `value`, or its id)."""
        out = []
        for c in self.classes:
            v = c.id if c.value is None else c.value
            if isinstance(v, str):
                if not v.lstrip("-").isdigit():
                    raise ValueError(f"class {c.name!r} has the non-numeric value {v!r} for a raster label")
                v = int(v)
            out.append(int(v))
        return out

    def lookup(self, ignore_values: Sequence[int | str] = ()) -> ValueMap:
        return ValueMap.build(self.raster_values(), [c.id for c in self.classes], ignore_values)

    def match_vector_value(self, value: object) -> int | None:
        """Class id for a vector attribute value: matched to `value`, then the name, then the id."""
        text = str(value)
        for c in self.classes:
            if c.value is not None and str(c.value) == text:
                return c.id
        for c in self.classes:
            if c.name == text:
                return c.id
        for c in self.classes:
            if c.value is None and str(c.id) == text:
                return c.id
        return None

    def colormap(self) -> dict[int, tuple[int, int, int, int]]:
        cmap = {c.id: (*hex_to_rgb(c.color or "#000000"), 255) for c in self.classes}
        cmap[IGNORE_INDEX] = (0, 0, 0, 0)
        return cmap

    def to_tag(self) -> str:
        return json.dumps([{"id": c.id, "name": c.name, "color": c.color} for c in self.classes])

    def as_dicts(self) -> list[dict]:
        return [c.model_dump(mode="json", exclude_defaults=False) for c in self.classes]


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def rgb_to_hex(rgb: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb[:3])


@dataclass(frozen=True)
class ValueMap:
    """Maps label raster values to class ids with one searchsorted; unknown and ignore values -> 255."""

    values: np.ndarray  # sorted
    ids: np.ndarray  # class id (or 255) for each value

    @classmethod
    def build(cls, values: Sequence[int], ids: Sequence[int], ignore_values: Sequence[int | str]) -> ValueMap:
        pairs = dict(zip((int(v) for v in values), (int(i) for i in ids)))
        for v in ignore_values:
            pairs[int(v)] = IGNORE_INDEX
        keys = np.array(sorted(pairs), dtype=np.int64)
        return cls(keys, np.array([pairs[k] for k in keys], dtype=np.uint8))

    def __call__(self, labels: np.ndarray) -> np.ndarray:
        flat = labels.astype(np.int64, copy=False)
        idx = np.clip(np.searchsorted(self.values, flat), 0, len(self.values) - 1)
        hit = self.values[idx] == flat
        return np.where(hit, self.ids[idx], IGNORE_INDEX).astype(np.uint8)
