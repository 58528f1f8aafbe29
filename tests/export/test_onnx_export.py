"""rsseg export --onnx: the graph onnxruntime runs equals the torch model on raw inputs; metadata; refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rsseg_cli.data.normalize import Normalization
from rsseg_cli.engine.checkpoint import Checkpoint
from rsseg_cli.errors import UserError
from tests.export import CROP, save_method_checkpoint
from tests.predict.conftest import CLASSES

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from rsseg_cli.commands.export import ExportOptions, run  # noqa: E402


def torch_probs(ckpt_path: Path, raw: np.ndarray, student: str | None = None) -> np.ndarray:
    """The .pt path's probabilities: Normalization.model_input (numpy) then the model, softmax."""
    ckpt = Checkpoint.read(ckpt_path)
    model = ckpt.load_model("cpu", student)
    norm = Normalization.from_dict(ckpt.normalization)
    x = torch.from_numpy(np.stack([norm.model_input(r) for r in raw]))
    with torch.no_grad():
        return model(x).float().softmax(dim=1).numpy()


def onnx_probs(path: Path, raw: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"raw": raw.astype(np.float32)})[0]


def raw_batch(n: int, size: int = CROP, seed: int = 0) -> np.ndarray:
    # Beyond the 0..1000 stretch on both sides, so the clip inside the graph is exercised.
    return np.random.default_rng(seed).uniform(-100, 1300, (n, 3, size, size)).astype(np.float32)


@pytest.mark.parametrize(("method", "student"), [("supervised", None), ("rs-mtdf", None), ("co2s", "clip"),
                                                 ("co2s", "ensemble")])  # fmt: skip
def test_onnx_probabilities_equal_torch_on_raw_values(tmp_path, method, student):
    ckpt = save_method_checkpoint(
        tmp_path / "best.pt", method, variant="dinov3" if method == "co2s" else None
    )
    out = tmp_path / "model.onnx"
    summary = run(ExportOptions(onnx=out, checkpoint=ckpt, student=student))
    raw = raw_batch(3)  # a batch size other than the export's example: the batch axis is dynamic
    got, expected = onnx_probs(out, raw), torch_probs(ckpt, raw, student)
    assert got.shape == (3, len(CLASSES), CROP, CROP)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)  # probabilities, not logits
    if method == "co2s":
        assert summary["student"] == student


def test_co2s_default_student_is_the_checkpoints_best(tmp_path):
    ckpt = save_method_checkpoint(tmp_path / "best.pt", "co2s", variant="dinov3")
    out = tmp_path / "model.onnx"
    run(ExportOptions(onnx=out, checkpoint=ckpt))
    raw = raw_batch(1)
    np.testing.assert_allclose(onnx_probs(out, raw), torch_probs(ckpt, raw, "dinov3"), atol=1e-4)
    meta = ort.InferenceSession(str(out)).get_modelmeta().custom_metadata_map
    assert json.loads(meta["rsseg_student"]) == "dinov3"


def test_metadata_for_deepness_and_rsseg(tmp_path):
    run_dir = tmp_path / "runs" / "r"
    ckpt = save_method_checkpoint(run_dir / "checkpoints" / "best.pt", "supervised")
    # The run folder points at its dataset, whose scenes have 0.5 m pixels in a metric CRS.
    data = tmp_path / "data"
    data.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"data": str(data)}))
    from rasterio.crs import CRS

    scene = {"crs": CRS.from_epsg(32633).to_wkt(), "transform": [0.5, 0, 500000, 0, -0.5, 5500000]}
    (data / "dataset.yaml").write_text(json.dumps({"scenes": {"a": scene}}))
    out = tmp_path / "model.onnx"
    run(ExportOptions(onnx=out, checkpoint=ckpt, overlap=10))
    meta = {
        k: json.loads(v)
        for k, v in ort.InferenceSession(str(out)).get_modelmeta().custom_metadata_map.items()
    }
    assert meta["model_type"] == "Segmentor"
    assert meta["class_names"] == {str(i): c["name"] for i, c in enumerate(CLASSES)}
    assert meta["tile_size"] == meta["tiles_size"] == CROP
    assert meta["tiles_overlap"] == 10
    assert meta["resolution"] == pytest.approx(50.0)
    assert meta["standardization_mean"] == [0.0] * 3 and meta["standardization_std"] == [1.0] * 3
    assert meta["rsseg_dtype"] == "uint16"
    assert [b["name"] for b in meta["rsseg_bands"]] == ["band_1", "band_2", "band_3"]
    assert meta["rsseg_palette"] == [c["color"] for c in CLASSES]
    assert meta["rsseg_checkpoint_path"] == str(ckpt)
    model = onnx.load(str(out))
    assert model.opset_import[0].version >= 17
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, CROP, CROP]


