"""The active-learning loop's labels: squares an analyst labeled completely (`--label-areas`), and one scene's
polygons from several vector files (`--labels OLD.gpkg+NEW.gpkg`).

Inside a label area a pixel no polygon covers is known to be background (tile.labels.background), or stays
unlabeled when no background class is set; outside every area only the polygons label pixels, so the earlier
rounds' digitized polygons still count while the rest of the scene stays unlabeled (pool for the SSL loss).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rsseg_cli.errors import UserError
from rsseg_cli.geo.raster import SceneInfo, as_raster_path
from rsseg_cli.geo.vector import read_vector

if TYPE_CHECKING:
    from rsseg_cli.config import LabelsConfig
    from rsseg_cli.data.labels import VectorLabels

JOIN = "+"  # --labels OLD.gpkg+NEW.gpkg: one scene labeled by the polygons of both files
POLYGONAL = {"Polygon", "MultiPolygon"}


def split_label_files(given: str | Path) -> list[str]:
    """The files one --labels value names: itself, or the vector files joined with '+'. A raster, or a name
    that is neither an existing file nor a '+' list of vector files, is refused rather than guessed."""
    from rsseg_cli.data.labels import VECTOR_SUFFIXES

    text = str(given)
    if JOIN not in text or Path(text).exists() or "://" in text or text.startswith("/vsi"):
        return [text]  # a file whose name holds '+', or a URL (whose '+' may be an encoded space)
    parts = text.split(JOIN)
    if any(not p for p in parts) or any(Path(p).suffix.lower() not in VECTOR_SUFFIXES for p in parts):
        raise UserError(
            f"--labels {text}: '+' joins vector label files for one scene (e.g. round1.gpkg+round2.gpkg), and "
            f"{text} is neither an existing file nor such a list. Raster labels stay one file per scene."
        )
    return parts


def merged_vector_labels(paths: list[str], scene: SceneInfo, cfg: LabelsConfig) -> VectorLabels:
    """One scene's polygons from several vector files, each read and checked as a --labels file of its own
    (CRS, class field, overlap), then drawn together (largest first, as one file's would be)."""
    import geopandas as gpd
    import pandas as pd

    from rsseg_cli.data.labels import VectorLabels

    parts = [VectorLabels(as_raster_path(p), scene, cfg) for p in paths]
    merged = parts[0]
    # Files may name their class field differently (class, label, ...): the first file's name is kept.
    frames = [
        gpd.GeoDataFrame(
            {merged.field: p.frame[p.field].to_numpy()}, geometry=p.frame.geometry.to_numpy(), crs=scene.crs
        )
        for p in parts
    ]
    merged.frame = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=scene.crs)
    merged.path = Path(JOIN.join(paths))  # messages and the dataset record name every file
    return merged


@functools.lru_cache(maxsize=16)
def _read_areas(path: str) -> Any:
    """An areas file in its own CRS, read once for every scene."""

    if not Path(path).exists():
        raise UserError(f"The label areas {path} do not exist. Check the path (--label-areas).")
    try:
        frame = read_vector(path)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise UserError(
            f"The label areas {path} could not be read ({str(exc).strip()}). Pass a GeoPackage, GeoJSON or "
            "Shapefile of the squares you labeled completely."
        ) from None
    frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
    if not len(frame):
        raise UserError(f"The label areas {path} hold no geometries. Pass the squares you labeled.")
    kinds = set(frame.geometry.geom_type)
    if not kinds <= POLYGONAL:
        raise UserError(
            f"The label areas {path} hold {', '.join(sorted(kinds - POLYGONAL))} geometries; label areas must "
            "be polygons (the squares you labeled completely, e.g. those `rsseg suggest` wrote)."
        )
    if frame.crs is None:
        raise UserError(
            f"The label areas {path} have no CRS, so they cannot be placed on the scenes. Assign one "
            "(ogr2ogr -a_srs EPSG:xxxx)."
        )
    return frame


def areas_on_scene(paths: list[str], scene: SceneInfo) -> tuple[Any | None, set[str]]:
    """The label areas that reach `scene`, in its CRS (None when none does), and which files reached it."""
    import geopandas as gpd
    from rasterio.transform import array_bounds
    from shapely.geometry import box

    extent = box(*array_bounds(scene.height, scene.width, scene.transform))  # west, south, east, north
    pieces, hit = [], set()
    for path in paths:
        frame = _read_areas(str(path)).to_crs(scene.crs)
        geoms = frame.geometry.make_valid()
        geoms = geoms[np.isfinite(geoms.bounds.to_numpy()).all(axis=1) & geoms.intersects(extent)]
        if len(geoms):
            pieces.append(geoms)
            hit.add(str(path))
    if not pieces:
        return None, hit
    import pandas as pd

    areas = gpd.GeoSeries(pd.concat(pieces, ignore_index=True), crs=scene.crs)
    return areas, hit


def check_areas_used(paths: list[str], sources: list[Any]) -> None:
    """An areas file that reaches no scene with vector labels would change nothing: a wrong file or CRS."""
    if not paths:
        return
    vector = [s for s in sources if s is not None and s.kind == "vector"]
    if not vector:
        raise UserError(
            "--label-areas applies to vector labels (--labels FILE.gpkg), but no scene has vector labels. "
            "Raster labels are dense already: leave --label-areas out."
        )
    reached = set().union(*(s.area_files for s in vector))
    for path in paths:
        if str(path) not in reached:
            raise UserError(
                f"The label areas {path} overlap none of the scenes with vector labels, so they would mark "
                "nothing as labeled. Check that the file belongs to these scenes and declares the right CRS."
            )


def area_base(source: VectorLabels, bounds: Any, shape: tuple[int, int], transform: Any) -> np.ndarray:
    """The array polygons are burnt onto: the background class inside the label areas (when one is set),
    unlabeled (255) everywhere else."""
    from rasterio.features import rasterize

    from rsseg_cli.config import IGNORE_INDEX

    base = np.full(shape, IGNORE_INDEX, dtype=np.uint8)
    background = source.cfg.background
    if background is None or source.areas is None:
        return base
    hits = source.area_tree.query(bounds, predicate="intersects")
    if len(hits):
        inside = rasterize(
            ((g, 1) for g in source.areas.to_numpy()[hits]),
            out_shape=shape,
            transform=transform,
            fill=0,
            dtype="uint8",
        )
        base[inside > 0] = background
    return base
