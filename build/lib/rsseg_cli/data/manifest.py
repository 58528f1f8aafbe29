"""The dataset folder's manifest: dataset.yaml, chips.gpkg, chips.csv, split_report.json, config.yaml."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import yaml

from rsseg_cli import __version__
from rsseg_cli.config import IGNORE_INDEX, Config, config_to_yaml
from rsseg_cli.data.chips import Chip
from rsseg_cli.data.classes import ClassTable
from rsseg_cli.data.stats import BandStats
from rsseg_cli.errors import UserError

if TYPE_CHECKING:
    from rsseg_cli.data.tiling import _Job

log = logging.getLogger("rsseg")

DATASET_FILE = "dataset.yaml"
CHIPS_GPKG = "chips.gpkg"
CHIPS_CSV = "chips.csv"
SPLIT_REPORT = "split_report.json"


def chip_table(chips: list[Chip], table: ClassTable | None) -> pd.DataFrame:
    num_classes = len(table) if table else 0
    rows = []
    for c in chips:
        if c.split is None:
            continue
        row = {
            "id": c.id,
            "scene": c.scene,
            "split": c.split,
            "labeled": c.labeled,
            "valid_fraction": c.valid_fraction,
            "row": c.row,
            "col": c.col,
            "height": c.height,
            "width": c.width,
            "image": c.image,
            "label": c.label or "",
            "ignore_pixels": c.ignore_pixels,
        }
        for k in range(num_classes):
            row[f"px_{k}"] = int(c.class_pixels[k])
        rows.append(row)
    return pd.DataFrame(rows)


def write_manifest(
    root: Path,
    jobs: list[_Job],
    chips: list[Chip],
    table: ClassTable | None,
    stats: BandStats,
    cfg: Config,
    report: dict,
) -> None:
    import geopandas as gpd

    frame = chip_table(chips, table)
    frame.to_csv(root / CHIPS_CSV, index=False)
    kept = [c for c in chips if c.split is not None]
    by_scene = {j.scene.name: j.scene for j in jobs}
    # A GeoPackage layer has one CRS: one layer when every scene shares it, else one layer per scene.
    crs_of = {name: (s.crs.to_wkt() if s.crs else None) for name, s in by_scene.items()}
    groups: dict[str, list[str]] = {}
    if len(set(crs_of.values())) == 1:
        groups["chips"] = list(by_scene)
    else:
        groups = {f"chips_{name}": [name] for name in by_scene}
    for layer, names in groups.items():
        rows = frame[frame["scene"].isin(names)]
        geoms = [c.footprint for c in kept if c.scene in names]
        crs = by_scene[names[0]].crs
        gdf = gpd.GeoDataFrame(rows.reset_index(drop=True), geometry=geoms, crs=crs)
        if len(gdf):
            gdf.to_file(root / CHIPS_GPKG, layer=layer, driver="GPKG")

    class_totals = report["splits"]
    dataset = {
        "rsseg_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "chip_size": cfg.tile.chip_size,
        "stride": cfg.tile.effective_stride,
        "edge": cfg.tile.edge,
        "ignore_index": IGNORE_INDEX,
        "dtype": jobs[0].scene.dtype,
        "bands": [
            {"index": i, "name": n} for i, n in zip(jobs[0].scene.band_indexes, jobs[0].scene.band_names)
        ],
        "classes": table.as_dicts() if table else [],
        "statistics": stats.summary(),
        "scenes": {
            j.scene.name: {
                "path": j.scene.given or str(j.scene.path.resolve()),
                "labels": str(j.labels.path.resolve()) if j.labels else None,
                "labels_kind": j.labels.kind if j.labels else None,
                "crs": j.scene.crs_wkt,
                "epsg": j.scene.epsg,
                "transform": list(j.scene.transform)[:6],
                "width": j.scene.width,
                "height": j.scene.height,
                "bands": j.scene.band_indexes,
                "nodata": j.scene.nodata,
                "nodata_source": j.scene.nodata_source,
                "chips": sum(c.scene == j.scene.name for c in kept),
            }
            for j in jobs
        },
        "splits": {s: v["chips"] for s, v in class_totals.items()},
        "chip_files": {"images": "images/<scene>/<id>.tif", "labels": "labels/<scene>/<id>.tif"},
    }
    (root / DATASET_FILE).write_text(yaml.safe_dump(dataset, sort_keys=False, allow_unicode=True))
    (root / SPLIT_REPORT).write_text(json.dumps(report, indent=2))
    (root / "config.yaml").write_text(config_to_yaml(cfg))


def read_dataset(root: Path) -> tuple[dict, pd.DataFrame]:
    """dataset.yaml and the chip table of a dataset folder written by `rsseg tile`."""
    root = Path(root)
    meta_path = root / DATASET_FILE
    if not meta_path.exists():
        raise UserError(
            f"{root} is not an rsseg dataset (no {DATASET_FILE}). Create one with "
            f"`rsseg tile SCENE.tif --labels LABELS.tif --out {root}`."
        )
    # Checked here, before any command writes anything: a damaged dataset is named, with how to rebuild it.
    from rsseg_cli.data.dataset_check import load_chips, load_meta

    meta = load_meta(root, meta_path)
    return meta, load_chips(root, root / CHIPS_CSV, meta)
