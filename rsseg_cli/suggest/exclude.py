"""Where labels already are: windows that must not be suggested again, and whose features selection spreads
away from.

`--exclude` takes a dataset folder (its labeled chips, placed with each scene's transform from dataset.yaml) or
a vector file of labeled areas (any CRS). Footprints are reprojected to the scene's CRS and put in its pixel
grid; a candidate window that shares any area with one is ineligible, and one mostly inside labeled footprints
(half its area or more) is a known window.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import shapely
from affine import Affine

from rsseg_cli.errors import UserError
from rsseg_cli.geo.raster import SceneInfo, same_crs
from rsseg_cli.geo.vector import read_vector
from rsseg_cli.suggest.candidates import SceneCandidates

KNOWN_SHARE = 0.5  # a window at least this much inside labeled footprints counts as labeled


def labeled_footprints(sources: list[Path]) -> list:
    """GeoDataFrames of labeled footprints (each with its CRS) from dataset folders and vector files."""

    frames: list = []
    for src in sources:
        src = Path(src)
        if (src / "dataset.yaml").is_file():
            frames.extend(_dataset_chips(src))
        elif src.is_file():
            try:
                frame = read_vector(src)
            except Exception as exc:  # pyogrio/fiona raise their own types
                raise UserError(f"--exclude {src} is not a readable vector file ({exc}).") from None
            polygons = frame[frame.geometry.notna() & frame.geom_type.isin(["Polygon", "MultiPolygon"])]
            if polygons.empty:
                raise UserError(
                    f"--exclude {src} holds no polygons. Pass the dataset folder of `rsseg tile` or a "
                    "GeoPackage of labeled areas (polygons)."
                )
            if polygons.crs is None:
                raise UserError(f"--exclude {src} has no CRS: set one in QGIS (Layer > Set CRS) and save it.")
            frames.append(polygons[["geometry"]])
        else:
            raise UserError(
                f"--exclude {src} is neither a dataset folder (with dataset.yaml) nor a vector file."
            )
    return frames


def _dataset_chips(root: Path) -> list:
    import geopandas as gpd
    import pandas as pd
    import yaml
    from rasterio.crs import CRS

    meta = yaml.safe_load((root / "dataset.yaml").read_text())
    chips = pd.read_csv(root / "chips.csv")
    labeled = chips[chips["labeled"].astype(str).str.lower() == "true"]
    frames = []
    for name, rows in labeled.groupby("scene"):
        scene = (meta.get("scenes") or {}).get(str(name))
        if not scene or not scene.get("crs"):
            continue  # a prepared benchmark's chips have no scene grid: nothing to place
        boxes = shapely.box(
            rows["col"], rows["row"], rows["col"] + rows["width"], rows["row"] + rows["height"]
        )
        geoms = _apply(Affine(*scene["transform"][:6]), boxes)
        frames.append(gpd.GeoDataFrame(geometry=geoms, crs=CRS.from_user_input(scene["crs"])))
    return frames


def mark(cands: SceneCandidates, scene: SceneInfo, footprints: list) -> tuple[np.ndarray, np.ndarray]:
    """(excluded, known) boolean arrays over the scene's candidates."""
    n = len(cands)
    excluded, known = np.zeros(n, bool), np.zeros(n, bool)
    pixel_boxes = []
    inverse = ~scene.transform
    for frame in footprints:
        if frame.empty:
            continue
        if scene.crs is not None and frame.crs is not None and not same_crs(frame.crs, scene.crs):
            frame = frame.to_crs(scene.crs)
        pixel_boxes.append(_apply(inverse, np.asarray(frame.geometry.values)))
    if not pixel_boxes or n == 0:
        return excluded, known
    labeled = np.concatenate(pixel_boxes)
    s = cands.size
    windows = shapely.box(cands.cols, cands.rows, cands.cols + s, cands.rows + s)
    tree = shapely.STRtree(labeled)
    win, lab = tree.query(windows, predicate="intersects")
    if win.size:
        area = shapely.area(shapely.intersection(windows[win], labeled[lab]))
        touching = area > 0.5  # sharing an edge is not overlapping
        excluded[win[touching]] = True
        covered = np.bincount(win, weights=area, minlength=n)
        known = covered >= KNOWN_SHARE * s * s
    return excluded, known


def _apply(transform: Affine, geoms: np.ndarray) -> np.ndarray:
    """Geometries through an affine transform (pixel <-> map coordinates), vectorized."""
    return shapely.transform(geoms, lambda xy: np.column_stack(transform * (xy[:, 0], xy[:, 1])))


def labeled_class_pixels(sources: list[Path], classes: list[dict]) -> np.ndarray | None:
    """Labeled pixels per class (in `classes` order, matched by name) of the labeled chips of the dataset
    folders among `sources`; None when no dataset says (vector files of areas do not)."""
    import pandas as pd
    import yaml

    names = [c["name"] for c in classes]
    total, found = np.zeros(len(names)), False
    for root in map(Path, sources):
        if not (root / "dataset.yaml").is_file():
            continue
        meta = yaml.safe_load((root / "dataset.yaml").read_text())
        chips = pd.read_csv(root / "chips.csv")
        labeled = chips[chips["labeled"].astype(str).str.lower() == "true"]
        for c in meta.get("classes") or []:
            column = f"px_{c['id']}"
            if c["name"] in names and column in labeled:
                total[names.index(c["name"])] += float(labeled[column].sum())
                found = True
    return total if found else None


def rarity_weights(pixels: np.ndarray, floor: float = 0.01) -> np.ndarray:
    """Per class, (labeled share + floor)^-1/2 over its largest: 1 for classes the labels lack, small for the
    ones they are full of (class-balanced acquisition, Cai et al. 2021)."""
    share = pixels / max(float(pixels.sum()), 1.0)
    w = (share + floor) ** -0.5
    return w / w.max()
