from pathlib import Path

import pytest
import yaml

from rsseg_cli.config import load_config, parse_set, reference_config, schema
from rsseg_cli.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def test_defaults_validate():
    cfg = load_config()
    assert cfg.tile.chip_size == 512
    assert cfg.tile.effective_stride == 512
    assert cfg.tile.split.fractions == {"train": 0.8, "val": 0.1, "test": 0.1}


def test_layering_file_then_set_then_flags(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("tile:\n  chip_size: 256\n  overlap: 32\nseed: 3\n")
    cfg = load_config(f, ["tile.overlap=64", "tile.bands=[4, 3, 2]"], {"seed": 9})
    assert cfg.tile.chip_size == 256
    assert cfg.tile.overlap == 64
    assert cfg.tile.effective_stride == 192
    assert cfg.tile.bands == [4, 3, 2]
    assert cfg.seed == 9


def test_parse_set_values_are_yaml():
    assert parse_set(["a.b=1", "a.c=true", "d=[x, y]", "e=0.5"]) == {
        "a": {"b": 1, "c": True},
        "d": ["x", "y"],
        "e": 0.5,
    }


def test_unknown_key_names_key_and_allowed():
    with pytest.raises(UserError) as err:
        load_config(overrides=["tile.chip_sise=3"])
    msg = str(err.value)
    assert "tile.chip_sise" in msg
    assert "chip_size" in msg and "stride" in msg  # what is allowed there


def test_unknown_nested_key(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("tile:\n  split:\n    methd: blocks\n")
    with pytest.raises(UserError) as err:
        load_config(f)
    assert "tile.split.methd" in str(err.value)
    assert "block_size" in str(err.value)


def test_wrong_type_names_key():
    with pytest.raises(UserError) as err:
        load_config(overrides=["tile.chip_size=big"])
    assert "tile.chip_size" in str(err.value)
    assert "integer" in str(err.value)


def test_wrong_literal_lists_choices():
    with pytest.raises(UserError) as err:
        load_config(overrides=["tile.edge=wrap"])
    assert "tile.edge" in str(err.value) and "'pad'" in str(err.value)


def test_bad_set_syntax():
    with pytest.raises(UserError, match=r"key\.sub=value"):
        load_config(overrides=["tile.chip_size"])


def test_class_table_validation():
    with pytest.raises(UserError, match="class ids"):
        load_config(overrides=["classes=[{id: 0, name: a}, {id: 2, name: b}]"])
    with pytest.raises(UserError, match="colour"):
        load_config(overrides=["classes=[{id: 0, name: a, color: red}]"])


def test_fractions_must_add_up():
    with pytest.raises(UserError, match="add up to 1"):
        load_config(overrides=["tile.split.fractions={train: 0.5, val: 0.1}"])


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tile: [1, 2")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(bad)


CONFIGS = REPO / "rsseg_cli" / "configs"


def test_configs_folder_is_a_link_to_the_packaged_configs():
    assert (REPO / "configs").is_symlink() and (REPO / "configs").resolve() == CONFIGS.resolve()
    assert reference_config() == CONFIGS / "default.yaml"
    assert reference_config("demo.yaml").is_file()


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_shipped_configs_validate(path):
    """Every YAML under configs/ (recipes in subfolders included) loads as a --config file."""
    load_config(path)


def test_every_shipped_config_is_found():
    found = {str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml")}
    assert {"default.yaml", "demo.yaml", "co2s/loveda.yaml", "rs-mtdf/potsdam.yaml"} <= found


def test_default_yaml_documents_every_default():
    """configs/default.yaml is the reference: it must equal the schema defaults, every section included."""
    shipped = yaml.safe_load((CONFIGS / "default.yaml").read_text())
    assert load_config(CONFIGS / "default.yaml").model_dump() == schema()().model_dump()
    assert set(shipped) == set(schema().model_fields)
    for section in ("predict", "evaluate", "vectorize"):
        assert set(shipped[section]) == set(schema().model_fields[section].annotation.model_fields)
