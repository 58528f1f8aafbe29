"""Checks and housekeeping around a predict run: the window checked against the model and the memory
before any work, one run at a time per output folder (a lock file), and temporaries of killed runs swept."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the ONNX path (no torch) checks windows too
    from torch import nn

from rsseg_cli.atomic import _alive, read_only
from rsseg_cli.compat import has_torch
from rsseg_cli.errors import UserError

log = logging.getLogger("rsseg")

MAX_WINDOW = 16384  # px: beyond this no model of rsseg fits a window in memory
TYPICAL_WINDOW = 1024
BYTES_PER_PIXEL = 4 * 64  # float32 x about 64 values per pixel in flight (input, head features, blending)
LOCK_NAME = ".rsseg.lock"
# rsseg's temporaries: .NAME.partial-PID (atomic_file/atomic_dir, staging files), with sidecars after the
# PID (.aux.xml, a GeoPackage's -journal/-wal), and .NAME.old-PID (a folder being replaced).
TEMP_NAME = re.compile(r"^\..+\.(?:partial|old)-(\d+)(?:\D.*)?$")


def available_memory() -> int | None:
    """Bytes of memory available now (psutil when installed, else /proc/meminfo), None when unknown."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


def _patch_size(model: nn.Module) -> int | None:
    if not has_torch():  # the ONNX path's PatchInfo; importing rsseg_cli.models would import torch
        return getattr(model, "patch_size", None)
    from rsseg_cli.models.patch import patch_size

    return patch_size(model)


def check_window(window: int, model: nn.Module, crop: int, batch_size: int, bands: int) -> None:
    """Refuse, before any work, a --window the model cannot use well or the memory cannot hold."""
    p = _patch_size(model)
    if p is not None and window < p:
        raise UserError(
            f"--window {window} is smaller than the model's patch size ({p} px): each window would be padded "
            f"to a whole patch, many times slower and with a different result. Use at least {p} px; the "
            f"default is the training crop ({crop} px)."
        )
    if window > MAX_WINDOW:
        raise UserError(
            f"--window {window} is larger than rsseg allows ({MAX_WINDOW} px): its buffers would not fit in "
            f"memory. Use a window such as {TYPICAL_WINDOW} (the training crop is {crop} px); windows overlap, "
            "so any scene size is covered."
        )
    need = window * window * (BYTES_PER_PIXEL + 4 * bands) * batch_size
    free = available_memory()
    if free is not None and need > free:
        fits = int((free / (batch_size * (BYTES_PER_PIXEL + 4 * bands))) ** 0.5)
        raise UserError(
            f"--window {window} with --batch-size {batch_size} needs about {need / 2**30:.1f} GiB of memory, "
            f"but {free / 2**30:.1f} GiB is available. Use a smaller --window (at most about {fits} px here; "
            f"the training crop is {crop} px) or a smaller --batch-size."
        )


def sweep_partials(folder: Path) -> None:
    """Remove temporaries that killed runs left in `folder` (SIGKILL leaves no chance to clean up): files
    of rsseg's temporary naming whose process is gone. Called with the folder's lock held."""
    for entry in folder.iterdir():
        m = TEMP_NAME.match(entry.name)
        if m is None:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or _alive(pid):
            continue
        log.info("removing %s left by an interrupted run", entry)
        with contextlib.suppress(OSError):
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


def _lock(folder: Path) -> int:
    path = folder / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise UserError(
                f"Another rsseg predict is writing into {folder} right now (it holds {path}). Wait for it to "
                "finish, or give this run another --out folder."
            ) from None
        # The holder before us may have removed the file while we opened it: lock the file that is there.
        with contextlib.suppress(FileNotFoundError):
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        os.close(fd)


@contextlib.contextmanager
def output_folders(folders: Iterable[Path]) -> Iterator[None]:
    """Create the output folders, hold each one's lock for the run, and sweep stale temporaries; on the
    way out remove the lock files, and the folders this run created if it leaves them empty."""
    created: list[Path] = []
    locks: list[tuple[Path, int]] = []
    try:
        for folder in sorted({Path(f).resolve() for f in folders}):
            missing = [p for p in (folder, *folder.parents) if not p.exists()]
            folder.mkdir(parents=True, exist_ok=True)
            created.extend(missing)
            if not os.access(folder, os.W_OK):
                why = os.strerror(errno.EROFS if read_only(folder) else errno.EACCES)
                raise UserError(f"Cannot write into {folder}: {why}. Choose another folder with --out.")
            locks.append((folder, _lock(folder)))
            sweep_partials(folder)
        yield
    finally:
        for folder, fd in reversed(locks):
            with contextlib.suppress(OSError):
                (folder / LOCK_NAME).unlink()
            os.close(fd)
        for folder in sorted(set(created), key=lambda f: len(f.parts), reverse=True):  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
