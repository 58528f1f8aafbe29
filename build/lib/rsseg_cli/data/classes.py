"""The class table: ids, names, colours, the label values they come from, and a vectorized value -> id map."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rsseg_cli.config import IGNORE_INDEX, ClassSpec
from rsseg_cli.errors import UserError

# Default colours belong to the class-raster contract (geo.class_raster), so that masks and tables agree.
from rsseg_cli.geo.class_raster import fill_colors


@dataclass(frozen=True)
class ClassTable:
    classes: tuple[ClassSpec, ...]

    @classmethod
    def from_specs(cls, specs: Sequence[ClassSpec]) -> ClassTable:
        """Classes in id order; a class without a colour gets the colour its name suggests (water blue, ...)
        or the next palette colour not taken (`geo.class_raster.fill_colors`); given colours are kept."""
        ordered = sorted(specs, key=lambda c: c.id)
        colors = fill_colors([(spec.name, spec.color) for spec in ordered])
        return cls(tuple(spec.model_copy(update={"color": c}) for spec, c in zip(ordered, colors)))

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

    def raster_classes(self) -> list[dict]:
        """The table a class raster of ids carries (see geo.class_raster): no `value`, the pixels are ids."""
        return [{"id": c.id, "name": c.name, "color": c.color} for c in self.classes]

    def as_dicts(self) -> list[dict]:
        return [c.model_dump(mode="json", exclude_defaults=False) for c in self.classes]


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


UNKNOWN_LABELS_FIX = (
    "Add them to the class table ('classes:' in a config file, matched by value, name or id), or list them "
    "in tile.labels.ignore_values to ignore those pixels."
)


def check_label_values(
    values: Mapping[int | str, int] | Iterable[int | str],
    table: ClassTable,
    source: str,
    *,
    ignore_values: Iterable[int | str] = (),
    table_name: str = "the class table",
    fix: str = UNKNOWN_LABELS_FIX,
) -> None:
    """Raise a UserError naming the label values found in `source` that no class of `table` takes and that
    are not ignored: the one check of label values against a class table (tile, vector labels, evaluate).

    Integer values are raster labels, matched to each class's raster value (its `value`, else its id);
    strings are vector attribute values, matched by value, name or id (`ClassTable.match_vector_value`).
    With a mapping value -> count (pixels or features) the counts are shown. `source` names where the
    values come from ("the label raster x.tif"), `table_name` the table, `fix` how to resolve it.
    """
    ignored = {str(v) for v in ignore_values}
    counts = values if isinstance(values, Mapping) else None
    raster: set[int] | None = None
    unknown: list[int | str] = []
    for v in values:
        if str(v) in ignored:
            continue
        if isinstance(v, str):
            known = table.match_vector_value(v) is not None
        else:
            if raster is None:
                try:
                    raster = set(table.raster_values())
                except ValueError as exc:
                    raise UserError(
                        f"{table_name[0].upper()}{table_name[1:]} has non-numeric label values ({exc}), "
                        f"so {source} cannot be matched to it. Give every class a numeric value for raster "
                        "labels."
                    ) from None
            known = int(v) in raster
        if not known:
            unknown.append(v)
    if not unknown:
        return
    unknown.sort(key=lambda v: (0, int(v), "") if str(v).lstrip("-").isdigit() else (1, 0, str(v)))

    def listed(v: int | str) -> str:
        if counts is None:
            return str(v)
        unit = "feature" if isinstance(v, str) else "px"
        n = counts[v]
        return f"{v} ({n} {unit}{'s' if unit == 'feature' and n != 1 else ''})"

    shown = ", ".join(listed(v) for v in unknown[:20])
    more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
    note = " (they match no class by value, name or id)" if any(isinstance(v, str) for v in unknown) else ""
    classes = ", ".join(f"{c.name} ({c.value if c.value is not None else c.id})" for c in table.classes)
    raise UserError(f"Label values {shown}{more} in {source} are not in {table_name}{note}: {classes}. {fix}")
