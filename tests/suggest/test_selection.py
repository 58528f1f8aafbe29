"""Candidate sums, scores and selection: the numbers suggest ranks by, checked against direct computation."""

from __future__ import annotations

import numpy as np
import pytest

from rsseg_cli.suggest.candidates import SceneCandidates
from rsseg_cli.suggest.scores import combine, components, entropy, margin
from rsseg_cli.suggest.select import Pool, kmeans, random_picks, select, select_clusters


def _probs(rng, k, h, w):
    p = rng.random((k, h, w)).astype(np.float32) ** 3
    return p / p.sum(axis=0, keepdims=True)


def test_entropy_and_margin_bounds():
    k = 5
    uniform = np.full((k, 2, 2), 1 / k, np.float32)
    certain = np.zeros((k, 2, 2), np.float32)
    certain[2] = 1
    assert np.allclose(entropy(uniform), 1.0) and np.allclose(entropy(certain), 0.0, atol=1e-6)
    assert np.allclose(margin(uniform), 1.0) and np.allclose(margin(certain), 0.0)
    two = np.zeros((k, 1, 1), np.float32)
    two[0], two[1] = 0.7, 0.3
    assert margin(two)[0, 0] == pytest.approx(0.6)


@pytest.mark.parametrize("stride", [16, 24, 32])
def test_window_sums_match_direct_sums_over_strips_and_bands(stride):
    """The stream hands rows of column bands in pieces; every window's sums equal the direct sums."""
    rng = np.random.default_rng(0)
    h, w, k, size = 70, 90, 3, 32
    probs = _probs(rng, k, h, w)
    dis = rng.random((h, w)).astype(np.float32)
    valid = rng.random((h, w)) > 0.2
    c = SceneCandidates.grid("s", h, w, size, stride, "pad", k, "hybrid")
    for c0, c1 in ((0, 40), (40, 90)):  # two column bands
        for r0, r1 in ((0, 13), (13, 50), (50, 70)):  # uneven strips
            c.add(r0, r1, c0, c1, probs[:, r0:r1, c0:c1], valid[r0:r1, c0:c1], dis[r0:r1, c0:c1])
    parts = components(probs, dis)
    score = combine(parts, "hybrid")
    predicted = probs.argmax(0)
    for i, (r, col) in enumerate(zip(c.rows, c.cols)):
        win = np.s_[r : r + size, col : col + size]
        v = valid[win]
        assert c.valid[i] == v.sum()
        assert c.sums["entropy"][i] == pytest.approx(parts["entropy"][win][v].sum(), rel=1e-5)
        assert c.sums["score"][i] == pytest.approx(score[win][v].sum(), rel=1e-5)
        counts = np.bincount(predicted[win][v], minlength=k)
        assert (c.class_pixels[i] == counts).all()


def _pool(n_side=8, size=10):
    rr, cc = np.meshgrid(np.arange(n_side) * 5, np.arange(n_side) * 5, indexing="ij")  # stride 5 < size
    n = n_side * n_side
    return Pool(np.zeros(n, int), rr.ravel(), cc.ravel(), size, np.linspace(1, 0.5, n), np.full(n, 60.0))


def test_select_respects_budget_eligibility_and_never_overlaps():
    pool = _pool()
    eligible = np.ones(len(pool), bool)
    eligible[:5] = False  # e.g. overlapping labeled chips
    picks = select(pool, 6, eligible, diversity=0.0)
    assert len(picks) <= 6 and len(set(picks)) == len(picks)
    assert not any(i < 5 for i in picks)
    for a in picks:
        for b in picks:
            if a != b:
                assert not pool.overlaps(a)[b]
    # Plain top-N (diversity 0) takes the best eligible window first.
    assert picks[0] == 5


def test_select_spreads_over_feature_space():
    """Two clusters of features, the best scores all in one: with diversity the picks cover both."""
    n = 40
    pool = Pool(np.arange(n), np.zeros(n, int), np.zeros(n, int), 10, np.r_[np.full(20, 1.0), np.full(20, 0.8)],
                np.full(n, 100.0))  # fmt: skip  # one window per scene: no overlaps, no spatial signal
    features = np.r_[np.tile([1.0, 0.0], (20, 1)), np.tile([0.0, 1.0], (20, 1))]
    features += np.random.default_rng(0).normal(0, 0.01, features.shape)
    eligible = np.ones(n, bool)
    spread = select(pool, 4, eligible, features, diversity=1.0, feature_weight=1.0)
    plain = select(pool, 4, eligible, features, diversity=0.0)
    assert {i >= 20 for i in spread} == {True, False}
    assert all(i < 20 for i in plain)
    # Labeled windows in the first cluster push the first pick into the second.
    known_first = select(pool, 1, np.r_[np.zeros(5, bool), np.ones(35, bool)], features, known=np.arange(5),
                         diversity=1.0, feature_weight=1.0)  # fmt: skip
    assert known_first[0] >= 20


def test_random_picks_are_eligible_and_disjoint():
    pool = _pool()
    eligible = np.random.default_rng(1).random(len(pool)) > 0.3
    picks = random_picks(pool, 5, eligible, np.random.default_rng(0))
    assert len(picks) == 5 and all(eligible[i] for i in picks)
    assert not any(pool.overlaps(a)[b] for a in picks for b in picks if a != b)
    assert picks != random_picks(pool, 5, eligible, np.random.default_rng(1))


def test_clusters_go_where_the_labels_are_not():
    """Three groups of windows; labeled ones sit in the first two: picks come from the third first, and each
    group's pick is its most typical and uncertain member; picks never overlap."""
    rng = np.random.default_rng(0)
    centres = np.eye(3) * 5
    groups = np.repeat(np.arange(3), 30)
    features = centres[groups] + rng.normal(0, 0.3, (90, 3))
    n = len(groups)
    pool = Pool(np.arange(n), np.zeros(n, int), np.zeros(n, int), 10, rng.random(n), np.full(n, 100.0))
    known = np.array([0, 1, 30, 31])
    eligible = np.ones(n, bool)
    eligible[known] = False
    picks = select_clusters(pool, 1, eligible, features, known, np.random.default_rng(0))
    assert groups[picks[0]] == 2
    # Without uncertainty, the pick is the group's most typical window (nearest the others).
    typical = select_clusters(
        pool, 1, eligible, features, known, np.random.default_rng(0), uncertainty_weight=0
    )
    members = np.flatnonzero(groups == 2)
    spread = [np.linalg.norm(features[members] - features[i], axis=1).mean() for i in members]
    assert spread[list(members).index(typical[0])] <= np.median(spread)
    picks = select_clusters(pool, 6, eligible, features, known, np.random.default_rng(0))
    assert len(picks) == 6 and len(set(picks)) == 6 and 2 in set(groups[picks])
    assert not set(picks) & set(known.tolist())


def test_kmeans_finds_separated_groups():
    rng = np.random.default_rng(1)
    x = np.r_[rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (20, 2))]
    labels = kmeans(x, 2, rng)
    assert len(set(labels[:20])) == 1 and len(set(labels[20:])) == 1 and labels[0] != labels[-1]
