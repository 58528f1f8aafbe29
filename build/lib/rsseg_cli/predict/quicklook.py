"""A quick-look PNG: the scene in true colour beside its predicted classes (and the labels when known).

Everything is read decimated (GDAL picks the COG's overviews), so a quick-look of any scene costs a few
megapixels of reading, never the full resolution.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling

from rsseg_cli.atomic import atomic_file
from rsseg_cli.data.normalize import rgb_bands
from rsseg_cli.errors import UserError
from rsseg_cli.geo.class_raster import MASK_NODATA, class_colormap, read_class_table
from rsseg_cli.geo.raster import SceneInfo, open_raster, select_bands


def quicklook_bands(
    scene: SceneInfo, band_map: list[int | None] | None, choice: list[int | str] | None = None
) -> list[int]:
    """The scene bands (1-based) shown as red, green and blue: `choice` (--quicklook-bands, any band of the
    scene by index or name; one band shows grey), else the bands the model takes as red, green and blue (by
    band name or colour interpretation, or model.band_map), else the first three."""
    if choice is not None:
        setting = "--quicklook-bands or predict.quicklook_bands"
        with open_raster(scene.path) as src:
            bands = select_bands(src, choice, scene.path, setting=setting)
        if len(bands) not in (1, 3):
            raise UserError(
                f"{setting} names {len(bands)} bands; give three (red, green, blue), e.g. 4,3,2, or one for grey."
            )
        return bands
    rgb = rgb_bands(band_map) if band_map else None
    return [scene.band_indexes[i] for i in rgb] if rgb else scene.band_indexes[:3]


def _shape(src: rasterio.DatasetReader, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(src.height, src.width))
    return max(1, round(src.height * scale)), max(1, round(src.width * scale))


def _rgb(scene: Path, bands: list[int], max_side: int, nodata: dict[int, float] | None = None) -> np.ndarray:
    """True-colour image (h, w, 3) in [0, 1], each band stretched between its 2nd and 98th percentile;
    `nodata`: declared values (--nodata) by band, invalid like the file's own mask."""
    with rasterio.open(scene) as src:
        h, w = _shape(src, max_side)
        data = src.read(bands, out_shape=(len(bands), h, w), resampling=Resampling.average).astype(np.float32)
        valid = src.read_masks(bands[0], out_shape=(h, w)) > 0
    for i, b in enumerate(bands):
        if nodata and b in nodata:
            valid &= data[i] != np.float32(nodata[b])
    out = np.zeros((h, w, 3), np.float32)
    for i in range(min(3, len(bands))):
        band = data[i]
        good = band[valid & np.isfinite(band)]
        if good.size:
            lo, hi = np.percentile(good, (2, 98))
            out[..., i] = np.clip((band - lo) / max(hi - lo, 1e-6), 0, 1)
    if len(bands) < 3:
        out[..., len(bands) :] = out[..., :1]
    out[~valid] = 1.0  # nodata shows as white
    return out


def _classes(mask: Path, shape: tuple[int, int]) -> tuple[np.ndarray, list[dict]]:
    with rasterio.open(mask) as src:
        values = src.read(1, out_shape=shape, resampling=Resampling.nearest)
        table = read_class_table(src) or []
    return values, table


def _colorize(values: np.ndarray, table: list[dict]) -> np.ndarray:
    lut = np.ones((256, 3), np.float32)  # unknown values and nodata: white
    for v, rgba in class_colormap(table).items():
        if v != MASK_NODATA:
            lut[v] = np.array(rgba[:3]) / 255
    return lut[values]


def write_quicklook(
    scene: Path,
    mask: Path,
    out: Path,
    rgb_bands: list[int] | None = None,
    labels: Path | None = None,
    max_side: int = 1024,
    title: str | None = None,
    nodata: dict[int, float] | None = None,
) -> Path:
    """Scene | [labels |] prediction, side by side, with a legend of the class colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    with rasterio.open(scene) as src:
        bands = rgb_bands or list(range(1, min(3, src.count) + 1))
    image = _rgb(scene, bands, max_side, nodata)
    predicted, table = _classes(mask, image.shape[:2])
    panels = [("scene (bands " + ",".join(map(str, bands)) + ")", image)]
    if labels is not None:
        truth, _ = _classes(labels, image.shape[:2])
        panels.append(("labels", _colorize(truth, table)))
    panels.append(("prediction", _colorize(predicted, table)))
    aspect = image.shape[0] / image.shape[1]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 5.2 * aspect + 1.2), squeeze=False)
    for ax, (name, picture) in zip(axes[0], panels):
        ax.imshow(picture, interpolation="nearest")
        ax.set_title(name)
        ax.set_axis_off()
    handles = [
        Patch(color=np.array(class_colormap(table)[c["id"]][:3]) / 255, label=c["name"]) for c in table
    ]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    with atomic_file(Path(out)) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return Path(out)
