"""`torchrun --nproc_per_node 2 -m rsseg_cli predict` on CPU (gloo): the scenes are shared out, a scene above
predict.split_megapixels is cut into column bands across both processes, and every output equals the
single-process output: masks byte for byte, probabilities to their quantization."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from tests.conftest import write_raster
from tests.helpers import torchrun
from tests.predict.test_predict_cmd import scene_data

# Band width 64 and a 0.01 MP split threshold: the 96 x 300 scene (0.029 MP) is cut into 5 column bands.
SETS = [
    "--set",
    "predict.band_width=64",
    "--set",
    "predict.split_megapixels=0.01",
    "--set",
    "predict.device=cpu",
]
SIZES = {"a": (40, 40), "b": (56, 72), "c": (48, 48), "big": (96, 300)}


@pytest.fixture
def scenes(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, (h, w) in SIZES.items():
        write_raster(folder / f"{name}.tif", scene_data(h, w, seed=len(name) * 7 + h))
    return folder


def _read(path: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as src:
        return src.read(), {"colormap": src.colormap(1) if src.count == 1 else None, "crs": src.crs}


def test_two_processes_write_what_one_writes(tmp_path, cli, checkpoint, scenes):
    args = ["predict", str(scenes / "*.tif"), "--checkpoint", str(checkpoint), *SETS]
    one = cli(*args, "--out", tmp_path / "one", "--probs", tmp_path / "one")
    assert one.code == 0, one.err[-3000:]
    two_out = tmp_path / "two"
    proc = torchrun(2, [*args, "--out", str(two_out), "--probs", str(two_out)], tmp_path)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-4000:]
    for name in SIZES:
        mask_one, meta_one = _read(tmp_path / "one" / f"{name}.tif")
        mask_two, meta_two = _read(two_out / f"{name}.tif")
        np.testing.assert_array_equal(mask_two, mask_one)
        assert meta_two == meta_one
        assert (two_out / f"{name}.tif").read_bytes() == (tmp_path / "one" / f"{name}.tif").read_bytes()
        probs_one, _ = _read(tmp_path / "one" / f"{name}_probs.tif")
        probs_two, _ = _read(two_out / f"{name}_probs.tif")
        assert np.abs(probs_two.astype(int) - probs_one.astype(int)).max() <= 1  # uint8 quantization
    lines = [json.loads(x) for x in (two_out / "predict_manifest.jsonl").read_text().splitlines()]
    assert sorted(Path(r["scene"]).stem for r in lines) == sorted(SIZES) and {r["status"] for r in lines} == {
        "done"
    }
    assert {r["rank"] for r in lines} == {0, 1}  # both processes predicted whole scenes
    big = next(r for r in lines if Path(r["scene"]).stem == "big")
    assert big["bands"] == [[0, 3], [3, 5]]  # the big scene's 5 bands: 3 on rank 0, 2 on rank 1
    assert (stdout + stderr).count("rsseg predict") == 1  # one summary table, from rank 0
    assert (two_out / "mosaic.vrt").exists() and (two_out / "footprints.gpkg").exists()
    assert not [p for p in two_out.iterdir() if p.name.startswith(".")]  # no part files, no lock
