"""A dataset folder checked when it is opened, before any run or report folder exists: dataset.yaml against
its schema, the chip table's columns and values, every chip path inside the folder, and every chip file
present (one directory listing per folder, nothing decoded). A chip that cannot be decoded later (truncated
or overwritten) is reported the same way when it is read, in a DataLoader worker or not (DamagedChip).

Each failure is a UserError naming the file, what is wrong and what it should be, and suggesting to tile
the scenes again."""

from __future__ import annotations

import functools
import math
import os
import re
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rsseg_cli.data.chips import SPLITS
from rsseg_cli.errors import UserError

STAT_KEYS = ("mean", "std", "min", "max", "p2", "p98")
CHIP_COLUMNS = ("id", "scene", "split", "labeled", "image", "label")
# Read as text: ids such as LoveDA's 0154 or 1558 are names, not numbers.
TEXT_COLUMNS = ("id", "scene", "split", "image", "label")
# What each top-level key of dataset.yaml should hold, as the messages say it.
EXPECTED = {
    "chip_size": "the chip size in pixels, a positive whole number (e.g. chip_size: 512)",
    "dtype": "the pixel type of the chips, e.g. dtype: uint16",
    "bands": "a list of bands, each with a name (e.g. '- index: 1, name: red')",
    "classes": "a list of classes, each with an id (0, 1, ... in order), a name and a colour",
    "statistics": f"the band statistics {', '.join(STAT_KEYS)}: each a list of one number per band",
}


