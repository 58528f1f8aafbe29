"""The per-pixel score as a COG (uint8, GDAL scale 1/255 so readers see 0..1; invalid pixels masked), with a
QGIS style: where the model is unsure, at full resolution.

The stream hands over rows of one column band at a time, top to bottom; rows are buffered until a full row of
512-pixel blocks is complete, so every write to the compressed staging file is block-aligned (the column
bands are multiples of the block width).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from rsseg_cli.atomic import atomic_file
from rsseg_cli.geo.class_raster import PROB_SCALE
from rsseg_cli.geo.qml import probability_qml, qml_path
from rsseg_cli.geo.raster import SceneInfo
from rsseg_cli.predict.cog import write_cog
from rsseg_cli.predict.writer import BLOCK, _profile


class UncertaintyWriter:
    def __init__(self, scene: SceneInfo, staging: Path):
        self.staging = staging
        self.dst = rasterio.open(staging, "w", **_profile(scene, 1))
        self.dst.scales = (PROB_SCALE,)
        self.dst.set_band_description(1, "uncertainty")
        self.height = scene.height
        self._rows: list[np.ndarray] = []
        self._masks: list[np.ndarray] = []
        self._top = 0
        self._cols = (0, 0)

    def __call__(self, r0: int, r1: int, c0: int, c1: int, score: np.ndarray) -> None:
        if (c0, c1) != self._cols:  # a new column band starts at the top of the scene
            self._flush(final=True)
            self._cols, self._top = (c0, c1), r0
        valid = np.isfinite(score)
        self._rows.append(np.where(valid, np.rint(np.clip(score, 0, 1) * 255), 0).astype(np.uint8))
        self._masks.append(np.where(valid, 255, 0).astype(np.uint8))
        self._flush(final=r1 >= self.height)

    def _flush(self, final: bool) -> None:
        if not self._rows:
            return
        data, mask = np.concatenate(self._rows), np.concatenate(self._masks)
        n = len(data) if final else (len(data) // BLOCK) * BLOCK
        if n:
            window = Window(self._cols[0], self._top, self._cols[1] - self._cols[0], n)
            self.dst.write(data[None, :n], window=window)
            self.dst.write_mask(mask[:n], window=window)
            self._top += n
        self._rows, self._masks = ([data[n:]], [mask[n:]]) if n < len(data) else ([], [])

    def finish(self, dest: Path, compress: str = "deflate") -> Path:
        self._flush(final=True)
        self.dst.close()
        with atomic_file(Path(dest)) as tmp:
            write_cog(self.staging, tmp, "continuous", compress)
        with atomic_file(qml_path(dest)) as tmp:
            tmp.write_text(probability_qml(1, "uncertainty"))
        return Path(dest)

    def abort(self) -> None:
        if not self.dst.closed:
            self.dst.close()
