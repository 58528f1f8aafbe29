"""`rsseg train --init-from CHECKPOINT`: a new run that starts from an earlier run's weights (the active-learning
loop's next round) with a fresh optimizer, schedule, step and best score.

A last.pt gives the student from train_state["model"] and the EMA teacher from train_state["ema"]; a best.pt
(prediction only) gives its shipped weights (the EMA teacher's, for EMA methods) to both. The network must be
the same (architecture, backbone and head sizes) and so must the bands. A changed class table (an analyst added
a class) keeps every class-independent tensor and copies the class-dependent ones row by row for the classes
whose names both tables hold; the other rows stay as initialized, and a warning names those tensors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rsseg_cli.engine.checkpoint import Checkpoint
from rsseg_cli.errors import UserError

log = logging.getLogger("rsseg")

# The parts of a model spec that decide tensor shapes. num_classes is left out (a changed class table is
# allowed), and so are band_map (which pretrained filter each band inherits: an initialization choice) and
# input_stats (a constant of the input conversion, not a learned shape).
SHAPE_KEYS = (
    "architecture",
    "in_chans",
    "backbone",
    "backbone_kwargs",
    "taps",
    "head",
    "head_features",
    "head_channels",
    "parts",
)


@dataclass
class WarmStart:
    """An earlier run's checkpoint, read and checked against the new run's dataset before any work."""

    ckpt: Checkpoint
    path: Path

    @property
    def model_state(self) -> dict[str, torch.Tensor]:
        state = self.ckpt.train_state
        return state["model"] if state is not None else self.ckpt.state_dict

    @property
    def ema_state(self) -> dict[str, torch.Tensor] | None:
        """The EMA teacher's weights: last.pt's own (None when the earlier method had no EMA, so the new
        teacher starts as a copy of the loaded student, as a fresh run's does); best.pt's shipped weights."""
        state = self.ckpt.train_state
        return state.get("ema") if state is not None else self.ckpt.state_dict


def read_warm_start(path: Path, band_names: list[str]) -> WarmStart:
    """Read and check --init-from before the model is built: exit 2 on a file that cannot start a run."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        raise UserError(
            f"--init-from {path} is an ONNX export, which holds no trainable weights. Pass the run's "
            "checkpoints/last.pt (student and EMA weights) or checkpoints/best.pt."
        )
    ckpt = Checkpoint.read(path)  # a missing or unreadable file: its UserError
    ckpt.check_bands(
        band_names, "the dataset", how="Tile with the same bands (tile.bands) as the earlier run."
    )
    return WarmStart(ckpt, path)


def same_classes(ws: WarmStart, class_names: list[str]) -> bool:
    return ws.ckpt.class_names == list(class_names)


def check_spec(ws: WarmStart, spec: dict[str, Any]) -> None:
    """Refuse another network: its tensors would not fit (or would silently mean something else)."""
    old = ws.ckpt.model
    differ = [k for k in SHAPE_KEYS if _norm(old.get(k)) != _norm(spec.get(k))]
    if differ:
        detail = "; ".join(f"{k}: {old.get(k)!r} there, {spec.get(k)!r} here" for k in differ)
        raise UserError(
            f"--init-from {ws.path} holds another model ({detail}). Train with the earlier run's model "
            "settings (its config.yaml: model.backbone, model.backbone_kwargs, ...), or start without "
            "--init-from."
        )


def _norm(value: Any) -> Any:
    # JSON round trips turn tuples into lists; compare the plain-data forms.
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    return value


def load_student(ws: WarmStart, model: nn.Module, class_names: list[str]) -> None:
    """The earlier student (or shipped) weights into the new model, before the trainer copies it into the
    EMA teacher and wraps it for DDP."""
    _load(ws, model, ws.model_state, class_names, warn=True)


def load_teacher(ws: WarmStart, teacher: nn.Module | None, class_names: list[str]) -> None:
    """The earlier EMA weights into the new teacher (when both runs have one and the earlier saved it)."""
    state = ws.ema_state
    if teacher is not None and state is not None:
        _load(ws, teacher, state, class_names, warn=False)  # the same tensors as the student: warned once


def _load(
    ws: WarmStart, model: nn.Module, state: dict[str, torch.Tensor], class_names: list[str], warn: bool
) -> None:
    if same_classes(ws, class_names):
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            detail = next((ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()), str(exc)[:300])
            raise UserError(
                f"--init-from {ws.path}: its weights do not fit the new model ({detail})."
            ) from None
        return
    by_name = {name: i for i, name in enumerate(ws.ckpt.class_names)}
    # new class row -> earlier row, for the classes both tables hold
    rows = {j: by_name[n] for j, n in enumerate(class_names) if n in by_name}
    class_dims = _class_dims(model)
    own = model.state_dict()
    partial: list[str] = []
    with torch.no_grad():
        for key, target in own.items():
            if key not in state:
                partial.append(key)  # a tensor the earlier model lacks: kept as initialized
                continue
            source = state[key].to(target.device, target.dtype)
            dim = class_dims.get(key)
            if dim is None:
                if source.shape != target.shape:
                    raise UserError(
                        f"--init-from {ws.path}: the tensor {key} is {tuple(source.shape)} there but "
                        f"{tuple(target.shape)} here, and it does not depend on the classes; the models "
                        "differ. Train with the earlier run's model settings."
                    )
                target.copy_(source)
                continue
            for j, i in rows.items():
                target.select(dim, j).copy_(source.select(dim, i))
            partial.append(key)
    if warn:
        new = [n for n in class_names if n not in by_name]
        dropped = [n for n in ws.ckpt.class_names if n not in set(class_names)]
        log.warning(
            "--init-from %s: the class table differs (new: %s; dropped: %s). Loaded every other tensor; "
            "these class-dependent tensors keep their initialization for the new classes (rows of classes "
            "both tables name were copied by name): %s",
            ws.path,
            ", ".join(new) or "none",
            ", ".join(dropped) or "none",
            ", ".join(partial),
        )


def _class_dims(model: nn.Module) -> dict[str, int]:
    """Which dimension of which tensor counts classes: the tensors whose shape changes when the model is built
    for one class more (on the meta device: shapes only, no memory, no weights)."""
    from rsseg_cli.models.spec import build

    spec = model.spec  # type: ignore[attr-defined]
    bigger = spec.model_copy(update={"num_classes": spec.num_classes + 1})
    try:
        with torch.device("meta"):
            probe = build(bigger).state_dict()
    except Exception as exc:  # a builder that needs real tensors (files, text encoders) to build
        raise UserError(
            f"--init-from with a changed class table: the {spec.architecture} model could not be probed for "
            f"its class-dependent tensors ({type(exc).__name__}: {str(exc)[:200]}). Tile with the earlier "
            "run's class table, or start without --init-from."
        ) from None
    dims: dict[str, int] = {}
    for key, tensor in model.state_dict().items():
        other = probe.get(key)
        if other is None or other.shape == tensor.shape or other.dim() != tensor.dim():
            continue
        changed = [d for d in range(tensor.dim()) if other.shape[d] != tensor.shape[d]]
        if len(changed) == 1:
            dims[key] = changed[0]
    return dims


def record(ws: WarmStart) -> dict[str, Any]:
    """run.json's note of where the run started: a new round of an earlier run, not a fresh model."""
    return {
        "init_from": str(ws.path.resolve()),
        "init_from_step": ws.ckpt.step,
        "init_from_kind": "last" if ws.ckpt.train_state is not None else "best",
    }
