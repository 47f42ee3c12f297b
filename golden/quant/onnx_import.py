"""Import a float ONNX model into a graph of op objects with a numpy reference forward pass.

Supported (opset 13+; older opsets are converted first): Gemm, MatMul (constant right
operand), Conv (2-D, any stride and padding, group 1, dilation 1), Relu, Clip (scalar or
``(1,)`` bounds), Add (two tensors: a residual; a constant that broadcasts per output channel
after Conv/Gemm/MatMul: folded into the bias), MaxPool, AveragePool (no padding),
GlobalAveragePool, Flatten (axis 1), Reshape (to ``(batch, -1)``, with a constant shape or one
computed from ``Shape``), BatchNormalization (folded into the Conv/Gemm/MatMul that feeds it) and
a final Softmax; Identity, constant subgraphs and shape computations are resolved first
(:mod:`dcim.golden.quant.onnx_prep`). Anything else is
rejected with a one-line ``ValueError`` naming the op, the node and the attribute.

The graph has one float input (batch first) and one output. This module is the float side of
``dcim calibrate``: weights are float64; nothing here is quantized. The op kinds are the
classes of :mod:`dcim.golden.quant.ops` and :mod:`dcim.golden.quant.matmul`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from .matmul import Conv, Gemm, Matmul
from .onnx_prep import Prepared, prepare
from .ops import Add, AvgPool, Clip, Flatten, GlobalAvgPool, MaxPool, Op, Relu, Softmax

__all__ = ["SUPPORTED_OPS", "FloatGraph", "import_model", "load_model"]

#: ONNX op types the importer accepts (besides any node of a constant subgraph, evaluated at
#: import, and shape computations feeding a Reshape).
SUPPORTED_OPS = ("Add", "AveragePool", "BatchNormalization", "Clip", "Constant", "Conv",
                 "Flatten", "Gemm", "GlobalAveragePool", "Identity", "MatMul", "MaxPool", "Relu",
                 "Reshape", "Shape", "Softmax")

@dataclasses.dataclass
class FloatGraph:
    """An imported model: nodes in execution order, one input and one output.

    Attributes
    ----------
    name : str
    input_name : str
    input_shape : tuple of (int or None)
        Shape of one sample (batch dimension removed); None for a symbolic dimension.
    output_name : str
    nodes : list of Op
        In execution order (:mod:`dcim.golden.quant.ops`, :mod:`dcim.golden.quant.matmul`).
    """

    name: str
    input_name: str
    input_shape: tuple[int | None, ...]
    output_name: str
    nodes: list[Op]

    def check_input(self, x: np.ndarray, what: str = "input") -> None:
        """Raise ValueError unless ``x`` is a batch of samples of the model's input shape."""
        want = self.input_shape
        if x.ndim != len(want) + 1 or any(w is not None and w != g
                                          for w, g in zip(want, x.shape[1:])):
            shown = ", ".join("?" if w is None else str(w) for w in want)
            raise ValueError(f"{what} has samples of shape {tuple(x.shape[1:])}, the model "
                             f"{self.name!r} expects ({shown}) (input {self.input_name!r})")

    def forward(self, x: np.ndarray, keep_all: bool = False) -> dict[str, np.ndarray]:
        """Run the float64 reference.

        Returns
        -------
        dict
            ``{output_name: y}``, or every tensor by name if ``keep_all``.
        """
        self.check_input(x)
        env = {self.input_name: np.asarray(x, dtype=np.float64)}
        for node in self.nodes:
            env[node.output] = node.run_float([env[i] for i in node.inputs])
        if keep_all:
            return env
        return {self.output_name: env[self.output_name]}


