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


def model(nodes, inits, in_shape, out_rank=None, opset=13, check=True, names=("x", "y")
          ) -> onnx.ModelProto:
    """One float input ``x`` (batch first, symbolic) and one output ``y`` of rank ``out_rank``
    (default: the input's) with symbolic dimensions; ``names`` renames the two."""
    out_rank = len(in_shape) + 1 if out_rank is None else out_rank
    graph = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info(names[0], TensorProto.FLOAT,
                                                   ["N", *in_shape])],
        [helper.make_tensor_value_info(names[1], TensorProto.FLOAT,
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
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]


def gemm_model(w: np.ndarray, b: np.ndarray, relu: bool = False) -> onnx.ModelProto:
    """``y = x @ w.T + b`` (w: (N, K)), optionally followed by Relu."""
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g" if relu else "y"], name="fc",
                              transB=1)]
    if relu:
        nodes.append(helper.make_node("Relu", ["g"], ["y"], name="act"))
    return model(nodes, [init("w", w), init("b", b)], [w.shape[1]])


# ----------------------------------------------------------------------------------------------
# One small graph per supported op family; each takes a numpy Generator and returns
# (model, input shape of one sample).
def _conv(name, inp, out, w, b=None, **attrs):
    ins = [inp, f"{name}.w"] + ([f"{name}.b"] if b is not None else [])
    inits = [init(f"{name}.w", w)] + ([init(f"{name}.b", b)] if b is not None else [])
    return helper.make_node("Conv", ins, [out], name=name, **attrs), inits


def identity_model(rng):
    """Conv -> Identity -> Relu -> Identity -> Flatten -> Gemm -> Identity (the output)."""
    conv, inits = _conv("conv", "x", "c", rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4))
    nodes = [conv, helper.make_node("Identity", ["c"], ["c2"], name="id1"),
             helper.make_node("Relu", ["c2"], ["r"], name="relu"),
             helper.make_node("Identity", ["r"], ["r2"], name="id2"),
             helper.make_node("Flatten", ["r2"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w", "b"], ["g"], name="fc", transB=1),
             helper.make_node("Identity", ["g"], ["y"], name="id3")]
    inits += [init("w", rng.normal(size=(3, 4 * 4 * 4))), init("b", rng.normal(size=3))]
    return model(nodes, inits, [2, 6, 6], out_rank=2), (2, 6, 6)


def shape_flatten_model(rng, opset=13, batch=None, unsqueeze=True):
    """torch's ``x.view(x.size(0), -1)``: Shape -> Gather(0) [-> Unsqueeze] -> Concat([n, -1])
    -> Reshape, between a Conv + Relu and a Gemm. ``batch`` fixes the batch dimension."""
    conv, inits = _conv("conv", "x", "c", rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3),
                        pads=[1, 1, 1, 1])
    idx = np.array(0 if unsqueeze else [0], dtype=np.int64)
    nodes = [conv, helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Shape", ["r"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "i0"], ["n"], name="gather", axis=0)]
    inits += [init("i0", idx), init("m1", np.array([-1], dtype=np.int64))]
    if unsqueeze:
        nodes.append(helper.make_node("Unsqueeze", ["n", "ax"], ["n1"], name="unsq"))
        inits.append(init("ax", np.array([0], dtype=np.int64)))
    nodes += [helper.make_node("Concat", ["n1" if unsqueeze else "n", "m1"], ["sh"],
                               name="cat", axis=0),
              helper.make_node("Reshape", ["r", "sh"], ["f"], name="view"),
              helper.make_node("Gemm", ["f", "w", "b"], ["y"], name="fc", transB=1)]
    inits += [init("w", rng.normal(size=(4, 3 * 5 * 5))), init("b", rng.normal(size=4))]
    m = model(nodes, inits, [2, 5, 5], out_rank=2, opset=opset)
    if batch is not None:
        for vi in (m.graph.input[0], m.graph.output[0]):
            vi.type.tensor_type.shape.dim[0].dim_value = batch
    return m, (2, 5, 5)


def binary_model(rng, op="Add", broadcast=False):
    """Two conv branches combined by ``op`` (Add, Sub or Mul) of two tensors; with
    ``broadcast`` the second operand is the first's global average pool (N, C, 1, 1), as in a
    squeeze-and-excitation block."""
    c1, i1 = _conv("c1", "x", "a", rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3),
                   pads=[1, 1, 1, 1])
    nodes = [c1, helper.make_node("Relu", ["a"], ["ra"], name="relu")]
    if broadcast:
        nodes.append(helper.make_node("GlobalAveragePool", ["ra"], ["b"], name="gap"))
        inits = i1
    else:
        c2, i2 = _conv("c2", "x", "b", rng.normal(size=(3, 2, 1, 1)), rng.normal(size=3))
        nodes.append(c2)
        inits = i1 + i2
    nodes.append(helper.make_node(op, ["ra", "b"], ["y"], name=op.lower()))
    return model(nodes, inits, [2, 5, 5]), (2, 5, 5)


def constant_fold_model(rng):
    """Conv, Sub of a per-channel constant (bias), Mul by a per-channel constant (scale), Relu."""
    conv, inits = _conv("conv", "x", "c", rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4))
    nodes = [conv, helper.make_node("Sub", ["c", "k"], ["s"], name="sub"),
             helper.make_node("Mul", ["m", "s"], ["p"], name="mul"),
             helper.make_node("Relu", ["p"], ["y"], name="relu")]
    inits += [init("k", rng.normal(size=(4, 1, 1))), init("m", rng.normal(size=(1, 4, 1, 1)))]
    return model(nodes, inits, [2, 6, 6]), (2, 6, 6)


