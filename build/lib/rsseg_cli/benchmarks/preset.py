"""A benchmark preset: the layouts its folder may have, its class table and label convention, the published
lists that belong to it and the protocol its paper evaluates with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from rsseg_cli.benchmarks.layouts import Layout
from rsseg_cli.errors import UserError

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    layouts: tuple[Layout, ...]  # the first whose folders exist is used
    lists: str  # the published lists' folder in splits.zip, e.g. co2s/whdld
    recipe: str  # the dataset recipe under configs/ that names the classes and colours (in id order)
    conversion: Literal["reduce-zero-label", "identity"]
    protocol: str  # the evaluation protocol of the paper whose lists these are
    ignore_values: tuple[int, ...] = (255,)  # label values ignored besides reduce-zero-label's 0
    exclude_classes: tuple[str, ...] = ()  # classes trained but left out of the protocol's mean
    test_is_val: bool = False  # the paper reports its val split as test (Co2S)
    notes: tuple[str, ...] = field(default=())

    @property
    def family(self) -> str:
        return self.lists.split("/", 1)[0]

    def layout_of(self, src: Path) -> Layout:
        for layout in self.layouts:
            if layout.matches(src):
                layout.check(src, self.title)
                return layout
        self.layouts[0].check(src, self.title)  # names what is missing
        raise AssertionError("unreachable")

    def classes(self) -> list[dict]:
        """[{id, name, color, value}] with the label value the files hold for each class."""
        recipe = yaml.safe_load((CONFIGS / self.recipe).read_text())
        shift = 1 if self.conversion == "reduce-zero-label" else 0
        return [
            {
                "id": i,
                "name": c["name"],
                "color": c["color"],
                "value": i + shift,
                "concepts": c.get("concepts", []),
            }
            for i, c in enumerate(recipe["classes"])
        ]

    def ignored_values(self) -> list[int]:
        values = set(self.ignore_values)
        if self.conversion == "reduce-zero-label":
            values.add(0)
        return sorted(values)


def unknown_preset(name: str, known: list[str]) -> UserError:
    return UserError(f"Unknown benchmark {name!r}. rsseg prepare knows: {', '.join(known)}.")
