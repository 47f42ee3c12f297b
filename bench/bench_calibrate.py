"""Images per second: the INT8 golden integer path beside onnxruntime INT8 (QDQ) and FP32.

The golden path is what `dcim calibrate` evaluates: quantize the input, every weighted layer
exactly on the configured array, the DPU rules, pooling with `requantize`. Two integer paths,
bit-identical (tests/test_fastpath.py): the fast path (one exact float32 GEMM and one DPU call
per layer, what calibrate runs) and the reference (every column tile and K-pass through
`mvm_tiled`, one checked DPU call per tile). Beside them, on the same model and batch:
onnxruntime FP32 and onnxruntime's own static INT8 (QDQ from `quantize_static`, MinMax,
per-channel, after `quant_pre_process`, as the calibrate report's peer), one thread each; the
fake-quant float simulation and the numpy float64 reference. Rounds interleave the paths so
drift hits them alike; ratios are from the same run.
Run: `.venv/bin/python bench/bench_calibrate.py [--model M.onnx --data D.npz --calib C.npz]
[--batch N] [--repeat N] [--rows R --cols C]`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from tabulate import tabulate  # noqa: E402

from dcim.golden.config import CoreConfig  # noqa: E402
from dcim.golden.quant.calibrate import calibrate_range  # noqa: E402
from dcim.golden.quant.onnx_import import load_model  # noqa: E402
from dcim.golden.quant.ort_peer import capture, prepare_peer_model, quantize_peer  # noqa: E402
from dcim.golden.quant.qmodel import calibration_tensors, plan, quantize_model, run  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FP32 = "onnxruntime FP32"
INT8 = "onnxruntime INT8 (QDQ)"


def _session(path, ort):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess, sess.get_inputs()[0].name


def bench_model(path: Path, x: np.ndarray, calib: np.ndarray, cfg: CoreConfig, repeat: int,
                reference: bool) -> list[list]:
    """Best-of-``repeat`` images/s of every path on ``path``; one table row per path."""
    import onnxruntime as ort

    g = load_model(path)
    layers = plan(g, cfg.dpu_residual)
    env = g.forward(calib, keep_all=True)
    qm = quantize_model(g, layers, {t: calibrate_range("minmax", env[t], cfg)
                                    for t in calibration_tensors(g, layers)}, cfg)
    log: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dcim-bench-") as tmp, capture(log):
        pre, _ = prepare_peer_model(path, Path(tmp), log)
        qdq = quantize_peer(pre, calib, "minmax", Path(tmp), log)
        fp32, name = _session(path, ort)
        int8, name8 = _session(qdq, ort)
    paths = {
        FP32: lambda: fp32.run(None, {name: x}),
        INT8: lambda: int8.run(None, {name8: x}),
        "INT8 golden integer path (fast)": lambda: run(qm, x, fast=True),
        "INT8 golden integer path (tiled reference)": lambda: run(qm, x),
        "INT8 fake-quant float simulation": lambda: run(qm, x, fake=True),
        "numpy float64 reference": lambda: g.forward(x),
    }
    if not reference:
        del paths["INT8 golden integer path (tiled reference)"]
    best = {k: float("inf") for k in paths}
    for fn in paths.values():
        fn()  # warm up (the fast path plans its GEMMs on the first run)
    for _ in range(repeat):
        for k, fn in paths.items():
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    ips = {k: len(x) / t for k, t in best.items()}
    return [[path.name, k, f"{v:,.1f}" if v < 100 else f"{v:,.0f}", f"{v / ips[FP32]:.3f}x",
             f"{v / ips[INT8]:.3f}x"] for k, v in ips.items()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, action="append",
                    help="ONNX model(s) (default: the shipped CNN and MLP)")
    ap.add_argument("--data", type=Path, default=EXAMPLES / "digits_eval.npz",
                    help="images to time, key x (default: the digits evaluation set)")
    ap.add_argument("--calib", type=Path, default=EXAMPLES / "digits_calib.npz",
                    help="calibration images, key x (default: the digits calibration set)")
    ap.add_argument("--batch", type=int, default=256, help="images per call (default 256)")
    ap.add_argument("--repeat", type=int, default=5, help="timed rounds (default 5)")
    ap.add_argument("--rows", type=int, default=None, help="array rows (default CoreConfig's)")
    ap.add_argument("--cols", type=int, default=None, help="array columns")
    ap.add_argument("--no-reference", action="store_true",
                    help="skip the tiled reference path (slow on large models)")
    args = ap.parse_args()
    models = args.model or [EXAMPLES / "digits_cnn.onnx", EXAMPLES / "digits_mlp.onnx"]
    cfg = CoreConfig(**{k: v for k, v in (("rows", args.rows), ("cols", args.cols)) if v})
    x = np.load(args.data)["x"][:args.batch].astype(np.float32)
    calib = np.load(args.calib)["x"].astype(np.float32)
    print(f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}, onnxruntime 1 thread; "
          f"batch {len(x)} images; core {cfg.rows}x{cfg.cols}; best of {args.repeat} rounds; "
          f"load average {os.getloadavg()[0]:.1f}")
    rows = []
    for path in models:
        rows += bench_model(path, x, calib, cfg, args.repeat, not args.no_reference)
    print(tabulate(rows, headers=["model", "path", "images/s", "vs ORT FP32", "vs ORT INT8"],
                   colalign=("left", "left", "right", "right", "right")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
