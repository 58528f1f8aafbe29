"""Streaming inference: blending reproduces constants at edges and corners, window-local models give the same
result with or without overlap, odd sizes and thin last strips, bounded buffers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsseg_cli.predict.stream import StreamPredictor


def run(predictor: StreamPredictor, image: np.ndarray, valid: np.ndarray | None = None):
    c, h, w = image.shape
    valid = np.ones((h, w), bool) if valid is None else valid
    k = predictor.num_classes
    out = np.full((k, h, w), np.nan, np.float32)
    ok = np.zeros((h, w), bool)
    written = np.zeros((h, w), int)

    def read(r, col, size):
        data = np.zeros((c, size, size), image.dtype)
        v = np.zeros((size, size), bool)
        hh, ww = min(size, h - r), min(size, w - col)
        data[:, :hh, :ww] = image[:, r : r + hh, col : col + ww]
        v[:hh, :ww] = valid[r : r + hh, col : col + ww]
        return data, v

    def sink(r0, r1, c0, c1, probs, v):
        out[:, r0:r1, c0:c1] = probs
        ok[r0:r1, c0:c1] = v
        written[r0:r1, c0:c1] += 1

    predictor.run(read, h, w, sink)
    assert (written == 1).all(), "every pixel is emitted exactly once"
    return out, ok


def constant_model(k: int, values: list[float]):
    p = torch.tensor(values).view(1, k, 1, 1)
    return lambda x: p.expand(x.shape[0], k, x.shape[2], x.shape[3])


@pytest.mark.parametrize(
    ("h", "w"),
    [(64, 64), (50, 70), (100, 130), (97, 33), (129, 129), (20, 20)],
    ids=["exact", "smaller-than-window", "odd", "thin", "last-strip-1px", "tiny"],
)
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.8])
def test_constant_output_everywhere_corners_included(h, w, overlap):
    values = [0.2, 0.5, 0.3]
    pred = StreamPredictor(
        constant_model(3, values),
        torch.from_numpy,
        3,
        window=32,
        overlap=overlap,
        batch_size=3,
        band_width=48,
    )
    out, ok = run(pred, np.zeros((2, h, w), np.float32))
    for i, v in enumerate(values):
        np.testing.assert_allclose(out[i], v, rtol=1e-6)
    assert ok.all()


def test_window_local_model_same_with_and_without_overlap():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 1)

    def model(x):
        with torch.no_grad():
            return conv(x).softmax(dim=1)

    image = np.random.default_rng(0).normal(size=(3, 150, 170)).astype(np.float32)
    direct = model(torch.from_numpy(image)[None])[0].numpy()
    for overlap, band in [(0.0, 4096), (0.5, 4096), (0.25, 64)]:
        pred = StreamPredictor(
            model, torch.from_numpy, 4, window=48, overlap=overlap, batch_size=5, band_width=band
        )
        out, _ = run(pred, image)
        np.testing.assert_allclose(out, direct, rtol=1e-5, atol=1e-6)


def test_invalid_pixels_stay_invalid():
    image = np.zeros((1, 80, 90), np.float32)
    valid = np.ones((80, 90), bool)
    valid[10:30, 40:60] = False
    pred = StreamPredictor(constant_model(2, [0.4, 0.6]), torch.from_numpy, 2, window=32, overlap=0.25)
    _, ok = run(pred, image, valid)
    np.testing.assert_array_equal(ok, valid)


def test_buffers_depend_on_band_width_not_scene():
    sizes = {}
    for w in (200, 800):
        pred = StreamPredictor(constant_model(2, [0.5, 0.5]), torch.from_numpy, 2, window=32, band_width=64)
        run(pred, np.zeros((1, 96, w), np.float32))
        sizes[w] = pred.peak_buffer_bytes
    assert sizes[200] == sizes[800]


def test_reader_errors_surface():
    pred = StreamPredictor(constant_model(2, [0.5, 0.5]), torch.from_numpy, 2, window=16)

    def read(r, c, size):
        if r > 0:
            raise OSError("disk gone")
        return np.zeros((1, size, size), np.float32), np.ones((size, size), bool)

    with pytest.raises(OSError, match="disk gone"):
        pred.run(read, 64, 64, lambda *a: None)


@pytest.mark.parametrize(("overlap", "band"), [(0.25, 4096), (0.5, 64)])
def test_numpy_arrays_blend_as_torch_tensors(overlap, band):
    """An .onnx model streams numpy arrays (no torch needed): the same blend as tensors, to float rounding
    (numpy's sin and multiply-add round their last bits differently from torch's)."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)  # not window-local: the blending weights matter

    def model(x):
        with torch.no_grad():
            return conv(torch.as_tensor(x)).softmax(dim=1)

    image = np.random.default_rng(0).normal(size=(3, 90, 110)).astype(np.float32)
    valid = np.ones((90, 110), bool)
    valid[5:20, 30:50] = False
    kwargs = {"window": 32, "overlap": overlap, "batch_size": 3, "band_width": band}
    tensors = StreamPredictor(model, torch.from_numpy, 4, **kwargs)
    arrays = StreamPredictor(lambda x: model(x).numpy(), lambda d: d, 4, arrays="numpy", **kwargs)
    (out_t, ok_t), (out_n, ok_n) = run(tensors, image, valid), run(arrays, image, valid)
    np.testing.assert_allclose(out_n, out_t, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(ok_n, ok_t)
    assert tensors.peak_buffer_bytes == arrays.peak_buffer_bytes
