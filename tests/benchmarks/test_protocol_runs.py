"""Prepared benchmarks scored as their papers: validation during training and `rsseg evaluate` use the run's
protocol (evaluate.protocol) and excluded classes, evaluate takes a published split's own val/test list, and a
resumed run keeps its published split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rsseg_cli.benchmarks.lists import read_list
from tests.benchmarks.fixtures import make_fixture
from tests.benchmarks.test_prepare import TRAIN_SETS

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def _sets(*extra: str) -> list[str]:
    return [a for kv in (*TRAIN_SETS, *extra) for a in ("--set", kv)]


def _records(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_published_split_runs_score_with_the_recipes_protocol_on_the_papers_lists(
    mer_full, tmp_path, cli, no_plots
):
    run = tmp_path / "run"
    args = ["train", "--data", mer_full, "--out", run, "--method", "supervised", "--split", "co2s/1_8"]
    first = cli(*args, "--stop-after", "1", *_sets("evaluate.protocol=co2s"))
    assert first.code == 0, first.err[-2000:]
    resumed = cli("train", "--out", run, "--resume", "--data", mer_full, "--split", "co2s/1_8")
    assert resumed.code == 0, resumed.err[-2000:]
    labeled = sorted((run / "splits" / "labeled.txt").read_text().split())
    assert labeled == sorted(Path(e[0]).stem for e in read_list("co2s/mer/1_8/labeled.txt"))
    records = _records(run)
    assert records and all(r["protocol"] == "co2s" for r in records)

    report = tmp_path / "report"
    result = cli("evaluate", "--checkpoint", run / "checkpoints" / "best.pt", "--out", report, "--json")
    assert result.code == 0, result.err[-2000:]
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["protocol"]["name"] == "co2s"  # the run's, without --protocol
    assert metrics["split_lists"] == "co2s/mer/val.txt"
    assert metrics["chips"] == len(read_list("co2s/mer/val.txt"))
    # Validation chose best.pt by the very metric evaluate reports (same protocol, same list).
    best = max(records, key=lambda r: r["mIoU"])
    assert metrics["mean_iou"] == pytest.approx(best["mIoU"], abs=1e-6)

    test = cli("evaluate", "--checkpoint", run / "checkpoints" / "best.pt", "--out", tmp_path / "t",
               "--split", "test", "--protocol", "dwl")  # fmt: skip
    assert test.code == 0, test.err[-2000:]
    scored = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert scored["protocol"]["name"] == "dwl"
    assert scored["split_lists"] == "co2s/mer/val.txt"  # Co2S reports its val list as test


def test_dwl_potsdam_leaves_clutter_out_of_the_mean_in_validation_and_evaluation(tmp_path, cli):
    fixture = make_fixture("potsdam-dwl", tmp_path / "src", per_list=3, size=32)
    data = tmp_path / "data"
    assert cli("prepare", "potsdam-dwl", fixture["src"], "--out", data).code == 0
    run = tmp_path / "run"
    trained = cli("train", "--data", data, "--out", run, "--method", "supervised", "--labeled", "2",
                  *_sets("evaluate.protocol=dwl"))  # fmt: skip
    assert trained.code == 0, trained.err[-2000:]
    records = _records(run)
    assert all(r["excluded_classes"] == ["clutter"] for r in records)

    report = tmp_path / "report"
    assert cli("evaluate", "--checkpoint", run / "checkpoints" / "best.pt", "--out", report).code == 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["protocol"] == {**metrics["protocol"], "name": "dwl", "excluded_classes": ["clutter"]}
    # By hand from the confusion matrix: IoU of each class present in the truth, clutter left out.
    matrix = pd.read_csv(report / "confusion_matrix.csv", index_col=0).to_numpy(dtype=np.float64)
    names = [c["name"] for c in metrics["per_class"]]
    tp, truth, predicted = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
    kept = [i for i, n in enumerate(names) if n != "clutter" and truth[i] > 0]
    expected = float(np.mean([tp[i] / (truth[i] + predicted[i] - tp[i]) for i in kept]))
    assert metrics["mean_iou"] == pytest.approx(expected, abs=1e-9)
    best = max(records, key=lambda r: r["mIoU"])
    assert metrics["mean_iou"] == pytest.approx(best["mIoU"], abs=1e-6)


def test_split_of_an_unprepared_dataset_or_another_benchmark_is_refused(dataset, tmp_path, cli):
    from tests.commands.helpers import assert_user_error

    result = cli("train", "--data", dataset, "--out", tmp_path / "a", "--split", "co2s/1_8")
    assert_user_error(result, "not a prepared benchmark", "rsseg prepare")
    fixture = make_fixture("whdld", tmp_path / "src", per_list=1, size=16)
    data = tmp_path / "data"
    assert cli("prepare", "whdld", fixture["src"], "--out", data).code == 0
    result = cli("train", "--data", data, "--out", tmp_path / "b", "--split", "rs-mtdf/5")
    assert_user_error(result, "not a published split of WHDLD", "co2s/1_24")
    result = cli("train", "--data", data, "--out", tmp_path / "c", "--split", "co2s/1_8", "--labeled", "2")
    assert_user_error(result, "--split co2s/1_8 and --labeled")
    assert not any((tmp_path / n).exists() for n in ("a", "b", "c"))
