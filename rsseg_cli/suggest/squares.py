"""The picks as a table of squares: geometry in the scene's CRS, rank, score and its components, and the
predicted class shares (what the analyst should expect to find in the square)."""

from __future__ import annotations

import logging

import numpy as np

from rsseg_cli.geo.raster import SceneInfo, same_crs
from rsseg_cli.suggest.candidates import SceneCandidates
from rsseg_cli.suggest.scores import COMPONENTS
from rsseg_cli.suggest.select import Pool

log = logging.getLogger("rsseg")


def squares_frame(
    pool: Pool, picks: list[int], cands: list[SceneCandidates], infos: list[SceneInfo], classes: list[dict],
    novelty: np.ndarray | None = None,
    rarity: np.ndarray | None = None,
):  # fmt: skip
    """A GeoDataFrame, best first. Squares of scenes in another CRS than the first scene's are reprojected
    into it (a GeoPackage layer has one CRS), with a warning."""
    import geopandas as gpd
    import shapely

    offsets = np.cumsum([0] + [len(c) for c in cands])
    crs = infos[0].crs
    rows, frames = [], []
    for rank, i in enumerate(picks, start=1):
        s = int(pool.scene[i])
        local = i - offsets[s]
        c, info = cands[s], infos[s]
        shares = c.class_shares()[local]
        record = {
            "rank": rank,
            "scene": info.name,
            "row": int(c.rows[local]),
            "col": int(c.cols[local]),
            "size": c.size,
            "score": round(float(pool.score[i]), 6),
        }
        for name in COMPONENTS:
            record[name] = (
                round(float(c.mean(name)[local]), 6) if name != "disagreement" or c.has_disagreement else None
            )
        record["novelty"] = None if novelty is None or np.isnan(novelty[i]) else round(float(novelty[i]), 6)
        record["rarity"] = None if rarity is None else round(float(rarity[i]), 6)
        record["valid_fraction"] = round(float(c.valid_fraction[local]), 4)
        record["top_class"] = classes[int(np.argmax(shares))]["name"] if shares.sum() > 0 else None
        for k, cls in enumerate(classes):
            record[f"share_{cls['name']}"] = round(float(shares[k]), 4)
        rows.append(record)
        t = info.transform
        x0, y0 = t * (record["col"], record["row"])
        x1, y1 = t * (record["col"] + c.size, record["row"] + c.size)
        frames.append((s, shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))))
    geoms = []
    for s, geom in frames:
        if infos[s].crs is not None and crs is not None and not same_crs(infos[s].crs, crs):
            log.warning("squares of %s are reprojected into the CRS of %s", infos[s].name, infos[0].name)
            geom = gpd.GeoSeries([geom], crs=infos[s].crs).to_crs(crs).iloc[0]
        geoms.append(geom)
    columns = [
        "rank",
        "scene",
        "row",
        "col",
        "size",
        "score",
        *COMPONENTS,
        "novelty",
        "valid_fraction",
        "top_class",
    ]
    return gpd.GeoDataFrame(rows, columns=columns + [f"share_{c['name']}" for c in classes] if not rows else None,
                            geometry=geoms, crs=crs)  # fmt: skip
