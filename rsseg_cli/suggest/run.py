"""Scenes -> the windows to label next.

1. Per scene, the streaming predictor (predict.stream, memory bounded by window and band width) blends the
   scorer's probabilities and disagreement; each finished strip updates the candidate windows' sums and goes
   to the uncertainty COG.
2. Eligible windows: enough valid pixels, no overlap with labeled chips or areas (--exclude). They are ranked by
   mean uncertainty x valid share (windows with valid pixels first).
3. The pool of the most uncertain ones (budget x pool) and the labeled windows get pooled backbone features (a
   second, bounded pass: one model window at each pool window's centre), and select.select spreads the
   picks over feature space and space; `random` draws eligible windows instead (the baseline).
4. The squares go to a GeoPackage with their rank, score, score components and predicted class shares.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from rsseg_cli.atomic import partial_name, remove_stale_partials
from rsseg_cli.config import Config, TileConfig
from rsseg_cli.engine.precision import resolve_device, resolve_precision
from rsseg_cli.errors import UserError
from rsseg_cli.geo.raster import SceneInfo, read_window
from rsseg_cli.predict.guard import check_window
from rsseg_cli.predict.inputs import expand_scenes, match_scene
from rsseg_cli.predict.model import InferenceModel, load_inference_model
from rsseg_cli.predict.stream import StreamPredictor
from rsseg_cli.progress import progress
from rsseg_cli.suggest.candidates import SceneCandidates
from rsseg_cli.suggest.exclude import labeled_class_pixels, labeled_footprints, mark, rarity_weights
from rsseg_cli.suggest.scorer import Scorer, build_scorer
from rsseg_cli.suggest.scores import needs_disagreement
from rsseg_cli.suggest.select import (
    Pool,
    nearest_distance,
    random_picks,
    select,
    select_clusters,
    top_pool,
)
from rsseg_cli.suggest.squares import squares_frame
from rsseg_cli.suggest.uncertainty_raster import UncertaintyWriter

log = logging.getLogger("rsseg")


@dataclass
class Grid:
    size: int
    stride: int
    edge: str
    source: str  # where it comes from, for the log


@dataclass
class Suggestions:
    frame: object  # GeoDataFrame of the picks, best first
    scenes: list[SceneInfo]
    candidates: list[SceneCandidates]
    eligible: int
    source: str  # what the disagreement came from
    uncertainty: dict[str, Path] = field(default_factory=dict)


def grid_for(cfg: Config, im: InferenceModel, exclude: list[Path]) -> Grid:
    """The chip grid of the --exclude dataset (so a labeled square is exactly one chip when tiled again), else
    the checkpoint's chip size; suggest.size / suggest.stride override."""
    import yaml

    for root in exclude:
        meta_path = Path(root) / "dataset.yaml"
        if meta_path.is_file():
            meta = yaml.safe_load(meta_path.read_text())
            size = cfg.suggest.size or int(meta["chip_size"])
            stride = cfg.suggest.stride or (
                int(meta.get("stride") or size) if size == meta["chip_size"] else size
            )
            return Grid(size, stride, str(meta.get("edge") or "pad"), f"the dataset {root}")
    size = cfg.suggest.size or int(im.checkpoint.chip_size)
    return Grid(size, cfg.suggest.stride or size, TileConfig().edge, "the checkpoint's chip size")


