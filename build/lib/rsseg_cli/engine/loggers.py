"""Experiment loggers (train.loggers): TensorBoard and MLflow receive what the run folder holds already (every
metrics.jsonl and train_log.jsonl record, the resolved configuration, and at the end the plots), so a run can be
followed where a team follows its other experiments. Both are optional dependencies, checked before any work;
only the main process logs; a logger that fails mid-run (a full disk, a server gone) is dropped with one
warning, never the run: the run folder stays the record."""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from rsseg_cli.atomic import atomic_file
from rsseg_cli.config import Config, config_to_yaml
from rsseg_cli.errors import Interrupted, UserError

log = logging.getLogger("rsseg")

# The modules a logger needs, and how to get them (the message of a missing one).
REQUIRES = {"tensorboard": ("tensorboard", "torch.utils.tensorboard"), "mlflow": ("mlflow",)}
INSTALL = {"tensorboard": "pip install tensorboard", "mlflow": "pip install 'rsseg-cli[mlflow]'"}
# The run folders' records, and the tag prefix their values get: `metrics/mIoU`, `train_log/loss`.
SOURCES = {"metrics.jsonl": "metrics", "train_log.jsonl": "train_log"}
PLOT_FOLDERS = ("plots", "validation")  # training curves; the confusion matrix of the best validation


def check_loggers(names: Sequence[str]) -> None:
    """Import every configured logger's package now, so a missing one stops `rsseg train` at its start (before
    any download or run folder), not at the end of the first hour."""
    for name in names:
        for module in REQUIRES[name]:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise UserError(
                    f"train.loggers asks for {name}, but its package cannot be imported ({exc}). Install it "
                    f"with `{INSTALL[name]}`, or remove {name} from train.loggers (--set train.loggers=[])."
                ) from None


def tag_part(name: str) -> str:
    """A key or class name as one part of a tag MLflow accepts (letters, digits, _ - . and spaces; a name
    of dots alone would read as a path)."""
    part = re.sub(r"[^\w.\- ]", "_", str(name))
    return "_" if not part.strip(".") else part


def scalars(record: dict[str, Any], prefix: str) -> dict[str, float]:
    """The numbers of one record as {tag: value}; nested tables (per-class IoU, the students' mIoU) become
    `prefix/iou/<class>`. Steps, text and lists are not scalars."""
    out: dict[str, float] = {}
    for key, value in record.items():
        tag = f"{prefix}/{tag_part(key)}"
        if key in ("step", "from_step"):
            continue
        if isinstance(value, dict):
            out.update(scalars(value, tag))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[tag] = float(value)
    return out


def flat_config(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """The resolved configuration as {dotted key: JSON value}, one entry per setting (MLflow parameters)."""
    out: dict[str, str] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat_config(value, dotted + "."))
        else:
            out[dotted] = value if isinstance(value, str) else json.dumps(value)
    return out


class Logger(Protocol):
    name: str

    def log_scalars(self, values: dict[str, float], step: int) -> None: ...

    def finish(self, run_dir: Path, step: int, status: str) -> None: ...


class TensorBoardLogger:
    """<run>/tensorboard: the records' scalars at their step, the configuration as text, the plots as images.
    A resumed run writes into the same folder, and the events a crash left after the resumed checkpoint are
    purged (as the trainer drops those jsonl lines)."""

    name = "tensorboard"

    def __init__(self, cfg: Config, run_dir: Path, start_step: int):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(
            str(run_dir / "tensorboard"), purge_step=start_step + 1 if start_step else None
        )
        if not start_step:
            # Indented: TensorBoard renders text as Markdown, and YAML reads right only as a code block.
            text = "".join(f"    {line}\n" for line in config_to_yaml(cfg).splitlines())
            self.writer.add_text("config", text, 0)

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def finish(self, run_dir: Path, step: int, status: str) -> None:
        import numpy as np
        from PIL import Image

        for png in _plots(run_dir):
            with Image.open(png) as image:
                pixels = np.asarray(image.convert("RGB"))
            self.writer.add_image(f"{png.parent.name}/{png.stem}", pixels, step, dataformats="HWC")
        self.writer.close()


