"""A training run: a dataset folder + a configuration (method, model, recipe) -> a run folder with config.yaml,
split files, checkpoints and metrics. `rsseg train` and `rsseg demo` call run_training."""

from __future__ import annotations

import json
import logging
import shutil
from datetime import datetime, timezone
from pathlib import Path

import yaml

from rsseg_cli import __version__
from rsseg_cli.atomic import atomic_file
from rsseg_cli.benchmarks.published import PublishedSplit, published_split
from rsseg_cli.config import Config, config_to_yaml, parse_config
from rsseg_cli.config_layers import parse_labeled
from rsseg_cli.data.chipset import ChipDataset
from rsseg_cli.data.normalize import band_map_by_name, default_band_map
from rsseg_cli.data.subsets import read_split_file, select_labeled, write_split_files
from rsseg_cli.engine import distributed
from rsseg_cli.engine.determinism import configure_determinism
from rsseg_cli.engine.input_setup import check_scaling, legacy_run_config, run_normalization
from rsseg_cli.engine.loggers import check_loggers
from rsseg_cli.engine.precision import resolve_device, resolve_precision
from rsseg_cli.engine.trainer import RunSpec, Trainer, TrainingDiverged
from rsseg_cli.engine.warm_start import check_spec, load_student, load_teacher, read_warm_start, same_classes
from rsseg_cli.engine.warm_start import record as warm_record
from rsseg_cli.errors import UserError
from rsseg_cli.methods import configured_model
from rsseg_cli.runs import clear_incomplete_run, mark_latest, new_run_dir, run_folder_state

log = logging.getLogger("rsseg")


def _check_dataset(data: ChipDataset, cfg: Config, lists: PublishedSplit | None = None) -> list[int | None]:
    if data.num_classes == 0:
        raise UserError(f"The dataset {data.root} has no class table (it was tiled without labels).")
    if cfg.train.validation and lists is None and not len(data.split("val", labeled=True)):
        raise UserError(
            f"The dataset {data.root} has no labeled chips in its val split, so runs cannot be validated. "
            "Tile again with a val fraction (tile.split.fractions) or more labels, or train without "
            "validation with --no-val (the last step's model is kept)."
        )
    bands = data.band_names
    band_map = cfg.model.band_map
    if band_map is None:
        if len(bands) >= 3 and band_map_by_name(bands) is None:
            _warn_first_three(bands)
        return default_band_map(bands)
    if len(band_map) != len(bands):
        raise UserError(
            f"model.band_map has {len(band_map)} entries but the dataset has {len(bands)} bands "
            f"({', '.join(bands)}). Give one entry per band (0/1/2 for red/green/blue, null for others)."
        )
    if any(m not in (0, 1, 2, None) for m in band_map):
        raise UserError(f"model.band_map {band_map} may only hold 0, 1, 2 or null.")
    return list(band_map)


def _warn_first_three(bands: list[str]) -> None:
    """The names do not say which bands are red, green and blue, so the first three take the pretrained
    colour filters: right for RGB-ordered scenes, wrong (and silently so) for B,G,R or NIR-first ones."""
    taken = ", ".join(
        f"{c}={n} (band {i + 1})" for i, (c, n) in enumerate(zip(("red", "green", "blue"), bands))
    )
    example = "[" + ",".join(["2", "1", "0", *["null"] * (len(bands) - 3)]) + "]"
    log.warning(
        "the band names (%s) do not say which bands are red, green and blue, so the first bands are taken: "
        "%s. If the order differs, set it with --set model.band_map=%s (0/1/2 = red/green/blue per band, "
        "null for others; this example is for B,G,R order), or describe the scene's bands as red, green, "
        "blue (band descriptions or RGB colour interpretation) and tile again.",
        ", ".join(bands),
        taken,
        example,
    )


def run_training(
    data_dir: Path,
    cfg: Config,
    out: Path | None = None,
    split_file: Path | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    published: str | None = None,
    init_from: Path | None = None,
) -> Path:
    """`published`: a prepared benchmark's published split (co2s/1_8): its labeled, unlabeled and val lists.
    `init_from`: an earlier run's last.pt or best.pt whose weights (and EMA) a new run starts from, with a fresh
    optimizer and schedule (engine.warm_start); a resumed run ignores it (it already started from it)."""
    device = resolve_device(cfg.train.device)
    configure_determinism(cfg.train.deterministic, device)
    dist = distributed.setup(device)
    if device.type == "cuda" and dist.enabled:
        import torch

        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    if not dist.main:
        log.setLevel(logging.WARNING)  # rank 0 alone reports
    made: list[Path] = []  # the run folder this call created: a disk or memory fault or a damaged input
    try:  # before its first checkpoint removes it (nothing to resume in it)
        return _run(
            data_dir, cfg, out, split_file, resume, device, dist, stop_after, made, published, init_from
        )
    except (OSError, MemoryError, UserError) as exc:
        # A diverged run keeps its folder: its train log is what the user needs to see why.
        if not isinstance(exc, TrainingDiverged):
            for run_dir in made:
                if not any((run_dir / "checkpoints").glob("*.pt")):
                    shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        distributed.teardown()


