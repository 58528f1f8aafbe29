"""Streaming sliding-window inference over a scene of any size, in memory that does not grow with it.

The scene is cut into column bands (geo.grid.DEFAULT_WINDOW, 4096 px, wide by default). Each band is
processed top to bottom, one row of windows at a time, with every window that touches the band (its halo
windows are computed by both neighbours, a few percent of extra compute) so that each band's output is final
when its rows are done.
The accumulator (predict.blend.BlendAccumulator) holds one window-height strip of one band and slides down
the band: memory depends on the window and band width, never on the scene. Finished rows are handed to a sink
(a COG writer, a confusion matrix, ...).

Windows are read by a loader thread while the model runs, so the model does not wait on GDAL. Stride, window
placement, the Hann weight (flat at scene borders) and the division by the accumulated weight are those of
predict.blend, which validation's in-memory sliding window uses too.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from rsseg_cli.engine.blend import NUMPY, BlendAccumulator, stride_for, window_starts, window_weight
from rsseg_cli.geo.grid import DEFAULT_WINDOW

# (row0, row1, col0, col1) of the region, class probabilities (K, h, w) float32, validity (h, w) bool.
Sink = Callable[[int, int, int, int, np.ndarray, np.ndarray], None]
# (row, col, size) -> raw data (C, size, size) and validity (size, size); pixels outside the scene invalid.
WindowReader = Callable[[int, int, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class StreamPlan:
    height: int
    width: int
    window: int
    stride: int
    band_width: int

    @property
    def rows(self) -> list[int]:
        return window_starts(self.height, self.window, self.stride)

    @property
    def cols(self) -> list[int]:
        return window_starts(self.width, self.window, self.stride)

    def bands(self) -> Iterator[tuple[int, int, list[int]]]:
        """(x0, x1, window columns touching [x0, x1)) per column band."""
        cols = self.cols
        for x0 in range(0, self.width, self.band_width):
            x1 = min(self.width, x0 + self.band_width)
            yield x0, x1, [c for c in cols if c < x1 and c + self.window > x0]

    @property
    def windows_total(self) -> int:
        return len(self.rows) * sum(len(c) for _, _, c in self.bands())

    def band_count(self) -> int:
        return -(-self.width // self.band_width)

    def windows_in(self, bands: tuple[int, int]) -> int:
        """Windows of the column bands [bands[0], bands[1])."""
        chosen = [c for i, (_, _, c) in enumerate(self.bands()) if bands[0] <= i < bands[1]]
        return len(self.rows) * sum(len(c) for c in chosen)


class StreamPredictor:
    def __init__(
        self,
        predict: Callable[[Any], Any],
        prepare: Callable[[np.ndarray], Any],
        num_classes: int,
        window: int,
        overlap: float = 0.25,
        batch_size: int = 8,
        band_width: int = DEFAULT_WINDOW,
        prefetch: int = 2,
        arrays: str = "torch",
    ):
        """`predict` maps a batch of model inputs (B, C, w, w) to class probabilities (B, K, w, w);
        `prepare` turns raw window data (C, w, w) into a model input (C, w, w). `arrays` is what they take
        and return: "torch" tensors (a .pt model), or "numpy" arrays (an .onnx model, torch not needed);
        the blending is done in the same kind (engine.blend says why)."""
        if arrays not in ("torch", NUMPY):
            raise ValueError(f"arrays must be torch or numpy, got {arrays!r}")
        self.arrays = arrays
        self.predict = predict
        self.prepare = prepare
        self.num_classes = num_classes
        self.window = window
        self.stride = stride_for(window, overlap)  # raises ValueError outside [0, 1)
        self.batch_size = batch_size
        self.band_width = max(band_width, window)
        self.prefetch = prefetch
        self.peak_buffer_bytes = 0
        self.model_seconds = 0.0  # wall time inside `prepare` + `predict`: the rest is pipeline overhead

    def plan(self, height: int, width: int) -> StreamPlan:
        return StreamPlan(height, width, self.window, self.stride, self.band_width)

    def run(
        self,
        read: WindowReader,
        height: int,
        width: int,
        sink: Sink,
        on_window=None,
        bands: tuple[int, int] | None = None,
    ) -> StreamPlan:
        """Predict the scene, or only its column bands [bands[0], bands[1]) (a share of a scene split across
        processes: each band is computed exactly as in a whole-scene run, halo windows included)."""
        plan = self.plan(height, width)
        for i, (x0, x1, cols) in enumerate(plan.bands()):
            if bands is None or bands[0] <= i < bands[1]:
                self._band(plan, read, x0, x1, cols, sink, on_window)
        return plan

    # ----------------------------------------------------------------------------------------------

    def _windows(self, plan: StreamPlan, read: WindowReader, cols: list[int]) -> Iterator[tuple]:
        """Windows of one band in row-major order, read ahead by a thread."""
        q: queue.Queue = queue.Queue(maxsize=max(1, self.prefetch * self.batch_size))
        stop = threading.Event()
        done = object()

        def produce() -> None:
            try:
                for r in plan.rows:
                    for c in cols:
                        if stop.is_set():
                            return
                        data, valid = read(r, c, plan.window)
                        q.put((r, c, data, valid))
                q.put(done)
            except BaseException as exc:  # surface reader errors in the main thread
                q.put(exc)

        thread = threading.Thread(target=produce, name="rsseg-reader", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get_nowait()
                except queue.Empty:
                    thread.join(timeout=0.05)

    def _predict_batch(self, inputs: list[Any]) -> Any:
        """Stacked inputs -> probabilities (B, K, w, w), float32 on the CPU, in the stream's array kind."""
        if self.arrays == NUMPY:
            return np.asarray(self.predict(np.stack(inputs)), dtype=np.float32)
        import torch

        return self.predict(torch.stack(inputs)).float().cpu()

    def _as_arrays(self, a: np.ndarray) -> Any:
        if self.arrays == NUMPY:
            return a
        import torch

        return torch.from_numpy(a)

    def _band(
        self, plan: StreamPlan, read: WindowReader, x0: int, x1: int, cols: list[int], sink: Sink, on_window
    ) -> None:
        w = plan.window
        left = min(cols)
        span = min(plan.width, max(c + w for c in cols)) - left  # the band plus its halo
        rows = plan.rows
        # One window-high strip over the band and its halo, sliding down: rows [acc.row0, acc.row0 + w).
        device = NUMPY if self.arrays == NUMPY else None  # None: torch on the CPU
        acc = BlendAccumulator(self.num_classes, w, span, row0=0, col0=left, device=device, track_valid=True)
        self.peak_buffer_bytes = max(self.peak_buffer_bytes, acc.nbytes)
        pending: list[tuple[int, int, np.ndarray, np.ndarray]] = []
        row_index = 0

        def flush() -> None:
            t0 = time.perf_counter()
            probs = self._predict_batch([self.prepare(d) for _, _, d, _ in pending])
            self.model_seconds += time.perf_counter() - t0
            for (r, c, _, v), p in zip(pending, probs):
                weight = window_weight(r, c, w, plan.height, plan.width, device)
                acc.add(r, c, p, weight, self._as_arrays(np.asarray(v, dtype=bool)))
                if on_window is not None:
                    on_window(1)
            pending.clear()

        def emit(upto: int) -> None:
            """Hand rows [row0, upto) of [x0, x1) to the sink and slide the strip down."""
            n = min(upto, plan.height) - acc.row0
            if n <= 0:
                return
            probs = _numpy(acc.result(n, (x0, x1)))
            sink(acc.row0, acc.row0 + n, x0, x1, probs, _numpy(acc.covered(n, (x0, x1))))
            acc.advance(n)

        per_row = len(cols)
        seen_in_row = 0
        for r, c, data, v in self._windows(plan, read, cols):
            pending.append((r, c, data, v))
            seen_in_row += 1
            if len(pending) == self.batch_size or seen_in_row == per_row:
                flush()
            if seen_in_row == per_row:
                seen_in_row = 0
                row_index += 1
                # Rows above the next window row receive nothing more: they are final.
                emit(rows[row_index] if row_index < len(rows) else plan.height)


def _numpy(a: Any) -> np.ndarray:
    return a if isinstance(a, np.ndarray) else a.numpy()
