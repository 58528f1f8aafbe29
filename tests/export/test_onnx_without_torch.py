"""rsseg predict --checkpoint model.onnx on a machine without PyTorch: the model is exported here (with torch),
then predicted in a subprocess where importing torch (and timm, open_clip, torchvision) fails as if they were
not installed. Its mask must be the one predicted in-process with the same .onnx, where torch is importable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from tests.conftest import write_raster
from tests.export import save_method_checkpoint
from tests.predict.test_predict_cmd import scene_data

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from rsseg_cli.commands.export import ExportOptions, run

ROOT = Path(__file__).resolve().parents[2]
# Installed by the subprocess's site module before anything runs: imports of torch & co. fail as they do
# where the packages are absent (ModuleNotFoundError naming the module).
NO_TORCH = """
import sys

BLOCKED = {"torch", "torchvision", "timm", "open_clip"}


class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoTorch())
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(best.pt, model.onnx, a scene with a nodata corner)."""
    root = tmp_path_factory.mktemp("onnx_without_torch")
    ckpt = save_method_checkpoint(root / "best.pt", "supervised")
    run(ExportOptions(onnx=root / "model.onnx", checkpoint=ckpt))
    data = scene_data(70, 90)
    data[:, :8, :12] = 0
    return ckpt, root / "model.onnx", write_raster(root / "s.tif", data, nodata=0)


def without_torch(tmp_path: Path, *args: str | Path) -> subprocess.CompletedProcess:
    """`python -m rsseg_cli ARGS` where torch cannot be imported."""
    site = tmp_path / "no_torch"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(NO_TORCH, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "HF_HUB_OFFLINE": "1",
           "COLUMNS": "200"}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "rsseg_cli", *map(str, args)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def test_torch_is_really_blocked(tmp_path):
    site = tmp_path / "no_torch"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_TORCH, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(site)}
    r = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "No module named 'torch'" in r.stderr


@pytest.mark.parametrize("tta", ["none", "flip"])
def test_onnx_predict_without_torch_equals_in_process(tmp_path, cli, exported, tta):
    _, model, scene = exported
    args = ("--checkpoint", model, "--tta", tta, "--batch-size", "3")
    r = without_torch(tmp_path, "predict", scene, "--out", tmp_path / "a" / "m.tif",
                      "--probs", tmp_path / "a" / "p.tif", *args)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    r2 = cli("predict", scene, "--out", tmp_path / "b" / "m.tif", "--probs", tmp_path / "b" / "p.tif", *args)
    assert r2.code == 0, r2.err
    mask = read(tmp_path / "a" / "m.tif")
    np.testing.assert_array_equal(mask, read(tmp_path / "b" / "m.tif"))
    np.testing.assert_array_equal(read(tmp_path / "a" / "p.tif"), read(tmp_path / "b" / "p.tif"))
    assert (mask[0, :8, :12] == 255).all() and (mask[0, 8:, 12:] != 255).all()


def test_pt_checkpoint_without_torch_says_so(tmp_path, exported):
    ckpt, _, scene = exported
    r = without_torch(tmp_path, "predict", scene, "--out", tmp_path / "m.tif", "--checkpoint", ckpt)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "PyTorch is not installed" in r.stderr and "rsseg export --onnx" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "m.tif").exists()
