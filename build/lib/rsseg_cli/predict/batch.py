"""A folder of predictions that survives reruns and bad scenes: the run manifest, skip decisions, and how a
failed scene is told apart from a failed batch.

`<out>/predict_manifest.jsonl` gets one JSON line per scene and attempt (done, skipped, failed,
interrupted). Each line is one write to a file opened for appending, then fsync, so a run killed at any
moment leaves whole lines (a torn last line is ignored when read). A rerun skips a scene whose outputs all
exist, are complete (the manifest's last line for the mask says done with these outputs and this
checkpoint, or the mask carries rsseg's class metadata and its sidecar) and are newer than the input; a
remote input has no modification time, so its outputs count as newer. Everything else is (re)done, with the
reason logged. A single-file --out has no manifest: an existing output there is refused without --overwrite,
as before (inputs._refuse_existing).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import rasterio

from rsseg_cli import __version__
from rsseg_cli.errors import UserError
from rsseg_cli.geo.class_raster import CLASS_TAG, class_sidecar_path
from rsseg_cli.geo.sources import SceneSource

log = logging.getLogger("rsseg")

MANIFEST_NAME = "predict_manifest.jsonl"
# Faults of the output disk: every later scene would fail the same way, so they end the batch.
BATCH_FAULTS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def as_source(scene: SceneSource | Path | str) -> SceneSource:
    """The scene of a job as a SceneSource (inputs.py hands out Paths until it builds SceneSources)."""
    return scene if isinstance(scene, SceneSource) else SceneSource.from_path(scene)


def scene_label(scene: SceneSource | Path | str) -> str:
    """How the summary and the logs name a scene: a local file's name, else what the user gave."""
    source = as_source(scene)
    return source.local.name if source.local is not None else source.given


class Manifest:
    """The run manifest of one output folder."""

    def __init__(self, path: Path, checkpoint: Path | str, stamp: dict | None = None):
        self.path = Path(path)
        self.checkpoint = str(checkpoint)
        self.stamp = stamp or {}  # added to every line (under torchrun: the rank that wrote it)
        self._last: dict[str, dict] = {}
        for record in self.records():
            self._remember(record)

    def records(self) -> list[dict]:
        """Every whole line of the manifest, oldest first (a torn or foreign line is skipped)."""
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # the torn last line of a killed run
            if isinstance(record, dict):
                records.append(record)
        return records

    def _remember(self, record: dict) -> None:
        # Only done lines describe the files on disk: a later failed or interrupted attempt left them as
        # they were (outputs are renamed into place only when complete).
        outputs = record.get("outputs") or []
        if record.get("status") == "done" and outputs:
            self._last[_key(outputs[0])] = record  # the mask names the scene's row of outputs

    def last_for(self, mask: Path) -> dict | None:
        """The last done line of the scene whose mask is `mask`."""
        return self._last.get(_key(mask))

    def append(
        self, job: Any, status: str, seconds: float = 0.0, error: str | None = None, **extra: Any
    ) -> dict:
        """Record one attempt: a single write of one line, flushed to disk before returning."""
        source = as_source(job.scene)
        record = {
            "scene": source.given,
            "uri": source.uri,
            "outputs": [str(p) for p in job.outputs],
            "status": status,
            "seconds": round(seconds, 3),
            "error": error,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "rsseg": __version__,
            "checkpoint": self.checkpoint,
            **self.stamp,
            **extra,
        }
        line = json.dumps(record, ensure_ascii=False) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        self._remember(record)
        return record


def _key(path: Path | str) -> str:
    return str(Path(path).resolve())


@dataclass(frozen=True)
class Decision:
    skip: bool
    reason: str  # why the scene is skipped, or why existing outputs are redone ("" for a new scene)


def decide(job: Any, manifest: Manifest, overwrite: bool) -> Decision:
    """Skip the scene, or (re)do it and say why when outputs were there."""
    existing = [p for p in job.outputs if Path(p).exists()]
    if not existing:
        return Decision(False, "")
    if overwrite:
        return Decision(False, "--overwrite")
    # The mask's class-name sidecar is renamed into place with it: one of the scene's files too.
    missing = [str(p) for p in (*job.outputs, class_sidecar_path(job.mask)) if not Path(p).exists()]
    if missing:
        return Decision(False, f"its outputs are incomplete ({', '.join(missing)} missing)")
    record = manifest.last_for(job.mask)
    if record is not None and record.get("status") == "done":
        if not {_key(p) for p in job.outputs} <= {_key(p) for p in record.get("outputs", [])}:
            complete = _has_class_metadata(job.mask)
        elif record.get("checkpoint") != manifest.checkpoint:
            return Decision(False, f"it was predicted with another checkpoint ({record.get('checkpoint')})")
        else:
            complete = True
    else:
        complete = _has_class_metadata(job.mask)
    if not complete:
        return Decision(False, f"{job.mask} is not a complete rsseg mask")
    changed = as_source(job.scene).mtime()
    if changed is not None:
        older = [str(p) for p in job.outputs if Path(p).stat().st_mtime < changed]
        if older:
            return Decision(False, f"the scene changed after {', '.join(older)} was written")
    return Decision(True, "complete and newer than the scene")


def _has_class_metadata(mask: Path) -> bool:
    """A mask rsseg finished: it opens, carries the class table tag, and its class-name sidecar is there."""
    if not class_sidecar_path(mask).exists():
        return False
    try:
        with rasterio.open(mask) as src:
            return CLASS_TAG in src.tags()
    except (rasterio.errors.RasterioError, OSError):
        return False


def error_text(exc: BaseException) -> str:
    """A UserError's paragraph, else the exception's first line with its type (for the manifest)."""
    if isinstance(exc, UserError):
        return " ".join(str(exc).split())
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def is_bad_input(exc: BaseException) -> bool:
    """The user can fix it by fixing the scene or the options (exit 2), as opposed to a fault or a bug."""
    return isinstance(exc, UserError) or type(exc).__module__.startswith("rasterio")


def ends_batch(exc: BaseException) -> bool:
    """A full or read-only output disk fails every later scene too: stop instead of failing them one by one."""
    return isinstance(exc, OSError) and exc.errno in BATCH_FAULTS


class ScenesFailed(UserError):
    """Some scenes of a batch failed after all the others were done: exit 2 when every failure was bad input
    (a scene the user must fix), 1 when any was a fault of the machine or a bug."""

    def __init__(self, failed: list[tuple[str, str]], total: int, manifest: Path, bad_input: bool):
        self.exit_code = 2 if bad_input else 1
        shown = "; ".join(f"{name}: {error}" for name, error in failed[:3])
        more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
        super().__init__(
            f"{len(failed)} of {total} scenes failed: {shown}{more}. The other scenes are done. Fix the failed "
            f"ones and run the same command again: finished scenes are skipped (see {manifest})."
        )


class Stopwatch:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t0
