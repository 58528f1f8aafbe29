"""Run folders: naming, `runs/latest`, and finding the checkpoint a command should use by default."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from rsseg_cli.errors import UserError

RUNS = Path("runs")


def new_run_dir(method: str, labeled: str, root: Path = RUNS) -> Path:
    slug = labeled.replace("/", "of").replace("%", "pct").replace(".", "p")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = root / f"{method}-{slug}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{method}-{slug}-{stamp}-{n}"
    return path


def mark_latest(run_dir: Path) -> None:
    """Point runs/latest at `run_dir` (a relative symlink, replaced atomically)."""
    run_dir = Path(run_dir)
    link = run_dir.parent / "latest"
    tmp = run_dir.parent / f".latest.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(run_dir.name, tmp)
    os.replace(tmp, link)


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
    return json.loads(path.read_text()) if path.exists() else {}
