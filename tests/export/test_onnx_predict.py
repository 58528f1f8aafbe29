"""rsseg predict --checkpoint model.onnx: the same masks and probabilities as the .pt on a scene."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from tests.conftest import write_raster
from tests.export import save_method_checkpoint
from tests.predict.test_predict_cmd import scene_data

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from rsseg_cli.commands.export import ExportOptions, run


def _predict(cli, scene, model, out, *extra):
    r = cli("predict", scene, "--out", out / "m.tif", "--probs", out / "p.tif", "--checkpoint", model,
            "--batch-size", "3", *extra)  # fmt: skip
    assert r.code == 0, r.err
    with rasterio.open(out / "m.tif") as m, rasterio.open(out / "p.tif") as p:
        return m.read(1), p.read().astype(np.float64) / (255.0 if p.dtypes[0] == "uint8" else 1.0)


@pytest.mark.parametrize("method", ["supervised", "rs-mtdf", "co2s"])
def test_onnx_masks_equal_torch_masks(tmp_path, cli, method):
    ckpt = save_method_checkpoint(
        tmp_path / "best.pt", method, variant="ensemble" if method == "co2s" else None
    )
    model = tmp_path / "model.onnx"
    run(ExportOptions(onnx=model, checkpoint=ckpt))
    data = scene_data(70, 90)
    invalid = np.zeros((70, 90), bool)
    invalid[:8, :12] = True
    data[:, invalid] = 0
    scene = write_raster(tmp_path / "s.tif", data, nodata=0)
    extra = ("--tta", "flip") if method == "supervised" else ()
    (tmp_path / "pt").mkdir(), (tmp_path / "onnx").mkdir()
    mask_pt, probs_pt = _predict(cli, scene, ckpt, tmp_path / "pt", *extra)
    mask_onnx, probs_onnx = _predict(cli, scene, model, tmp_path / "onnx", *extra)
    ties = int((mask_pt != mask_onnx).sum())
    assert ties <= 3, f"{ties} pixels differ"
    assert (mask_onnx[invalid] == 255).all()
    assert np.abs(probs_pt - probs_onnx).max() <= 1 / 255 + 1e-9


def test_onnx_refuses_another_window_and_student(tmp_path, cli):
    ckpt = save_method_checkpoint(tmp_path / "best.pt", "supervised")
    model = tmp_path / "model.onnx"
    run(ExportOptions(onnx=model, checkpoint=ckpt))
    scene = write_raster(tmp_path / "s.tif", scene_data(40, 40))
    r = cli("predict", scene, "--out", tmp_path / "m.tif", "--checkpoint", model, "--window", "48")
    assert r.code == 2 and "--window-size 48" in r.err
    r = cli("predict", scene, "--out", tmp_path / "m.tif", "--checkpoint", model, "--student", "clip")
    assert r.code == 2 and "--student" in r.err


def test_onnx_predict_without_onnxruntime_says_how_to_install(tmp_path, cli, monkeypatch):
    import sys

    ckpt = save_method_checkpoint(tmp_path / "best.pt", "supervised")
    model = tmp_path / "model.onnx"
    run(ExportOptions(onnx=model, checkpoint=ckpt))
    scene = write_raster(tmp_path / "s.tif", scene_data(40, 40))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    r = cli("predict", scene, "--out", tmp_path / "m.tif", "--checkpoint", model)
    # The extra's name in brackets is eaten by the console's markup until cli_errors escapes messages.
    assert (
        r.code == 2 and "onnxruntime, which is not installed" in r.err and "pip install 'rsseg-cli" in r.err
    )
    assert not (tmp_path / "m.tif").exists()
    import torch

    from rsseg_cli.errors import UserError
    from rsseg_cli.predict.model import load_inference_model

    with pytest.raises(UserError, match=r"pip install 'rsseg-cli\[onnx\]'"):
        load_inference_model(model, torch.device("cpu"), "fp32")


def test_dynamic_export_predicts_at_another_window(tmp_path, cli):
    ckpt = save_method_checkpoint(tmp_path / "best.pt", "supervised")
    model = tmp_path / "dyn.onnx"
    run(ExportOptions(onnx=model, checkpoint=ckpt, dynamic=True))
    scene = write_raster(tmp_path / "s.tif", scene_data(70, 90))
    (tmp_path / "pt").mkdir(), (tmp_path / "onnx").mkdir()
    mask_pt, probs_pt = _predict(cli, scene, ckpt, tmp_path / "pt", "--window", "48")
    mask_onnx, probs_onnx = _predict(cli, scene, model, tmp_path / "onnx", "--window", "48")
    assert int((mask_pt != mask_onnx).sum()) <= 3
    assert np.abs(probs_pt - probs_onnx).max() <= 1 / 255 + 1e-9
