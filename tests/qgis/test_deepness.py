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
from rasterio.transform import from_origin

from rsseg_cli.engine.checkpoint import Checkpoint
from tests.conftest import write_raster
from tests.predict.conftest import CLASSES, save_checkpoint
from tests.predict.test_predict_cmd import UTM, scene_data

DEEPNESS_PYTHON = os.environ.get("RSSEG_DEEPNESS_PYTHON", "")
DEEPNESS_SRC = os.environ.get("RSSEG_DEEPNESS_SRC", "")
RESOLUTION_CM = 100.0  # the scene's 1 m pixels: Deepness then reads the layer at its own resolution
OVERLAP = 25  # percent
H, W = 144, 176


def deepness_env(runtime: Path | None = None) -> dict[str, str]:
    """QGIS's Python: none of rsseg's venv variables, no display, a private runtime dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["QT_QPA_PLATFORM"] = "offscreen"
    if runtime is not None:
        runtime.mkdir(mode=0o700, exist_ok=True)
        env["XDG_RUNTIME_DIR"] = str(runtime)
    return env


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
    processing_overlap=ProcessingOverlap(ProcessingOverlapOptions.OVERLAP_IN_PERCENT,
                                         percentage=model.get_metadata_tiles_overlap()),
    pixel_classification__probability_threshold=0.0,  # plain argmax
    model=model,
)
processor = definition.map_processor_class(rlayer=rlayer, vlayer_mask=None, map_canvas=MagicMock(), params=params)
result = processor.run()
img = processor.get_result_img()
np.save(out + "/deepness.npy", np.asarray(img))
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
    "succeeded": bool(result),
    "shape": list(img.shape),
    "layer": [rlayer.height(), rlayer.width()],
}
print(json.dumps(report))
sys.stdout.flush()
os._exit(0)  # PyQGIS 3.22 may crash while tearing down its layers at exit
"""


def run_deepness(model: Path, raster: Path, out: Path) -> tuple[dict, np.ndarray]:
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
    return json.loads(done.stdout.strip().splitlines()[-1]), np.load(out / "deepness.npy")


def rgb_scene(path: Path) -> Path:
    """A georeferenced RGB byte raster (1 m pixels, UTM) with smooth structure and noise."""
    data = (scene_data(H, W).astype(np.float64) * 255 / 1000).round().astype(np.uint8)
    return write_raster(path, data, crs=UTM, transform=from_origin(500000.0, 5400000.0, 1.0, 1.0))


def test_deepness_loads_and_runs_our_onnx_export(tmp_path, cli):
    ckpt_path = save_checkpoint(tmp_path / "best.pt", bands=3, dtype="uint8", low=0.0, high=255.0)
    ckpt = Checkpoint.read(ckpt_path)  # random init is unsure everywhere: sharpen it so the classes vary
    ckpt.state_dict["head.scratch.output_conv.2.weight"] *= 30
    ckpt.save(ckpt_path)
    model = tmp_path / "model.onnx"
    r = cli("export", ckpt_path, "--onnx", model, "--deepness", "--resolution", str(RESOLUTION_CM),
            "--overlap", str(OVERLAP))  # fmt: skip
    assert r.code == 0, r.err
    scene = rgb_scene(tmp_path / "scene.tif")
    r = cli("predict", scene, "--out", tmp_path / "mask.tif", "--checkpoint", model)
    assert r.code == 0, r.err
    with rasterio.open(tmp_path / "mask.tif") as src:
        ours = src.read(1)

    out = tmp_path / "deepness"
    out.mkdir()
    report, result = run_deepness(model, scene, out)

    # What Deepness read from our metadata.
    names = [c["name"] for c in CLASSES]
    assert (report["model_type"], report["model_class"]) == ("Segmentor", "Segmentor")
    assert report["class_names"] == [names] and report["channel_names"] == names
    assert report["output_channels"] == [len(CLASSES)] and report["outputs_are_sigmoid"] == [False]
    assert report["input_shape"][1:] == [3, 32, 32]  # the training crop; the batch is dynamic
    assert (report["tile_size"], report["overlap"]) == (32, OVERLAP)
    assert report["resolution"] == pytest.approx(RESOLUTION_CM)
    assert report["mean"] == [0.0] * 3 and report["std"] == [1.0] * 3  # no second normalization

    # What it made of the layer: one class per pixel (index + 1) on the layer's own grid.
    assert report["succeeded"]
    assert report["shape"] == [1, H, W] and report["layer"] == [H, W]
    theirs = result[0].astype(np.int64) - 1
    assert theirs.min() >= 0, "Deepness left pixels of the layer unprocessed"
    assert ours.shape == theirs.shape
    assert len(np.unique(ours)) == len(CLASSES)  # the sharpened model predicts every class here
    agreement = float((ours == theirs).mean())
    print(f"Deepness vs rsseg predict: {agreement:.2%} of the pixels get the same class")
    # Both take argmaxes of the same graph; they differ only where their tiles and blending do.
    assert agreement >= 0.9, f"Deepness and rsseg predict agree on only {agreement:.1%} of the pixels"
