"""`rsseg stack`: single-band files of one footprint (Landsat delivers a GeoTIFF per band) -> one
multi-band scene as a GDAL VRT that `rsseg tile` and `rsseg predict` read like any raster."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rsseg_cli.errors import UserError


@dataclass
class StackOptions:
    bands: list[Path]
    out: Path
    names: str | None = None  # comma-separated band descriptions, in the order of `bands`
    overwrite: bool = False
    band_names: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        from rsseg_cli.geo.vrt import check_names

        self.bands = [Path(b) for b in self.bands]
        self.out = Path(self.out)
        if not self.bands:
            raise UserError("No band file given. Usage: rsseg stack B1.tif B2.tif ... --out scene.vrt")
        if self.out.suffix.lower() != ".vrt":
            raise UserError(f"--out {self.out} must be a .vrt file (a GDAL virtual raster), e.g. scene.vrt.")
        if self.out.is_dir():
            raise UserError(f"--out {self.out} is a folder; pass a file name such as {self.out}/scene.vrt.")
        resolved = {b.resolve(): b for b in self.bands}
        if len(resolved) < len(self.bands):
            raise UserError("A band file is given twice; pass each file once.")
        if self.out.resolve() in resolved:
            raise UserError(f"--out {self.out} is one of the band files; choose another name.")
        if self.names is not None:
            self.band_names = check_names(self.names.split(","), len(self.bands))


def run(options: StackOptions) -> Path:
    from rsseg_cli.atomic import atomic_file
    from rsseg_cli.geo.vrt import band_names_from_files, check_stack, describe_band, vrt_xml
    from rsseg_cli.progress import console

    o = options
    if o.out.exists() and not o.overwrite:
        raise UserError(f"{o.out} exists. Pass --overwrite to replace it, or choose another --out.")
    bands = [describe_band(p) for p in o.bands]
    names = o.band_names or band_names_from_files(o.bands)
    check_stack(bands, names)
    with atomic_file(o.out) as tmp:
        tmp.write_text(vrt_xml(bands, names, o.out), encoding="utf-8")
    first = bands[0]
    console.print(
        f"wrote {o.out} ({len(bands)} bands: {', '.join(names)}; {first.width} x {first.height} px, "
        f"{first.dtype})",
        highlight=False,
        soft_wrap=True,
    )
    return o.out
