"""What `rsseg predict` is asked to do: scenes (paths, globs, URLs, object-store and /vsi paths, STAC Items,
--scenes-from lists), where each output goes, and whether a scene matches what the checkpoint was trained
on (bands, dtype)."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from rsseg_cli.engine.checkpoint import Checkpoint
from rsseg_cli.errors import UserError
from rsseg_cli.geo.raster import SceneInfo, describe_scene
from rsseg_cli.geo.sources import SceneSource, is_remote, parse_source, read_scene_list, split_assets

RASTER_SUFFIXES = (".tif", ".tiff")
VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json")


@dataclass(frozen=True)
class SceneJob:
    scene: SceneSource  # outputs are named by scene.name
    mask: Path
    probs: Path | None = None
    vector: Path | None = None
    quicklook: Path | None = None

    @property
    def outputs(self) -> list[Path]:
        return [p for p in (self.mask, self.probs, self.vector, self.quicklook) if p is not None]


def expand_scenes(
    args: list[str], scenes_from: Path | None = None, assets: list[str] | str | None = None
) -> list[SceneSource]:
    """Scene arguments (paths, quoted glob patterns, URLs, s3:// gs:// az:// and /vsi paths, STAC Items) and
    the scenes listed in `scenes_from` -> SceneSources, in order, each once. Local files must exist; remote
    ones are checked when GDAL opens them. `assets` chooses the bands of STAC Items."""
    texts = list(args) + (read_scene_list(scenes_from) if scenes_from is not None else [])
    chosen = split_assets(assets)
    found: list[SceneSource] = []
    for arg in texts:
        if not is_remote(arg) and any(ch in arg for ch in "*?["):
            hits = sorted(Path(p) for p in glob.glob(arg, recursive=True) if Path(p).is_file())
            if not hits:
                raise UserError(
                    f"No file matches {arg!r}. Check the pattern (quote it so the shell passes it on)."
                )
            found.extend(parse_source(str(p), chosen) for p in hits)
            continue
        found.append(parse_source(arg, chosen))
    unique: dict[str, SceneSource] = {}
    for s in found:
        unique.setdefault(_identity(s), s)
    return list(unique.values())


def _identity(source: SceneSource) -> str:
    """Two arguments naming the same input (./a.tif and a.tif) are one scene."""
    return str(source.local.resolve()) if source.local is not None else source.uri


def _is_folder(path: Path) -> bool:
    return path.is_dir() or path.suffix == ""


def plan_jobs(
    scenes: list[SceneSource],
    out: Path,
    probs: Path | None,
    vector: Path | None,
    quicklook: Path | None = None,
    overwrite: bool = False,
) -> list[SceneJob]:
    many = len(scenes) > 1
    if many and not _is_folder(out):
        raise UserError(
            f"{len(scenes)} scenes were given but --out {out} is a file. Pass a folder (--out predictions/): "
            "each scene's mask is written there as <scene>.tif."
        )
    if not _is_folder(out) and out.suffix.lower() not in RASTER_SUFFIXES:
        raise UserError(f"--out {out} must be a GeoTIFF (.tif) or a folder.")
    stems: dict[str, SceneSource] = {}
    for s in scenes:
        if s.name in stems:
            raise UserError(
                f"The scenes {stems[s.name]} and {s} share the name {s.name!r}, so their outputs would "
                "overwrite each other. Rename one, or predict them into different folders."
            )
        stems[s.name] = s

    def target(
        option: Path | None, flag: str, suffix: str, allowed: tuple[str, ...], scene: SceneSource
    ) -> Path | None:
        if option is None:
            return None
        if _is_folder(option):
            return option / f"{scene.name}{suffix}"
        if many:
            raise UserError(f"With several scenes, {flag} takes a folder (each scene gets its own file).")
        if option.suffix.lower() not in allowed:
            raise UserError(f"{flag} {option} must end in {' or '.join(allowed)}, or be a folder.")
        return option

    jobs = []
    inputs = {s.local.resolve() for s in scenes if s.local is not None}
    for s in scenes:
        job = SceneJob(
            scene=s,
            mask=out / f"{s.name}.tif" if _is_folder(out) else out,
            probs=target(probs, "--probs", "_probs.tif", RASTER_SUFFIXES, s),
            vector=target(vector, "--vector", ".gpkg", VECTOR_SUFFIXES, s),
            quicklook=target(quicklook, "--quicklook", "_quicklook.png", (".png",), s),
        )
        for p in job.outputs:
            if p.resolve() in inputs:
                raise UserError(f"The output {p} is one of the input scenes; choose another --out.")
        if len({p.resolve() for p in job.outputs}) != len(job.outputs):
            raise UserError(
                f"Two outputs of {s} have the same path; give --out, --probs, --vector and --quicklook distinct names."
            )
        jobs.append(job)
    if not overwrite:
        _refuse_existing(jobs)
    return jobs


def _refuse_existing(jobs: list[SceneJob]) -> None:
    """Refuse the existing outputs (mask, probs, polygons, quick-look) of every scene in one message."""
    existing = [p for job in jobs for p in job.outputs if p.exists()]
    if not existing:
        return
    shown = ", ".join(str(p) for p in existing[:5])
    more = f" and {len(existing) - 5} more" if len(existing) > 5 else ""
    what = "The output {} already exists" if len(existing) == 1 else "These outputs already exist: {}"
    raise UserError(
        f"{what.format(shown)}{more}. Pass --overwrite to replace existing outputs, or choose another --out "
        "(and --probs, --vector, --quicklook)."
    )


def match_scene(
    path: SceneSource | Path | str,
    ckpt: Checkpoint,
    bands: list[int | str] | None,
    pixel_space: bool,
    nodata: list[float] | None = None,
) -> SceneInfo:
    """Describe the scene `path` with the checkpoint's band selection, refusing anything the model was not trained on;
    `nodata`: values declared with --nodata (predict.nodata)."""
    indexes = [int(b["index"]) for b in ckpt.bands]
    if bands is None and indexes != list(range(1, len(indexes) + 1)):
        # Training used a subset of the scene's bands: take the same ones.
        bands = list(indexes)
    scene = describe_scene(path, bands, pixel_space=pixel_space, nodata=nodata)
    ckpt.check_bands(
        scene.band_names,
        str(path),
        how=f"Predict on scenes from the same sensor, or choose {len(ckpt.bands)} bands with --bands "
        "(1-based indices or names).",
    )
    ckpt.check_dtype(scene.dtype, str(path))
    return scene
