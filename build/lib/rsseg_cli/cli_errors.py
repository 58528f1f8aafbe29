"""How the CLI ends a command that failed: a user error, a fault of the machine (full or read-only disk,
memory), an interruption, or a bug. Only bugs print a traceback (exit 1); everything else is one "Error:"
paragraph that says what happened and what to do (exit 2), or "Interrupted" (exit 130)."""

from __future__ import annotations

import errno
import functools
import os
import sys
from collections.abc import Callable
from typing import Any

from rich.markup import escape

from rsseg_cli.compat import is_missing_torch
from rsseg_cli.errors import Interrupted, UserError
from rsseg_cli.progress import console

# errno -> what to do about it. The OS reason (strerror) is printed before it.
DISK_FAULTS = {
    errno.ENOSPC: "Free some space there (or write elsewhere with --out) and run the command again.",
    errno.EDQUOT: "Your disk quota is used up: free some space or write elsewhere with --out.",
    errno.EROFS: "That file system is mounted read-only: write elsewhere with --out.",
    errno.EACCES: "Check the permissions of that folder, or write elsewhere with --out.",
    errno.EPERM: "Check the permissions of that folder, or write elsewhere with --out.",
    errno.EFBIG: "The file is too large for that file system: write elsewhere with --out.",
}
MEMORY_FIX = (
    "Ran out of memory. Use smaller pieces of work: a smaller --window or --batch-size for predict and "
    "evaluate, a smaller train.batch_size/train.crop for train, a smaller --chip-size or fewer --workers for "
    "tile, a smaller --size for sample; or close other programs. Nothing half-written was left."
)


def os_fault_message(exc: OSError) -> str | None:
    """A one-paragraph message for an OSError a user can fix (disk full, read-only, permissions), else None."""
    fix = DISK_FAULTS.get(exc.errno or 0)
    if fix is None:
        return None
    path = exc.filename or exc.filename2
    where = f" {os.fspath(path)}" if path else ""
    reason = exc.strerror or os.strerror(exc.errno or 0)
    return f"Cannot write{where}: {reason} (errno {errno.errorcode.get(exc.errno or 0, exc.errno)}). {fix}"


def gdal_fault_message(exc: Exception) -> str | None:
    """GDAL reports disk faults as text (no errno): recognise the common ones."""
    text = str(exc)
    low = text.lower()
    for needle, code in (
        ("no space left on device", errno.ENOSPC),
        ("disk quota exceeded", errno.EDQUOT),
        ("read-only file system", errno.EROFS),
        ("permission denied", errno.EACCES),
    ):
        if needle in low:
            return f"Cannot write: {text.strip()}. {DISK_FAULTS[code]}"
    return None


def _fail(message: str, code: int = 2) -> None:
    try:
        # Escaped: a message may hold brackets that are not markup (pip install 'rsseg-cli[onnx]').
        console.print(f"[bold red]Error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    except (MemoryError, ImportError):  # out of memory, rich cannot import what it needs: plain text
        sys.stderr.write(f"Error: {message}\n")
    raise SystemExit(code) from None


def guarded(command: Callable[..., None]) -> Callable[..., None]:
    """Turn a command's UserError (and a disk or memory fault) into a one-paragraph message with exit code 2,
    and an interruption into exit code 130, inside typer's own handling (usage errors keep exit code 2)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except UserError as exc:
            _fail(str(exc), exc.exit_code)
        except (KeyboardInterrupt, Interrupted):
            console.print(
                "[yellow]Interrupted[/]: outputs in progress were removed; nothing half-written is left."
            )
            raise SystemExit(130) from None
        except MemoryError:
            _fail(MEMORY_FIX)
        except Exception as exc:  # OSError included: rasterio's errors are OSErrors without an errno
            message = os_fault_message(exc) if isinstance(exc, OSError) else None
            message = message or _library_fault(exc)
            if message is None:
                raise
            _fail(message)

    return run


def _library_fault(exc: Exception) -> str | None:
    """Disk and memory faults that reach us wrapped by a library (GDAL via rasterio, torch)."""
    for link in _chain(exc):
        if isinstance(link, MemoryError):
            return MEMORY_FIX
        if isinstance(link, OSError) and (message := os_fault_message(link)):
            return message
    if isinstance(exc, ImportError) and is_missing_torch(exc):
        # An install without PyTorch (for .onnx prediction, README) running a command that needs it.
        return (
            f"This command needs PyTorch ({exc.name} is not installed). Install it (pip install torch), or "
            "on this machine predict with an ONNX model: `rsseg predict --checkpoint model.onnx`."
        )
    text = str(exc).lower()
    if isinstance(exc, ImportError) and ("failed to map segment" in text or "cannot allocate" in text):
        return MEMORY_FIX  # a library could not even be loaded under the memory limit
    if type(exc).__module__.startswith("rasterio"):
        if "out of memory" in text or "cannot allocate" in text:
            return MEMORY_FIX
        if "read failed" in text or "tiffreadencoded" in text or "read error" in text:
            return (
                f"An input raster could not be read ({str(exc).strip()}): it is probably truncated (an "
                "interrupted download or copy) or corrupt. Find it with `gdalinfo -checksum FILE` and copy or "
                "export it again."
            )
        return gdal_fault_message(exc)
    if type(exc).__name__ == "OutOfMemoryError" or "defaultcpuallocator: can't allocate memory" in text:
        return MEMORY_FIX
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in seen and len(seen) < 10:
        seen.append(link)
        link = link.__cause__ or link.__context__
    return seen
