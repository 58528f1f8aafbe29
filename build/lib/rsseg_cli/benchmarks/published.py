"""`rsseg train --split co2s/1_8`: a paper's published labeled/unlabeled lists and its val (and test) list,
as chip ids of a prepared benchmark. A list that names images the dataset lacks is refused, never shortened:
a run on part of a list is not the paper's protocol."""

from __future__ import annotations

from dataclasses import dataclass

from rsseg_cli.benchmarks import lists
from rsseg_cli.benchmarks.layouts import chip_id
from rsseg_cli.errors import UserError


@dataclass(frozen=True)
class PublishedSplit:
    name: str  # e.g. co2s/1_8
    source: str  # the lists' folder, e.g. co2s/loveda/1_8
    labeled: list[str]
    unlabeled: list[str]
    val: list[str]
    test: list[str]
    test_is_val: bool


def normalize(name: str) -> tuple[str, str]:
    """'co2s/1_8', 'co2s/1/8' -> ('co2s', '1_8'); 'rs-mtdf/5%' -> ('rs-mtdf', '5')."""
    family, _, ratio = name.strip().strip("/").partition("/")
    return family.lower(), ratio.replace("/", "_").rstrip("%")


def published_split(meta: dict, known: set[str], name: str, data_dir: object = "DATA") -> PublishedSplit:
    bench = meta.get("benchmark") if isinstance(meta, dict) else None
    if not isinstance(bench, dict) or not bench.get("lists"):
        raise UserError(
            f"--split {name} names a published split list, but {data_dir} is not a prepared benchmark. "
            "Prepare the benchmark with `rsseg prepare NAME SRC` first, or draw a split with --labeled."
        )
    folder = bench["lists"]
    family, ratio = normalize(name)
    offered = bench.get("splits") or []
    if f"{family}/{ratio}" not in offered or family != folder.split("/")[0]:
        raise UserError(
            f"--split {name} is not a published split of {bench.get('title', folder)}. Choose one of: "
            f"{', '.join(offered)}."
        )
    has_test = lists.has_list(f"{folder}/test.txt")
    files = {
        "labeled": f"{folder}/{ratio}/labeled.txt",
        "unlabeled": f"{folder}/{ratio}/unlabeled.txt",
        "val": f"{folder}/val.txt",
        "test": f"{folder}/test.txt" if has_test else f"{folder}/val.txt",  # Co2S: val doubles as test
    }
    ids = {role: _ids(f) if lists.has_list(f) else [] for role, f in files.items()}
    for role, chosen in ids.items():
        absent = [i for i in chosen if i not in known]
        if absent:
            raise UserError(
                f"The published list {files[role]} names {len(absent)} image(s) that {data_dir} lacks (e.g. "
                f"{', '.join(absent[:3])}). The dataset is partial: prepare it from the complete "
                f"{bench.get('title', folder)} folder (rsseg prepare {bench.get('name')} SRC --overwrite), or "
                "draw a split of what is there with --labeled."
            )
    return PublishedSplit(
        f"{family}/{ratio}",
        f"{folder}/{ratio}",
        ids["labeled"],
        ids["unlabeled"],
        ids["val"],
        ids["test"],
        test_is_val=not has_test,
    )


def _ids(name: str) -> list[str]:
    return [chip_id(entry[0]) for entry in lists.read_list(name)]
