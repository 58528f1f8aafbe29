"""The prediction sink: blended probabilities -> class mask (and uint8 probabilities), written by a thread.

The stream hands over finished rows of one column band at a time. A writer thread turns them into classes
(argmax) and quantized probabilities and buffers them until a full row of 512-pixel blocks is complete, so
every write to the tiled staging GeoTIFF is block-aligned (GDAL never has to re-read or re-compress a
block). The model thread only enqueues: writing, compressing and quantizing overlap with compute.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

from rsseg_cli.geo.class_raster import CONFIDENCE_BAND, MASK_NODATA, PROB_SCALE, write_class_metadata
from rsseg_cli.geo.raster import SceneInfo

BLOCK = 512


@dataclass
class OutputPaths:
    """Staging (plain tiled GeoTIFF) paths; the COGs are made from them once the scene is done."""

    mask: Path
    probs: Path | None = None  # K class bands + confidence, for --probs
    confidence: Path | None = None  # the confidence band alone, for --vector without --probs


def _profile(scene: SceneInfo, count: int) -> dict:
    profile = dict(
        driver="GTiff",
        width=scene.width,
        height=scene.height,
        count=count,
        dtype="uint8",
        tiled=True,
        blockxsize=BLOCK,
        blockysize=BLOCK,
        compress="zstd",
        zstd_level=1,  # a staging file, rewritten as a COG: fast beats small
        bigtiff="if_safer",
    )
    if scene.crs is not None:
        profile["crs"] = scene.crs
        profile["transform"] = scene.transform
    elif scene.transform is not None:
        profile["transform"] = scene.transform
    return profile


class PredictionWriter:
    """Callable sink for StreamPredictor; `close()` waits for the thread and closes the staging files."""

    def __init__(self, scene: SceneInfo, classes: list[dict], paths: OutputPaths, queue_size: int = 4):
        self.scene = scene
        self.classes = classes
        self.paths = paths
        self.num_classes = len(classes)
        self.class_pixels = np.zeros(self.num_classes, np.int64)
        self.invalid_pixels = 0
        self._env = rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True)
        self._env.__enter__()
        self._mask = rasterio.open(paths.mask, "w", **_profile(scene, 1), nodata=MASK_NODATA)
        write_class_metadata(self._mask, classes)
        self._probs = None
        if paths.probs is not None:
            self._probs = rasterio.open(paths.probs, "w", **_profile(scene, self.num_classes + 1))
            for i, c in enumerate(classes, start=1):
                self._probs.set_band_description(i, str(c["name"]))
            self._probs.set_band_description(self.num_classes + 1, CONFIDENCE_BAND)
            # p = value / 255 as GDAL's own scale/offset, which QGIS and rasterio read.
            self._probs.scales = [PROB_SCALE] * (self.num_classes + 1)
            self._probs.offsets = [0.0] * (self.num_classes + 1)
        self._conf = None
        self._quantize = paths.probs is not None or paths.confidence is not None
        if paths.confidence is not None:
            self._conf = rasterio.open(paths.confidence, "w", **_profile(scene, 1))
            self._conf.set_band_description(1, CONFIDENCE_BAND)
            self._conf.scales, self._conf.offsets = [PROB_SCALE], [0.0]
        self._strip: dict | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="rsseg-writer", daemon=True)
        self._thread.start()

    # -- called by the stream (model thread) --------------------------------------------------------

    def __call__(self, r0: int, r1: int, c0: int, c1: int, probs: np.ndarray, valid: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        # The stream reuses its buffers: hand the thread its own copies.
        self._queue.put((r0, r1, c0, c1, probs.copy(), valid.copy()))

    def close(self, abort: bool = False) -> None:
        """Finish pending writes (or drop them when aborting) and close the staging files."""
        if self._thread.is_alive():
            if abort:
                self._drain()
            self._queue.put(None)
            self._thread.join()
        try:
            if self._error is None and not abort and self._strip is not None:
                self._write_strip()
        finally:
            for ds in (self._mask, self._probs, self._conf):
                if ds is not None:
                    ds.close()
            self._env.__exit__(None, None, None)
        if self._error is not None and not abort:
            raise self._error

    # -- writer thread ------------------------------------------------------------------------------

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue
            try:
                self._add(*item)
            except BaseException as exc:  # surfaced in the model thread on its next call
                self._error = exc

    def _add(self, r0: int, r1: int, c0: int, c1: int, probs: np.ndarray, valid: np.ndarray) -> None:
        classes = probs.argmax(axis=0).astype(np.uint8)
        classes[~valid] = MASK_NODATA
        self.class_pixels += np.bincount(classes[valid].ravel(), minlength=self.num_classes)[
            : self.num_classes
        ]
        self.invalid_pixels += int(valid.size - np.count_nonzero(valid))
        quantized = None
        if self._quantize:
            # Quantize in place: the thread owns this copy.
            np.multiply(probs, 255.0, out=probs)
            np.rint(probs, out=probs)
            quantized = probs.astype(np.uint8)
            quantized[:, ~valid] = 0
        row = r0
        while row < r1:
            strip = self._strip_for(row, c0, c1)
            top = strip["row"]
            end = min(r1, top + strip["rows"])
            a, b = row - top, end - top
            s, e = row - r0, end - r0
            strip["mask"][a:b] = classes[s:e]
            strip["valid"][a:b] = valid[s:e]
            if quantized is not None:
                strip["probs"][: self.num_classes, a:b] = quantized[:, s:e]
            strip["filled"] = b
            if b == strip["rows"]:
                self._write_strip()
            row = end

    def _strip_for(self, row: int, c0: int, c1: int) -> dict:
        """The block-row buffer holding `row` of the column band [c0, c1)."""
        s = self._strip
        if s is not None and s["c0"] == c0 and s["row"] <= row < s["row"] + s["rows"]:
            return s
        if s is not None:
            self._write_strip()
        top = row - row % BLOCK
        rows = min(BLOCK, self.scene.height - top)
        width = c1 - c0
        planes = self.num_classes + 1 if self._quantize else 0
        self._strip = {
            "row": top,
            "rows": rows,
            "c0": c0,
            "c1": c1,
            "filled": 0,
            "mask": np.full((rows, width), MASK_NODATA, np.uint8),
            "valid": np.zeros((rows, width), bool),
            "probs": np.zeros((planes, rows, width), np.uint8) if planes else None,
        }
        return self._strip

    def _write_strip(self) -> None:
        s = self._strip
        self._strip = None
        if s is None:
            return
        window = rasterio.windows.Window(s["c0"], s["row"], s["c1"] - s["c0"], s["rows"])
        self._mask.write(s["mask"], 1, window=window)
        if s["probs"] is not None:
            k = self.num_classes
            confidence = s["probs"][:k].max(axis=0)
            if self._probs is not None:
                s["probs"][k] = confidence
                self._probs.write(s["probs"], window=window)
                self._probs.write_mask(s["valid"].astype(np.uint8) * 255, window=window)
            if self._conf is not None:
                self._conf.write(confidence, 1, window=window)
