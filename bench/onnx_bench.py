"""ONNX export of a real-size model: agreement with torch and speed of onnxruntime vs torch on CPU.

    python bench/onnx_bench.py                                  # dinov2_s + DPT, 518 px windows, 2 threads
    python bench/onnx_bench.py --window 448 --windows 6 --threads 4

A random-init DINOv2-S/14 + DPT (the default head; the same arithmetic as the pretrained weights, nothing is
downloaded) saved as an 8-bit RGB checkpoint, exported by `rsseg export`'s code, then the same raw batches
through torch (Normalization.model_input + the model + softmax, as `rsseg predict` runs a .pt) and through
onnxruntime (CPUExecutionProvider). Prints the largest probability difference, the share of pixels whose
argmax agrees, and windows per second of each, median of the batches after the first, with the thread
counts used. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", default="dinov2_s")
    parser.add_argument("--window", type=int, default=518)
    parser.add_argument("--windows", type=int, default=4, help="windows per timed batch")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--classes", type=int, default=6)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    import numpy as np
    import onnxruntime as ort
    import torch

    from rsseg_cli.config import load_config
    from rsseg_cli.data.normalize import Normalization
    from rsseg_cli.engine.checkpoint import Checkpoint
    from rsseg_cli.export.onnx_export import export_onnx
    from rsseg_cli.methods import configured_model

    torch.set_num_threads(args.threads)
    classes = [{"id": i, "name": f"class {i}", "color": None, "value": None} for i in range(args.classes)]
    cfg = load_config(overrides=["model.weights=none", f"model.backbone={args.backbone}"])
    torch.manual_seed(0)
    _, model = configured_model(cfg, classes, 3, [0, 1, 2])
    norm = Normalization.from_dataset({}, [0, 1, 2], scaling="fixed", dtype="uint8")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt_path, onnx_path = Path(tmp) / "best.pt", Path(tmp) / "model.onnx"
        Checkpoint(model=model.spec.model_dump(mode="json"), state_dict=model.state_dict(), method="supervised",
                   classes=classes, bands=[{"index": i, "name": n} for i, n in enumerate("rgb", 1)],
                   dtype="uint8", normalization=norm.to_dict(), chip_size=args.window,
                   crop=args.window).save(ckpt_path)  # fmt: skip
        t0 = time.perf_counter()
        result = export_onnx(ckpt_path, onnx_path)
        export_s = time.perf_counter() - t0
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        model = Checkpoint.read(ckpt_path).load_model("cpu")
        rng = np.random.default_rng(0)
        worst, agree, pixels = 0.0, 0, 0
        t_torch, t_ort = [], []
        for _ in range(args.batches):
            raw = rng.integers(0, 256, (args.windows, 3, args.window, args.window)).astype(np.float32)
            t = time.perf_counter()
            x = torch.from_numpy(np.stack([norm.model_input(r) for r in raw]))
            with torch.inference_mode():
                p_torch = model(x).float().softmax(dim=1).numpy()
            t_torch.append(time.perf_counter() - t)
            t = time.perf_counter()
            p_onnx = session.run(None, {"raw": raw})[0]
            t_ort.append(time.perf_counter() - t)
            worst = max(worst, float(np.abs(p_onnx - p_torch).max()))
            agree += int((p_onnx.argmax(1) == p_torch.argmax(1)).sum())
            pixels += p_onnx.shape[0] * p_onnx.shape[2] * p_onnx.shape[3]

    def rate(times: list[float]) -> float:
        return args.windows / statistics.median(times[1:] if len(times) > 1 else times)

    print(f"{args.backbone} + DPT, {args.window} px windows, {args.classes} classes, random init, fp32; "
          f"export {export_s:.0f} s, {result.bytes / 2**20:.0f} MiB")  # fmt: skip
    print(f"CPU: torch {torch.get_num_threads()} threads, onnxruntime intra-op {args.threads} threads "
          f"(onnxruntime {ort.__version__}, torch {torch.__version__})")  # fmt: skip
    print(f"agreement over {args.batches} x {args.windows} windows: max |p_onnx - p_torch| = {worst:.2e}, "
          f"equal argmax {agree / pixels:.6%}")  # fmt: skip
    print(f"speed: torch {rate(t_torch):.3f} windows/s, onnxruntime {rate(t_ort):.3f} windows/s "
          f"(x{rate(t_ort) / rate(t_torch):.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