def suggest(
    scenes: list[str], cfg: Config, checkpoint: Path, exclude: list[Path], uncertainty_paths: dict[str, Path]
    | None = None, seed: int = 0,
) -> Suggestions:  # fmt: skip
    """Score and pick; `uncertainty_paths` maps scene names to the uncertainty COGs to write (or None)."""
    sources = expand_scenes(scenes)
    if not sources:
        raise UserError(
            "No scene was given. Pass one or more GeoTIFFs (or a quoted glob such as 'tiles/*.tif')."
        )
    opts, s = cfg.predict, cfg.suggest
    if Path(checkpoint).suffix.lower() == ".onnx":
        raise UserError(
            f"{checkpoint} is an ONNX model: suggest needs the network's features and its second opinion "
            "(students or EMA teacher), which the export leaves out. Pass the run's best.pt (or last.pt)."
        )
    device = resolve_device(opts.device)
    im = load_inference_model(
        Path(checkpoint), device, resolve_precision(opts.precision, device), opts.student
    )
    window = opts.window or im.window
    check_window(window, im.model, im.window, opts.batch_size, len(im.checkpoint.bands))
    grid = grid_for(cfg, im, exclude)
    infos = [match_scene(src, im.checkpoint, opts.bands, opts.pixel_space, opts.nodata) for src in sources]
    for info in infos:
        if grid.size > min(info.height, info.width) and grid.edge != "pad":
            raise UserError(f"The window size {grid.size} px is larger than {info.name} ({info.width} x "
                            f"{info.height} px). Pass a smaller --size.")  # fmt: skip
    footprints = labeled_footprints(exclude)
    scorer = build_scorer(im, opts.tta, disagreement=needs_disagreement(s.strategy))
    log.info("suggest: %s, %d px windows every %d px (%s), disagreement from %s", s.strategy, grid.size,
             grid.stride, grid.source, scorer.source)  # fmt: skip
    all_cands, masks = [], []
    for info in infos:
        cands = SceneCandidates.grid(info.name, info.height, info.width, grid.size, grid.stride, grid.edge,
                                     im.num_classes, s.strategy)  # type: ignore[arg-type]  # fmt: skip
        _score_scene(im, scorer, info, cands, window, cfg, (uncertainty_paths or {}).get(info.name))
        all_cands.append(cands)
        masks.append(mark(cands, info, footprints))
    pool, eligible, known = _pool(all_cands, infos, masks, s.min_valid)
    rarity = None
    counts = labeled_class_pixels(exclude, im.classes) if s.strategy == "hybrid" else None
    if counts is not None:
        # Uncertainty where the model predicts what the labels lack counts more: per window, the expected
        # rarity weight of its predicted classes.
        rarity = np.concatenate([c.class_shares() for c in all_cands]) @ rarity_weights(counts)
        pool.base *= rarity
        pool.score = pool.base * pool.share
    if not eligible.any():
        excluded = int(sum(m[0].sum() for m in masks))
        raise UserError(
            f"No window can be suggested: of {len(pool)} windows of {grid.size} px, {excluded} overlap labeled "
            f"chips or areas (--exclude) and the rest have less than {s.min_valid:.0%} valid pixels. Pass "
            "another scene, a smaller --size, or lower suggest.min_valid."
        )
    novelty = None
    if s.strategy == "random":
        picks = random_picks(pool, s.budget, eligible, np.random.default_rng(seed))
    else:
        picks, novelty = _pick(im, scorer, pool, eligible, known, infos, window, cfg)
    frame = squares_frame(pool, picks, all_cands, infos, im.classes, novelty, rarity)
    return Suggestions(frame, infos, all_cands, int(eligible.sum()), scorer.source,
                       dict(uncertainty_paths or {}))  # fmt: skip


def _pick(im, scorer: Scorer, pool: Pool, eligible: np.ndarray, known: np.ndarray, infos: list[SceneInfo],
          window: int, cfg: Config) -> tuple[list[int], np.ndarray | None]:  # fmt: skip
    """Features of the eligible windows (the most uncertain ones beyond suggest.max_feature_windows) and of the
    labeled ones; novelty (feature distance to the nearest labeled window) joins the hybrid score; then the
    selection: one window per group the labels do not cover (clusters), or the spread-out best of the
    budget x pool most uncertain (spread). Returns the picks and the novelty per window."""
    s = cfg.suggest
    candidates = np.flatnonzero(eligible)
    if len(candidates) > s.max_feature_windows:
        candidates = candidates[top_pool(pool.score[candidates], s.max_feature_windows)]
    labeled = np.flatnonzero(known)
    if len(labeled) > s.max_labeled_windows:  # enough to know what is covered; features cost a forward pass
        labeled = np.sort(
            np.random.default_rng(cfg.seed).choice(labeled, s.max_labeled_windows, replace=False)
        )
    use_novelty = s.strategy == "hybrid" and labeled.size > 0
    features, novelty, where = None, None, np.full(len(pool), -1)
    if s.diversity > 0 or use_novelty:
        looked = np.concatenate([candidates, labeled])
        features = _features(im, scorer, pool, looked, infos, window, cfg)
        where[looked] = np.arange(len(looked))
        if use_novelty and features is not None:
            novelty = np.full(len(pool), np.nan)
            novelty[candidates] = nearest_distance(features[: len(candidates)], features[len(candidates) :])
            # What the model does not know includes what it has never been shown: windows unlike every
            # labeled one, however confident its (then uninformed) prediction there.
            pool.score[candidates] = (
                (2 * pool.base[candidates] + novelty[candidates]) / 3 * pool.share[candidates]
            )
    if s.selection == "clusters" and s.diversity > 0 and features is not None:
        # Every eligible window competes: the groups, not the uncertainty ranking, decide where picks go.
        sub_index = np.concatenate([candidates, labeled])
        sub_eligible = np.zeros(len(sub_index), bool)
        sub_eligible[: len(candidates)] = True
        local = select_clusters(_subset(pool, sub_index), s.budget, sub_eligible, features,
                                np.arange(len(candidates), len(sub_index)), np.random.default_rng(cfg.seed),
                                s.uncertainty_weight)  # fmt: skip
    else:
        chosen = candidates[top_pool(pool.score[candidates], s.budget * s.pool)]
        sub_index = np.concatenate([chosen, labeled])
        sub_features = features[where[sub_index]] if features is not None else None
        sub_eligible = np.zeros(len(sub_index), bool)
        sub_eligible[: len(chosen)] = True
        local = select(_subset(pool, sub_index), s.budget, sub_eligible, sub_features,
                       np.arange(len(chosen), len(sub_index)), s.diversity, s.feature_weight)  # fmt: skip
    picks = [int(sub_index[i]) for i in local]
    if len(picks) < s.budget:  # the pool ran dry (overlaps): fill with the next best eligible windows
        taken = np.zeros(len(pool), bool)
        for i in picks:
            taken |= pool.overlaps(i)
        picks += select(pool, s.budget - len(picks), eligible & ~taken, None, None, 0.0)
    return picks, novelty


