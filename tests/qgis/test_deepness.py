"""The Deepness QGIS plugin loads `rsseg export --deepness`'s ONNX model and runs it: its own classes read the
model type, class names, tile size, overlap, resolution and standardization from our metadata, its segmentation
map processor tiles a georeferenced RGB layer through the model, and its classes agree with `rsseg predict`.

Deepness (PUTvision/qgis-plugin-deepness) runs inside QGIS, whose Python is the system's (Debian's python3-qgis),
so the check runs in a subprocess of a Python that imports qgis.core, onnxruntime and cv2 (Deepness's
requirements), e.g. `/usr/bin/python3 -m venv --system-site-packages /tmp/qgis-ort && /tmp/qgis-ort/bin/pip
install onnxruntime 'opencv-python-headless<=4.9.0.80'`. Set RSSEG_DEEPNESS_PYTHON to that interpreter and
RSSEG_DEEPNESS_SRC to the plugin's `src` folder (the one holding `deepness/`); without them the test is skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from rsseg_cli.engine.checkpoint import Checkpoint
from tests.conftest import write_raster
from tests.predict.conftest import CLASSES, save_checkpoint
from tests.predict.test_predict_cmd import UTM, scene_data

DEEPNESS_PYTHON = os.environ.get("RSSEG_DEEPNESS_PYTHON", "")
DEEPNESS_SRC = os.environ.get("RSSEG_DEEPNESS_SRC", "")
RESOLUTION_CM = 100.0  # the scene's 1 m pixels: Deepness then reads the layer at its own resolution
OVERLAP = 25  # percent
H, W = 128, 160  # multiples of the 32 px tile: without overlap, both tile the layer alike


def deepness_env(runtime: Path | None = None) -> dict[str, str]:
    """QGIS's Python: as for rsseg's own QGIS test (no venv variables, no display, a private runtime dir)."""
    from tests.qgis.test_qgis_integration import qgis_env

    return qgis_env(runtime)


def _skip_reason() -> str | None:
    if not DEEPNESS_PYTHON or not Path(DEEPNESS_PYTHON).exists():
        return "RSSEG_DEEPNESS_PYTHON (a Python importing qgis.core, onnxruntime and cv2) is not set"
    if not DEEPNESS_SRC or not (Path(DEEPNESS_SRC) / "deepness" / "__init__.py").exists():
        return "RSSEG_DEEPNESS_SRC (the Deepness plugin's src folder, holding deepness/) is not set"
    probe = subprocess.run(
        [DEEPNESS_PYTHON, "-c", "import qgis.core, onnxruntime, cv2"],
        env=deepness_env(),
        capture_output=True,
        timeout=120,
    )
    if probe.returncode != 0:
        return f"{DEEPNESS_PYTHON} cannot import qgis.core, onnxruntime and cv2"
    return None


SKIP = _skip_reason()
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")

# Run by QGIS's Python: argv = Deepness src, model, raster, out folder. Loads the model as the plugin's dock
# widget does (the type from the metadata, then that type's model, parameters and map processor classes), runs
# the processor on the whole layer and saves its result image (class index + 1 per pixel, 0 = not processed).
SCRIPT = r"""
import json, os, sys
from unittest.mock import MagicMock

src, model_path, raster_path, out = sys.argv[1:5]
sys.path.insert(0, src)
import numpy as np
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer

app = QgsApplication([], False)
app.initQgis()

from deepness.common.channels_mapping import ChannelsMapping, ImageChannelStandaloneBand
from deepness.common.processing_overlap import ProcessingOverlap, ProcessingOverlapOptions
from deepness.common.processing_parameters.map_processing_parameters import ProcessedAreaType
from deepness.processing.models.model_base import ModelBase
from deepness.processing.models.model_types import ModelDefinition, ModelType

model_type = ModelBase.get_model_type_from_metadata(model_path)
definition = ModelDefinition.get_definition_for_type(ModelType(model_type))
model = definition.model_class(model_path)
std = model.standardization_parameters

