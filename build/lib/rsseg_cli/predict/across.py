"""Prediction across processes: `torchrun --nproc_per_node N [--nnodes M ...] -m rsseg_cli predict ...`.

Every rank plans the same work (predict.shard: whole scenes largest first to the least loaded rank; a scene above
predict.split_megapixels cut into its column bands, a contiguous run per rank), predicts its share on its own
device, then rank 0 gathers the results, assembles the split scenes from their parts (predict.scene), writes
the manifest lines it owns and the mosaic, and prints the summary. Ranks write into the same output folder
(shared by every node); each appends its own manifest lines (one O_APPEND write per line). A failed scene or
part is a result like any other: no rank stops while the others wait for it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rsseg_cli.config import PredictConfig
from rsseg_cli.engine import distributed
from rsseg_cli.engine.distributed import Dist
from rsseg_cli.engine.precision import resolve_device
from rsseg_cli.errors import Interrupted, UserError
from rsseg_cli.geo.raster import SceneInfo
from rsseg_cli.predict.batch import Manifest, error_text, is_bad_input, scene_label
from rsseg_cli.predict.inputs import SceneJob
from rsseg_cli.predict.model import InferenceModel
from rsseg_cli.predict.scene import PartResult, SceneResult, finish_from_parts, predict_bands, remove_parts
from rsseg_cli.predict.shard import assign

if TYPE_CHECKING:  # torch is imported only where it runs: an .onnx model predicts without it
    import torch

    from rsseg_cli.engine.precision import OnnxDevice

log = logging.getLogger("rsseg")


def join(opts: PredictConfig) -> tuple[Dist, torch.device | OnnxDevice]:
    """The process group when started by torchrun (gloo on CPU, nccl on CUDA) and this rank's device."""
    device = resolve_device(opts.device)
    dist = distributed.setup(device)
    if dist.enabled and device.type == "cuda":
        import torch  # a process group exists only with torch

        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    return dist, device


def portable(exc: BaseException) -> BaseException:
    """An exception that survives pickling to rank 0 and still says whether it was bad input."""
    if isinstance(exc, UserError):
        return UserError(str(exc))
    return UserError(error_text(exc)) if is_bad_input(exc) else RuntimeError(error_text(exc))


def split_bands(scene: SceneInfo, opts: PredictConfig, window: int) -> int | None:
    """The number of column bands to share out, or None to predict the scene whole on one rank."""
    width = max(opts.band_width, window)  # as StreamPredictor widens a band narrower than the window
    bands = -(-scene.width // width)
    return bands if scene.height * scene.width > opts.split_megapixels * 1e6 and bands > 1 else None


def run_across(
    im: InferenceModel,
    jobs: list[SceneJob],
    scenes: list[SceneInfo],
    opts: PredictConfig,
    manifest: Manifest | None,
    dist: Dist,
    predict_one,
) -> list[SceneResult] | None:
    """Predict `jobs` (their checked `scenes`) across the ranks; `predict_one(im, job, scene, opts, manifest)`
    predicts a whole scene (and records it). Rank 0 gets every result, in job order; other ranks None."""
    window = opts.window or im.window
    costs = [s.height * s.width for s in scenes]
    plan = assign(costs, dist.world, [split_bands(s, opts, window) for s in scenes])[dist.rank]
    mine: list[tuple[int, tuple[int, int] | None, SceneResult | PartResult | BaseException]] = []
    for part in plan:
        job, scene = jobs[part.index], scenes[part.index]
        try:
            if part.bands is None:
                mine.append((part.index, None, predict_one(im, job, scene, opts, manifest)))
            else:
                mine.append((part.index, part.bands, predict_bands(im, job, scene, opts, part.bands)))
        except (KeyboardInterrupt, Interrupted):
            raise
        except Exception as exc:  # recorded by rank 0; the other ranks must not wait for this one forever
            log.warning("%s%s failed on rank %d: %s", scene_label(job.scene),
                        f" (bands {part.bands})" if part.bands else "", dist.rank, error_text(exc))  # fmt: skip
            mine.append((part.index, part.bands, portable(exc)))
    gathered = [item for items in distributed.all_gather_object(_sendable(mine)) for item in items]
    if not dist.main:
        return None
    return _collect(im, jobs, scenes, opts, manifest, gathered)


def _sendable(items: list) -> list:
    """Scene results carry their exception: make it portable too."""
    out = []
    for index, bands, value in items:
        if isinstance(value, SceneResult) and value.error is not None:
            value.error = portable(value.error)
        out.append((index, bands, value))
    return out


def _collect(im, jobs, scenes, opts, manifest, gathered) -> list[SceneResult]:
    """Rank 0: whole-scene results as they came, split scenes finished from their parts (or failed)."""
    results: dict[int, SceneResult] = {}
    parts: dict[int, list] = {}
    for index, bands, value in gathered:
        if bands is None:
            results[index] = (
                value if isinstance(value, SceneResult) else _failed(jobs[index], value, manifest)
            )
        else:
            parts.setdefault(index, []).append(value)
    for index, pieces in sorted(parts.items()):
        job, scene = jobs[index], scenes[index]
        broken = next((p for p in pieces if isinstance(p, BaseException)), None)
        if broken is not None:
            remove_parts([p for p in pieces if isinstance(p, PartResult)])
            results[index] = _failed(job, broken, manifest)
            continue
        try:
            result = finish_from_parts(im, job, scene, opts, pieces)
        except (KeyboardInterrupt, Interrupted):
            raise
        except Exception as exc:
            results[index] = _failed(job, exc, manifest)
            continue
        if manifest is not None:
            bands = sorted(p.bands for p in pieces)
            manifest.append(job, "done", result.seconds, class_pixels=result.class_pixels, bands=bands)
        results[index] = result
    return [results[i] for i in range(len(jobs))]


def _failed(job: SceneJob, exc: BaseException, manifest: Manifest | None) -> SceneResult:
    if manifest is None:  # a single output file: its error is the command's
        raise exc
    manifest.append(job, "failed", error=error_text(exc))
    return SceneResult(job, 0, 0, 0, 0.0, 0.0, {}, 0, status="failed", reason=error_text(exc), error=exc)
