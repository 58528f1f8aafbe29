"""Experiment loggers: TensorBoard and MLflow hold what metrics.jsonl and train_log.jsonl hold, the configuration
and the plots; a resumed run continues them; a missing package stops `rsseg train` before its run folder; a
logger that fails mid-run costs the logger, not the run."""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

import pytest

from rsseg_cli.config import load_config
from rsseg_cli.engine.loggers import experiment_loggers, flat_config, scalars
from tests.helpers import TINY_TRAIN

RUN = [*TINY_TRAIN, "train.method=fixmatch", "train.labeled=1/4"]


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def _expected(records: list[dict], prefix: str) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value)]} as the records hold them: numbers, and the numbers of nested tables."""
    out: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        for key, value in r.items():
            if key in ("step", "from_step"):
                continue
            items = value.items() if isinstance(value, dict) else [(None, value)]
            for sub, x in items:
                if isinstance(x, (int, float)) and not isinstance(x, bool):
                    tag = f"{prefix}/{key}" + (f"/{sub}" if sub is not None else "")
                    out.setdefault(tag, []).append((r["step"], x))
    return out


@pytest.fixture
def rsseg_warnings():
    """Warnings of the "rsseg" logger (which does not propagate once the CLI has set logging up)."""
    messages: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                messages.append(record.getMessage())

    logger, handler = logging.getLogger("rsseg"), Capture()
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


def test_records_become_scalars_with_names_mlflow_accepts():
    record = {
        "step": 4,
        "from_step": 3,
        "mIoU": 0.5,
        "best_mIoU": 1,
        "validated": True,
        "protocol": "rsseg",
        "excluded_classes": ["clutter"],
        "iou": {"low vegetation": 0.25, "road/rail (paved)": 0.75, "..": None},
    }
    assert scalars(record, "metrics") == {
        "metrics/mIoU": 0.5,
        "metrics/best_mIoU": 1.0,
        "metrics/iou/low vegetation": 0.25,
        "metrics/iou/road_rail _paved_": 0.75,
    }


def test_config_flattens_to_one_parameter_per_setting():
    tree = {"seed": 0, "train": {"method": "fixmatch", "loggers": ["mlflow"], "grad_clip": None}, "x": {}}
    assert flat_config(tree) == {
        "seed": "0",
        "train.method": "fixmatch",
        "train.loggers": '["mlflow"]',
        "train.grad_clip": "null",
        "x": "{}",
    }


def test_only_the_main_process_logs(tmp_path):
    pytest.importorskip("tensorboard")
    cfg = load_config(overrides=["train.loggers=[tensorboard]"])
    with experiment_loggers(cfg, tmp_path, 0, 4, main=False) as loggers:
        loggers.record("metrics.jsonl", {"step": 2, "mIoU": 0.5})
    assert not (tmp_path / "tensorboard").exists()
    with experiment_loggers(cfg, tmp_path, 0, 4, main=True) as loggers:
        loggers.record("metrics.jsonl", {"step": 2, "mIoU": 0.5})
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_tensorboard_and_mlflow_hold_the_run_and_a_resume_continues_them(dataset, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    mlflow = pytest.importorskip("mlflow")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rsseg_cli.engine.run import run_training

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 reads its file store only when told
    cfg = load_config(overrides=[*RUN, "train.loggers=tensorboard,mlflow"])
    run = tmp_path / "experiments" / "tiny"
    run_training(dataset, cfg, out=run, stop_after=2)  # a time-limited job stopped half-way ...
    run_id = json.loads((run / "run.json").read_text())["mlflow"]["run_id"]
    client = mlflow.MlflowClient((run / "mlruns").as_uri())
    assert client.get_run(run_id).info.status == "KILLED"
    run_training(dataset, cfg, out=run, resume=True)  # ... and resumed

    metrics, train_log = _lines(run / "metrics.jsonl"), _lines(run / "train_log.jsonl")
    assert [r["step"] for r in metrics] == [2, 4] and [r["step"] for r in train_log] == [1, 2, 3, 4]
    expected = {**_expected(metrics, "metrics"), **_expected(train_log, "train_log")}
    assert "metrics/iou/" + next(iter(metrics[0]["iou"])) in expected  # per-class IoU is among them

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    assert set(tags["scalars"]) == set(expected)
    for tag, points in expected.items():
        got = [(e.step, e.value) for e in events.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in points], tag
        assert [v for _, v in got] == pytest.approx([v for _, v in points], rel=1e-6), tag
    assert {"plots/training_curves", "validation/confusion_matrix"} <= set(tags["images"])
    assert "config/text_summary" in tags["tensors"]

    # One MLflow run for both sessions, in the experiment named after the run folder's parent.
    experiment = client.get_experiment_by_name("experiments")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [run_id]
    assert runs[0].info.status == "FINISHED" and runs[0].info.run_name == "tiny"
    assert set(runs[0].data.metrics) == set(expected)
    for tag, points in expected.items():
        history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, tag))
        assert [s for s, _ in history] == [s for s, _ in points], tag
        assert [v for _, v in history] == pytest.approx([v for _, v in points]), tag
    params = runs[0].data.params
    assert params["train.method"] == "fixmatch" and params["train.crop"] == "48"
    assert (
        params["model.backbone_kwargs.depth"] == "2"
        and params["train.loggers"] == '["tensorboard", "mlflow"]'
    )
    assert json.loads(params["tile.split.fractions.train"]) == cfg.tile.split.fractions["train"]
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    artifacts |= {a.path for folder in ("plots", "validation") for a in client.list_artifacts(run_id, folder)}
    assert {
        "config.yaml",
        "run.json",
        "plots/training_curves.png",
        "validation/confusion_matrix.png",
    } <= artifacts


def test_mlflow_parameters_fit_its_length_limits(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    # A class table longer than a parameter may be: 200 classes with long concept lists.
    classes = [{"id": i, "name": f"class {i}", "concepts": ["a concept " * 4]} for i in range(200)]
    cfg = load_config(cli={"classes": classes, "train": {"loggers": ["mlflow"]}})
    assert len(json.dumps(cfg.model_dump(mode="json")["classes"])) > MAX_PARAM_VAL_LENGTH
    run = tmp_path / "runs" / "long"
    run.mkdir(parents=True)
    with experiment_loggers(cfg, run, 0, 1):
        pass
    run_id = json.loads((run / "run.json").read_text())["mlflow"]["run_id"]
    params = mlflow.MlflowClient((run / "mlruns").as_uri()).get_run(run_id).data.params
    assert params["classes"].startswith('[{"id": 0, "name": "class 0"')
    assert params["classes"].endswith("...") and len(params["classes"]) == MAX_PARAM_VAL_LENGTH


@pytest.mark.parametrize(
    ("logger", "package", "install"),
    [
        ("tensorboard", "tensorboard", "pip install tensorboard"),
        ("mlflow", "mlflow", "pip install 'rsseg-cli[mlflow]'"),
    ],
)
def test_a_missing_package_stops_before_the_run_folder(
    dataset, tmp_path, cli, monkeypatch, logger, package, install
):
    monkeypatch.setitem(sys.modules, package, None)  # as if not installed: importing it fails
    out = tmp_path / "run"
    args = ["train", "--data", dataset, "--out", out]
    for s in [*RUN, f"train.loggers=[{logger}]"]:
        args += ["--set", s]
    r = cli(*args)
    assert r.code == 2, r.err
    assert "pip install" in r.err and "Traceback" not in r.err
    assert not out.exists()

    from rsseg_cli.engine.run import run_training
    from rsseg_cli.errors import UserError

    with pytest.raises(UserError, match=re.escape(install)):
        run_training(dataset, load_config(overrides=[*RUN, f"train.loggers=[{logger}]"]), out=out)
    assert not out.exists()


def test_a_logger_failing_mid_run_warns_once_and_training_goes_on(
    dataset, tmp_path, monkeypatch, rsseg_warnings
):
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    from rsseg_cli.engine.run import run_training

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SummaryWriter, "add_scalar", disk_full)
    cfg = load_config(overrides=[*RUN, "train.loggers=[tensorboard]"])
    run = run_training(dataset, cfg, out=tmp_path / "run")
    assert [r["step"] for r in _lines(run / "metrics.jsonl")] == [2, 4]
    assert (run / "checkpoints" / "best.pt").exists()
    failures = [m for m in rsseg_warnings if "tensorboard logging failed" in m]
    assert len(failures) == 1 and "No space left on device" in failures[0]


def test_tensorboard_drops_what_a_crash_logged_after_the_resumed_checkpoint(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = load_config(overrides=["train.loggers=[tensorboard]"])
    # Logged steps 1-3, then crashed; last.pt holds step 2.
    with pytest.raises(RuntimeError), experiment_loggers(cfg, tmp_path, 0, 4) as loggers:
        for step in (1, 2, 3):
            loggers.record("train_log.jsonl", {"step": step, "loss": float(step)})
        raise RuntimeError("out of memory")
    with experiment_loggers(cfg, tmp_path, 2, 4) as loggers:  # resumed at step 2: steps 3 and 4 again
        for step in (3, 4):
            loggers.record("train_log.jsonl", {"step": step, "loss": 10.0 * step})
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("train_log/loss")] == [(1, 1), (2, 2), (3, 30), (4, 40)]