rlayer = QgsRasterLayer(raster_path, "scene")
QgsProject.instance().addMapLayer(rlayer)
mapping = ChannelsMapping()  # as the plugin's input channels widget sets it for an RGB layer
mapping.set_image_channels([ImageChannelStandaloneBand(band_number=i + 1, name=n)
                            for i, n in enumerate(["red", "green", "blue"])])
mapping.set_number_of_model_inputs_same_as_image_channels()

runs = {}
for overlap in (model.get_metadata_tiles_overlap(), 0):  # the metadata's, then tiles side by side
    params = definition.parameters_class(
        resolution_cm_per_px=model.get_metadata_resolution(),
        tile_size_px=model.get_metadata_tile_size(),
        batch_size=4,
        local_cache=False,
        processed_area_type=ProcessedAreaType.ENTIRE_LAYER,
        mask_layer_id=None,
        input_layer_id=rlayer.id(),
        input_channels_mapping=mapping,
        postprocessing_dilate_erode_size=0,  # no median filter: the classes as the model gives them
        processing_overlap=ProcessingOverlap(ProcessingOverlapOptions.OVERLAP_IN_PERCENT, percentage=overlap),
        pixel_classification__probability_threshold=0.0,  # plain argmax
        model=model,
    )
    processor = definition.map_processor_class(rlayer=rlayer, vlayer_mask=None, map_canvas=MagicMock(),
                                               params=params)
    succeeded = processor.run()
    img = np.asarray(processor.get_result_img())
    np.save(f"{out}/deepness_{overlap}.npy", img)
    runs[overlap] = {"succeeded": bool(succeeded), "shape": list(img.shape)}
