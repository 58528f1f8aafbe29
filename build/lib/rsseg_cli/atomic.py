"""Nothing half-written: outputs go to a temporary name in the same folder and are renamed when complete."""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rsseg_cli.errors import Interrupted, UserError

log = logging.getLogger("rsseg")
FULL_BYTES = 1 << 20  # a failed write in a folder with less free space than this: the disk is full


def partial_name(path: Path) -> Path:
    """The temporary sibling used while `path` is being written (same folder, so the rename is atomic)."""
    return path.with_name(f".{path.name}.partial-{os.getpid()}")


def remove_stale_partials(path: Path) -> None:
    """Remove temporaries left by killed runs (SIGKILL leaves no chance to clean up)."""
    for stale in path.parent.glob(f".{path.name}.partial-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and _alive(int(pid)) and int(pid) != os.getpid():
            continue
        log.info("removing %s left by an interrupted run", stale)
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def make_folders(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; return the ones created, deepest first (remove_folders)."""
    created, p = [], Path(folder)
    while not p.exists() and not p.is_symlink() and p != p.parent:
        created.append(p)
        p = p.parent
    Path(folder).mkdir(parents=True, exist_ok=True)
    return created


def remove_folders(created: list[Path]) -> None:
    """Undo make_folders after a failure: remove the folders it created while they are empty."""
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            return


def diagnose_write_failure(exc: BaseException, path: Path) -> OSError | None:
    """A library's write failure (GDAL, SQLite, torch report no errno) explained by the disk: `path`'s folder
    is full or not writable. Called while the temporary is still there, so a full disk is still full."""
    if isinstance(exc, (UserError, Interrupted, KeyboardInterrupt, MemoryError)):
        return None
    if isinstance(exc, OSError) and exc.errno is not None:  # what the OS said; name the file if it did not
        return None if exc.filename else OSError(exc.errno, exc.strerror, str(path))
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if free < FULL_BYTES:
        code = errno.ENOSPC
    elif not os.access(folder, os.W_OK):
        code = errno.EROFS if read_only(folder) else errno.EACCES
    else:
        return None
    return OSError(code, os.strerror(code), str(path))


def read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces `path`, on any error it is removed (with the folders
    created for it), and a failure caused by a full or read-only disk is raised as that OSError."""
    path = Path(path)
    created = make_folders(path.parent)
    tmp = partial_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        fault = diagnose_write_failure(exc, path)
        _remove(tmp)
        remove_folders(created)
        if fault is not None:
            raise fault from exc
        raise
    finally:
        _remove(tmp)


def _remove(tmp: Path) -> None:
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    elif tmp.exists() or tmp.is_symlink():
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it takes the place of `path` (replacing an old one)."""
    path = Path(path)
    created = make_folders(path.parent)
    remove_stale_partials(path)
    tmp = partial_name(path)
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    except BaseException:
        remove_folders(created)
        raise
    try:
        yield tmp
        if path.exists():
            # Directories cannot be replaced in one rename: move the old one aside first, then drop it.
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException as exc:
        fault = diagnose_write_failure(exc, path)
        shutil.rmtree(tmp, ignore_errors=True)
        remove_folders(created)
        if fault is not None:
            raise fault from exc
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
