"""Streaming sliding-window inference over a scene of any size, in memory that does not grow with it.

The scene is cut into column bands (default 4096 px wide). Each band is processed top to bottom, one row of
windows at a time, with every window that touches the band (its halo windows are computed by both
neighbours, a few percent of extra compute) so that each band's output is final when its rows are done.
Accumulators hold one window-height strip of one band: memory depends on the window and band width, never on
the scene. Finished rows are handed to a sink (a COG writer, a confusion matrix, ...).

Windows are read by a loader thread while the model runs, so the model does not wait on GDAL; overlapping
windows are blended with the Hann weight of engine.sliding (flat at scene borders), divided by the
accumulated weight.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from rsseg_cli.engine.sliding import window_weight
from rsseg_cli.geo.grid import axis_starts

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
        return axis_starts(self.height, self.window, self.stride, _edge(self.height, self.window))

    @property
    def cols(self) -> list[int]:
        return axis_starts(self.width, self.window, self.stride, _edge(self.width, self.window))

    def bands(self) -> Iterator[tuple[int, int, list[int]]]:
        """(x0, x1, window columns touching [x0, x1)) per column band."""
        cols = self.cols
        for x0 in range(0, self.width, self.band_width):
            x1 = min(self.width, x0 + self.band_width)
            yield x0, x1, [c for c in cols if c < x1 and c + self.window > x0]

    @property
    def windows_total(self) -> int:
        return len(self.rows) * sum(len(c) for _, _, c in self.bands())


def _edge(length: int, window: int) -> str:
    # Snap keeps every window inside the scene; a scene smaller than a window is padded (and masked).
    return "snap" if length >= window else "pad"


class StreamPredictor:
    def __init__(
        self,
        predict: Callable[[torch.Tensor], torch.Tensor],
        prepare: Callable[[np.ndarray], torch.Tensor],
        num_classes: int,
        window: int,
        overlap: float = 0.25,
        batch_size: int = 8,
        band_width: int = 4096,
        prefetch: int = 2,
    ):
        """`predict` maps a batch of model inputs (B, C, w, w) to class probabilities (B, K, w, w);
        `prepare` turns raw window data (C, w, w) into a model input tensor (C, w, w)."""
        if not 0 <= overlap < 1:
            raise ValueError("overlap must be in [0, 1)")
        self.predict = predict
        self.prepare = prepare
        self.num_classes = num_classes
        self.window = window
        self.stride = max(1, round(window * (1 - overlap)))
        self.batch_size = batch_size
        self.band_width = max(band_width, window)
        self.prefetch = prefetch
        self.windows_done = 0
        self.peak_buffer_bytes = 0
        self.model_seconds = 0.0  # wall time inside `prepare` + `predict`: the rest is pipeline overhead

    @functools.cache  # noqa: B019 - at most 9 border cases per window size; the predictor lives briefly
    def _weight(self, top: bool, bottom: bool, left: bool, right: bool, size: int) -> np.ndarray:
        return window_weight(top, bottom, left, right, size).numpy()

    def plan(self, height: int, width: int) -> StreamPlan:
        return StreamPlan(height, width, self.window, self.stride, self.band_width)

    def run(self, read: WindowReader, height: int, width: int, sink: Sink, on_window=None) -> StreamPlan:
        plan = self.plan(height, width)
        for x0, x1, cols in plan.bands():
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

    def _band(
        self, plan: StreamPlan, read: WindowReader, x0: int, x1: int, cols: list[int], sink: Sink, on_window
    ) -> None:
        w, k = plan.window, self.num_classes
        left = min(cols)
        span = min(plan.width, max(c + w for c in cols)) - left  # the band plus its halo
        rows = plan.rows
        # Strip buffers for rows [base, base + w): probabilities x weight, weights, validity.
        acc = np.zeros((k, w, span), np.float32)
        wsum = np.zeros((w, span), np.float32)
        valid = np.zeros((w, span), bool)
        self.peak_buffer_bytes = max(self.peak_buffer_bytes, acc.nbytes + wsum.nbytes + valid.nbytes)
        base = 0
        pending: list[tuple[int, int, np.ndarray, np.ndarray]] = []
        row_index = 0

        def flush() -> None:
            t0 = time.perf_counter()
            batch = torch.stack([self.prepare(d) for _, _, d, _ in pending])
            probs = self.predict(batch).float().cpu().numpy()
            self.model_seconds += time.perf_counter() - t0
            for (r, c, _, v), p in zip(pending, probs):
                h_in = min(w, plan.height - r)
                w_in = min(w, plan.width - c)
                weight = self._weight(r == 0, r + w >= plan.height, c == 0, c + w >= plan.width, w)
                ys, xs = r - base, c - left
                acc[:, ys : ys + h_in, xs : xs + w_in] += p[:, :h_in, :w_in] * weight[:h_in, :w_in]
                wsum[ys : ys + h_in, xs : xs + w_in] += weight[:h_in, :w_in]
                valid[ys : ys + h_in, xs : xs + w_in] = v[:h_in, :w_in]
                self.windows_done += 1
                if on_window is not None:
                    on_window(1)
            pending.clear()

        def emit(upto: int) -> None:
            """Hand rows [base, upto) of [x0, x1) to the sink and slide the strip down."""
            nonlocal base
            n = min(upto, plan.height) - base
            if n <= 0:
                return
            a, b = x0 - left, x1 - left
            weights = wsum[:n, a:b]
            probs = acc[:, :n, a:b] / np.maximum(weights, 1e-12)
            sink(base, base + n, x0, x1, probs, valid[:n, a:b] & (weights > 0))
            # Slide in place (numpy copies overlapping slices safely): no new strip per row.
            for buf in (acc[:, :], wsum[None], valid[None]):
                buf[:, : w - n] = buf[:, n:]
                buf[:, w - n :] = 0
            base += n

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
