"""Quantize the shipped digits CNN with onnxruntime into a QDQ model, the example of ``dcim check``.

onnxruntime's own flow, as its documentation gives it: ``quant_pre_process`` (its graph
optimizer folds each BatchNormalization into the Conv before it; symbolic shape inference is
skipped, the shapes are static but the batch) and ``quantize_static`` with
``QuantFormat.QDQ``, per-channel int8 weights, int8 activations and MinMax calibration on
``digits_calib.npz``. Without the pre-processing step onnxruntime quantizes each Conv and its
BatchNormalization separately.

Writes next to this script::

    digits_cnn_qdq.onnx     input "x": float32 (N, 1, 8, 8), output "prob": (N, 10)

Run: .venv/bin/python examples/make_digits_qdq.py [--activations int8|uint8] [--out PATH]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def quantize_qdq(src: Path, out: Path, calib: np.ndarray, activations: str = "int8") -> None:
    """``quant_pre_process`` then ``quantize_static`` (QDQ, per channel, MinMax) of ``src``
    on the calibration images ``calib`` into ``out``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from dcim.golden.quant.ort_peer import calibration_reader

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime's advice lines on the root logger
    try:
        with tempfile.TemporaryDirectory() as tmp:
            pre = Path(tmp) / "pre.onnx"
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            quantize_static(str(pre), str(out),
                            calibration_reader("x", [calib.astype(np.float32)]),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            weight_type=QuantType.QInt8,
                            activation_type=(QuantType.QInt8 if activations == "int8"
                                             else QuantType.QUInt8),
                            calibrate_method=CalibrationMethod.MinMax)
    finally:
        root.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--activations", choices=("int8", "uint8"), default="int8")
    ap.add_argument("--out", type=Path, default=HERE / "digits_cnn_qdq.onnx")
    args = ap.parse_args(argv)
    calib = np.load(HERE / "digits_calib.npz")["x"]
    quantize_qdq(HERE / "digits_cnn.onnx", args.out, calib, args.activations)
    import onnx

    m = onnx.load(str(args.out))
    ops: dict[str, int] = {}
    for n in m.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    print(f"wrote {args.out.name} ({args.out.stat().st_size} bytes): "
          + ", ".join(f"{k} {v}" for k, v in sorted(ops.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
