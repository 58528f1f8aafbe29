"""The mechanics under rsseg_cli.config, independent of the schema: YAML files, `--set key.sub=value`
overrides, command-line flags as config keys, merging the layers, messages for invalid values, and the
parsers of value forms that both the schema (at parse time) and the code use (labeled shares, band lists)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from rsseg_cli.errors import UserError


def parse_set(items: list[str]) -> dict[str, Any]:
    """Turn ['tile.chip_size=256', 'tile.bands=[4,3,2]'] into a nested dict; values are parsed as YAML."""
    tree: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise UserError(
                f"--set {item!r} is not of the form key.sub=value, for example --set tile.chip_size=256."
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise UserError(f"--set {item!r}: the value is not valid YAML ({exc}).") from None
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {item!r} conflicts with another --set for {part!r}.")
        node[parts[-1]] = value
    return tree


def flag_tree(flags: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """Nested config dict from {flag: (dotted.key, value)}, leaving out flags that were not given (None)."""
    tree: dict[str, Any] = {}
    for dotted, value in flags.values():
        if value is None:
            continue
        node = tree
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def check_sections(tree: dict[str, Any], root: type[BaseModel], source: str, path: str = "") -> None:
    """A section of keys (e.g. `train`) given as a single value would replace the whole section when the
    layers are merged, config files included: refuse it, naming the key."""
    for key, value in tree.items():
        field = root.model_fields.get(key)
        section = field.annotation if field is not None else None
        if not (isinstance(section, type) and issubclass(section, BaseModel)):
            continue  # not a section (or an unknown key, which validation reports)
        dotted = f"{path}{key}"
        if isinstance(value, dict):
            check_sections(value, section, source, f"{dotted}.")
            continue
        example = next(iter(section.model_fields), "key")
        raise UserError(
            f"'{dotted}' is a section of keys ({', '.join(section.model_fields)}), but {source} gives it the "
            f"single value {value!r}, which would replace the whole section. Set its keys one by one, for "
            f"example --set {dotted}.{example}=VALUE (or '{example}:' under '{key}:' in a config file)."
        )


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"Config file {path} does not exist. Pass an existing YAML file with --config.")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"Config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(
            f"Config file {path} must hold a mapping of keys (for example 'tile:'), not a list or value."
        )
    return data


def config_files(files: Path | str | Sequence[Path | str] | None) -> list[Path]:
    """`--config` values as a list of paths (one path, several, or none)."""
    if files is None:
        return []
    if isinstance(files, (str, Path)):
        return [Path(files)]
    return [Path(f) for f in files]


def read_layers(files: Path | str | Sequence[Path | str] | None) -> tuple[dict[str, Any], list[str]]:
    """Config files deep-merged in order (a later file overrides the keys it sets), and their names."""
    data: dict[str, Any] = {}
    paths = config_files(files)
    for path in paths:
        data = deep_merge(data, read_yaml(path))
    return data, [str(p) for p in paths]


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The schema model that owns the key at `loc` (to list the allowed keys in error messages)."""
    model: Any = root
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return None
        model = _find_model(fields[part].annotation)
        if model is None:
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def describe_validation_error(
    exc: ValidationError,
    source: str,
    root: type[BaseModel],
    reference: str,
    flags: dict[str, str] | None = None,
) -> str:
    """One paragraph naming each bad key (and the flag that set it, from `flags`: dotted key -> flag),
    what is allowed there, and the reference file that documents every key."""
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            owner = _model_at(root, loc)
            allowed = ", ".join(owner.model_fields) if owner else f"see {reference}"
            lines.append(f"unknown key '{key}'; allowed here: {allowed}")
        else:
            got = err.get("input")
            msg = err["msg"].removeprefix("Value error, ").rstrip(".")
            shown = not isinstance(got, dict) and got is not None and repr(got) not in msg
            got_txt = f" (got {got!r})" if shown else ""
            flag = next((f for k, f in (flags or {}).items() if key == k or key.startswith(f"{k}.")), None)
            named = f"'{key}' ({flag})" if flag else f"'{key}'"
            lines.append(f"{named}: {msg}{got_txt}")
    return f"Invalid configuration ({source}): " + "; ".join(lines) + f". See {reference} for every key."


# --------------------------------------------------------------------------------------------------
# Value forms


@dataclass(frozen=True)
class LabeledSpec:
    ratio: float | None = None
    count: int | None = None

    def __str__(self) -> str:
        return f"{self.count} chips" if self.count is not None else f"{self.ratio:.4g} of the labeled chips"


def parse_labeled(text: str | float | int) -> LabeledSpec:
    """'1/8' and '12.5%' and '0.125' are ratios of the labeled training chips; '40' is a number of chips."""
    raw = str(text).strip()
    accepts = (
        "--labeled takes a share of the labeled training chips, above 0 and at most 1 (1/8, 12.5%, 0.125), "
        "or a number of chips, at least 1 (40)"
    )
    if re.fullmatch(r"0+", raw):
        raise UserError(f"--labeled {raw!r} would train on no labeled chip; {accepts}.")
    try:
        if re.fullmatch(r"\d+", raw):
            return LabeledSpec(count=int(raw))
        ratio = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(Fraction(raw))
    except (ValueError, ZeroDivisionError):
        raise UserError(f"--labeled {raw!r} is not understood; {accepts}.") from None
    if not 0 < ratio <= 1:
        raise UserError(f"--labeled {raw!r} is a share of {ratio:g}; {accepts}.")
    return LabeledSpec(ratio=ratio)


def band_list(value: Any) -> Any:
    """'4,3,2' -> [4, 3, 2] and 'red,green,blue' -> ['red', 'green', 'blue'] (the --bands flag's form)."""
    if isinstance(value, str):
        return [int(b) if b.strip().isdigit() else b.strip() for b in value.split(",") if b.strip()]
    return value
