"""Tiny ONNX graphs for the calibration tests, written with onnx.helper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def init(name: str, value) -> onnx.TensorProto:
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float32)
    return numpy_helper.from_array(arr, name)


def model(nodes, inits, in_shape, out_rank=None, opset=13, check=True) -> onnx.ModelProto:
    """One float input ``x`` (batch first, symbolic) and one output ``y`` of rank ``out_rank``
    (default: the input's) with symbolic dimensions."""
    out_rank = len(in_shape) + 1 if out_rank is None else out_rank
    graph = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                       ["N"] + [f"d{i}" for i in range(1, out_rank)])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    if check:
        onnx.checker.check_model(m)
    return m


def save(m: onnx.ModelProto, path: Path) -> Path:
    onnx.save(m, str(path))
    return path


def ort_run(m: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x.astype(np.float32)})[0]


def gemm_model(w: np.ndarray, b: np.ndarray, relu: bool = False) -> onnx.ModelProto:
    """``y = x @ w.T + b`` (w: (N, K)), optionally followed by Relu."""
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g" if relu else "y"], name="fc",
                              transB=1)]
    if relu:
        nodes.append(helper.make_node("Relu", ["g"], ["y"], name="act"))
    return model(nodes, [init("w", w), init("b", b)], [w.shape[1]])
