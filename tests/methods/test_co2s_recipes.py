"""Co2S recipes (configs/co2s/*.yaml): they load, follow the paper's optimizer and crops, describe every class
with a few concepts for the CLIP student's text queries, and map the label values as the datasets store them.
Fast: nothing is built."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rsseg_cli.config import load_config

RECIPES = Path(__file__).resolve().parents[2] / "configs" / "co2s"

# name -> (classes, crop, chip size, epochs, reduce zero label: raster 0 ignored and k -> class k-1)
# The published Co2S mIoU per labeled share (results.md), quoted in each header.
PUBLISHED = {
    "whdld": {"1/24": 61.1, "1/16": 61.5, "1/8": 62.2, "1/4": 62.6},
    "loveda": {"1/40": 58.2, "1/16": 60.4, "1/8": 62.7, "1/4": 64.0},
    "potsdam": {"1/32": 74.3, "1/16": 76.6, "1/8": 79.8, "1/4": 80.2},
    "gid15": {"1/8": 75.4, "1/4": 77.7},
    "mer": {"1/8": 56.8, "1/4": 59.1},
    "msl": {"1/8": 60.9, "1/4": 65.9},
}
EXPECTED = {
    "whdld": (6, 256, 256, 80, True),
    "loveda": (7, 512, 1024, 80, True),  # whole 1024 px images
    "potsdam": (6, 512, 512, 80, True),
    "gid15": (15, 512, 512, 80, True),
    "mer": (9, 512, 512, 150, False),
    "msl": (9, 512, 512, 80, False),
}


def test_every_recipe_is_tested():
    assert sorted(p.stem for p in RECIPES.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recipe(name):
    num_classes, crop, chip, epochs, reduce_zero = EXPECTED[name]
    path = RECIPES / f"{name}.yaml"
    cfg = load_config(path)
    train = cfg.train

    assert train.method == "co2s"
    assert train.crop == crop and cfg.tile.chip_size == chip
    # The release rescales the short side to 512 x U(0.5, 2) before the crop and validates at short side 512,
    # except on LoveDA (the weak view's own ratio only): WHDLD's 256 px chips train at about twice their size.
    rescale = train.rescale
    if name == "loveda":
        assert rescale.mode == "ratio" and rescale.val_short_side is None
    else:
        assert (rescale.mode, rescale.short_side, rescale.max_long) == ("short_side", 512, 2048)
        assert rescale.ratio_range == (0.5, 2.0) and rescale.val_short_side == 512
    if name == "whdld":
        import torch

        from rsseg_cli.data.augment import rescaled_size

        g = torch.Generator().manual_seed(0)
        sides = [rescaled_size(chip, chip, g, rescale)[0] for _ in range(400)]
        assert min(sides) >= 256 and max(sides) <= 1024
        assert 1.8 < sum(sides) / len(sides) / chip < 2.7  # E[512 x U(0.5, 2)] / 256 = 2.5
    assert train.epochs == epochs
    # AdamW base lr 1e-4: backbone x0.01 = 1e-6, head x10 = 1e-3 = lr x1000, learned queries x1 = lr x100.
    assert train.lr == pytest.approx(1e-6)
    assert train.head_lr_mult == pytest.approx(1000)
    assert train.co2s.query_lr_mult == pytest.approx(100)
    assert train.batch_size == 2 and train.batch_size_unlabeled == 2
    assert train.tau == pytest.approx(0.95)
    assert (train.co2s.clip, train.co2s.dinov3) == ("clip_b16", "dinov3_b_qkvb")
    assert train.co2s.stability_weight == pytest.approx(0.5)
    assert train.co2s.stability_ramp == pytest.approx(0.2)
    assert cfg.model.weights == "hub"
    assert (
        cfg.model.input_scaling == "fixed"
    )  # 8-bit benchmark images: /255, as the pretrained models saw them
    # The default labeled share is the smallest one the paper reports for the dataset.
    smallest = max(PUBLISHED[name], key=lambda share: int(share.split("/")[1]))
    assert train.labeled == smallest

    classes = cfg.classes
    assert classes is not None and len(classes) == num_classes
    assert [c.id for c in classes] == list(range(num_classes))
    names = [c.name for c in classes]
    assert len(set(names)) == len(names)
    seen: dict[str, str] = {}
    for c in classes:
        assert c.color is not None
        assert len(c.concepts) >= 3, f"{name}: {c.name} needs at least 3 concepts"
        for concept in {c.name.lower(), *(k.strip().lower() for k in c.concepts)}:
            assert concept, f"{name}: {c.name} has a blank concept"
            assert seen.setdefault(concept, c.name) == c.name, (
                f"{name}: concept {concept!r} is used by {seen[concept]} and {c.name}"
            )
    assert len({c.color.lower() for c in classes}) == num_classes

    values = [c.value for c in classes]
    if reduce_zero:
        assert values == list(range(1, num_classes + 1))
        assert cfg.tile.labels.ignore_values == [0]
    else:
        assert values == list(range(num_classes))
        assert cfg.tile.labels.ignore_values == []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_header_documents_the_recipe(name):
    """The comment header says how to tile and train with the recipe and what the paper reported."""
    text = (RECIPES / f"{name}.yaml").read_text()
    header = text[: text.index("\nclasses:")]
    assert all(line.startswith("#") for line in header.splitlines())
    assert "rsseg tile" in header and "rsseg train" in header
    assert "rsseg prepare" in header and "--split co2s/" in header  # the paper's own lists
    assert f"configs/co2s/{name}.yaml" in header
    assert "mIoU" in header
    for share, miou in PUBLISHED[name].items():
        assert f"{share} {miou}" in header, f"{name}: published {share} mIoU {miou} missing from the header"
    data = yaml.safe_load(text)
    assert set(data) == {"classes", "tile", "model", "train", "evaluate"}
    assert data["evaluate"] == {"protocol": "co2s"}
