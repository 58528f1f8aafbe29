"""Run folders: naming, `runs/latest`, and finding the checkpoint a command should use by default."""

from __future__ import annotations

import json
import logging
import os
import shutil
from datetime import datetime
from pathlib import Path

from rsseg_cli.errors import UserError

RUNS = Path("runs")
# What `rsseg train` writes into a run folder (all of it is rebuilt when a run is started afresh).
RUN_ENTRIES = {
    "config.yaml", "run.json", "splits", "train_log.jsonl", "metrics.jsonl", "plots", "validation",
    "tensorboard", "mlruns",  # train.loggers
}  # fmt: skip

log = logging.getLogger("rsseg")


def new_run_dir(method: str, labeled: str, root: Path = RUNS) -> Path:
    slug = labeled.replace("/", "of").replace("%", "pct").replace(".", "p")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = root / f"{method}-{slug}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{method}-{slug}-{stamp}-{n}"
    return path


def _own_link(link: Path) -> bool:
    """rsseg's `latest`: a symlink to a sibling folder's name (what mark_latest writes)."""
    return link.is_symlink() and os.sep not in os.readlink(link) and "/" not in os.readlink(link)


def mark_latest(run_dir: Path) -> bool:
    """Point runs/latest at `run_dir` (a relative symlink, replaced atomically), called once the run holds a
    checkpoint. Anything named `latest` that is not rsseg's own link (a file, a folder, a link elsewhere) is
    the user's: it is left alone, with a warning. True if the link now points at `run_dir`."""
    run_dir = Path(run_dir)
    link = run_dir.parent / "latest"
    if (link.exists() or link.is_symlink()) and not _own_link(link):
        log.warning(
            "%s is not rsseg's link (it is a %s of yours), so it was left alone and does not point at %s: "
            "pass --checkpoint %s or --out %s to later commands.",
            link,
            "folder" if link.is_dir() and not link.is_symlink() else "file or link",
            run_dir,
            run_dir / "checkpoints" / "best.pt",
            run_dir,
        )
        return False
    if link.is_symlink() and os.readlink(link) == run_dir.name:
        return True
    tmp = run_dir.parent / f".latest.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(run_dir.name, tmp)
    os.replace(tmp, link)
    return True


def run_folder_state(run_dir: Path, resume: bool) -> str:
    """What --out holds, checked before any work: "resume" (a run with checkpoints/last.pt and config.yaml),
    "new" (absent or empty), or "restart" (rsseg's own run stopped before its first checkpoint: nothing of it
    is worth keeping). Anything else is refused with a message, never written into."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(
            f"--out {run_dir} is a file, not a folder. Choose a folder for the run (it is created)."
        )
    entries = sorted(p.name for p in run_dir.iterdir()) if run_dir.exists() else []
    if (run_dir / "checkpoints" / "last.pt").is_file():
        if not (run_dir / "config.yaml").is_file():
            raise UserError(
                f"{run_dir} holds checkpoints/last.pt but no config.yaml, so it is not a complete run and "
                "cannot be continued. Choose a new --out, or delete the folder to start there afresh."
            )
        return "resume"
    checkpoints = run_dir / "checkpoints"
    kept = sorted(p.name for p in checkpoints.iterdir()) if checkpoints.is_dir() else []
    foreign = [n for n in entries if n not in RUN_ENTRIES | {"checkpoints"} and not _partial(n)]
    foreign += [f"checkpoints/{n}" for n in kept if not _partial(n)]
    own = not foreign and "rsseg_version" in run_info(run_dir)
    if resume:
        what = "a run stopped before its first checkpoint" if own else "no rsseg run"
        raise UserError(
            f"There is nothing to resume in {run_dir}: it holds {what} (no checkpoints/last.pt). "
            + (
                "Train without --resume to start it afresh."
                if own
                else "Choose the folder of a run as --out."
            )
        )
    if not entries:
        return "new"
    if own:
        return "restart"
    raise UserError(
        f"--out {run_dir} is not empty and holds no run to continue (found {', '.join(foreign or entries)}). "
        "Choose a new or empty folder: rsseg writes a run only into a folder of its own."
    )


def _partial(name: str) -> bool:
    """A temporary of rsseg's atomic writes (atomic.partial_name) left by a killed run."""
    return name.startswith(".") and ".partial-" in name


def clear_incomplete_run(run_dir: Path) -> None:
    """Remove what a run stopped before its first checkpoint wrote (run_folder_state said "restart")."""
    log.warning("%s holds a run stopped before its first checkpoint: starting it afresh", run_dir)
    partials = [p.name for p in Path(run_dir).iterdir() if _partial(p.name)]
    for name in [*RUN_ENTRIES, "checkpoints", *partials]:
        path = Path(run_dir) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def latest_run(root: Path = RUNS) -> Path:
    link = Path(root) / "latest"
    if not link.exists():
        raise UserError(
            f"There is no run in {root}/ yet (no {link}). Train one with `rsseg train`, or pass --checkpoint."
        )
    return link.resolve()


def default_checkpoint(checkpoint: Path | None, root: Path = RUNS) -> Path:
    if checkpoint is not None:
        return Path(checkpoint)
    best = latest_run(root) / "checkpoints" / "best.pt"
    if not best.exists():
        raise UserError(
            f"The latest run has no best checkpoint yet ({best}). Let it validate once, or pass --checkpoint."
        )
    return best


def run_info(run_dir: Path) -> dict:
    path = Path(run_dir) / "run.json"
    try:
        info = json.loads(path.read_text()) if path.is_file() else {}
    except (ValueError, OSError):
        return {}
    return info if isinstance(info, dict) else {}
