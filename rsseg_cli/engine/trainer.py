"""The training loop, once for every method: optimizer groups, poly schedule, EMA teacher, autocast and loss
scaling, gradient clipping, DDP, validation, checkpoints, resume, logging and plots."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from rsseg_cli.config import Config
from rsseg_cli.data.chipset import ChipDataset, LabeledTrain, UnlabeledTrain
from rsseg_cli.data.normalize import Normalization, rgb_bands
from rsseg_cli.engine.checkpoint import Checkpoint
from rsseg_cli.engine.distributed import Dist, all_reduce_mean, barrier
from rsseg_cli.engine.eval_settings import eval_settings
from rsseg_cli.engine.loaders import BatchStream
from rsseg_cli.engine.loggers import ExperimentLoggers, experiment_loggers
from rsseg_cli.engine.precision import autocast, grad_scaler
from rsseg_cli.engine.schedule import EMATeacher, poly_lr
from rsseg_cli.engine.stop import NullBar, StopRequests
from rsseg_cli.engine.validate import confusions_on_chips
from rsseg_cli.errors import Interrupted, UserError
from rsseg_cli.methods.base import Method
from rsseg_cli.models.spec import variants_of
from rsseg_cli.progress import progress

log = logging.getLogger("rsseg")


class TrainingDiverged(UserError):
    """A NaN or infinite loss: training stops; the message says which checkpoint, if any, the run holds."""

    exit_code = 1


@dataclass
class RunSpec:
    """Everything the loop needs besides the model and the method."""

    cfg: Config
    run_dir: Path
    data: ChipDataset
    norm: Normalization
    band_map: list[int | None]
    labeled_ids: list[str]
    unlabeled_ids: list[str]
    val_ids: list[str]
    device: torch.device
    precision: str
    dist: Dist = field(default_factory=Dist)
    # Called (main process) after each save of checkpoints/last.pt: runs/latest moves to a run only then.
    on_checkpoint: Callable[[], None] | None = None


MAX_VALIDATIONS = 20  # default validations per run, at most (train.eval_every overrides)


class Trainer:
    def __init__(self, spec: RunSpec, model: nn.Module, method: Method):
        self.spec = spec
        cfg = spec.cfg.train
        self.cfg = cfg
        # Validation scores as the run's evaluation will (the recipe's protocol, its excluded classes).
        self.scoring = eval_settings(spec.cfg, spec.data.meta, spec.data.class_names)
        self.method = method
        self.device = spec.device
        method.setup(self.device, spec.precision)
        self.model = model.to(self.device)
        self.student: nn.Module = self.model
        if spec.dist.enabled:
            ids = [spec.device.index] if spec.device.type == "cuda" else None
            self.student = DistributedDataParallel(self.model, device_ids=ids)
        self.teacher = EMATeacher(self.model, cfg.ema_decay) if method.uses_ema else None
        # The backbone learns at lr, the head (and the other groups a model adds) at the method's multiple.
        groups = self.model.param_groups()
        for group in groups:
            group["lr"] = cfg.lr * method.lr_multiplier(group["name"], cfg.head_lr_mult)
        self.optimizer = torch.optim.AdamW(
            groups,
            lr=cfg.lr,
            betas=(0.9, 0.999),
            weight_decay=cfg.weight_decay,
        )
        self.base_lrs = [g["lr"] for g in groups]
        self.scaler = grad_scaler(spec.precision, self.device)
        seed, d = spec.cfg.seed, spec.dist
        labeled = LabeledTrain(spec.data, spec.labeled_ids, spec.norm, cfg.crop, seed, cfg.rescale)
        # The supervised baseline draws its recipe's batch and epoch (methods.md), not the SSL labeled batch.
        batch, epoch_samples = method.labeled_stream(cfg)
        self.labeled = BatchStream(
            labeled, batch, seed, d.rank, d.world, cfg.workers, self.device, epoch_samples
        )
        self.unlabeled = self.mix_source = None
        if method.uses_unlabeled:
            if not spec.unlabeled_ids:
                raise UserError(
                    f"The method {method.name} needs unlabeled chips but every training chip is labeled. Use "
                    "--labeled with a ratio below 1, add scenes with --unlabeled when tiling, or use "
                    "--method supervised."
                )

            def unlabeled_stream(seed: int) -> BatchStream:
                chips = UnlabeledTrain(
                    spec.data,
                    spec.unlabeled_ids,
                    spec.norm,
                    cfg.crop,
                    rgb_bands(spec.band_map),
                    seed,
                    cfg.rescale,
                )
                return BatchStream(
                    chips, cfg.batch_size_unlabeled, seed, d.rank, d.world, cfg.workers, self.device
                )

            self.unlabeled = unlabeled_stream(seed + 1)
            # Methods that paste CutMix boxes from a second, independent unlabeled batch (Co2S, as its
            # release's zip(loader_u, loader_u)) get one with its own order and augmentations.
            if method.mix_from_second_batch:
                self.mix_source = unlabeled_stream(seed + 2)
            if problem := method.cutmix_partner_problem(cfg.batch_size_unlabeled, len(spec.unlabeled_ids)):
                log.warning(problem)
        # An epoch is a pass over the unlabeled pool (UniMatch's definition), or the labeled stream's epoch.
        epoch_stream = self.unlabeled or self.labeled
        self.steps_per_epoch = epoch_stream.batches_per_epoch
        self.total_steps = cfg.iterations or max(1, math.ceil(cfg.epochs * self.steps_per_epoch))
        # Every epoch, but at most ~MAX_VALIDATIONS times: a small dataset's epoch of 2 steps would otherwise
        # spend more time validating than training.
        self.eval_every = cfg.eval_every or max(self.steps_per_epoch, self.total_steps // MAX_VALIDATIONS)
        self.step = 0
        self.saved_step: int | None = None  # the step checkpoints/last.pt holds, once one is written
        self._announced = False  # spec.on_checkpoint called
        self.best = {"mIoU": -1.0, "step": None}
        self.ckpt_dir = spec.run_dir / "checkpoints"
        self.loggers = ExperimentLoggers()  # train.loggers, while fit() runs
        self._plotted_at = -float("inf")  # time.monotonic() of the last training-curves PNG

    # ----------------------------------------------------------------------------------------------
    # State

    def _inference_model(self) -> nn.Module:
        """The weights that are validated and shipped: the EMA teacher where the method has one."""
        return self.teacher.model if self.teacher is not None else self.model

    def checkpoint(self) -> Checkpoint:
        """What best.pt holds: everything prediction needs."""
        spec, model = self.spec, self._inference_model()
        meta = spec.data.meta
        return Checkpoint(
            model=model.spec.model_dump(mode="json"),
            state_dict=model.state_dict(),
            method=self.method.name,
            classes=meta["classes"],
            bands=meta["bands"],
            dtype=meta["dtype"],
            normalization=spec.norm.to_dict(),
            chip_size=meta["chip_size"],
            crop=self.cfg.crop,
            step=self.step,
            best=dict(self.best),
            # A model with several predictions: the one that validated best, which prediction uses by default.
            variant=self.best.get("variant"),
        )

    def save_last(self) -> None:
        if not self.spec.dist.main:
            self.saved_step = self.step  # every process saves at the same steps; rank 0 writes
            return
        ckpt = self.checkpoint()
        ckpt.train_state = {
            "model": self.model.state_dict(),
            "ema": self.teacher.model.state_dict() if self.teacher else None,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "best": self.best,
            "config": self.spec.cfg.model_dump(mode="json"),
        }
        ckpt.save(self.ckpt_dir / "last.pt")
        self.saved_step = self.step
        if not self._announced and self.spec.on_checkpoint is not None:
            self.spec.on_checkpoint()  # once: the first checkpoint this process writes (new run or resume)
        self._announced = True

    def resume(self, path: Path) -> None:
        state = Checkpoint.read(path, map_location=self.device).train_state
        if state is None:
            raise UserError(
                f"{path} holds no training state (best.pt is for prediction); resume from last.pt."
            )
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as exc:  # e.g. the dataset's class table changed since the run started
            detail = next((ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()), str(exc)[:200])
            raise UserError(
                f"{path} does not fit the model this run now builds ({detail}). The dataset probably changed "
                "since the run started (another class table or bands). Start a new run with another --out "
                "(--init-from the old checkpoint to keep its weights), or resume with the original dataset."
            ) from None
        if self.teacher is not None and state["ema"] is not None:
            self.teacher.model.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = self.saved_step = int(state["step"])
        self.best = dict(state["best"])
        if self.best.get("student") and not self.best.get("variant"):
            self.best["variant"] = self.best.pop("student")  # a run started by rsseg 0.1.0
        if variants_of(self.model) and self.best.get("variant"):
            self._inference_model().use(self.best["variant"])
        if self.spec.dist.main:
            # Lines written after this checkpoint (a crash between logging and saving) would repeat.
            for name in ("metrics.jsonl", "train_log.jsonl"):
                lines = self.spec.run_dir / name
                if lines.exists():
                    kept = [
                        ln for ln in lines.read_text().splitlines() if json.loads(ln)["step"] <= self.step
                    ]
                    lines.write_text("".join(ln + "\n" for ln in kept))
        log.info("resumed %s at step %d of %d", path, self.step, self.total_steps)

    # ----------------------------------------------------------------------------------------------
    # Loop

    def fit(self, stop_at: int | None = None) -> dict[str, Any]:
        """Train to the end (or to step `stop_at`). Ctrl-C or SIGTERM finishes the current step, saves last.pt
        and stops, so `--resume` continues exactly there (a second Ctrl-C stops at once)."""
        spec = self.spec
        loggers = experiment_loggers(spec.cfg, spec.run_dir, self.step, self.total_steps, spec.dist.main)
        with StopRequests() as stop, loggers as self.loggers:
            self._stop = stop
            return self._fit(stop_at)

    def _fit(self, stop_at: int | None) -> dict[str, Any]:
        spec, cfg = self.spec, self.cfg
        end = self.total_steps if stop_at is None else min(stop_at, self.total_steps)
        self.labeled.start(self.step)
        for stream in (self.unlabeled, self.mix_source):
            if stream is not None:
                stream.start(self.step)
        self.student.train()
        # Averages over the steps of this process only: after a resume the first ones start at the resumed
        # step (their records say so with from_step), never mixed with values from before it.
        window: dict[str, list[float]] = {}
        recent: dict[str, list[float]] = {}
        recent_from = self.step + 1
        t0 = time.perf_counter()
        main = spec.dist.main
        with progress("train", self.total_steps, unit="steps") if main else NullBar() as bar:
            bar.advance(self.step)
            while self.step < end:
                if self._stop_requested():
                    self.save_last()
                    log.warning(
                        "stopped at step %d; saved %s (continue with --resume)",
                        self.step,
                        self.ckpt_dir / "last.pt",
                    )
                    raise Interrupted(f"stopped at step {self.step}")
                logs = self._one_step()
                for k, v in logs.items():
                    window.setdefault(k, []).append(v)  # since the last validation
                    recent.setdefault(k, []).append(v)  # since the last log line
                self.step += 1
                if self.step % cfg.log_every == 0 or self.step == self.total_steps:
                    means = _means(recent)
                    bar.advance(0, **{k: f"{v:.3g}" for k, v in means.items()}, lr=f"{self._lr():.2e}")
                    if main:
                        partial = self.step - recent_from + 1 < cfg.log_every
                        record = {"step": self.step, **({"from_step": recent_from} if partial else {})}
                        self._append("train_log.jsonl", {**record, **means, "lr": self._lr()})
                    recent, recent_from = {}, self.step + 1
                bar.advance(1)
                if self.step % self.eval_every == 0 or self.step == self.total_steps:
                    self._evaluate(_means(window), time.perf_counter() - t0)
                    window = {}
        if self.step < self.total_steps:
            self.save_last()
            log.info(
                "stopped after step %d of %d as asked; continue with --resume", self.step, self.total_steps
            )
        return self.best

    def _stop_requested(self) -> bool:
        flag = torch.tensor(float(self._stop.requested))
        # Every process must stop at the same step, or the others would wait forever in the next all-reduce.
        return bool(all_reduce_mean(flag).item() > 0) if self.spec.dist.enabled else bool(flag)

    def _lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def _one_step(self) -> dict[str, float]:
        spec, cfg = self.spec, self.cfg
        # The global RNG (dropout masks) is seeded per step and process, so a resumed run draws the same.
        torch.manual_seed(spec.cfg.seed * 1_000_003 + self.step * spec.dist.world + spec.dist.rank)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = poly_lr(base, self.step, self.total_steps)
        labeled = self.labeled.next()
        unlabeled = self.unlabeled.next() if self.unlabeled is not None else None
        if self.mix_source is not None:
            unlabeled = {**unlabeled, "mix": self.mix_source.next()}
        teacher = self.teacher.model if self.teacher is not None else None
        self.method.begin_step(self.step, self.total_steps)
        with autocast(spec.precision, self.device):
            out = self.method.step(self.student, teacher, labeled, unlabeled)
        finite = torch.isfinite(out.loss.detach()).float()
        if all_reduce_mean(finite).item() < 1.0:
            raise TrainingDiverged(
                f"The loss became {out.loss.item()} at step {self.step + 1}; training stopped. "
                f"{self._saved_state()} Lower train.lr, use --precision fp32, or check the data for extreme "
                "values."
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(out.loss).backward()
        if cfg.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.teacher is not None:
            self.teacher.update(self.model, self.step)
        values = torch.stack([out.loss.detach().float(), *[v.float() for v in out.logs.values()]])
        values = all_reduce_mean(values).tolist()
        return dict(zip(["loss", *out.logs], values))

    def _saved_state(self) -> str:
        """What the run folder holds after a stop: the truth about its checkpoints."""
        if self.saved_step is None:
            return (
                f"No checkpoint was written before it, so {self.spec.run_dir} holds no model (only its "
                "configuration and logs)."
            )
        best = self.ckpt_dir / "best.pt"
        kept = f" and {best} (the model of step {self.best['step']})" if best.exists() else ""
        return (
            f"The last good checkpoint {self.ckpt_dir / 'last.pt'} (step {self.saved_step}){kept} is kept "
            "(--resume continues it with its saved settings; to change them, start a new run)."
        )

    def _evaluate(self, train_means: dict[str, float], seconds: float) -> None:
        spec = self.spec
        if not self.cfg.validation:
            self._keep_unvalidated(train_means, seconds)
            return
        cms = confusions_on_chips(
            self._inference_model(),
            spec.data,
            spec.val_ids,
            spec.norm,
            self.cfg.crop,
            self.device,
            spec.precision,
            spec.dist.rank,
            spec.dist.world,
            **self.scoring.confusion_kwargs(),
        )
        by_variant = {v: self.scoring.metrics(cm.matrix, spec.data.class_names) for v, cm in cms.items()}
        # Several predictions (Co2S): the best of them is the run's score and the checkpoint's default.
        chosen = max(by_variant, key=lambda v: by_variant[v]["mean_iou"])
        metrics, cm = by_variant[chosen], cms[chosen]
        improved = metrics["mean_iou"] > self.best["mIoU"]
        if improved:
            self.best = {"mIoU": metrics["mean_iou"], "step": self.step}
            if variants_of(self.model):
                self.best["variant"] = chosen
                self._inference_model().use(chosen)
        if spec.dist.main:
            record = {
                "step": self.step,
                "epoch": round(self.step / self.steps_per_epoch, 3),
                "lr": self._lr(),
                **{f"train_{k}": v for k, v in train_means.items()},
                "mIoU": metrics["mean_iou"],
                "OA": metrics["overall_accuracy"],
                "mean_f1": metrics["mean_f1"],
                "kappa": metrics["kappa"],
                "iou": {c["name"]: c["iou"] for c in metrics["per_class"]},
                **(
                    {"student": chosen, "students": {v: m["mean_iou"] for v, m in by_variant.items()}}
                    if variants_of(self.model)
                    else {}
                ),
                "best_mIoU": self.best["mIoU"],
                "protocol": self.scoring.protocol.name,
                **({"excluded_classes": self.scoring.exclude} if self.scoring.exclude else {}),
                "seconds": round(seconds, 1),
            }
            self._append("metrics.jsonl", record)
            log.info(
                "step %d: val mIoU %.2f%% (best %.2f%% at step %s)",
                self.step,
                100 * metrics["mean_iou"],
                100 * self.best["mIoU"],
                self.best["step"],
            )
            if improved:
                self.checkpoint().save(self.ckpt_dir / "best.pt")
                from rsseg_cli.evaluation.report import write_report

                write_report(
                    spec.run_dir / "validation",
                    metrics,
                    cm.matrix,
                    spec.data.class_names,
                    [c["color"] for c in spec.data.meta["classes"]],
                    title=f"validation, step {self.step}",
                )
            self.save_last()
            # Drawing the curves takes about a second: at most every 30 s, and at the last step.
            if self.step == self.total_steps or time.monotonic() - self._plotted_at >= 30:
                from rsseg_cli.plots import training_curves

                training_curves(spec.run_dir)
                self._plotted_at = time.monotonic()
        barrier()

    def _keep_unvalidated(self, train_means: dict[str, float], seconds: float) -> None:
        """Without validation (--no-val) the latest model is what prediction gets: best.pt says so."""
        self.best = {"mIoU": None, "step": self.step, "validated": False}
        if self.spec.dist.main:
            record = {
                "step": self.step,
                "epoch": round(self.step / self.steps_per_epoch, 3),
                "lr": self._lr(),
            }
            record.update({f"train_{k}": v for k, v in train_means.items()}, seconds=round(seconds, 1))
            self._append("metrics.jsonl", record)
            self.checkpoint().save(self.ckpt_dir / "best.pt")
            self.save_last()
        barrier()

    def _append(self, name: str, record: dict) -> None:
        with open(self.spec.run_dir / name, "a") as f:
            f.write(json.dumps(record) + "\n")
        self.loggers.record(name, record)


def _means(values: dict[str, list[float]]) -> dict[str, float]:
    return {k: sum(v) / len(v) for k, v in values.items() if v}
