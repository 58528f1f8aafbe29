"""`rsseg demo`: the main job end to end on a generated sample scene, small enough for 2 CPU cores.

sample scene -> tile -> train (UniMatch V2 at 1/8 labels) -> evaluate -> predict the whole scene (COG mask,
polygons) -> score the map against the scene's labels, whose mIoU the quick-look PNG's title carries (a map
from a few hundred steps on random weights must not pass for a good one), with the settings of
configs/demo.yaml. Each phase's wall and CPU seconds are logged at the end (bench/demo_bench.py prints them). The model is a small ViT with random
initial weights (`weights: none`): the demo must run offline, and it shows the pipeline, not pretrained
accuracy. With network access, `rsseg train` uses the real DINOv2-S weights by default.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rsseg_cli.config import Config, load_config, reference_config
from rsseg_cli.errors import UserError

log = logging.getLogger("rsseg")

DEMO_CONFIG = "demo.yaml"  # in rsseg_cli/configs/


@dataclass
class DemoOptions:
    out: Path = Path("demo")
    size: int = 1536  # side of the generated scene in pixels
    steps: int = 500  # training steps
    overwrite: bool = False
    config: Config = field(init=False)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise UserError(f"--steps {self.steps} must be 1 or more.")
        self.config = load_config(
            reference_config(DEMO_CONFIG),
            [f"train.iterations={self.steps}", f"train.eval_every={max(1, self.steps // 3)}"],
        )
        chip = self.config.tile.chip_size
        if self.size < 4 * chip:
            raise UserError(
                f"--size {self.size} is too small for the demo's {chip}-pixel chips and its train/val/test "
                f"split; use at least {4 * chip} (the default is 1536)."
            )


@dataclass(frozen=True)
class PhaseTime:
    name: str
    wall_s: float
    cpu_s: float  # user + system seconds of this process and its finished children (data loader workers)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its children that have exited."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


@contextmanager
def timed(name: str, times: list[PhaseTime]) -> Iterator[None]:
    wall, cpu = time.perf_counter(), cpu_seconds()
    yield
    times.append(PhaseTime(name, time.perf_counter() - wall, cpu_seconds() - cpu))


def run(options: DemoOptions) -> list[PhaseTime]:
    """Run the demo; returns the wall and CPU seconds of each phase (bench/demo_bench.py prints them)."""
    from rsseg_cli.data.summary import print_tile_summary
    from rsseg_cli.data.tiling import tile_scenes
    from rsseg_cli.engine.evaluate import evaluate_chips, print_chip_metrics
    from rsseg_cli.engine.run import run_training
    from rsseg_cli.evaluation.scene import evaluate_scene
    from rsseg_cli.predict.quicklook import write_quicklook
    from rsseg_cli.predict.run import predict_scenes, print_predict_summary
    from rsseg_cli.progress import console, progress
    from rsseg_cli.synthetic import generate_sample, sample_total_blocks

    out, cfg = Path(options.out), options.config
    data, run_dir = out / "data", out / "runs" / "demo"
    if (data.exists() or run_dir.exists()) and not options.overwrite:
        raise UserError(f"{out} already holds a demo. Pass --overwrite to run it again, or choose --out.")
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    sample_dir = out / "sample"
    scene, labels = sample_dir / "scene.tif", sample_dir / "scene_labels.tif"
    times: list[PhaseTime] = []

    console.rule("[bold]1/6 sample scene")
    with timed("sample", times):
        if scene.exists() and labels.exists():
            log.info("reusing %s", scene)
        else:
            n = options.size
            with progress("sample", sample_total_blocks(n, n), unit="blocks") as bar:
                generate_sample(
                    sample_dir, height=n, width=n, seed=cfg.seed, name="scene", on_block=bar.advance
                )

    console.rule("[bold]2/6 tile")
    with timed("tile", times):
        print_tile_summary(tile_scenes([scene], [labels], data, cfg, overwrite=options.overwrite))

    steps, share = cfg.train.iterations, cfg.train.labeled
    console.rule(
        f"[bold]3/6 train (UniMatch V2, {share} of the labels, small random-init ViT, {steps} steps)"
    )
    with timed("train", times):
        run_training(data, cfg, out=run_dir)

    console.rule("[bold]4/6 evaluate (val split)")
    best = run_dir / "checkpoints" / "best.pt"
    e = cfg.evaluate
    with timed("evaluate", times):
        print_chip_metrics(evaluate_chips(best, data, e.split, None, e.device, e.precision, e.student))

    console.rule("[bold]5/6 predict the whole scene (mask, polygons)")
    pred = out / "predictions"
    mask, polygons, quicklook = pred / "scene_mask.tif", pred / "scene_polygons.gpkg", pred / "quicklook.png"
    with timed("predict", times):
        print_predict_summary(
            predict_scenes(
                [str(scene)], mask, best, vector=polygons, settings=cfg.predict, overwrite=options.overwrite
            )
        )

    # The map against the scene's own labels (the labeled chips included): the number the quick-look shows,
    # so that nobody reads a half-trained map as a good one.
    console.rule("[bold]6/6 the map against the scene's labels, and the quick-look")
    with timed("check", times):
        metrics = evaluate_scene(mask, labels, out=pred / "scene_vs_labels", overwrite=True)
        title = (
            f"demo: {steps} steps from random weights, {share} of the labels; "
            f"map vs labels: mIoU {100 * metrics['mean_iou']:.0f} %, OA {100 * metrics['overall_accuracy']:.0f} %"
        )
        write_quicklook(scene, mask, quicklook, labels=labels, title=title)
    log.info("quick-look title: %s", title)
    console.print(
        f"\nEverything is in [bold]{out}[/]: the dataset in {data}, the run in {run_dir} (checkpoints, "
        f"metrics.jsonl, plots/training_curves.png, eval/val/confusion_matrix.png), and the prediction in "
        f"{pred}: {mask.name} (Cloud-Optimized GeoTIFF with colormap), {polygons.name}, {quicklook.name} and "
        f"scene_vs_labels/ (its metrics against the labels).\n"
        f"Next: [bold]cd {out} && rsseg predict sample/scene.tif --out mask.tif[/] uses this run's best "
        "checkpoint (runs/latest) by default."
    )
    log.info(
        "demo took %.0f s (%.0f CPU s): %s",
        sum(t.wall_s for t in times),
        sum(t.cpu_s for t in times),
        ", ".join(f"{t.name} {t.wall_s:.0f} s" for t in times),
    )
    return times