def concat_model(rng, axis=1):
    """Three branches (a 3x3 conv + Relu, a 1x1 conv, a max pool of the input) concatenated
    along ``axis``, then Relu (fused into the Concat's clamp) and a 1x1 conv."""
    c1, i1 = _conv("c1", "x", "a", rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3),
                   pads=[1, 1, 1, 1])
    c2, i2 = _conv("c2", "x", "b", 0.3 * rng.normal(size=(2, 2, 1, 1)), rng.normal(size=2))
    chans = 3 + 2 + 2 if axis in (1, -3) else 2
    c3, i3 = _conv("c3", "cr", "y", rng.normal(size=(4, chans, 1, 1)), rng.normal(size=4))
    nodes = [c1, helper.make_node("Relu", ["a"], ["ra"], name="relu1"), c2,
             helper.make_node("MaxPool", ["x"], ["p"], name="pool", kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Concat", ["ra", "b", "p"], ["c"], name="cat", axis=axis),
             helper.make_node("Relu", ["c"], ["cr"], name="relu2"), c3]
    if axis not in (1, -3):  # the branches must agree on channels: only c1's and c2's
        nodes[4] = helper.make_node("Concat", ["b", "p"], ["c"], name="cat", axis=axis)
    return model(nodes, i1 + i2 + i3, [2, 5, 5]), (2, 5, 5)


def avgpool_model(rng, kernel=(3, 3), strides=(1, 1), pads=(1, 1, 1, 1), count_include_pad=0):
    """Conv + Relu, a padded AveragePool, Relu-free (the pool gets its own range)."""
    conv, inits = _conv("conv", "x", "c", rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3))
    nodes = [conv, helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("AveragePool", ["r"], ["y"], name="avg", kernel_shape=list(kernel),
                              strides=list(strides), pads=list(pads),
                              count_include_pad=count_include_pad)]
    return model(nodes, inits, [2, 7, 7]), (2, 7, 7)


def dilated_model(rng, dilations=(2, 2), strides=(1, 1), pads=(2, 2, 2, 2), pool=False, opset=13):
    """A dilated 3x3 Conv + Relu; with ``pool`` also a dilated MaxPool and (opset 19) a dilated,
    padded AveragePool."""
    conv, inits = _conv("conv", "x", "c", rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4),
                        dilations=list(dilations), strides=list(strides), pads=list(pads))
    nodes = [conv, helper.make_node("Relu", ["c"], ["y" if not pool else "r"], name="relu")]
    if pool:
        nodes += [helper.make_node("MaxPool", ["r"], ["p"], name="max", kernel_shape=[2, 2],
                                   dilations=[2, 2]),
                  helper.make_node("AveragePool", ["p"], ["y"], name="avg", kernel_shape=[2, 2],
                                   dilations=[2, 1], pads=[1, 1, 1, 1])]
    return model(nodes, inits, [2, 9, 9], opset=opset), (2, 9, 9)


def grouped_model(rng, cin=4, cout=8, groups=2, kernel=3, in_hw=6, relu=True):
    """A grouped Conv (depthwise when ``groups == cin``) with a bias, then Relu and a 1x1 conv
    that mixes the channels."""
    conv, inits = _conv("gconv", "x", "c", rng.normal(size=(cout, cin // groups, kernel,
                                                             kernel)),
                        rng.normal(size=cout), group=groups, pads=[1, 1, 1, 1])
    mix, i2 = _conv("mix", "r", "y", rng.normal(size=(3, cout, 1, 1)), rng.normal(size=3))
    nodes = [conv, helper.make_node("Relu" if relu else "Identity", ["c"], ["r"], name="relu"),
             mix]
    return model(nodes, inits + i2, [cin, in_hw, in_hw]), (cin, in_hw, in_hw)