report = {
    "model_type": model_type,
    "model_class": type(model).__name__,
    "class_names": model.outputs_names,
    "channel_names": [model.get_channel_name(0, i) for i in range(model.get_number_of_output_channels()[0])],
    "output_channels": model.get_number_of_output_channels(),
    "outputs_are_sigmoid": model.outputs_are_sigmoid,
    "input_shape": [d if isinstance(d, int) else str(d) for d in model.get_input_shape()],
    "tile_size": model.get_metadata_tile_size(),
    "overlap": model.get_metadata_tiles_overlap(),
    "resolution": model.get_metadata_resolution(),
    "mean": [float(x) for x in std.mean],
    "std": [float(x) for x in std.std],
    "runs": runs,
    "layer": [rlayer.height(), rlayer.width()],
}
print(json.dumps(report))
sys.stdout.flush()
os._exit(0)  # PyQGIS 3.22 may crash while tearing down its layers at exit
"""


def run_deepness(model: Path, raster: Path, out: Path) -> tuple[dict, dict[int, np.ndarray]]:
    script = out / "deepness_check.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [DEEPNESS_PYTHON, str(script), DEEPNESS_SRC, str(model), str(raster), str(out)],
        env=deepness_env(out / "runtime"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report, {int(k): np.load(out / f"deepness_{k}.npy") for k in report["runs"]}


def rgb_data() -> np.ndarray:
    """RGB bytes with smooth structure and noise."""
    return (scene_data(H, W).astype(np.float64) * 255 / 1000).round().astype(np.uint8)


def varied_checkpoint(path: Path, data: np.ndarray) -> Path:
    """A tiny random-init model whose classes vary over `data`: random init predicts about one class
    everywhere (agreeing on it would prove little), so the last 1x1 convolution becomes random directions of
    the scene's own last features, whitened and centred on them: each class then wins on a share of the pixels.
    """
    save_checkpoint(path, bands=3, dtype="uint8", low=0.0, high=255.0, seed=1)
    ckpt = Checkpoint.read(path)
    model = ckpt.load_model("cpu").eval()
    norm = ckpt.normalization
    low, high = (np.array(norm[k])[:, None, None] for k in ("low", "high"))
    unit = np.clip((data - low) / (high - low), 0, 1)
    x = (unit - np.array(norm["mean"])[:, None, None]) / np.array(norm["std"])[:, None, None]
    crops = np.stack(
        [x[:, r : r + 32, c : c + 32] for r in range(0, H - 31, 32) for c in range(0, W - 31, 32)]
    )
    got = []
    hook = model.get_submodule("head.scratch.output_conv.1").register_forward_hook(
        lambda m, i, o: got.append(o)
    )
    with torch.no_grad():
        model(torch.tensor(crops, dtype=torch.float32))
    hook.remove()
    features = got[0].permute(0, 2, 3, 1).reshape(-1, got[0].shape[1])
    mean, std = features.mean(0), features.std(0) + 1e-6
    weight = (
        torch.randn(len(CLASSES), features.shape[1], generator=torch.Generator().manual_seed(0)) / std * 4
    )
    ckpt.state_dict["head.scratch.output_conv.2.weight"] = weight[:, :, None, None].clone()
    ckpt.state_dict["head.scratch.output_conv.2.bias"] = -(weight @ mean)
    ckpt.save(path)
    return path


def test_deepness_loads_and_runs_our_onnx_export(tmp_path, cli):
    data = rgb_data()
    ckpt_path = varied_checkpoint(tmp_path / "best.pt", data)
    model = tmp_path / "model.onnx"
    r = cli("export", ckpt_path, "--onnx", model, "--deepness", "--resolution", str(RESOLUTION_CM),
            "--overlap", str(OVERLAP))  # fmt: skip
    assert r.code == 0, r.err
    scene = write_raster(
        tmp_path / "scene.tif", data, crs=UTM, transform=from_origin(500000.0, 5400000.0, 1, 1)
    )
    ours = {}
    for overlap in (OVERLAP, 0):
        mask = tmp_path / f"mask_{overlap}.tif"
        r = cli("predict", scene, "--out", mask, "--checkpoint", model, "--set",
                f"predict.overlap_fraction={overlap / 100}")  # fmt: skip
        assert r.code == 0, r.err
        with rasterio.open(mask) as src:
            ours[overlap] = src.read(1)

    out = tmp_path / "deepness"
    out.mkdir()
    report, results = run_deepness(model, scene, out)

    # What Deepness read from our metadata.
    names = [c["name"] for c in CLASSES]
    assert (report["model_type"], report["model_class"]) == ("Segmentor", "Segmentor")
    assert report["class_names"] == [names] and report["channel_names"] == names
    assert report["output_channels"] == [len(CLASSES)] and report["outputs_are_sigmoid"] == [False]
    assert report["input_shape"][1:] == [3, 32, 32]  # the training crop; the batch is dynamic
    assert (report["tile_size"], report["overlap"]) == (32, OVERLAP)
    assert report["resolution"] == pytest.approx(RESOLUTION_CM)
    assert report["mean"] == [0.0] * 3 and report["std"] == [1.0] * 3  # no second normalization
    assert report["layer"] == [H, W]

    shares = np.bincount(ours[0].ravel(), minlength=len(CLASSES)) / ours[0].size
    assert shares.min() > 0.1, f"the model should predict every class on a share of the scene: {shares}"
    agreement = {}
    for overlap, result in results.items():
        # One class per pixel (index + 1; 0 = not processed) on the layer's own grid.
        assert report["runs"][str(overlap)] == {"succeeded": True, "shape": [1, H, W]}
        theirs = result[0].astype(np.int64) - 1
        assert theirs.min() >= 0, "Deepness left pixels of the layer unprocessed"
        agreement[overlap] = float((ours[overlap] == theirs).mean())
    print(f"classes {shares.round(3)}; Deepness vs rsseg predict, same class: " +
          ", ".join(f"{a:.2%} at {o} % overlap" for o, a in agreement.items()))  # fmt: skip
    # Tiles side by side: both cut the same 32 px windows and feed them the same values, so the classes are the
    # same but for float noise at near ties.
    assert agreement[0] >= 0.999, f"Deepness and rsseg predict agree on only {agreement[0]:.1%} of the pixels"
    # With the metadata's overlap they cut different windows (Deepness keeps each tile's centre, rsseg blends
    # the windows' probabilities) and this tiny random model's classes depend much on its window's context.
    assert agreement[OVERLAP] >= 0.9, f"with overlap, only {agreement[OVERLAP]:.1%} agree"
