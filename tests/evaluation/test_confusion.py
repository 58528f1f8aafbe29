"""ConfusionMatrix: counting rules (ignore, invalid ids), input types, accumulation and distributed sums."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rsseg_cli.config import IGNORE_INDEX
from rsseg_cli.evaluation.confusion import ConfusionMatrix, _scatter_accumulate


def brute_force(pred: np.ndarray, target: np.ndarray, k: int, ignore: int = IGNORE_INDEX):
    """Pixel-by-pixel reference: (matrix, invalid_predictions, invalid_targets, ignored)."""
    m = np.zeros((k, k), dtype=np.int64)
    bad_pred = bad_target = ignored = 0
    for p, t in zip(pred.ravel().tolist(), target.ravel().tolist()):
        if t == ignore:
            ignored += 1
        elif not 0 <= t < k:
            bad_target += 1
        elif not 0 <= p < k:
            bad_pred += 1
        else:
            m[t, p] += 1
    return m, bad_pred, bad_target, ignored


def test_counts_rows_truth_cols_prediction():
    cm = ConfusionMatrix(3)
    cm.update(np.array([1, 2, 2, 0]), np.array([0, 0, 1, 0]))
    expected = np.zeros((3, 3), dtype=np.int64)
    expected[0, 1] = 1  # truth 0 predicted 1
    expected[0, 2] = 1
    expected[1, 2] = 1
    expected[0, 0] = 1
    assert cm.matrix.dtype == np.int64
    np.testing.assert_array_equal(cm.matrix, expected)
    assert cm.total == 4


def test_ignore_pixels_are_never_counted_as_class_zero():
    target = np.array([[255, 255, 0], [255, 1, 255]], dtype=np.uint8)
    pred = np.zeros_like(target)  # a model predicting class 0 everywhere, also over the ignore pixels
    cm = ConfusionMatrix(2).update(pred, target)
    np.testing.assert_array_equal(cm.matrix, [[1, 0], [1, 0]])
    assert cm.matrix[0].sum() == 1  # only the one real class-0 pixel
    assert cm.ignored == 4
    assert cm.total == 2
    assert cm.invalid_predictions == 0


def test_prediction_255_on_valid_target_is_an_invalid_prediction():
    target = torch.tensor([0, 1, 1, 255], dtype=torch.uint8)
    pred = torch.tensor([255, 1, 255, 255], dtype=torch.uint8)
    cm = ConfusionMatrix(2).update(pred, target)
    np.testing.assert_array_equal(cm.matrix, [[0, 0], [0, 1]])
    assert cm.invalid_predictions == 2  # the 255 on the ignore pixel is just ignored
    assert cm.ignored == 1


def test_out_of_range_ids_do_not_crash():
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([-1, 3, 99, 1]), torch.tensor([0, 2, 1, 7]))
    np.testing.assert_array_equal(cm.matrix, np.zeros((3, 3)))
    assert cm.invalid_predictions == 3
    assert cm.invalid_targets == 1  # 7 is neither a class nor the ignore index


def test_custom_ignore_index_wins_over_a_class_id():
    cm = ConfusionMatrix(3, ignore_index=0).update(np.array([0, 1, 2]), np.array([0, 1, 2]))
    np.testing.assert_array_equal(cm.matrix, np.diag([0, 1, 1]))
    assert cm.ignored == 1


def test_shape_mismatch_and_float_inputs_are_rejected():
    cm = ConfusionMatrix(2)
    with pytest.raises(ValueError, match="shape"):
        cm.update(np.zeros((2, 3), dtype=int), np.zeros((3, 2), dtype=int))
    with pytest.raises(TypeError, match="integer"):
        cm.update(torch.zeros(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        cm.update(np.zeros(4, dtype=int), np.zeros(4, dtype=np.float32))


def test_accumulator_is_a_torch_int64_tensor_on_the_input_device():
    cm = ConfusionMatrix(4)
    cm.update(torch.tensor([1, 2]), torch.tensor([1, 3]))
    assert isinstance(cm._hist, torch.Tensor)
    assert cm._hist.dtype == torch.int64
    assert cm.device == torch.device("cpu")


def test_torch_and_numpy_inputs_agree_across_dtypes_and_shapes():
    rng = np.random.default_rng(1)
    target = rng.integers(0, 4, size=(2, 5, 7)).astype(np.uint8)
    target[rng.random(target.shape) < 0.2] = IGNORE_INDEX
    pred = rng.integers(0, 5, size=target.shape).astype(np.int16)  # 4 is out of range for K=4
    a = ConfusionMatrix(4).update(pred, target)
    b = ConfusionMatrix(4).update(torch.from_numpy(pred), torch.from_numpy(target))
    c = ConfusionMatrix(4).update(pred.astype(np.uint16), target.astype(np.uint32))
    ref = brute_force(pred, target, 4)
    for cm in (a, b, c):
        assert (cm.matrix.tolist(), cm.invalid_predictions, cm.invalid_targets, cm.ignored) == (
            ref[0].tolist(),
            *ref[1:],
        )


def test_scatter_path_used_on_accelerators_matches_bincount():
    idx = torch.tensor([0, 3, 3, 5, 0, 3])
    hist = torch.zeros(7, dtype=torch.int64)
    _scatter_accumulate(hist, idx)
    assert hist.tolist() == torch.bincount(idx, minlength=7).tolist() == [2, 0, 0, 3, 0, 1, 0]


def test_merge_reset_and_empty():
    a = ConfusionMatrix(2).update(np.array([0, 1]), np.array([0, 0]))
    b = ConfusionMatrix(2).update(np.array([1, 255]), np.array([1, 1]))
    empty = ConfusionMatrix(2)
    assert empty.total == 0 and empty.matrix.shape == (2, 2)
    a.merge(b).merge(empty)
    np.testing.assert_array_equal(a.matrix, [[1, 1], [0, 1]])
    assert a.invalid_predictions == 1
    fresh = ConfusionMatrix(2).merge(b)  # merging into an untouched matrix copies, not aliases
    fresh.update(np.array([0]), np.array([0]))
    assert b.matrix[0, 0] == 0
    with pytest.raises(ValueError):
        a.merge(ConfusionMatrix(3))
    a.reset()
    assert a.total == 0 and a.invalid_predictions == 0


def test_all_reduce_is_a_noop_without_a_process_group():
    cm = ConfusionMatrix(2).update(np.array([0, 1]), np.array([0, 1]))
    cm.all_reduce()
    np.testing.assert_array_equal(cm.matrix, np.eye(2, dtype=np.int64))


def test_all_reduce_with_a_real_single_rank_group_keeps_counts(tmp_path: Path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        cm = ConfusionMatrix(2).update(np.array([0, 1, 1]), np.array([0, 0, 1]))
        cm.all_reduce()
        np.testing.assert_array_equal(cm.matrix, [[1, 1], [0, 1]])
        idle = ConfusionMatrix(2).all_reduce()  # a rank that saw no data still takes part
        np.testing.assert_array_equal(idle.matrix, np.zeros((2, 2)))
    finally:
        dist.destroy_process_group()


def test_all_reduce_reads_back_the_summed_counts(monkeypatch):
    # Stand-in for a second rank: the collective adds that rank's histogram in place, as a real SUM does.
    import torch.distributed as dist

    other = ConfusionMatrix(2).update(np.array([1, 1, 255]), np.array([1, 0, 1]))
    seen = {}

    def fake_all_reduce(tensor, op=None):
        seen["op"] = op
        tensor += other._hist

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_backend", lambda *a: "gloo")
    monkeypatch.setattr(dist, "all_reduce", fake_all_reduce)
    mine = ConfusionMatrix(2).update(np.array([0]), np.array([0]))
    mine.all_reduce()
    assert seen["op"] == dist.ReduceOp.SUM
    np.testing.assert_array_equal(mine.matrix, [[1, 1], [0, 1]])
    assert mine.invalid_predictions == 1
    idle = ConfusionMatrix(2).all_reduce()
    np.testing.assert_array_equal(idle.matrix, other.matrix)


@st.composite
def batches(draw):
    k = draw(st.integers(1, 5))
    shape = draw(st.tuples(st.integers(1, 4), st.integers(1, 6)))
    # Targets: classes, the ignore index and a few invalid ids; predictions: classes and invalid ids.
    target = draw(arrays(np.int64, shape, elements=st.sampled_from([*range(k), IGNORE_INDEX, k, -1])))
    pred = draw(arrays(np.int64, shape, elements=st.integers(-2, k + 1) | st.just(IGNORE_INDEX)))
    splits = draw(st.lists(st.integers(0, target.size), max_size=4))
    return k, pred, target, sorted(splits)


@settings(max_examples=150, deadline=None)
@given(batches())
def test_matches_brute_force_and_chunked_updates_equal_one_update(case):
    k, pred, target, splits = case
    ref_m, ref_bad_pred, ref_bad_target, ref_ignored = brute_force(pred, target, k)

    whole = ConfusionMatrix(k).update(pred, target)
    np.testing.assert_array_equal(whole.matrix, ref_m)
    assert whole.invalid_predictions == ref_bad_pred
    assert whole.invalid_targets == ref_bad_target
    assert whole.ignored == ref_ignored

    # The same pixels in several pieces (some empty), alternately as torch and numpy.
    chunked = ConfusionMatrix(k)
    bounds = [0, *splits, target.size]
    for n, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        p, t = pred.ravel()[lo:hi], target.ravel()[lo:hi]
        if n % 2:
            p, t = torch.from_numpy(p.copy()), torch.from_numpy(t.copy())
        chunked.update(p, t)
    np.testing.assert_array_equal(chunked.matrix, ref_m)
    assert chunked.invalid_predictions == ref_bad_pred
    assert chunked.ignored == ref_ignored


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_accumulates_on_device_and_matches_cpu():
    rng = np.random.default_rng(3)
    target = rng.integers(0, 6, size=(4, 64, 64))
    target[rng.random(target.shape) < 0.1] = IGNORE_INDEX
    pred = rng.integers(-1, 7, size=target.shape)
    cpu = ConfusionMatrix(6).update(pred, target)
    gpu = ConfusionMatrix(6)
    torch.use_deterministic_algorithms(True)
    try:
        for i in range(4):
            gpu.update(torch.from_numpy(pred[i]).cuda(), torch.from_numpy(target[i]).cuda())
    finally:
        torch.use_deterministic_algorithms(False)
    assert gpu.device.type == "cuda"
    np.testing.assert_array_equal(gpu.matrix, cpu.matrix)
    assert gpu.invalid_predictions == cpu.invalid_predictions