def _run(
    data_dir, cfg, out, split_file, resume, device, dist, stop_after, made, published, init_from
) -> Path:
    precision = resolve_precision(cfg.train.precision, device)
    data = ChipDataset.open(data_dir)
    if "benchmark" not in data.meta:  # a benchmark recipe's crop is the paper's (its chips are rescaled up)
        cfg = _fit_crop(cfg, int(data.meta["chip_size"]))

    if out is None and resume:
        from rsseg_cli.runs import latest_run

        out = latest_run()
    slug = published.replace("/", "-") if published else cfg.train.labeled
    run_dir = Path(out) if out is not None else new_run_dir(cfg.train.method, slug)
    run_dir = distributed.broadcast_object(run_dir)
    last = run_dir / "checkpoints" / "last.pt"
    # Rank 0 looks (before it writes anything) and every rank acts on its answer.
    try:
        state = run_folder_state(run_dir, resume) if dist.main else None  # refuses a folder not its own
    except UserError as exc:
        state = exc
    if isinstance(state := distributed.broadcast_object(state), UserError):
        raise state
    resuming = state == "resume"
    if resuming:
        saved = parse_config(_saved_config(run_dir / "config.yaml"), str(run_dir / "config.yaml"))
        if _essential(saved) != _essential(cfg) and not resume:
            raise UserError(
                f"{run_dir} holds a run with another configuration. Resume it with --resume (its saved "
                "configuration is used), or choose a new --out."
            )
        cfg = saved.model_copy(
            update={
                "train": saved.train.model_copy(
                    update={"device": cfg.train.device, "workers": cfg.train.workers}
                )
            }
        )
        log.info("resuming the run in %s", run_dir)
        if init_from is not None:
            log.info("--init-from %s is ignored: the resumed run already started from its weights", init_from)
    check_loggers(cfg.train.loggers)  # a missing package stops here, before downloads and the run folder

    if resuming:
        published = _saved_published(run_dir) or published
    lists = published_split(data.meta, set(data.chips["id"]), published, data_dir) if published else None
    band_map = _check_dataset(data, cfg, lists)  # after a resume has restored the run's own configuration
    train_labeled = data.split("train", labeled=True)
    known = set(train_labeled["id"])
    if lists is not None:
        labeled_ids, unlabeled_ids = lists.labeled, lists.unlabeled
    else:
        if resuming:
            labeled_ids = read_split_file(run_dir / "splits" / "labeled.txt", known)
        elif split_file is not None:
            labeled_ids = read_split_file(split_file, known)
        else:
            labeled_ids = select_labeled(
                train_labeled, parse_labeled(cfg.train.labeled), cfg.seed, data.num_classes
            )
        chosen = set(labeled_ids)
        unlabeled_ids = [i for i in data.split("train")["id"] if i not in chosen]
    val_ids = _val_ids(data, lists) if cfg.train.validation else []

    check_scaling(cfg, data.meta)
    # Build (and download) the method's teachers and the model before writing anything, so a failed
    # download leaves no empty run. Teachers are never in a checkpoint: a resumed run loads them again.
    import torch

    torch.manual_seed(cfg.seed)  # the same initial weights for the same seed (and on every DDP process)
    in_chans = len(data.band_names)
    warm = None if resuming or init_from is None else read_warm_start(init_from, data.band_names)
    # A resumed run takes every weight from its checkpoint (nothing to download), and so does a warm start
    # with the same classes; with other classes the new rows start as a fresh run's would.
    from_file = resuming or (warm is not None and same_classes(warm, data.class_names))
    method, model = configured_model(cfg, data.meta["classes"], in_chans, band_map, pretrained=not from_file)
    if warm is not None:
        check_spec(warm, model.spec.model_dump(mode="json"))
        load_student(warm, model, data.class_names)  # before the trainer copies it into the EMA teacher
    norm = run_normalization(cfg, data.meta, band_map, model, method)
    if dist.main and state == "restart":
        clear_incomplete_run(run_dir)
    if dist.main and not resuming:
        made.extend([] if run_dir.exists() else [run_dir])
        run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_file(run_dir / "config.yaml") as tmp:
            tmp.write_text(config_to_yaml(cfg))
        write_split_files(run_dir / "splits", labeled_ids, unlabeled_ids)
        info = {
            "rsseg_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "data": str(Path(data_dir).resolve()),
            "method": cfg.train.method,
            "labeled": lists.name if lists else cfg.train.labeled if split_file is None else str(split_file),
            **({"split": lists.name, "split_lists": lists.source} if lists else {}),
            "labeled_chips": len(labeled_ids),
            "unlabeled_chips": len(unlabeled_ids),
            "val_chips": len(val_ids),
            "world_size": dist.world,
            "device": str(device),
            "precision": precision,
            "normalization": {"scaling": norm.scaling, "stats": norm.stats},
            **(warm_record(warm) if warm is not None else {}),
        }
        with atomic_file(run_dir / "run.json") as tmp:
            tmp.write_text(json.dumps(info, indent=2))
    distributed.barrier()
    if dist.main:
        log.info(
            "run %s: %s, %d labeled / %d unlabeled / %d val chips, %s on %s (%s)",
            run_dir,
            cfg.train.method,
            len(labeled_ids),
            len(unlabeled_ids),
            len(val_ids),
            method.describe(cfg),
            device,
            precision,
        )

    spec = RunSpec(
        cfg,
        run_dir,
        data,
        norm,
        band_map,
        labeled_ids,
        unlabeled_ids,
        val_ids,
        device,
        precision,
        dist,
        on_checkpoint=lambda: mark_latest(run_dir),  # runs/latest moves only to a run with a checkpoint
    )
    trainer = Trainer(spec, model, method)
    if warm is not None:
        load_teacher(warm, trainer.teacher.model if trainer.teacher else None, data.class_names)
        log.info("started from %s (step %d of its run); a fresh schedule", warm.path, warm.ckpt.step)
    if dist.main and not resuming:
        _record_schedule(run_dir / "run.json", trainer)
    if resuming:
        trainer.resume(last)
    best = trainer.fit(stop_at=stop_after)
    if dist.main and not cfg.train.validation:
        log.warning(
            "done: nothing was validated (--no-val); checkpoints/best.pt holds the model of step %s. "
            "Check it with `rsseg evaluate` on labels it was not trained on.",
            best["step"],
        )
    elif dist.main and best["step"] is None:
        log.info("stopped before the first validation; checkpoints in %s", run_dir / "checkpoints")
    elif dist.main:
        log.info(
            "done: best val mIoU %.2f%% at step %s; checkpoints in %s",
            100 * best["mIoU"],
            best["step"],
            run_dir / "checkpoints",
        )
    return run_dir


