"""Progress for long work: a rich bar on a terminal, plain periodic log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

log = logging.getLogger("rsseg")

# Everything for humans goes to stderr so that stdout stays clean for `--json` output.
console = Console(stderr=True)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (it is replaced when output is captured or redirected)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def setup_logging(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    if not log.handlers:
        handler = _StderrHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False


class Reporter:
    """Advance-only progress handle shared by the rich and the plain implementation."""

    def __init__(self, description: str, total: int | None, unit: str, interval_s: float = 10.0):
        self.description = description
        self.total = total
        self.unit = unit
        self.done = 0
        self.fields: dict[str, str] = {}
        self._interval = interval_s
        self._t0 = time.perf_counter()
        self._last = self._t0

    @property
    def rate(self) -> float:
        elapsed = time.perf_counter() - self._t0
        return self.done / elapsed if elapsed > 0 else 0.0

    def advance(self, n: int = 1, **fields: object) -> None:
        self.done += n
        self.fields.update({k: str(v) for k, v in fields.items()})
        now = time.perf_counter()
        if now - self._last >= self._interval:
            self._last = now
            self._log_line()

    def _log_line(self) -> None:
        of = f"/{self.total}" if self.total else ""
        extra = " ".join(f"{k}={v}" for k, v in self.fields.items())
        eta = ""
        if self.total and self.rate > 0:
            eta = f" eta {max(self.total - self.done, 0) / self.rate:.0f}s"
        log.info(
            "%s: %d%s %s (%.1f %s/s)%s %s",
            self.description,
            self.done,
            of,
            self.unit,
            self.rate,
            self.unit,
            eta,
            extra,
        )

    def close(self) -> None:
        self._log_line()


class _RichReporter(Reporter):
    def __init__(self, progress: Progress, task_id: int, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._progress = progress
        self._task = task_id

    def advance(self, n: int = 1, **fields: object) -> None:
        self.done += n
        self.fields.update({k: str(v) for k, v in fields.items()})
        extra = " ".join(f"{k}={v}" for k, v in self.fields.items())
        self._progress.update(self._task, advance=n, rate=f"{self.rate:.1f} {self.unit}/s", extra=extra)

    def close(self) -> None:
        pass


@contextmanager
def progress(description: str, total: int | None, unit: str = "it") -> Iterator[Reporter]:
    """Yield a Reporter: a live rich bar with rate and ETA on a terminal, log lines every 10 s otherwise."""
    if console.is_terminal:
        bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[extra]}"),
            console=console,
            transient=False,
        )
        with bar:
            task = bar.add_task(description, total=total, rate="", extra="")
            yield _RichReporter(bar, task, description, total, unit)
    else:
        reporter = Reporter(description, total, unit)
        log.info("%s: started (%s %s)", description, total if total is not None else "?", unit)
        try:
            yield reporter
        finally:
            reporter.close()
