"""Writing and showing the picks: the GeoPackage, the quick-looks and a table on the terminal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rich.table import Table

from rsseg_cli.config import Config
from rsseg_cli.predict.quicklook import _rgb, quicklook_bands
from rsseg_cli.progress import console
from rsseg_cli.suggest.outputs import write_quicklook, write_squares


def write_outputs(result, out: Path, quicklooks: dict[str, Path | None], cfg: Config) -> None:
    write_squares(result.frame, out)
    frame = result.frame
    for info in result.scenes:
        path = quicklooks.get(info.name)
        if path is None:
            continue
        bands = quicklook_bands(info, None, cfg.predict.quicklook_bands)
        rgb = _rgb(info.path, bands, 1024)
        scale = rgb.shape[1] / info.width
        score = None
        cog = result.uncertainty.get(info.name)
        if cog is not None and Path(cog).exists():
            with rasterio.open(cog) as src:
                band = src.read(1, out_shape=rgb.shape[:2], resampling=Resampling.average, masked=True)
            score = np.ma.filled(band.astype(np.float32) / 255.0, np.nan)
        mine = frame[frame["scene"] == info.name]
        picks = [(int(r["rank"]), int(r["row"]), int(r["col"]), int(r["size"])) for _, r in mine.iterrows()]
        write_quicklook(rgb, score, picks, scale, path, f"{info.name}: {len(picks)} suggested squares")


def print_suggestions(result, out: Path) -> None:
    frame = result.frame
    table = Table(title=f"{len(frame)} windows to label next ({result.eligible} eligible)")
    for column in ("rank", "scene", "row", "col", "score", "entropy", "disagreement", "top class"):
        table.add_column(column, justify="right" if column not in ("scene", "top class") else "left")
    for _, r in frame.iterrows():
        d = "-" if r["disagreement"] is None or np.isnan(r["disagreement"]) else f"{r['disagreement']:.3f}"
        table.add_row(str(r["rank"]), str(r["scene"]), str(r["row"]), str(r["col"]), f"{r['score']:.3f}",
                      f"{r['entropy']:.3f}", d, str(r["top_class"]))  # fmt: skip
    console.print(table)
    written = [str(out)] + [str(p) for p in result.uncertainty.values()]
    console.print(f"wrote {', '.join(written)} (disagreement: {result.source})")
