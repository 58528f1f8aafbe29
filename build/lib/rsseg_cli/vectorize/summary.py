"""What a vectorization wrote, and its short console summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rsseg_cli.progress import console


@dataclass
class VectorizeSummary:
    out: Path
    format: str  # "GPKG" or "GeoJSON"
    layer: str | None  # the GeoPackage layer name
    crs: str  # CRS of the written coordinates
    polygons: int
    per_class: dict[str, int] = field(default_factory=dict)  # class name -> polygons written
    windows: int = 0
    megapixels: float = 0.0
    seconds: float = 0.0
    area_unit: str = "m2"  # "pixels" for a mask without CRS

    @property
    def megapixels_per_s(self) -> float:
        return self.megapixels / max(self.seconds, 1e-9)


def print_vectorize_summary(summary: VectorizeSummary) -> None:
    """Polygons per class, time and file, on stderr (stdout stays clean)."""
    details = [f"layer {summary.layer}"] if summary.layer else []
    where = f"{summary.out} ({', '.join([*details, summary.crs])})"
    console.print(
        f"[bold]{summary.polygons}[/] polygons -> {where} in {summary.seconds:.1f} s "
        f"({summary.windows} windows, {summary.megapixels:.1f} Mpx, {summary.megapixels_per_s:.1f} Mpx/s)",
        highlight=False,
        soft_wrap=True,
    )
    if summary.per_class:
        console.print(
            "  " + ", ".join(f"{name} {n}" for name, n in summary.per_class.items()),
            highlight=False,
            soft_wrap=True,
        )
    if summary.area_unit != "m2":
        console.print("  area_m2 and perimeter_m are in pixel units: the mask has no CRS.", highlight=False)