def test_deepness_input_takes_values_over_255(tmp_path):
    ckpt = save_method_checkpoint(tmp_path / "best.pt", "supervised")
    out = tmp_path / "model.onnx"
    run(ExportOptions(onnx=out, checkpoint=ckpt, deepness_input=True, resolution=30.0))
    raw = raw_batch(2)
    np.testing.assert_allclose(onnx_probs(out, raw / 255.0), torch_probs(ckpt, raw), atol=1e-4)
    meta = ort.InferenceSession(str(out)).get_modelmeta().custom_metadata_map
    assert json.loads(meta["resolution"]) == 30.0


def test_window_size_is_exported(tmp_path):
    ckpt = save_method_checkpoint(tmp_path / "best.pt", "supervised")
    out = tmp_path / "w48.onnx"
    run(ExportOptions(onnx=out, checkpoint=ckpt, window_size=48))
    raw = raw_batch(1, 48)
    np.testing.assert_allclose(onnx_probs(out, raw), torch_probs(ckpt, raw), atol=1e-4)
    with pytest.raises(UserError, match="multiple of the model's patch size"):
        run(ExportOptions(onnx=tmp_path / "w50.onnx", checkpoint=ckpt, window_size=50))


@pytest.mark.parametrize("method", ["supervised", "rs-mtdf"])
def test_dynamic_vit_follows_the_window(tmp_path, method):
    """The ViT's position embedding is resized inside the graph: windows larger and smaller than the one
    traced (the crop, 32 px; the tiny ViT's own grid is 4 x 4 patches) agree with torch."""
    ckpt = save_method_checkpoint(tmp_path / "best.pt", method)
    out = tmp_path / "dyn.onnx"
    summary = run(ExportOptions(onnx=out, checkpoint=ckpt, dynamic=True))
    assert summary["window"] is None
    for size in (16, 48, 80):
        raw = raw_batch(2, size, seed=size)
        np.testing.assert_allclose(onnx_probs(out, raw), torch_probs(ckpt, raw), atol=1e-4)


def test_aa_bicubic_weights_equal_torchs_antialiased_resize():
    from rsseg_cli.export.onnx_graph import aa_bicubic_weights

    grid = torch.randn(1, 5, 13, 11)
    for h, w in [(13, 11), (26, 40), (5, 4), (7, 30), (1, 1)]:
        expected = torch.nn.functional.interpolate(grid, (h, w), mode="bicubic", antialias=True)
        got = torch.einsum("hy,ncyx,wx->nchw", aa_bicubic_weights(13, h), grid, aa_bicubic_weights(11, w))
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_dynamic_clip_student_is_refused(tmp_path):
    """open_clip's attention reshapes with sizes fixed when traced: refused, nothing written."""
    ckpt = save_method_checkpoint(tmp_path / "best.pt", "co2s", variant="clip")
    with pytest.raises(UserError, match="dynamic window"):
        run(ExportOptions(onnx=tmp_path / "dyn.onnx", checkpoint=ckpt, student="clip", dynamic=True))
    assert not (tmp_path / "dyn.onnx").exists()  # nothing half-written


def test_refusals(tmp_path, monkeypatch):
    ckpt = save_method_checkpoint(tmp_path / "best.pt", "supervised")
    out = tmp_path / "model.onnx"
    out.write_bytes(b"old")
    with pytest.raises(UserError, match="--overwrite"):
        run(ExportOptions(onnx=out, checkpoint=ckpt))
    assert out.read_bytes() == b"old"
    with pytest.raises(UserError, match="has one"):
        run(ExportOptions(onnx=out, checkpoint=ckpt, student="clip", overwrite=True))
    with pytest.raises(UserError, match=r"\.onnx"):
        ExportOptions(onnx=tmp_path / "model.pt", checkpoint=ckpt)
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed
    with pytest.raises(UserError, match=r"pip install 'rsseg-cli\[onnx\]'"):
        run(ExportOptions(onnx=out, checkpoint=ckpt, overwrite=True))


def test_an_op_without_onnx_equivalent_is_named(tmp_path, monkeypatch):
    from rsseg_cli.export import onnx_graph

    ckpt = save_method_checkpoint(tmp_path / "best.pt", "supervised")

    def unexportable(self, x):  # an op the TorchScript exporter has no symbolic for
        return torch.special.i1e(x)

    monkeypatch.setattr(onnx_graph.RawToProbabilities, "forward", unexportable)
    with pytest.raises(UserError, match="i1e"):
        run(ExportOptions(onnx=tmp_path / "m.onnx", checkpoint=ckpt))
    assert not (tmp_path / "m.onnx").exists()
