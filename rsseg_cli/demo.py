"""`rsseg demo`: the main job end to end on a generated sample scene, small enough for 2 CPU cores."""

from __future__ import annotations

import logging
from pathlib import Path

from rsseg_cli.config import load_config
from rsseg_cli.errors import UserError
from rsseg_cli.progress import console

log = logging.getLogger("rsseg")

# Small chips keep the demo to a few minutes on a laptop; everything else is the product's defaults.
DEMO_SET = ["tile.chip_size=256", "tile.split.block_size=2"]


def run_demo(out: Path, size: int, overwrite: bool) -> None:
    from rsseg_cli.data.tiling import tile_scenes
    from rsseg_cli.report import print_tile_summary
    from rsseg_cli.sample_cmd import run_sample

    out = Path(out)
    data = out / "data"
    if data.exists() and not overwrite:
        raise UserError(f"{out} already holds a demo. Pass --overwrite to run it again, or choose --out.")
    sample_dir = out / "sample"
    scene, labels = sample_dir / "scene.tif", sample_dir / "scene_labels.tif"
    console.rule("[bold]1/2 sample scene")
    if scene.exists() and labels.exists() and not overwrite:
        log.info("reusing %s", scene)
    else:
        run_sample(sample_dir, str(size), 4, "uint16", "EPSG:32633", None, None, 0, "scene")
    console.rule("[bold]2/2 tile")
    cfg = load_config(overrides=DEMO_SET)
    result = tile_scenes([scene], [labels], data, cfg, overwrite=overwrite)
    print_tile_summary(result)
    console.print(
        f"\nDataset written to [bold]{data}[/] (dataset.yaml, chips.gpkg, chips.csv, images/, labels/).\n"
        "[yellow]This version of rsseg stops after tiling:[/] training, evaluation and prediction come in the "
        "next releases, and the demo will run them here."
    )