#: The host float activations: (ONNX op, opset, attributes). "Silu" is written as exporters
#: write it, a Mul of a tensor and its Sigmoid; "Softmax" sits inside the network.
ACTIVATIONS = [("Sigmoid", 13, {}), ("Tanh", 13, {}), ("LeakyRelu", 13, {"alpha": 0.1}),
               ("HardSigmoid", 13, {"alpha": 0.25, "beta": 0.4}), ("HardSwish", 14, {}),
               ("Gelu", 20, {}), ("Gelu", 20, {"approximate": "tanh"}), ("Silu", 13, {}),
               ("Softmax", 13, {"axis": 1})]


def activation_model(rng, op, opset=13, **attrs):
    """Conv (pads 1), the activation ``op``, then a 1x1 conv."""
    conv, inits = _conv("conv", "x", "c", rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4),
                        pads=[1, 1, 1, 1])
    mix, i2 = _conv("mix", "a", "y", rng.normal(size=(3, 4, 1, 1)), rng.normal(size=3))
    if op == "Silu":
        act = [helper.make_node("Sigmoid", ["c"], ["s"], name="sig"),
               helper.make_node("Mul", ["c", "s"], ["a"], name="swish")]
    else:
        act = [helper.make_node(op, ["c"], ["a"], name="act", **attrs)]
    return model([conv, *act, mix], inits + i2, [2, 5, 5], opset=opset), (2, 5, 5)


def mixed_model(rng):
    """A small MobileNet-like network of the newer ops: conv + HardSwish, a depthwise conv +
    Relu, a dilated conv and a 1x1 conv concatenated, a padded average pool, a Sub of two
    tensors, torch's Shape-based flatten, a Gemm and a final Softmax (opset 14)."""
    c1, i1 = _conv("stem", "x", "a", 0.5 * rng.normal(size=(8, 1, 3, 3)), rng.normal(size=8),
                   pads=[1, 1, 1, 1])
    dw, i2 = _conv("dw", "h", "d", 0.5 * rng.normal(size=(8, 1, 3, 3)), rng.normal(size=8),
                   pads=[1, 1, 1, 1], group=8)
    dil, i3 = _conv("dil", "r", "e", 0.2 * rng.normal(size=(4, 8, 3, 3)), rng.normal(size=4),
                    pads=[2, 2, 2, 2], dilations=[2, 2])
    pw, i4 = _conv("pw", "r", "f", 0.3 * rng.normal(size=(4, 8, 1, 1)), rng.normal(size=4))
    nodes = [c1, helper.make_node("HardSwish", ["a"], ["h"], name="hswish"), dw,
             helper.make_node("Relu", ["d"], ["r"], name="relu"), dil, pw,
             helper.make_node("Concat", ["e", "f"], ["c"], name="cat", axis=1),
             helper.make_node("AveragePool", ["c"], ["p"], name="avg", kernel_shape=[3, 3],
                              strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("MaxPool", ["c"], ["q"], name="max", kernel_shape=[3, 3],
                              strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Sub", ["q", "p"], ["s"], name="sub"),
             helper.make_node("Shape", ["s"], ["sh"], name="shape"),
             helper.make_node("Gather", ["sh", "i0"], ["n"], name="gather", axis=0),
             helper.make_node("Unsqueeze", ["n", "ax"], ["n1"], name="unsq"),
             helper.make_node("Concat", ["n1", "m1"], ["target"], name="cat_shape", axis=0),
             helper.make_node("Reshape", ["s", "target"], ["flat"], name="view"),
             helper.make_node("Gemm", ["flat", "w", "b"], ["logits"], name="fc", transB=1),
             helper.make_node("Softmax", ["logits"], ["y"], name="softmax", axis=1)]
    inits = i1 + i2 + i3 + i4 + [
        init("i0", np.array(0, dtype=np.int64)), init("ax", np.array([0], dtype=np.int64)),
        init("m1", np.array([-1], dtype=np.int64)),
        init("w", 0.3 * rng.normal(size=(5, 8 * 4 * 4))), init("b", rng.normal(size=5))]
    return model(nodes, inits, [1, 8, 8], out_rank=2, opset=14), (1, 8, 8)
