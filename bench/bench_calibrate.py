"""Images per second: the INT8 golden integer path beside onnxruntime FP32 on the same model.

The golden path is what `dcim calibrate` evaluates: quantize the input, every layer's MVM
through `mvm_tiled` on the configured array (column tiles of `cols`), the DPU rules, pooling
with `requantize`. Also timed: the fake-quant float simulation and the numpy float reference.
Rounds interleave the paths so drift hits them alike; ratios are from the same run.
Run: `.venv/bin/python bench/bench_calibrate.py [--model M.onnx] [--data D.npz] [--repeat N]`.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from dcim.golden.config import CoreConfig  # noqa: E402
from dcim.golden.quant.calibrate import calibrate_range  # noqa: E402
from dcim.golden.quant.onnx_import import load_model  # noqa: E402
from dcim.golden.quant.qmodel import calibration_tensors, plan, quantize_model, run  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, action="append",
                    help="ONNX model(s) (default: the shipped CNN and MLP)")
    ap.add_argument("--data", type=Path, default=EXAMPLES / "digits_eval.npz")
    ap.add_argument("--calib", type=Path, default=EXAMPLES / "digits_calib.npz")
    ap.add_argument("--batch", type=int, default=256, help="images per call (default 256)")
    ap.add_argument("--repeat", type=int, default=5, help="timed rounds (default 5)")
    args = ap.parse_args()
    import onnxruntime as ort

    models = args.model or [EXAMPLES / "digits_cnn.onnx", EXAMPLES / "digits_mlp.onnx"]
    cfg = CoreConfig()
    x = np.load(args.data)["x"][:args.batch]
    calib = np.load(args.calib)["x"]
    print(f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}; batch {len(x)} images; "
          f"core {cfg.rows}x{cfg.cols}; best of {args.repeat} rounds")
    print(f"{'model':<18}{'path':<34}{'images/s':>12}{'vs ORT FP32':>14}")
    for path in models:
        g = load_model(path)
        layers = plan(g)
        env = g.forward(calib, keep_all=True)
        qm = quantize_model(g, layers, {t: calibrate_range("minmax", env[t], cfg)
                                        for t in calibration_tensors(g, layers)}, cfg)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        paths = {
            "onnxruntime FP32 (1 thread)": lambda: sess.run(None, {name: x}),
            "INT8 golden integer path": lambda: run(qm, x),
            "INT8 fake-quant float simulation": lambda: run(qm, x, fake=True),
            "numpy float64 reference": lambda: g.forward(x),
        }
        best = {k: float("inf") for k in paths}
        for fn in paths.values():
            fn()  # warm up
        for _ in range(args.repeat):
            for k, fn in paths.items():
                t0 = time.perf_counter()
                fn()
                best[k] = min(best[k], time.perf_counter() - t0)
        ref = len(x) / best["onnxruntime FP32 (1 thread)"]
        for k, t in best.items():
            ips = len(x) / t
            print(f"{path.name:<18}{k:<34}{ips:>12,.0f}{ips / ref:>13.3f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