class MlflowLogger:
    """An MLflow run: the records' metrics at their step, the configuration as parameters, and at the end the
    plots, config.yaml and run.json as artifacts. Its id is kept in run.json, so a resumed run continues it."""

    name = "mlflow"

    def __init__(self, cfg: Config, run_dir: Path, start_step: int):
        from mlflow import MlflowClient

        settings = cfg.train.mlflow
        uri = settings.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or (run_dir / "mlruns").as_uri()
        if urlparse(uri).scheme in ("", "file"):  # a path or file: URI
            # MLflow 3 refuses its file store unless told; a store inside the run folder is what keeps a run
            # self-contained with mlflow-skinny (no database). A server or sqlite:/// URI is the alternative.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = client = MlflowClient(uri)
        self.uri = uri
        info_path = run_dir / "run.json"
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        self.run_id = self._resumed(info.get("mlflow", {}).get("run_id")) if start_step else None
        if self.run_id is None:
            experiment = settings.experiment or run_dir.resolve().parent.name
            found = client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else client.create_experiment(experiment)
            run = client.create_run(
                experiment_id, run_name=run_dir.name, tags={"rsseg.run_dir": str(run_dir)}
            )
            self.run_id = run.info.run_id
            info["mlflow"] = {"run_id": self.run_id, "experiment": experiment, "tracking_uri": uri}
            with atomic_file(info_path) as tmp:
                tmp.write_text(json.dumps(info, indent=2))
        # Parameters cannot change once logged: a resumed run adds only those it lacks (device, workers and
        # loggers may differ on resume; they keep their first value).
        logged = client.get_run(self.run_id).data.params
        params = [(k, v) for k, v in _params(cfg).items() if k not in logged]
        from mlflow.entities import Param

        size = _limit("MAX_PARAMS_TAGS_PER_BATCH", 100)
        for i in range(0, len(params), size):
            client.log_batch(self.run_id, params=[Param(k, v) for k, v in params[i : i + size]])

    def _resumed(self, run_id: str | None) -> str | None:
        if run_id is None:
            return None
        try:
            self.client.update_run(run_id, status="RUNNING")
        except Exception as exc:  # any store error means the same: that run is not there
            log.warning("the MLflow run %s is not in %s (%s); logging to a new run", run_id, self.uri, exc)
            return None
        return run_id

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(tag, value, stamp, step) for tag, value in values.items()]
        size = _limit("MAX_METRICS_PER_BATCH", 1000)
        for i in range(0, len(metrics), size):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + size])

    def finish(self, run_dir: Path, step: int, status: str) -> None:
        for name in ("config.yaml", "run.json"):
            if (run_dir / name).exists():
                self.client.log_artifact(self.run_id, str(run_dir / name))
        for png in _plots(run_dir):
            self.client.log_artifact(self.run_id, str(png), artifact_path=png.parent.name)
        self.client.set_terminated(self.run_id, status=status)


OPENERS = {"tensorboard": TensorBoardLogger, "mlflow": MlflowLogger}


class ExperimentLoggers:
    """The configured loggers behind one call per record. A logger that raises is dropped with one warning:
    losing a dashboard must not cost the training."""

    def __init__(self, loggers: Sequence[Logger] = ()):
        self.loggers = list(loggers)
        self.last_step = 0

    def record(self, source: str, record: dict[str, Any]) -> None:
        """One line just appended to `source` (metrics.jsonl or train_log.jsonl)."""
        step = int(record["step"])
        self.last_step = max(self.last_step, step)
        values = scalars(record, SOURCES.get(source, Path(source).stem))
        for logger in list(self.loggers):
            self._guard(logger, logger.log_scalars, values, step)

    def close(self, run_dir: Path, status: str) -> None:
        """At the end (finished, stopped or failed): the plots and files, then the loggers' own close."""
        for logger in list(self.loggers):
            self._guard(logger, logger.finish, run_dir, self.last_step, status)
        self.loggers = []

    def _guard(self, logger: Logger, call: Callable[..., None], *args: Any) -> None:
        try:
            call(*args)
        except Exception as exc:  # whatever a logger's backend raises, training goes on
            log.warning("%s logging failed (%s); training goes on without it", logger.name, exc)
            self.loggers.remove(logger)


@contextmanager
def experiment_loggers(
    cfg: Config, run_dir: Path, start_step: int, total_steps: int, main: bool = True
) -> Iterator[ExperimentLoggers]:
    """The run's loggers for one training session (a new run, or a resumed one from `start_step`). The
    MLflow run ends FINISHED when training reached `total_steps`, KILLED when stopped, FAILED on an error."""
    opened: list[Logger] = []
    for name in cfg.train.loggers if main else []:
        try:
            opened.append(OPENERS[name](cfg, run_dir, start_step))
        except Exception as exc:  # an unreachable server at the start costs the logger only
            log.warning("%s logging could not start (%s); training goes on without it", name, exc)
    loggers = ExperimentLoggers(opened)
    loggers.last_step = start_step
    try:
        yield loggers
    except BaseException as exc:
        loggers.close(run_dir, "KILLED" if isinstance(exc, (Interrupted, KeyboardInterrupt)) else "FAILED")
        raise
    loggers.close(run_dir, "FINISHED" if loggers.last_step >= total_steps else "KILLED")


def _plots(run_dir: Path) -> list[Path]:
    return sorted(p for folder in PLOT_FOLDERS for p in (run_dir / folder).glob("*.png"))


def _params(cfg: Config) -> dict[str, str]:
    """The flattened configuration within MLflow's limits: keys of at most 250 characters, values cut to the
    store's maximum (6000 in MLflow 2+, 500 before) with an ellipsis, so a long class table cannot fail it."""
    key_max = _limit("MAX_ENTITY_KEY_LENGTH", 250)
    value_max = _limit("MAX_PARAM_VAL_LENGTH", 500)
    out = {}
    for key, value in flat_config(cfg.model_dump(mode="json")).items():
        key = ".".join(tag_part(p) for p in key.split("."))[:key_max]
        out[key] = value if len(value) <= value_max else value[: value_max - 3] + "..."
    return out


def _limit(name: str, default: int) -> int:
    try:
        return int(getattr(importlib.import_module("mlflow.utils.validation"), name))
    except (ImportError, AttributeError):
        return default