class _Schema(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class _Band(_Schema):
    name: str = Field(min_length=1)
    index: int | None = None


class _Class(_Schema):
    id: int = Field(ge=0, le=254)
    name: str = Field(min_length=1)
    color: str | None = None


class _Statistics(_Schema):
    mean: list[float] = Field(min_length=1)
    std: list[float] = Field(min_length=1)
    min: list[float] = Field(min_length=1)
    max: list[float] = Field(min_length=1)
    p2: list[float] = Field(min_length=1)
    p98: list[float] = Field(min_length=1)


class DatasetMeta(_Schema):
    """The keys of dataset.yaml that commands read (others are kept as they are)."""

    chip_size: int = Field(gt=0)
    dtype: str | None = None
    bands: list[_Band] = Field(min_length=1)
    classes: list[_Class]
    statistics: _Statistics

    @model_validator(mode="after")
    def _consistent(self) -> DatasetMeta:
        n = len(self.bands)
        for key in STAT_KEYS:
            values = getattr(self.statistics, key)
            if len(values) != n:
                raise ValueError(f"statistics.{key} holds {len(values)} numbers for {n} bands")
            if key in ("p2", "p98") and not all(math.isfinite(v) for v in values):
                raise ValueError(f"statistics.{key} holds {values}, which are not all finite numbers")
        ids = [c.id for c in self.classes]
        if ids != list(range(len(ids))):
            raise ValueError(f"the class ids are {ids}, not 0, 1, ... in order")
        return self


def retile_hint(root: Path, meta: Any = None) -> str:
    """How to rebuild the dataset: the scenes' own paths when dataset.yaml still names them (a prepared
    benchmark: prepare it again)."""
    bench = meta.get("benchmark") if isinstance(meta, dict) else None
    if isinstance(bench, dict) and bench.get("name") and bench.get("source"):
        return (
            f"Prepare it again to rebuild it: `rsseg prepare {bench['name']} {bench['source']} --out {root} "
            "--overwrite`."
        )
    scenes = meta.get("scenes") if isinstance(meta, dict) else None
    args = "SCENE.tif --labels LABELS.tif"
    if isinstance(scenes, dict) and scenes and all(isinstance(s, dict) for s in scenes.values()):
        labels = [s.get("labels") for s in scenes.values()]
        if all(labels):  # scenes with their labels, in order (else the generic form)
            args = " ".join(str(s.get("path")) for s in scenes.values())
            args += "".join(f" --labels {label}" for label in labels)
    return f"Tile the scenes again to rebuild it: `rsseg tile {args} --out {root} --overwrite`."


def _damaged(path: Path, problem: str, root: Path, meta: Any = None) -> UserError:
    return UserError(f"The dataset file {path} {problem}. {retile_hint(root, meta)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def load_meta(root: Path, path: Path) -> dict:
    """dataset.yaml, parsed and schema-checked."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _damaged(path, f"is not valid YAML ({problem}{where})", root) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _damaged(path, f"cannot be read ({exc})", root) from None
    if not isinstance(raw, dict):
        raise _damaged(path, f"should hold keys ({', '.join(EXPECTED)}) but holds {_short(raw)}", root)
    try:
        DatasetMeta.model_validate(raw)
    except ValidationError as exc:
        raise _damaged(path, _schema_problem(exc), root, raw) from None
    return raw


def _schema_problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    top = str(err["loc"][0]) if err["loc"] else ""
    should = f"; it should hold {EXPECTED[top]}" if top in EXPECTED else ""
    more = f" ({exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
    if err["type"] == "missing":
        return f"has no `{loc}` key{should}{more}"
    if not loc:  # a check across keys
        return f"is inconsistent: {err['msg'].removeprefix('Value error, ')}{more}"
    msg = re.sub(r" or instance of \w+", "", err["msg"]).lower()  # no schema class names
    return f"has `{loc}: {_short(err['input'])}`, which is wrong ({msg}){should}{more}"


def load_chips(root: Path, path: Path, meta: dict) -> pd.DataFrame:
    """chips.csv, read and checked: columns, values, paths inside the dataset folder, files present."""
    if not path.is_file():
        raise _damaged(path, "is missing (the table of chips)", root, meta)
    try:
        chips = pd.read_csv(path, keep_default_na=False, dtype={c: str for c in TEXT_COLUMNS})
    except pd.errors.EmptyDataError:
        raise _damaged(path, "is empty (it should list the chips)", root, meta) from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0][:200]
        raise _damaged(path, f"is not a readable CSV table ({reason})", root, meta) from None
    num_classes = len(meta["classes"])
    needed = [*CHIP_COLUMNS, *(f"px_{k}" for k in range(num_classes))]
    missing = [c for c in needed if c not in chips.columns]
    if missing:
        raise _damaged(
            path, f"lacks the column(s) {', '.join(missing)} (it should have {', '.join(needed)})", root, meta
        )
    if chips.empty:
        raise _damaged(path, "lists no chip", root, meta)
    problem = _bad_value(chips, num_classes)
    if problem:
        raise _damaged(path, problem, root, meta)
    _check_files(chip_root(root, meta), path, chips, meta)
    return chips


def chip_root(root: Path, meta: dict) -> Path:
    """The folder chip paths are relative to: the dataset folder, or a prepared benchmark's own folder, whose
    images are used in place (dataset.yaml `chip_root`)."""
    other = meta.get("chip_root") if isinstance(meta, dict) else None
    return Path(other) if other else Path(root)


def _bad_value(chips: pd.DataFrame, num_classes: int) -> str | None:
    def at(mask: pd.Series, column: str, should: str) -> str | None:
        if not mask.any():
            return None
        i = int(mask.to_numpy().nonzero()[0][0])
        return (
            f"has {_short(chips[column].iloc[i])} in column `{column}` on line {i + 2} (chip "
            f"{chips['id'].iloc[i]}); it should be {should}"
        )

    ids = chips["id"].astype(str)
    labeled = chips["labeled"].astype(str)
    text = {c: chips[c].astype(str) for c in ("image", "label")}
    checks = [
        (ids == "", "id", "a chip id"),
        (ids.duplicated(), "id", "a chip id not already used on an earlier line"),
        (~chips["split"].astype(str).isin(SPLITS), "split", "one of " + ", ".join(SPLITS)),
        (~labeled.isin(("True", "False")), "labeled", "True or False"),
        (
            ~text["image"].map(_inside),
            "image",
            "a path inside the dataset folder, e.g. images/<scene>/<id>.tif",
        ),
        (
            (text["label"] != "") & ~text["label"].map(_inside),
            "label",
            "empty or a path inside the dataset folder",
        ),
        ((labeled == "True") & (text["label"] == ""), "label", "the label file of this labeled chip"),
    ]
    for k in range(num_classes):
        col = f"px_{k}"
        values = pd.to_numeric(chips[col], errors="coerce")
        checks.append((~(values >= 0) | (values % 1 != 0), col, "a pixel count (a whole number, 0 or more)"))
    for mask, column, should in checks:
        problem = at(mask, column, should)
        if problem:
            return problem
    return None


def _inside(rel: str) -> bool:
    """A relative path that stays inside the dataset folder ('../x' and '/abs/x' do not)."""
    if not rel or rel.startswith(("/", "\\")) or os.path.isabs(rel) or (len(rel) > 1 and rel[1] == ":"):
        return False
    return ".." not in PurePosixPath(rel.replace("\\", "/")).parts


def _check_files(root: Path, table: Path, chips: pd.DataFrame, meta: dict) -> None:
    """Every chip file present: one listing per folder (fast for thousands of chips, nothing decoded)."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for rel in (*chips["image"].astype(str), *chips["label"].astype(str)):
        if rel:
            folder, _, name = rel.replace("\\", "/").rpartition("/")
            wanted[folder].add(name)
    missing = []
    if not root.is_dir():
        raise UserError(
            f"The chips of {table.parent} are read from {root}, which does not exist (moved or unmounted). "
            f"{retile_hint(table.parent, meta)}"
        )
    for folder, names in wanted.items():
        try:
            present = {e.name for e in os.scandir(root / folder) if not e.is_dir()}
        except (FileNotFoundError, NotADirectoryError):
            present = set()
        missing += [f"{folder}/{n}" if folder else n for n in sorted(names - present)]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise UserError(
            f"{len(missing)} chip file(s) listed in {table} are missing from {root}: {shown}. The dataset is "
            f"incomplete. {retile_hint(table.parent, meta)}"
        )


class DamagedChip(UserError):
    """A chip file that exists but cannot be read. Raised in a DataLoader worker, it reaches the main process
    rebuilt from the worker's traceback text: only the message at its end is kept, so no traceback shows."""

    def __init__(self, message: str):
        marker = f"{__name__}.DamagedChip: "
        if "Original Traceback" in message and marker in message:
            message = message.rsplit(marker, 1)[1].strip()
        super().__init__(message)


def _read_errors() -> tuple[type[BaseException], ...]:
    from rasterio._err import CPLE_BaseError
    from rasterio.errors import RasterioError

    return (RasterioError, CPLE_BaseError, OSError)


def damaged_chip(root: Path, row: Any, exc: BaseException) -> DamagedChip:
    """The error for a chip (a chips.csv row) whose image or label could not be read."""
    root = Path(root)
    files = [f for f in (getattr(row, "image", ""), getattr(row, "label", "")) if f]
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    culprit = next((f for f in files if not _readable(root / f)), files[0] if files else "?")
    try:
        meta = yaml.safe_load((root / "dataset.yaml").read_text())
    except (OSError, yaml.YAMLError):
        meta = None
    return DamagedChip(
        f"The chip file {root / culprit} cannot be read ({reason}): it is damaged, e.g. truncated by a "
        f"full disk or an interrupted copy. {retile_hint(root, meta)}"
    )


def _readable(path: Path) -> bool:
    """Whether a chip file decodes (only asked once a read failed, to name the damaged file)."""
    import rasterio

    try:
        with rasterio.open(path) as src:
            src.read()
            src.dataset_mask()
    except _read_errors():
        return False
    return True


def report_damaged_chips(cls: type) -> None:
    """Make a chip Dataset class's __getitem__ raise DamagedChip (a UserError naming the file) for a chip that
    cannot be read. The class has `root` and `rows` (chips.csv rows); keys are an index or (epoch, index)."""
    getitem = cls.__dict__.get("__getitem__")
    if getitem is None:
        return
    errors = _read_errors()

    @functools.wraps(getitem)
    def __getitem__(self, key):
        try:
            return getitem(self, key)
        except errors as exc:
            index = key[1] if isinstance(key, tuple) else int(key)
            raise damaged_chip(self.root, self.rows[index], exc) from None

    cls.__getitem__ = __getitem__
