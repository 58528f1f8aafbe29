"""Opening and checking the inputs of vectorization: the class mask, the class selection, the probabilities.

Everything that can be wrong with the inputs is found here, before any window is read, so that a bad call
stops at once with a message that says how to fix it (UserError, exit code 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.crs import CRS
from rasterio.enums import MaskFlags
from rasterio.io import DatasetReader
from rasterio.transform import Affine

from rsseg_cli.errors import UserError
from rsseg_cli.geo.class_raster import CONFIDENCE_BAND, MASK_NODATA, PROB_SCALE, read_class_table
from rsseg_cli.geo.raster import open_raster

INTEGER_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32")


@dataclass(frozen=True)
class MaskInfo:
    """What vectorization needs to know about a class mask; the file is reopened for reading."""

    path: Path
    height: int
    width: int
    dtype: str
    crs: CRS | None
    transform: Affine
    # Values that are never polygonized: 255 by the class-raster contract, and the file's own nodata.
    nodata: tuple[int, ...]
    # The file carries an explicit validity mask (internal mask or alpha) besides its nodata value.
    has_dataset_mask: bool
    names: dict[int, str]  # class id -> name, from the class table (empty when the file has none)
    classes: tuple[dict, ...] = ()  # the class table (ids, names, colours): the polygons' QGIS style

    def name_of(self, class_id: int) -> str:
        return self.names.get(int(class_id), f"class_{int(class_id)}")

    @property
    def pixels(self) -> int:
        return self.height * self.width


def describe_mask(path: Path) -> MaskInfo:
    """Open and check a class mask: one band of integer class ids."""
    path = Path(path)
    with open_raster(path, "mask") as src:
        if src.count != 1:
            hint = (
                " It looks like a probability raster; pass the class mask and give this file with --probs."
                if src.descriptions and src.descriptions[-1] == CONFIDENCE_BAND
                else ""
            )
            raise UserError(
                f"The mask {path} has {src.count} bands; vectorize reads a class mask with one band of class "
                f"ids (as `rsseg predict` writes).{hint}"
            )
        dtype = src.dtypes[0]
        if dtype not in INTEGER_DTYPES:
            raise UserError(
                f"The mask {path} holds {dtype} values; vectorize reads a class mask of integer class ids "
                "(uint8, nodata 255, as `rsseg predict` writes). Pass the class mask, not probabilities or "
                "an image; convert a float mask with gdal_translate -ot Byte."
            )
        nodata = {MASK_NODATA}
        if src.nodata is not None and float(src.nodata).is_integer():
            nodata.add(int(src.nodata))
        flags = src.mask_flag_enums[0]
        has_dataset_mask = MaskFlags.all_valid not in flags and MaskFlags.nodata not in flags
        table = read_class_table(src) or []
        return MaskInfo(
            path=path,
            height=src.height,
            width=src.width,
            dtype=dtype,
            crs=src.crs,
            transform=src.transform,
            nodata=tuple(sorted(nodata)),
            has_dataset_mask=has_dataset_mask,
            names={int(c["id"]): str(c["name"]) for c in table},
            classes=tuple(table),
        )


def resolve_classes(
    names: dict[int, str],
    classes: Sequence[str | int] | None,
    where: str,
    nodata: Sequence[int] = (MASK_NODATA,),
) -> np.ndarray | None:
    """Class ids selected by names or ids (None: all classes), given the class table `names` (id -> name)
    of `where` (named in messages). Unknown names are an error that lists the available ones; so are ids
    outside the class table, when there is one."""
    if classes is None:
        return None
    by_name = {name.lower(): cid for cid, name in names.items()}
    available = ", ".join(f"{name} ({cid})" for cid, name in sorted(names.items())) or "none named"
    ids: list[int] = []
    for item in classes:
        text = str(item).strip()
        if not text:
            continue
        if isinstance(item, int) or text.lstrip("-").isdigit():
            cid = int(text)
            if names and cid not in names:
                raise UserError(
                    f"Class id {cid} is not in the class table of {where}; its classes are: {available}. "
                    "Select classes by these names or ids."
                )
        elif text.lower() in by_name:
            cid = by_name[text.lower()]
        else:
            raise UserError(
                f"Unknown class {text!r} in the class selection; the classes of {where} are: "
                f"{available}. Select classes by these names or ids, e.g. --classes "
                f"{','.join(list(names.values())[:2]) or '1,2'}."
            )
        if cid in nodata:
            raise UserError(f"Class id {cid} is the mask's nodata value and is never vectorized.")
        ids.append(cid)
    if not ids:
        raise UserError("The class selection is empty; name at least one class, or leave the option out.")
    return np.unique(np.asarray(ids, dtype=np.int64))


def check_probs(info: MaskInfo, probs: Path) -> int:
    """Check a probability raster against the mask; returns the 1-based index of its confidence band."""
    probs = Path(probs)
    with open_raster(probs, "probability raster") as src:
        same_grid = (
            (src.height, src.width) == (info.height, info.width)
            and src.transform.almost_equals(info.transform)
            and (src.crs == info.crs if src.crs and info.crs else src.crs is None and info.crs is None)
        )
        if not same_grid:
            raise UserError(
                f"The probability raster {probs} ({src.width} x {src.height} px, {src.crs}) is not on the grid "
                f"of the mask {info.path} ({info.width} x {info.height} px, {info.crs}). Pass the --probs file "
                "written by the same `rsseg predict` run as the mask."
            )
        last = src.descriptions[-1] if src.descriptions else None
        expected = len(info.names) + 1 if info.names else None
        # Accepted: `predict --probs` output (one band per class, then "confidence"), or the confidence band
        # alone (what `predict --vector` stages when no --probs is asked for).
        alone = src.count == 1 and last == CONFIDENCE_BAND
        if not alone and expected is not None and src.count != expected:
            raise UserError(
                f"The probability raster {probs} has {src.count} bands but the mask {info.path} has "
                f"{len(info.names)} classes, so it should have {expected} (one per class, then "
                f"'{CONFIDENCE_BAND}'). Pass the --probs file written with this mask."
            )
        if last != CONFIDENCE_BAND and (last is not None or expected is None):
            raise UserError(
                f"The probability raster {probs} has {src.count} bands and its last band is "
                f"{repr(last) if last else 'not described'}; rsseg reads one band per class then a "
                f"'{CONFIDENCE_BAND}' band, as `rsseg predict --probs` writes."
            )
        if src.dtypes[-1] != "uint8":
            raise UserError(
                f"The probability raster {probs} holds {src.dtypes[-1]} values; rsseg reads uint8 "
                "probabilities (round(255 p)) as `rsseg predict --probs` writes."
            )
        scale, offset = probability_scale(src, src.count)
        if not (np.isclose(scale, PROB_SCALE, rtol=1e-6) and offset == 0):
            raise UserError(
                f"The confidence band of the probability raster {probs} has the GDAL scale {scale:g} and "
                f"offset {offset:g}; rsseg reads uint8 probabilities with scale 1/255 and offset 0 "
                "(p = value / 255), as `rsseg predict --probs` writes."
            )
        return src.count


def probability_scale(src: DatasetReader, band: int) -> tuple[float, float]:
    """(scale, offset) with p = value * scale + offset for a band of a probability raster. Files of rsseg
    0.1.0 carry no scale (GDAL reports 1, offset 0): theirs is 1/255 too."""
    scale = float(src.scales[band - 1]) if src.scales else 1.0
    offset = float(src.offsets[band - 1]) if src.offsets else 0.0
    if scale == 1.0 and offset == 0.0:
        return PROB_SCALE, 0.0
    return scale, offset
