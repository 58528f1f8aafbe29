"""What the model already offers to say where it is unsure: blended probabilities plus a disagreement map.

The stream (predict.stream) blends whatever channels the batch function returns, so the function returns the
class probabilities and one more channel, the per-pixel disagreement of two views of the same model:
- Co2S: its CLIP and DINOv3 students (they stabilize each other; where they differ, neither is sure);
- an EMA method (FixMatch, UniMatch V2, RS-MTDF) with its run's last.pt: the EMA teacher and the student;
- otherwise: the flip TTA views (4 views of one model).
Disagreement is the Jensen-Shannon divergence over its maximum (log of the number of predictions, or of K when
fewer classes), so it lies in [0, 1] like entropy.

Pooled backbone features of a window (its last feature map, averaged) give the feature space that selection
spreads picks over.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rsseg_cli.engine.checkpoint import Checkpoint
from rsseg_cli.engine.precision import autocast
from rsseg_cli.models.spec import variants_of
from rsseg_cli.predict.model import TTA_VIEWS, InferenceModel

log = logging.getLogger("rsseg")


@dataclass
class Scorer:
    """A batch (B, C, w, w) of model inputs -> (B, K + 1, w, w): probabilities, then disagreement."""

    source: str  # students | ema | views | none
    predict: Callable[[torch.Tensor], torch.Tensor]
    features: Callable[..., torch.Tensor]  # (inputs, validity (B, w, w) or None) -> (B, D)


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p.clamp_min(1e-12).log() * p).sum(dim=1)


def jensen_shannon(predictions: list[torch.Tensor]) -> torch.Tensor:
    """(B, K, h, w) each -> (B, h, w) in [0, 1]: H(mean) - mean(H), over log(min(n, K))."""
    n, k = len(predictions), predictions[0].shape[1]
    mean = sum(predictions) / n
    js = _entropy(mean) - sum(_entropy(p) for p in predictions) / n
    return (js / math.log(max(2, min(n, k)))).clamp_(0.0, 1.0)


def _student_of_run(im: InferenceModel) -> nn.Module | None:
    """The student network of the run's last.pt (the checkpoint itself when it is a last.pt), or None."""
    path = Path(im.path)
    last = path if path.name == "last.pt" else path.with_name("last.pt")
    if not last.is_file():
        return None
    ckpt = Checkpoint.read(last, map_location="cpu")
    state = (ckpt.train_state or {}).get("model")
    if state is None or (ckpt.train_state or {}).get("ema") is None:
        return None
    ckpt.state_dict = state
    student = ckpt.load_model(im.device)
    log.info(
        "disagreement: the EMA teacher of %s against the student of %s (step %d)", path.name, last, ckpt.step
    )
    return student


def build_scorer(im: InferenceModel, tta: str = "none", disagreement: bool = True) -> Scorer:
    model, device, precision = im.model, im.device, im.precision
    views = TTA_VIEWS[tta]
    co2s = bool(variants_of(model)) and hasattr(model, "variant_probs")
    student = _student_of_run(im) if disagreement and not co2s else None
    source = "none" if not disagreement else "students" if co2s else "ema" if student is not None else "views"
    if source == "views" and tta == "none":
        views = TTA_VIEWS["flip"]  # the disagreement of the views is the signal: at least the 4 flips

    def probs_of(net: nn.Module, x: torch.Tensor, view) -> torch.Tensor:
        forward, inverse = view
        with autocast(precision, device):
            logits = net(forward(x))
        return inverse(logits.float().softmax(dim=1))

    @torch.inference_mode()
    def predict(x: torch.Tensor) -> torch.Tensor:
        x = x.to(device, non_blocking=True)
        if source == "students":
            per_view = []
            for forward, inverse in views:
                with autocast(precision, device):
                    out = model.variant_probs(forward(x))  # type: ignore[attr-defined]
                per_view.append({k: inverse(v.float()) for k, v in out.items()})
            mean = {k: sum(v[k] for v in per_view) / len(per_view) for k in per_view[0]}
            main, spread = mean[model.mode], jensen_shannon([mean["clip"], mean["dinov3"]])  # type: ignore
        elif source == "ema":
            teacher = sum(probs_of(model, x, v) for v in views) / len(views)
            taught = sum(probs_of(student, x, v) for v in views) / len(views)  # type: ignore[arg-type]
            main, spread = teacher, jensen_shannon([teacher, taught])
        else:
            each = [probs_of(model, x, v) for v in views]
            main = sum(each) / len(each)
            spread = jensen_shannon(each) if source == "views" else torch.zeros_like(main[:, 0])
        return torch.cat([main, spread[:, None]], dim=1)

    @torch.inference_mode()
    def features(x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        x = x.to(device, non_blocking=True)
        with autocast(precision, device):
            return pooled_features(model, x, None if valid is None else valid.to(device)).float().cpu()

    return Scorer(source, predict, features)


def pooled_features(model: nn.Module, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """(B, D): the last feature map of the backbone averaged over the window's valid part (both students for
    Co2S). Invalid pixels enter the network as the band mean; averaging over them would make every window at
    a nodata edge look alike and unlike the rest."""
    students = getattr(model, "students", None)
    maps = [s.features(x)[-1] for s in students.values()] if students is not None else None
    if maps is None:
        if not hasattr(model, "encode"):
            raise TypeError(f"{type(model).__name__} offers no backbone features")
        maps = [model.encode(x)[-1]]
    out = []
    for m in maps:
        if valid is None:
            out.append(m.mean(dim=(-2, -1)))
            continue
        # The share of valid pixels under each feature cell, as the weight of that cell.
        w = torch.nn.functional.adaptive_avg_pool2d(valid[:, None].float(), m.shape[-2:])
        w = torch.where(w.sum(dim=(-2, -1), keepdim=True) > 0, w, torch.ones_like(w))
        out.append((m * w).sum(dim=(-2, -1)) / w.sum(dim=(-2, -1)))
    return torch.cat(out, dim=1)
