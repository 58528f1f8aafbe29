"""The dataset recipes run end to end on prepared benchmarks (shrunk models): prepare, train, evaluate with the
paper's protocol, as docs/reproduce.md says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.benchmarks.fixtures import make_fixture
from tests.methods.test_co2s import TINY_CO2S
from tests.methods.test_recipes_train import SHRINK
from tests.methods.test_rs_mtdf import TINY_TEACHERS

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


@pytest.mark.parametrize(
    ("name", "recipe", "tiny", "protocol"),
    [
        ("whdld", "co2s/whdld.yaml", TINY_CO2S, "co2s"),
        ("potsdam-dwl", "rs-mtdf/potsdam.yaml", TINY_TEACHERS, "dwl"),
    ],
)
def test_recipe_prepares_trains_and_evaluates(tmp_path, cli, name, recipe, tiny, protocol):
    fixture = make_fixture(name, tmp_path / "src", per_list=3, size=32)
    data = tmp_path / "data"
    assert cli("prepare", name, fixture["src"], "--out", data).code == 0
    sets = [a for kv in (*SHRINK, *tiny, "train.labeled=2") for a in ("--set", kv)]
    run = tmp_path / "run"
    trained = cli("train", "--data", data, "--config", CONFIGS / recipe, "--out", run, *sets)
    assert trained.code == 0, trained.err[-3000:]
    report = tmp_path / "report"
    result = cli(
        "evaluate", "--checkpoint", run / "checkpoints" / "best.pt", "--split", "test", "--out", report
    )
    assert result.code == 0, result.err[-3000:]
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["protocol"]["name"] == protocol
    # Co2S reports its val list as test; DWL has a test list of its own.
    expected = "val" if protocol == "co2s" else "test"
    assert metrics["chips"] == sum(c["split"] == expected for c in fixture["chips"].values())
    if name == "potsdam-dwl":
        assert metrics["protocol"]["excluded_classes"] == ["clutter"]
