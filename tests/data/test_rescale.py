"""train.rescale: the rescale before the training crop (UniMatch's ratio rule, Co2S's mmseg short-side rule)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rsseg_cli.config import IGNORE_INDEX, load_config
from rsseg_cli.config_rescale import RescaleConfig
from rsseg_cli.data.augment import rescaled_size, short_side_size, weak_view
from rsseg_cli.errors import UserError

CO2S = RescaleConfig(mode="short_side", short_side=512, max_long=2048, ratio_range=(0.5, 2.0))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def drawn_ratio(seed: int, low: float = 0.5, high: float = 2.0) -> float:
    """The r a weak view draws first from gen(seed)."""
    return low + (high - low) * float(torch.rand((), generator=gen(seed)))


def rescaled_extent(image: torch.Tensor, rescale: RescaleConfig, seed: int, crop: int) -> tuple[int, int]:
    """(height, width) a weak view rescales `image` to, read off its padding: with a crop larger than any
    rescaled size the crop keeps everything (top = left = 0) and only the padding is ignored."""
    _, h, w = image.shape
    mask = torch.zeros(h, w, dtype=torch.int64)
    _, out_mask, ignore = weak_view(
        image, mask, torch.zeros(h, w, dtype=torch.bool), crop, gen(seed), rescale
    )
    kept = ~ignore
    assert torch.equal(out_mask == IGNORE_INDEX, ignore)
    return int(kept.any(dim=1).sum()), int(kept.any(dim=0).sum())


def old_weak_view(image, mask, ignore, crop, g, scale=(0.5, 2.0)):
    """weak_view as it was before train.rescale (the ratio rule), for the bit-for-bit comparison."""
    _, h, w = image.shape
    ratio = scale[0] + (scale[1] - scale[0]) * float(torch.rand((), generator=g))
    nh, nw = max(1, round(h * ratio)), max(1, round(w * ratio))
    image = F.interpolate(image[None], size=(nh, nw), mode="bilinear", align_corners=False)[0]
    stacked = torch.stack([mask.float(), ignore.float()])[None]
    mask, ignore = F.interpolate(stacked, size=(nh, nw), mode="nearest")[0]
    mask, ignore = mask.long(), ignore > 0.5
    ph, pw = max(0, crop - nh), max(0, crop - nw)
    if ph or pw:
        image = F.pad(image, (0, pw, 0, ph), value=0.0)
        mask = F.pad(mask, (0, pw, 0, ph), value=IGNORE_INDEX)
        ignore = F.pad(ignore, (0, pw, 0, ph), value=True)
    _, h, w = image.shape
    top = int(torch.randint(0, h - crop + 1, (), generator=g))
    left = int(torch.randint(0, w - crop + 1, (), generator=g))
    image, mask = image[:, top : top + crop, left : left + crop], mask[top : top + crop, left : left + crop]
    ignore = ignore[top : top + crop, left : left + crop]
    if float(torch.rand((), generator=g)) < 0.5:
        image, mask, ignore = image.flip(-1), mask.flip(-1), ignore.flip(-1)
    return image, mask.masked_fill(ignore, IGNORE_INDEX), ignore


def test_short_side_rule_trains_a_256px_chip_at_about_twice_its_size():
    """WHDLD: 256 px chips, short side 512 x U(0.5, 2) -> 256..1024 px, mostly above 256 (about 2x)."""
    image = torch.rand(1, 256, 256)
    sides = []
    for seed in range(40):
        r = drawn_ratio(seed)
        factor = min(int(2048 * r) / 256, int(512 * r) / 256)
        expected = int(256 * factor + 0.5)
        assert rescaled_size(256, 256, gen(seed), CO2S) == (expected, expected)
        if seed < 6:  # through weak_view as well (a 1030 px crop is slow enough)
            assert rescaled_extent(image, CO2S, seed, 1030) == (expected, expected)
        sides.append(expected)
    assert min(sides) >= 256 and max(sides) <= 1024
    assert sum(sides) / len(sides) > 1.8 * 256  # E[512 r] = 640 = 2.5 x 256; the ratio rule gives 1.25 x 256
    # The ratio rule draws the same r but scales the chip's own size: 128..512 px.
    assert rescaled_size(256, 256, gen(0), RescaleConfig()) == (round(256 * drawn_ratio(0)),) * 2


def test_short_side_rule_does_not_depend_on_the_chip_size():
    for seed in range(10):
        r = drawn_ratio(seed)
        assert rescaled_size(512, 512, gen(seed), CO2S) == rescaled_size(1024, 1024, gen(seed), CO2S)
        assert rescaled_size(300, 600, gen(seed), CO2S)[0] == int(300 * int(512 * r) / 300 + 0.5)


def test_long_side_cap_for_an_elongated_chip():
    # r = 1: 512 / 100 would make the long side 5120; the cap 2048 / 1000 wins.
    assert short_side_size(100, 1000, 512, 2048) == (205, 2048)
    assert short_side_size(1000, 100, 512, 2048) == (2048, 205)
    small = RescaleConfig(mode="short_side", short_side=64, max_long=256)
    image = torch.rand(2, 10, 100)
    for seed in range(8):
        r = drawn_ratio(seed)
        factor = int(2048 * r) / 1000
        assert factor < int(512 * r) / 100
        expected = (int(100 * factor + 0.5), int(1000 * factor + 0.5))
        assert rescaled_size(100, 1000, gen(seed), CO2S) == expected
        assert expected[1] <= 2048 * r
        # The same rule on a small image, through weak_view: long side int(256 r), not 64 r / 10 x 100.
        factor = int(256 * r) / 100
        assert rescaled_extent(image, small, seed, 520) == (int(10 * factor + 0.5), int(100 * factor + 0.5))


def test_ratio_mode_is_unchanged_bit_for_bit():
    image, mask = torch.rand(4, 64, 80), torch.randint(0, 5, (64, 80))
    invalid = torch.zeros(64, 80, dtype=torch.bool)
    invalid[:5, :7] = True
    for seed in range(12):
        for rescale in (None, RescaleConfig(), RescaleConfig(mode="ratio", short_side=64, max_long=64)):
            g_new, g_old = gen(seed), gen(seed)
            new = weak_view(image, mask, invalid, 48, g_new, rescale)
            old = old_weak_view(image, mask, invalid, 48, g_old)
            for a, b in zip(new, old):
                assert torch.equal(a, b)
            assert torch.equal(g_new.get_state(), g_old.get_state())  # same draws, in the same order


def test_ratio_range_applies_to_both_modes():
    one = RescaleConfig(ratio_range=(1.0, 1.0))
    assert rescaled_size(40, 50, gen(3), one) == (40, 50)  # [1, 1]: no rescale at all
    narrow = RescaleConfig(mode="short_side", short_side=100, max_long=400, ratio_range=(1.0, 1.0))
    assert rescaled_size(40, 50, gen(3), narrow) == (100, 125)


def test_chip_datasets_pass_the_rescale_rule(dataset):
    from rsseg_cli.data.chipset import ChipDataset, LabeledTrain, UnlabeledTrain
    from rsseg_cli.data.normalize import Normalization, default_band_map, rgb_bands

    data = ChipDataset.open(dataset)
    band_map = default_band_map(data.band_names)
    norm = Normalization.from_dataset(data.meta["statistics"], band_map)
    ids = data.split("train", labeled=True)["id"].tolist()[:2]
    # A crop larger than any rescaled 64 px chip: the unpadded extent shows the rescale rule.
    big = RescaleConfig(mode="short_side", short_side=200, max_long=800, ratio_range=(1.0, 1.0))
    lab = LabeledTrain(data, ids, norm, crop=256, seed=0, rescale=big)
    assert int((lab[0]["mask"] != IGNORE_INDEX).any(dim=1).sum()) == 200
    unl = UnlabeledTrain(data, ids, norm, crop=256, rgb=rgb_bands(band_map), seed=0, rescale=big)
    assert int((~unl[0]["ignore"]).any(dim=1).sum()) == 200
    default = LabeledTrain(data, ids, norm, crop=48, seed=0)
    explicit = LabeledTrain(data, ids, norm, crop=48, seed=0, rescale=RescaleConfig())
    assert torch.equal(default[1]["image"], explicit[1]["image"])


def test_config_section_defaults_and_overrides():
    cfg = load_config()
    assert cfg.train.rescale == RescaleConfig()
    assert cfg.train.rescale.mode == "ratio" and cfg.train.rescale.val_short_side is None
    cfg = load_config(
        overrides=["train.rescale.mode=short_side", "train.rescale.val_short_side=512", "train.crop=256"]
    )
    assert cfg.train.rescale.mode == "short_side" and cfg.train.rescale.ratio_range == (0.5, 2.0)
    assert cfg.train.rescale.val_short_side == 512


@pytest.mark.parametrize(
    "override, needle",
    [
        ("train.rescale.mode=long_side", "short_side"),
        ("train.rescale.ratio_range=[2.0, 0.5]", "0 < low <= high"),
        ("train.rescale.ratio_range=[0, 1]", "0 < low <= high"),
        ("train.rescale.ratio_range=[0.5]", "ratio_range"),
        ("train.rescale.short_side=0", "short_side"),
        ("train.rescale.max_long=256", "max_long (256) must be at least train.rescale.short_side (512)"),
        ("train.rescale.val_short_side=0", "val_short_side"),
        ("train.rescale.scale=2", "scale"),
    ],
)
def test_config_rejects_bad_values(override, needle):
    with pytest.raises(UserError) as info:
        load_config(overrides=[override])
    assert needle in str(info.value)
