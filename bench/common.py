"""Pieces the benchmarks share: a timed step loop and the one way they read peak memory.

Peak memory is the kernel's peak resident set size (ru_maxrss): `peak_rss_mib()` for this process,
`run_measured(cmd)` for a command run in a child process (read with wait4, so nothing the benchmark itself
allocated, such as generating its input, counts), and `peak_memory_mb(device)` for training steps (peak
allocated GPU memory on CUDA, else `peak_rss_mib()`).

The synthetic batch they train on is rsseg_cli.synthetic.batches.synthetic_batch (shared with the tests).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_steps(step: Callable[[int], None], steps: int, device: torch.device) -> list[float]:
    """Seconds of each call of step(i)."""
    times = []
    for i in range(steps):
        sync(device)
        t0 = time.perf_counter()
        step(i)
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def median_after_first(times: list[float]) -> float:
    """The first step pays for allocations and lazy initialization."""
    return statistics.median(times[1:] or times)


def _maxrss_mib(maxrss: int) -> float:
    """ru_maxrss in MiB: Linux reports KiB, macOS bytes."""
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB."""
    return _maxrss_mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def peak_memory_mb(device: torch.device) -> float:
    """Peak allocated GPU memory on CUDA, else this process's peak resident memory (MiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return peak_rss_mib()


@dataclass(frozen=True)
class Measured:
    returncode: int
    stdout: str
    stderr: str
    seconds: float  # wall time from start to exit
    peak_rss_mib: float  # the child's own peak resident memory


def run_measured(cmd: Sequence[str], *, env: dict[str, str] | None = None) -> Measured:
    """Run `cmd` in a child process and read its peak resident memory from the kernel (wait4).

    Output goes to temporary files, not pipes: a child that writes more than a pipe holds cannot block.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        out.seek(0)
        err.seek(0)
        return Measured(proc.returncode, out.read(), err.read(), seconds, _maxrss_mib(usage.ru_maxrss))


def run_finished(run: os.PathLike[str] | str) -> bool:
    """Whether a training run folder holds a run that reached its last step (its last validation record is at
    run.json's total_steps): a run stopped by SIGTERM has a last.pt too, so that file alone does not say."""
    import json
    from pathlib import Path

    folder = Path(run)
    try:
        total = json.loads((folder / "run.json").read_text())["total_steps"]
        lines = (folder / "metrics.jsonl").read_text().splitlines()
        return bool(lines) and json.loads(lines[-1])["step"] == total
    except (OSError, ValueError, KeyError):
        return False
