"""`rsseg demo`: the main job end to end on a generated sample scene, small enough for 2 CPU cores.

sample scene -> tile -> train (UniMatch V2 at 1/8 labels) -> evaluate -> predict the whole scene (COG mask,
polygons, quick-look PNG). The model is a small ViT with random
initial weights (`weights: none`): the demo must run offline, and it shows the pipeline, not pretrained
accuracy. With network access, `rsseg train` uses the real DINOv2-S weights by default.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rsseg_cli.config import load_config
from rsseg_cli.errors import UserError
from rsseg_cli.progress import console

log = logging.getLogger("rsseg")

DEMO_TILE = ["tile.chip_size=128", "tile.split.block_size=2"]
DEMO_TRAIN = [
    "model.weights=none",
    "model.backbone_kwargs={depth: 4, embed_dim: 96, num_heads: 3, patch_size: 16, img_size: 96}",
    # A slim head: the DPT's full-resolution convolutions dominate CPU time for small backbones.
    "model.head_features=32",
    "model.head_channels=[24, 48, 96, 96]",
    "train.method=unimatch-v2",
    "train.labeled=1/8",
    "train.crop=96",
    # A short run: an EMA horizon of ~100 steps instead of the recipe's ~250 (tuned for 40k-step runs).
    "train.ema_decay=0.99",
    "train.batch_size=4",
    "train.batch_size_unlabeled=4",
    "train.lr=2e-4",
    "train.head_lr_mult=10",
    "train.log_every=20",
]


def run_demo(out: Path, size: int, overwrite: bool, steps: int = 500) -> None:
    from rsseg_cli.data.tiling import tile_scenes
    from rsseg_cli.evaluate_cmd import run_evaluate
    from rsseg_cli.predict.quicklook import write_quicklook
    from rsseg_cli.predict_cmd import run_predict
    from rsseg_cli.report import print_tile_summary
    from rsseg_cli.sample_cmd import run_sample
    from rsseg_cli.train import run_training

    out = Path(out)
    data, run = out / "data", out / "runs" / "demo"
    if (data.exists() or run.exists()) and not overwrite:
        raise UserError(f"{out} already holds a demo. Pass --overwrite to run it again, or choose --out.")
    if run.exists():
        import shutil

        shutil.rmtree(run)
    sample_dir = out / "sample"
    scene, labels = sample_dir / "scene.tif", sample_dir / "scene_labels.tif"

    console.rule("[bold]1/5 sample scene")
    if scene.exists() and labels.exists():
        log.info("reusing %s", scene)
    else:
        run_sample(sample_dir, str(size), 4, "uint16", "EPSG:32633", None, None, 0, "scene")

    console.rule("[bold]2/5 tile")
    result = tile_scenes([scene], [labels], data, load_config(overrides=DEMO_TILE), overwrite=overwrite)
    print_tile_summary(result)

    console.rule("[bold]3/5 train (UniMatch V2, 1/8 of the labels, small random-init ViT)")
    cfg = load_config(
        overrides=[*DEMO_TRAIN, f"train.iterations={steps}", f"train.eval_every={max(1, steps // 3)}"]
    )
    run_training(data, cfg, out=run)

    console.rule("[bold]4/5 evaluate (val split)")
    run_evaluate(run / "checkpoints" / "best.pt", data, "val", None, False, "auto", "auto")
    console.rule("[bold]5/5 predict the whole scene (mask, polygons, quick-look)")
    pred = out / "predictions"
    mask, polygons, quicklook = pred / "scene_mask.tif", pred / "scene_polygons.gpkg", pred / "quicklook.png"
    run_predict([str(scene)], mask, run / "checkpoints" / "best.pt", vector=polygons)
    write_quicklook(scene, mask, quicklook, labels=labels, title="demo: sample scene, labels, prediction")
    console.print(
        f"\nEverything is in [bold]{out}[/]: the dataset in {data}, the run in {run} (checkpoints, metrics.jsonl, "
        f"plots/training_curves.png, eval/val/confusion_matrix.png), and the prediction in {pred}: "
        f"{mask.name} (Cloud-Optimized GeoTIFF with colormap), {polygons.name} and {quicklook.name}.\n"
        f"Next: [bold]cd {out} && rsseg predict sample/scene.tif --out mask.tif[/] uses this run's best "
        "checkpoint (runs/latest) by default."
    )