def _saved_config(path: Path) -> dict:
    try:
        saved = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"The run's {path} is not valid YAML ({exc}); the run cannot be resumed.") from exc
    if not isinstance(saved, dict):
        raise UserError(f"The run's {path} holds no configuration; the run cannot be resumed.")
    return legacy_run_config(saved)


def _record_schedule(path: Path, trainer: Trainer) -> None:
    """run.json records the schedule as trained: batches and epochs differ by method (the supervised
    baseline's recipe doubles the batch and lengthens the epoch), so config.yaml alone does not show it."""
    info = json.loads(path.read_text())
    info.update(
        labeled_batch=trainer.labeled.batch_size,
        unlabeled_batch=trainer.unlabeled.batch_size if trainer.unlabeled is not None else None,
        steps_per_epoch=trainer.steps_per_epoch,
        total_steps=trainer.total_steps,
    )
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(info, indent=2))
    log.info(
        "schedule: %d steps, %d per epoch, %d labeled chips per step and process",
        trainer.total_steps,
        trainer.steps_per_epoch,
        trainer.labeled.batch_size,
    )


def _val_ids(data: ChipDataset, lists: PublishedSplit | None) -> list[str]:
    """The published val list of a published split, else the dataset's labeled val chips."""
    if lists is not None:
        return list(lists.val)
    return data.split("val", labeled=True)["id"].tolist()


def _saved_published(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "run.json").read_text()).get("split")
    except (OSError, ValueError):
        return None


def _fit_crop(cfg: Config, chip_size: int) -> Config:
    """A crop larger than the chips would be mostly padding (518 px crops of 128 px chips cost 16 times the
    compute for the same pixels): train at the chip size instead, and say so."""
    if cfg.train.crop <= chip_size:
        return cfg
    log.warning(
        "train.crop %d is larger than the dataset's %d px chips: training at crop %d instead (set train.crop "
        "to choose; validation and prediction use the checkpoint's crop)",
        cfg.train.crop,
        chip_size,
        chip_size,
    )
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"crop": chip_size})})


def _essential(cfg: Config) -> dict:
    """The parts of a configuration that define a run (device and loader workers may change on resume)."""
    d = cfg.model_dump(mode="json")
    d["train"].pop("device", None)
    d["train"].pop("workers", None)
    return d
