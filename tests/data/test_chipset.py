"""Training inputs: normalization, augmentations, labeled subsets and chip datasets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from rsseg_cli.config import IGNORE_INDEX, load_config
from rsseg_cli.data.augment import (
    _hsv_to_rgb,
    _rgb_to_hsv,
    colour_jitter,
    cutmix_box,
    gaussian_blur,
    grayscale,
    mix,
    partner,
    strong_view,
    weak_view,
)
from rsseg_cli.data.normalize import IMAGENET_MEAN, Normalization, default_band_map, rgb_bands
from rsseg_cli.data.subsets import parse_labeled, read_split_file, select_labeled, write_split_files
from rsseg_cli.errors import UserError


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- normalization -------------------------------------------------------------------------------


def test_stretch_and_standardize():
    stats = {"p2": [100.0, 0.0, 5.0], "p98": [300.0, 10.0, 5.0]}
    norm = Normalization.from_dataset(stats, [0, None, 2])
    raw = np.array([[[100, 200, 400]], [[5, 10, -3]], [[5, 6, 4]]], dtype=np.uint16 if False else np.float32)
    unit = norm.stretch(raw)
    torch.testing.assert_close(unit[0, 0], torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(unit[1, 0], torch.tensor([0.5, 1.0, 0.0]))
    assert torch.isfinite(unit).all()  # constant band (p2 == p98) does not divide by zero
    std = norm.standardize(unit)
    assert std[0, 0, 0] == pytest.approx((0 - IMAGENET_MEAN[0]) / 0.229)
    assert norm.mean[1] == pytest.approx(np.mean(IMAGENET_MEAN))
    assert Normalization.from_dict(norm.to_dict()) == norm


def test_default_band_map_by_name_or_order():
    assert default_band_map(["blue", "green", "red", "nir"]) == [2, 1, 0, None]
    assert default_band_map(["b1", "b2", "b3", "b4"]) == [0, 1, 2, None]
    assert default_band_map(["nir", "swir"]) == [0, 1]
    assert rgb_bands([2, 1, 0, None]) == (2, 1, 0)
    assert rgb_bands([0, None]) is None


# --- augmentations --------------------------------------------------------------------------------


def test_weak_view_geometry_and_padding():
    image = torch.rand(4, 40, 50)
    mask = torch.randint(0, 3, (40, 50))
    invalid = torch.zeros(40, 50, dtype=torch.bool)
    invalid[:, :5] = True
    for seed in range(20):
        img, m, ign = weak_view(image, mask, invalid, 64, gen(seed))
        assert img.shape == (4, 64, 64) and m.shape == ign.shape == (64, 64)
        assert (m[ign] == IGNORE_INDEX).all()  # padded and invalid pixels are ignored
        assert set(m[~ign].unique().tolist()) <= {0, 1, 2}
    # Same generator seed, same view.
    a = weak_view(image, mask, invalid, 32, gen(7))
    b = weak_view(image, mask, invalid, 32, gen(7))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_weak_view_keeps_image_and_mask_aligned():
    # A mask that equals a function of the image survives rescale, crop and flip (nearest vs bilinear aside).
    image = torch.zeros(1, 64, 64)
    image[:, :, 32:] = 1.0
    mask = (image[0] > 0.5).long()
    for seed in range(10):
        img, m, ign = weak_view(image, mask, torch.zeros(64, 64, dtype=torch.bool), 48, gen(seed))
        agree = ((img[0] > 0.5).long() == m) | ign
        assert agree.float().mean() > 0.97


def test_colour_ops_on_n_bands():
    image = torch.rand(6, 16, 16)
    rgb = (2, 1, 0)
    grey = grayscale(image, rgb)
    assert torch.allclose(grey[2], grey[1]) and torch.allclose(grey[1], grey[0])
    assert torch.equal(grey[3:], image[3:])  # non-RGB bands untouched
    assert torch.equal(grayscale(image, None), image)
    out = colour_jitter(image, rgb, gen(1))
    assert out.shape == image.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, image)
    hsv = _rgb_to_hsv(image[:3])
    torch.testing.assert_close(_hsv_to_rgb(hsv), image[:3], atol=1e-5, rtol=0)


def test_blur_preserves_constant_and_mean():
    flat = torch.full((2, 20, 20), 0.3)
    torch.testing.assert_close(gaussian_blur(flat, 1.5), flat)
    noisy = torch.rand(1, 32, 32)
    blurred = gaussian_blur(noisy, 2.0)
    assert blurred.std() < noisy.std()


def test_strong_view_is_seeded():
    image = torch.rand(4, 24, 24)
    assert torch.equal(strong_view(image, (0, 1, 2), gen(3)), strong_view(image, (0, 1, 2), gen(3)))


def test_cutmix_box_area_and_probability():
    boxes = [cutmix_box(100, gen(s)) for s in range(400)]
    used = [b for b in boxes if b.any()]
    assert 0.4 < len(used) / len(boxes) < 0.6
    areas = np.array([b.float().mean().item() for b in used])
    assert areas.min() > 0.015 and areas.max() < 0.41
    # A box is one rectangle.
    b = used[0]
    rows, cols = b.any(1).nonzero(), b.any(0).nonzero()
    assert b[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()


def test_mix_pastes_partner_inside_box():
    x = torch.arange(3, dtype=torch.float)[:, None, None, None].expand(3, 2, 4, 4).clone()
    box = torch.zeros(3, 4, 4, dtype=torch.bool)
    box[:, :2, :2] = True
    out = mix(x, partner(x), box)
    assert out[0, :, 0, 0].tolist() == [2, 2] and out[1, :, 0, 0].tolist() == [0, 0]
    assert out[0, :, 3, 3].tolist() == [0, 0]


# --- labeled subsets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ratio", "count"),
    [("1/8", 0.125, None), ("10%", 0.1, None), ("0.25", 0.25, None), ("40", None, 40), ("1/1", 1.0, None)],
)
def test_parse_labeled(text, ratio, count):
    spec = parse_labeled(text)
    assert spec.count == count and (spec.ratio == pytest.approx(ratio) if ratio else spec.ratio is None)


@pytest.mark.parametrize("text", ["3/2", "150%", "0", "-1", "abc", "1/0"])
def test_parse_labeled_rejects(text):
    with pytest.raises(UserError):
        parse_labeled(text)


def _candidates(n=80, k=4, rare=2):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        px = rng.integers(0, 100, k)
        px[rare] = 50 if i == n - 1 else 0  # the rare class lives in one chip only
        rows.append({"id": f"c{i:03d}", **{f"px_{c}": int(px[c]) for c in range(k)}})
    return pd.DataFrame(rows)


def test_select_labeled_is_seeded_and_covers_rare_classes():
    cand = _candidates()
    a = select_labeled(cand, parse_labeled("1/8"), seed=1, num_classes=4)
    b = select_labeled(cand, parse_labeled("1/8"), seed=1, num_classes=4)
    c = select_labeled(cand, parse_labeled("1/8"), seed=2, num_classes=4)
    assert a == b and a != c and len(a) == 10
    assert "c079" in a and "c079" in c  # the only chip with the rare class is always chosen
    assert len(select_labeled(cand, parse_labeled("7"), 0, 4)) == 7


def test_select_labeled_errors():
    cand = _candidates(n=5)
    with pytest.raises(UserError, match="leaves no labeled chip"):
        select_labeled(cand, parse_labeled("1/16"), 0, 4)
    with pytest.raises(UserError, match="only 5"):
        select_labeled(cand, parse_labeled("9"), 0, 4)
    with pytest.raises(UserError, match="no labeled chip"):
        select_labeled(cand.iloc[:0], parse_labeled("1/8"), 0, 4)


def test_split_files_round_trip(tmp_path):
    write_split_files(tmp_path / "splits", ["a", "b"], ["c"])
    assert read_split_file(tmp_path / "splits" / "labeled.txt", {"a", "b", "c"}) == ["a", "b"]
    with pytest.raises(UserError, match="not labeled training chips"):
        read_split_file(tmp_path / "splits" / "labeled.txt", {"a"})
    with pytest.raises(UserError, match="does not exist"):
        read_split_file(tmp_path / "nope.txt", {"a"})


# --- chip datasets ----------------------------------------------------------------------------------


def test_chip_datasets_from_a_tiled_sample(tmp_path):
    from rsseg_cli.data.chipset import ChipDataset, EvalChips, LabeledTrain, UnlabeledTrain
    from rsseg_cli.data.tiling import tile_scenes
    from rsseg_cli.synthetic import generate_sample

    sample = generate_sample(tmp_path / "s", height=256, width=256)
    tile_scenes(
        [sample.scene], [sample.labels], tmp_path / "data", load_config(overrides=["tile.chip_size=64"])
    )
    data = ChipDataset.open(tmp_path / "data")
    assert data.num_classes == 7 and data.band_names == ["red", "green", "blue", "nir"]
    band_map = default_band_map(data.band_names)
    norm = Normalization.from_dataset(data.meta["statistics"], band_map)
    ids = data.split("train", labeled=True)["id"].tolist()[:4]
    lab = LabeledTrain(data, ids, norm, crop=48, seed=0)
    item = lab[0]
    assert item["image"].shape == (4, 48, 48) and item["mask"].dtype == torch.int64
    assert torch.equal(lab[0]["image"], item["image"])  # same seed, epoch and index
    lab.set_epoch(1)
    assert not torch.equal(lab[0]["image"], item["image"])
    unl = UnlabeledTrain(data, ids, norm, crop=48, rgb=rgb_bands(band_map), seed=0)
    u = unl[1]
    assert {k: tuple(v.shape) for k, v in u.items()} == {
        "weak": (4, 48, 48),
        "strong1": (4, 48, 48),
        "strong2": (4, 48, 48),
        "ignore": (48, 48),
        "box1": (48, 48),
        "box2": (48, 48),
    }
    assert not torch.equal(u["strong1"], u["strong2"]) or torch.equal(u["strong1"], u["weak"])
    ev = EvalChips(data, ids, norm)
    e = ev[0]
    assert e["image"].shape == (4, 64, 64) and e["mask"].shape == (64, 64)