def _score_scene(im, scorer: Scorer, info: SceneInfo, cands: SceneCandidates, window: int, cfg: Config,
                 uncertainty: Path | None) -> None:  # fmt: skip
    opts = cfg.predict
    k = im.num_classes
    stream = StreamPredictor(scorer.predict, prepare=lambda x: x, num_classes=k + 1, window=window,
                             overlap=opts.overlap_fraction, batch_size=opts.batch_size,
                             band_width=opts.band_width)  # fmt: skip
    disagreement = scorer.source != "none"
    with contextlib.ExitStack() as stack:
        writer = None
        if uncertainty is not None:
            staging = uncertainty.with_name(f"{uncertainty.name}.staging")
            remove_stale_partials(staging)
            tmp = partial_name(staging)
            stack.callback(lambda: tmp.unlink(missing_ok=True))
            writer = UncertaintyWriter(info, tmp)
            stack.callback(writer.abort)

        def sink(r0: int, r1: int, c0: int, c1: int, probs: np.ndarray, valid: np.ndarray) -> None:
            score = cands.add(r0, r1, c0, c1, probs[:k], valid, probs[k] if disagreement else None)
            if writer is not None:
                writer(r0, r1, c0, c1, score)

        src = stack.enter_context(rasterio.open(info.path))

        def read(row: int, col: int, size: int):
            data, valid = read_window(src, info, Window(col, row, size, size))
            return im.prepare(data, valid), valid

        plan = stream.plan(info.height, info.width)
        with progress(f"score {info.name}", plan.windows_total, "windows") as bar:
            stream.run(read, info.height, info.width, sink, on_window=bar.advance)
        if writer is not None:
            writer.finish(uncertainty, opts.compress)


def _pool(cands: list[SceneCandidates], infos: list[SceneInfo], masks, min_valid: float):
    share = np.concatenate([c.valid_fraction for c in cands])
    excluded = np.concatenate([m[0] for m in masks])
    known = np.concatenate([m[1] for m in masks])
    base = np.concatenate([c.mean("score") for c in cands])
    pool = Pool(
        scene=np.concatenate([np.full(len(c), i) for i, c in enumerate(cands)]),
        rows=np.concatenate([c.rows for c in cands]),
        cols=np.concatenate([c.cols for c in cands]),
        size=cands[0].size,
        score=base * share,
        diagonal=np.concatenate([np.full(len(c), float(np.hypot(i.height, i.width))) for c, i in zip(cands, infos)]),
        base=base,
        share=share,
    )  # fmt: skip
    eligible = (share >= min_valid) & ~excluded & (share > 0)
    return pool, eligible, known


def _subset(pool: Pool, index: np.ndarray) -> Pool:
    return Pool(pool.scene[index], pool.rows[index], pool.cols[index], pool.size, pool.score[index],
                pool.diagonal[index], pool.base[index], pool.share[index])  # fmt: skip


def _features(im, scorer: Scorer, pool: Pool, index: np.ndarray, infos: list[SceneInfo], window: int,
              cfg: Config) -> np.ndarray | None:  # fmt: skip
    """Pooled features of one model window centred on each pool window, batched, scene by scene."""
    if len(index) == 0:
        return None
    import torch

    out: list[np.ndarray | None] = [None] * len(index)
    batch = cfg.predict.batch_size
    with progress("features", len(index), "windows") as bar:
        for s, info in enumerate(infos):
            mine = [j for j, i in enumerate(index) if pool.scene[i] == s]
            if not mine:
                continue
            with rasterio.open(info.path) as src:
                for start in range(0, len(mine), batch):
                    chunk = mine[start : start + batch]
                    x, masks = [], []
                    for j in chunk:
                        i = index[j]
                        # Inside the scene where it fits: a window hanging over the top/left edge cannot be read.
                        r = min(
                            max(int(pool.rows[i]) + (pool.size - window) // 2, 0),
                            max(info.height - window, 0),
                        )
                        c = min(
                            max(int(pool.cols[i]) + (pool.size - window) // 2, 0), max(info.width - window, 0)
                        )
                        data, valid = read_window(src, info, Window(c, r, window, window))
                        x.append(im.prepare(data, valid))
                        masks.append(torch.from_numpy(np.asarray(valid, dtype=bool)))
                    f = scorer.features(torch.stack(x), torch.stack(masks)).numpy()
                    for j, row in zip(chunk, f):
                        out[j] = row
                    bar.advance(len(chunk))
    return np.stack(out)  # type: ignore[arg-type]
