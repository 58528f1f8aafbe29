"""What `rsseg suggest` writes: the squares (GeoPackage with a QGIS style stored as the layer's default and
beside it as .qml) and a quick-look PNG of the squares on each scene.

The squares are labelled with their rank and outlined in a colour that runs from the first pick (dark red) to
the last (yellow), so an analyst works down the list in QGIS.
"""

from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from rsseg_cli.atomic import atomic_file
from rsseg_cli.geo.gpkg_style import write_default_style
from rsseg_cli.geo.qml import _document, _option_map, _serialize, qml_path

LAYER = "suggestions"


def squares_qml() -> str:
    """Unfilled squares with a thick outline, labelled with their rank (QGIS 3 simple labeling)."""
    root = _document({"hasScaleBasedVisibilityFlag": "0", "minScale": "100000000", "maxScale": "0",
                      "labelsEnabled": "1", "readOnly": "0"})  # fmt: skip
    renderer = ET.SubElement(root, "renderer-v2", {"type": "singleSymbol", "symbollevels": "0",
                                                   "enableorderby": "0", "forceraster": "0"})  # fmt: skip
    symbols = ET.SubElement(renderer, "symbols")
    symbol = ET.SubElement(symbols, "symbol", {"type": "fill", "name": "0", "alpha": "1",
                                               "clip_to_extent": "1", "force_rhr": "0"})  # fmt: skip
    layer = ET.SubElement(
        symbol, "layer", {"class": "SimpleFill", "enabled": "1", "locked": "0", "pass": "0"}
    )
    _option_map(layer, {"color": "255,127,0,40", "style": "solid", "outline_color": "255,80,0,255",
                        "outline_style": "solid", "outline_width": "0.8", "outline_width_unit": "MM",
                        "joinstyle": "miter", "offset": "0,0", "offset_unit": "MM"})  # fmt: skip
    ET.SubElement(renderer, "rotation")
    ET.SubElement(renderer, "sizescale")
    labeling = ET.SubElement(root, "labeling", {"type": "simple"})
    settings = ET.SubElement(labeling, "settings", {"calloutType": "simple"})
    ET.SubElement(settings, "text-style", {"fieldName": "rank", "isExpression": "0", "fontSize": "11",
                                           "fontWeight": "75", "textColor": "255,255,255,255",
                                           "fontSizeUnit": "Point", "textOpacity": "1"})  # fmt: skip
    ET.SubElement(settings, "text-buffer", {"bufferDraw": "1", "bufferSize": "1", "bufferSizeUnits": "MM",
                                            "bufferColor": "0,0,0,255", "bufferOpacity": "1"})  # fmt: skip
    ET.SubElement(settings, "placement", {"placement": "1", "offsetType": "0", "dist": "0"})  # over centroid
    ET.SubElement(settings, "rendering", {"obstacle": "1", "displayAll": "1"})
    ET.SubElement(root, "blendMode").text = "0"
    ET.SubElement(root, "featureBlendMode").text = "0"
    ET.SubElement(root, "layerOpacity").text = "1"
    return _serialize(root)


def write_squares(frame, out: Path) -> Path:
    """The GeoDataFrame of picks as a GeoPackage layer `suggestions` (or GeoJSON), with its style."""
    out = Path(out)
    driver = "GPKG" if out.suffix.lower() == ".gpkg" else "GeoJSON"
    with atomic_file(out) as tmp, warnings.catch_warnings():
        # The temporary name lacks the .gpkg extension GDAL likes to see; the final name has it.
        warnings.filterwarnings("ignore", message=".*extension should be.*")
        frame.to_file(tmp, layer=LAYER if driver == "GPKG" else None, driver=driver)
        if driver == "GPKG":
            write_default_style(tmp, LAYER, squares_qml(), name="rsseg suggestions")
    with atomic_file(qml_path(out)) as tmp:
        tmp.write_text(squares_qml())
    return out


def write_quicklook(
    rgb: np.ndarray, score: np.ndarray | None, picks: list[tuple[int, int, int, int]], scale: float, out: Path,
    title: str,
) -> Path:  # fmt: skip
    """Scene with the squares (rank, row, col, size in scene px; `scale` = preview px per scene px) | the
    uncertainty map (when written), side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    panels = [("scene and suggested squares", rgb)] + ([("uncertainty", score)] if score is not None else [])
    aspect = rgb.shape[0] / rgb.shape[1]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 6 * aspect + 0.8), squeeze=False)
    colors = plt.get_cmap("autumn")(np.linspace(0, 1, max(len(picks), 1)))
    for ax, (name, picture) in zip(axes[0], panels):
        if name == "uncertainty":
            shown = ax.imshow(picture, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
        else:
            ax.imshow(picture, interpolation="nearest")
        for (rank, row, col, size), color in zip(picks, colors):
            ax.add_patch(Rectangle((col * scale, row * scale), size * scale, size * scale, fill=False,
                                   edgecolor=color, linewidth=1.5))  # fmt: skip
            ax.text((col + size / 2) * scale, (row + size / 2) * scale, str(rank), color="white",
                    ha="center", va="center", fontsize=8, fontweight="bold",
                    bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "linewidth": 0})  # fmt: skip
        ax.set_title(name)
        ax.set_axis_off()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_file(Path(out)) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return Path(out)
