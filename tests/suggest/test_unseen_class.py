"""Scores rank a region the model cannot know (a class it never saw a label of) above the ones it knows.

A scene of three spectrally distinct classes in 32 px blocks: the labels cover the top half, where only
classes 0 and 1 occur; class 2 fills most blocks of the bottom-right quadrant and is never labeled. After a
short real training, the model predicts class 2's blocks confidently as 0 or 1 (softmax entropy is blind to
what it never saw), yet suggest, told what is labeled (--exclude the dataset), must rank them above the
unlabeled blocks of the known classes: its hybrid score includes the feature distance to the labeled windows.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest

from tests.conftest import write_raster
from tests.helpers import TINY_TRAIN

SIGNATURES = np.array([[1800, 400, 300], [400, 1800, 300], [500, 500, 1900]])  # per class, 3 bands


@pytest.fixture(scope="module")
def unseen(tmp_path_factory):
    root = tmp_path_factory.mktemp("unseen")
    rng = np.random.default_rng(0)
    h = w = 256
    blocks = rng.integers(0, 2, (8, 8))  # 32 px blocks of class 0 or 1
    blocks[4:, 4:] = np.where(rng.random((4, 4)) < 0.75, 2, blocks[4:, 4:])  # class 2 in one quadrant
    classes = np.kron(blocks, np.ones((32, 32), int)).astype(np.uint8)
    data = SIGNATURES[classes].transpose(2, 0, 1) + rng.normal(0, 120, (3, h, w))
    image = write_raster(root / "scene.tif", np.clip(data, 1, 4000).astype(np.uint16))
    labels = classes.copy()
    labels[h // 2 :] = 255  # the top half is labeled (classes 0 and 1 only)
    label_path = write_raster(root / "labels.tif", labels, nodata=255)
    config = root / "classes.yaml"
    config.write_text("classes:\n" + "".join(f"  - {{id: {i}, name: c{i}}}\n" for i in range(3)))
    return root, image, label_path, config, classes


def test_unseen_class_scores_highest(cli, unseen, monkeypatch):
    root, image, labels, config, classes = unseen
    monkeypatch.chdir(root)
    assert cli("tile", image, "--labels", labels, "--config", config, "--chip-size", "32",
               "--set", "tile.split.method=scene", "--keep-incomplete").code == 0  # fmt: skip
    sets = [x for s in [*TINY_TRAIN, "train.crop=32", "train.iterations=60"] for x in ("--set", s)]
    r = cli("train", "--method", "supervised", "--no-val", "--config", config, "--out", root / "run", *sets)
    assert r.code == 0, r.out + r.err
    out = root / "s.gpkg"
    r = cli("suggest", image, "--checkpoint", root / "run/checkpoints/best.pt", "--budget", "6", "--out", out,
            "--exclude", root / "data", "--set", "suggest.diversity=0", "--no-quicklook")  # fmt: skip
    assert r.code == 0, r.out + r.err
    frame = gpd.read_file(out, layer="suggestions")
    assert (frame["row"] >= 128).all()  # never the labeled half
    unseen = np.array(
        [(classes[r : r + 32, c : c + 32] == 2).mean() for r, c in zip(frame["row"], frame["col"])]
    )
    # 13 of the 32 unlabeled blocks hold class 2: the top 6 must be mostly those.
    assert (unseen == 1).sum() >= 5, frame[["rank", "row", "col", "score", "entropy", "novelty"]]
    assert frame["novelty"].notna().all()