# ----------------------------------------------------------------------------------------------
# Import
def load_model(path: str | Path) -> FloatGraph:
    """Read, check and import an ONNX model.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        The file is not a valid ONNX model, or uses an unsupported op or attribute (the
        message names the op and the node).
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # protobuf DecodeError, ValidationError, ...
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: not a valid ONNX model ({detail})") from None
    return import_model(model, path.stem)


def import_model(model, name: str = "model") -> FloatGraph:
    """Import an in-memory ``onnx.ModelProto`` (see :func:`load_model`)."""
    import onnx

    p = prepare(model)
    g = p.model.graph
    inputs = [i for i in g.input if i.name not in p.consts]
    if len(inputs) != 1:
        raise ValueError(f"model must have exactly one data input, got {len(inputs)}: "
                         f"{', '.join(i.name for i in inputs)}")
    if len(g.output) != 1:
        raise ValueError(f"model must have exactly one output, got {len(g.output)}")
    inp = inputs[0]
    dims = inp.type.tensor_type.shape.dim
    if len(dims) < 2:
        raise ValueError(f"model input {inp.name!r} must have a batch dimension and at least "
                         f"one more, got rank {len(dims)}")
    shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                  for d in dims[1:])
    if inp.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise ValueError(f"model input {inp.name!r} must be float32")
    consumers: dict[str, int] = {}
    for _, n in p.nodes:
        for i in n.input:
            consumers[i] = consumers.get(i, 0) + 1
    consumers[p.output] = consumers.get(p.output, 0) + 1
    b = _Builder(p, consumers)
    for node_name, n in p.nodes:
        b.add(n, node_name)
    known = {inp.name} | {node.output for node in b.nodes}
    if p.output not in known:
        raise ValueError(f"model output {g.output[0].name!r} is not computed from the input")
    return FloatGraph(g.name or name, inp.name, shape, p.output, b.nodes)


class _Builder:
    def __init__(self, prepared: Prepared, consumers: dict[str, int]):
        self.consts = prepared.consts
        self.shapes = prepared.shapes
        self.from_shape = prepared.from_shape
        self.consumers = consumers
        self.out_name = prepared.output
        self.nodes: list[Op] = []
        self.by_output: dict[str, Op] = {}

    # -- helpers -------------------------------------------------------------------------------
    def attrs(self, n) -> dict[str, Any]:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in n.attribute}

    def const(self, n, name, index, what) -> np.ndarray:
        if index >= len(n.input) or not n.input[index]:
            return None
        tensor = n.input[index]
        if tensor not in self.consts:
            raise ValueError(f"{n.op_type} node {name!r}: {what} ({tensor!r}) must be a constant "
                             "initializer")
        return self.consts[tensor]

    def emit(self, node: Op) -> None:
        self.nodes.append(node)
        self.by_output[node.output] = node

    def foldable(self, tensor: str) -> Matmul | None:
        """The weighted node producing ``tensor`` if only one node consumes it."""
        node = self.by_output.get(tensor)
        if isinstance(node, Matmul) and self.consumers.get(tensor, 0) == 1:
            return node
        return None

    def retarget(self, node: Op, new_output: str) -> None:
        del self.by_output[node.output]
        node.output = new_output
        self.by_output[new_output] = node

    def unsupported(self, n, name, what):
        raise ValueError(f"{n.op_type} node {name!r}: {what} is not supported")

    def per_channel(self, n, name, const: np.ndarray, cout: int, rank: int, what: str) -> None:
        """Reject a constant that does not broadcast per output channel (axis 1) of a
        rank-``rank`` result with ``cout`` channels (ONNX broadcasting aligns trailing axes)."""
        shape = (1,) * (rank - const.ndim) + const.shape
        if const.ndim > rank or shape[1] not in (1, cout) or any(
                d != 1 for i, d in enumerate(shape) if i != 1):
            want = (cout,) + (1,) * (rank - 2)
            self.unsupported(n, name, f"{what} of shape {const.shape} (not per output channel; "
                                      f"a bias has shape {want})")

    # -- ops -----------------------------------------------------------------------------------
    def add(self, n, name: str) -> None:
        op = n.op_type
        if n.domain not in ("", "ai.onnx"):
            raise ValueError(f"unsupported ONNX op {n.domain}.{op} in node {name!r}")
        if not hasattr(self, "op_" + op):
            raise ValueError(f"unsupported ONNX op {op} in node {name!r}; supported: "
                             f"{', '.join(sorted(SUPPORTED_OPS))}")
        for index, tensor in enumerate(n.input):
            if tensor in self.from_shape and (op, index) != ("Reshape", 1):
                self.unsupported(n, name, f"input {tensor!r}, computed from a tensor's shape "
                                          "(only as Reshape's shape)")
        getattr(self, "op_" + op)(n, name, self.attrs(n))

    def op_Conv(self, n, name, a):
        w = self.const(n, name, 1, "the weight")
        if w.ndim != 4:
            self.unsupported(n, name, f"a {w.ndim - 2}-D convolution (only 2-D)")
        if a.get("group", 1) != 1:
            self.unsupported(n, name, f"groups={a['group']} (only groups=1)")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            self.unsupported(n, name, f"dilations={list(a['dilations'])}")
        pads = self.pads(n, name, a)
        bias = self.const(n, name, 2, "the bias")
        bias = np.zeros(w.shape[0]) if bias is None else bias.astype(np.float64)
        self.emit(Conv(name, (n.input[0],), n.output[0], weight=w.astype(np.float64), bias=bias,
                       kernel=tuple(int(k) for k in w.shape[2:]),
                       strides=tuple(int(s) for s in a.get("strides", [1, 1])), pads=pads))

    def pads(self, n, name, a) -> tuple[int, int, int, int]:
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto not in ("NOTSET", "VALID"):
            self.unsupported(n, name, f"auto_pad={auto} (give explicit pads)")
        pads = [int(p) for p in a.get("pads", [0, 0, 0, 0])]
        if len(pads) != 4:
            self.unsupported(n, name, f"pads={pads} (only 2-D)")
        return tuple(pads)

    def op_Gemm(self, n, name, a):
        if a.get("transA", 0):
            self.unsupported(n, name, "transA=1")
        w = self.const(n, name, 1, "the B operand").astype(np.float64)
        if w.ndim != 2:
            self.unsupported(n, name, f"a {w.ndim}-D B operand")
        w = w if a.get("transB", 0) else w.T  # (N, K)
        w = w * a.get("alpha", 1.0)
        c = self.const(n, name, 2, "the C operand")
        if c is not None:
            self.per_channel(n, name, c, w.shape[0], 2, "a C operand")
        bias = np.zeros(w.shape[0]) if c is None else np.broadcast_to(
            c.astype(np.float64).reshape(-1) * a.get("beta", 1.0), (w.shape[0],)).copy()
        self.emit(Gemm(name, (n.input[0],), n.output[0], weight=w, bias=bias))

    def op_MatMul(self, n, name, a):
        w = self.const(n, name, 1, "the right operand")
        if w.ndim != 2:
            self.unsupported(n, name, f"a {w.ndim}-D right operand")
        self.emit(Gemm(name, (n.input[0],), n.output[0],
                       weight=w.astype(np.float64).T.copy(), bias=np.zeros(w.shape[1])))

    def op_BatchNormalization(self, n, name, a):
        if a.get("training_mode", 0):
            self.unsupported(n, name, "training_mode=1")
        target = self.foldable(n.input[0])
        if target is None:
            self.unsupported(n, name, "a BatchNormalization that does not directly follow a "
                                      "Conv/Gemm/MatMul (it cannot be folded)")
        gamma, beta, mean, var = (self.const(n, name, i, w).astype(np.float64) for i, w in
                                  ((1, "scale"), (2, "bias"), (3, "mean"), (4, "var")))
        s = gamma / np.sqrt(var + a.get("epsilon", 1e-5))
        shape = (-1,) + (1,) * (target.weight.ndim - 1)
        target.weight = target.weight * s.reshape(shape)
        target.bias = (target.bias - mean) * s + beta
        self.retarget(target, n.output[0])

    def op_Add(self, n, name, a):
        x, y = n.input[0], n.input[1]
        cx, cy = x in self.consts, y in self.consts
        if cx and cy:
            self.unsupported(n, name, "an Add of two constants")
        if cx or cy:
            tensor, const = (y, self.consts[x]) if cx else (x, self.consts[y])
            target = self.foldable(tensor)
            if target is None:
                self.unsupported(n, name, "adding a constant other than as the bias of a "
                                          "Conv/Gemm/MatMul")
            cout = target.weight.shape[0]
            const = np.asarray(const, dtype=np.float64)
            self.per_channel(n, name, const, cout, 4 if isinstance(target, Conv) else 2,
                             f"adding to {target.name!r} a constant")
            target.bias = target.bias + np.broadcast_to(const.reshape(-1), (cout,))
            self.retarget(target, n.output[0])
            return
        self.emit(Add(name, (x, y), n.output[0]))

    def op_Relu(self, n, name, a):
        self.emit(Relu(name, (n.input[0],), n.output[0]))

    def op_Clip(self, n, name, a):
        lo, hi = (self.const(n, name, i, what) for i, what in ((1, "min"), (2, "max")))
        for v, what in ((lo, "min"), (hi, "max")):
            if v is not None and (v.size != 1 or v.ndim > 1):
                self.unsupported(n, name, f"{what} of shape {v.shape} (only a scalar or shape "
                                          "(1,))")
        self.emit(Clip(name, (n.input[0],), n.output[0],
                       clip=(-np.inf if lo is None else float(lo.reshape(())),
                             np.inf if hi is None else float(hi.reshape(())))))

    def pool_attrs(self, n, name, a):
        if a.get("ceil_mode", 0):
            self.unsupported(n, name, "ceil_mode=1")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            self.unsupported(n, name, f"dilations={list(a['dilations'])}")
        kernel = tuple(int(k) for k in a["kernel_shape"])
        if len(kernel) != 2:
            self.unsupported(n, name, f"a {len(kernel)}-D pooling window (only 2-D)")
        strides = tuple(int(s) for s in a.get("strides", [1, 1]))
        return kernel, strides, self.pads(n, name, a)

    def op_MaxPool(self, n, name, a):
        if len([o for o in n.output if o]) > 1:
            self.unsupported(n, name, "the Indices output")
        if a.get("storage_order", 0):
            self.unsupported(n, name, "storage_order=1")
        kernel, strides, pads = self.pool_attrs(n, name, a)
        self.emit(MaxPool(name, (n.input[0],), n.output[0], kernel=kernel, strides=strides,
                          pads=pads))

    def op_AveragePool(self, n, name, a):
        kernel, strides, pads = self.pool_attrs(n, name, a)
        if any(pads):
            self.unsupported(n, name, f"padding pads={list(pads)}")
        self.emit(AvgPool(name, (n.input[0],), n.output[0], kernel=kernel, strides=strides))

    def op_GlobalAveragePool(self, n, name, a):
        self.emit(GlobalAvgPool(name, (n.input[0],), n.output[0]))

    def op_Flatten(self, n, name, a):
        if a.get("axis", 1) != 1:
            self.unsupported(n, name, f"axis={a['axis']} (only axis=1)")
        self.emit(Flatten(name, (n.input[0],), n.output[0]))

    def op_Reshape(self, n, name, a):
        src, target = n.input[0], n.input[1]
        ins, outs = self.shapes.get(src), self.shapes.get(n.output[0])
        if ins and outs and len(outs) == 2 and outs[0] is not None and outs[0] == ins[0]:
            # (batch, anything): the element count makes it a flatten
            self.emit(Flatten(name, (src,), n.output[0],
                              flat_size=outs[1] if isinstance(outs[1], int) else None))
            return
        if target in self.from_shape:
            shown = "?" if outs is None else "(" + ", ".join(
                "?" if d is None or str(d).startswith("unk__") else str(d) for d in outs) + ")"
            self.unsupported(n, name, f"a shape computed from {target!r} that shape inference "
                                      f"resolves to {shown} (only a flattening reshape to "
                                      "(batch, -1))")
        shape = [int(s) for s in self.const(n, name, 1, "the shape")]
        if len(shape) != 2 or shape[0] not in (0, -1) or (shape[0] == -1 and shape[1] == -1):
            self.unsupported(n, name, f"shape={shape} (only a flattening reshape to "
                                      "(batch, -1))")
        if shape[0] == -1 and shape[1] in (0,):
            self.unsupported(n, name, f"shape={shape}")
        if a.get("allowzero", 0) and 0 in shape:
            self.unsupported(n, name, f"allowzero=1 with shape={shape}")
        self.emit(Flatten(name, (src,), n.output[0],
                          flat_size=None if shape[1] == -1 else shape[1]))

    def op_Softmax(self, n, name, a):
        if n.output[0] != self.out_name:
            self.unsupported(n, name, "a Softmax other than the final node")
        self.emit(Softmax(name, (n.input[0],), n.output[0], axis=a.get("axis", -1)))
