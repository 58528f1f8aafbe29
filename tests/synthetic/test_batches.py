"""The shared synthetic training batch (rsseg_cli.synthetic.batches)."""

from __future__ import annotations

import pytest
import torch

from rsseg_cli.synthetic.batches import synthetic_batch


def _reference(n: int = 2, size: int = 32, bands: int = 4, classes: int = 7) -> tuple[dict, dict]:
    # The batch the method tests were written against (formerly tests/methods/batches.fixed_batch).
    g = torch.Generator().manual_seed(1)
    box = torch.zeros(n, size, size, dtype=torch.bool)
    box[:, 8:20, 8:20] = True
    labeled = {
        "image": torch.randn(n, bands, size, size, generator=g),
        "mask": torch.randint(0, classes, (n, size, size), generator=g),
    }
    unlabeled = {
        "weak": torch.randn(n, bands, size, size, generator=g),
        "strong1": torch.randn(n, bands, size, size, generator=g),
        "strong2": torch.randn(n, bands, size, size, generator=g),
        "ignore": torch.zeros(n, size, size, dtype=torch.bool),
        "box1": box,
        "box2": box.flip(-1),
    }
    return labeled, unlabeled


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "kwargs", [{}, {"classes": 3}, {"n": 3, "bands": 5, "classes": 9}, {"n": 1, "size": 48, "bands": 3}]
)
def test_same_tensors_as_the_method_tests_batch(kwargs: dict) -> None:
    labeled, unlabeled = synthetic_batch(**kwargs)
    ref_l, ref_u = _reference(**kwargs)
    assert _same(labeled, ref_l) and _same(unlabeled, ref_u)


def test_shapes_seed_box_and_device() -> None:
    labeled, unlabeled = synthetic_batch(3, 5, 48, 9, "cpu", seed=7, box=(4, 12))
    assert labeled["image"].shape == (3, 5, 48, 48) and labeled["mask"].shape == (3, 48, 48)
    assert int(labeled["mask"].max()) < 9 and labeled["mask"].dtype == torch.int64
    for k in ("weak", "strong1", "strong2"):
        assert unlabeled[k].shape == (3, 5, 48, 48)
    assert not unlabeled["ignore"].any()
    assert unlabeled["box1"][:, 4:12, 4:12].all() and int(unlabeled["box1"].sum()) == 3 * 8 * 8
    assert torch.equal(unlabeled["box2"], unlabeled["box1"].flip(-1))
    again, _ = synthetic_batch(3, 5, 48, 9, seed=7)
    other, _ = synthetic_batch(3, 5, 48, 9, seed=8)
    assert torch.equal(again["image"], labeled["image"]) and not torch.equal(other["image"], labeled["image"])
