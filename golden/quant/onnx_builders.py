"""One builder per supported ONNX op type: attribute checks, folding into the weighted op
before it, and the op object it emits into the float graph.

Used by :func:`dcim.golden.quant.onnx_import.import_model` on a graph prepared by
:func:`dcim.golden.quant.onnx_prep.prepare`. Anything unsupported raises a one-line
``ValueError`` naming the op, the node and the attribute.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from .host import (Gelu, HardSigmoid, HardSwish, HostFloat, HostSoftmax, LeakyRelu, Sigmoid, Silu,
                   Tanh)
from .matmul import Conv, Gemm, GroupConv, Matmul
from .onnx_prep import Prepared
from .ops import Add, Clip, Concat, Flatten, Mul, Op, Relu, Softmax, Sub
from .pool import AvgPool, GlobalAvgPool, MaxPool

__all__ = ["SUPPORTED_OPS", "Builder"]

#: ONNX op types the importer accepts (besides any node of a constant subgraph, evaluated at
#: import, and shape computations feeding a Reshape).
SUPPORTED_OPS = ("Add", "AveragePool", "BatchNormalization", "Clip", "Concat", "Constant",
                 "Conv", "Flatten", "Gelu", "Gemm", "GlobalAveragePool", "HardSigmoid",
                 "HardSwish", "Identity", "LeakyRelu", "MatMul", "MaxPool", "Mul", "Relu",
                 "Reshape", "Shape", "Sigmoid", "Softmax", "Sub", "Tanh")


class Builder:
    """Turns prepared ONNX nodes, one :meth:`add` call each in order, into :attr:`nodes`."""

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
            raise InputError(f"{n.op_type} node {name!r}: {what} ({tensor!r}) must be a constant "
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
        raise InputError(f"{n.op_type} node {name!r}: {what} is not supported")

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
            raise InputError(f"unsupported ONNX op {n.domain}.{op} in node {name!r}")
        if not hasattr(self, "op_" + op):
            raise InputError(f"unsupported ONNX op {op} in node {name!r}; supported: "
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
        groups = int(a.get("group", 1))
        if groups < 1 or w.shape[0] % groups:
            self.unsupported(n, name, f"group={groups} (it must divide the {w.shape[0]} output "
                                      "channels)")
        bias = self.const(n, name, 2, "the bias")
        bias = np.zeros(w.shape[0]) if bias is None else bias.astype(np.float64)
        kw = {"groups": groups} if groups > 1 else {}
        self.emit((GroupConv if groups > 1 else Conv)(
            name, (n.input[0],), n.output[0], weight=w.astype(np.float64), bias=bias,
            **self.window(n, name, a, tuple(int(k) for k in w.shape[2:])), **kw))

    def window(self, n, name, a, kernel: tuple[int, int]) -> dict[str, tuple[int, ...]]:
        """``kernel``, ``strides``, ``pads`` and ``dilations`` of a 2-D Conv or pooling node."""
        return {"kernel": kernel, "strides": tuple(int(s) for s in a.get("strides", [1, 1])),
                "pads": self.pads(n, name, a),
                "dilations": tuple(int(d) for d in a.get("dilations", [1, 1]))}

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

    def binary(self, n, name, cls: type[Op]) -> None:
        """Add, Sub or Mul: of two tensors, the op ``cls``; with a constant, folded into the
        Conv/Gemm/MatMul whose output the other operand is (bias, bias, weights and bias), if
        the constant broadcasts per output channel. (Two constants are folded beforehand.)"""
        x, y = n.input[0], n.input[1]
        cx, cy = x in self.consts, y in self.consts
        if not (cx or cy):
            if cls is not Mul or not (self.silu(n, x, y) or self.silu(n, y, x)):
                self.emit(cls(name, (x, y), n.output[0]))
            return
        op = n.op_type
        tensor, const = (y, self.consts[x]) if cx else (x, self.consts[y])
        target = self.foldable(tensor)
        if target is None:
            self.unsupported(n, name, {"Add": "adding a constant other than as the bias",
                                       "Sub": "subtracting a constant other than from the output",
                                       "Mul": "multiplying by a constant other than the output"}
                             [op] + " of a Conv/Gemm/MatMul")
        if op == "Sub" and cx:
            self.unsupported(n, name, f"subtracting the output of {target.name!r} from a "
                                      "constant")
        cout = target.weight.shape[0]
        self.per_channel(n, name, np.asarray(const), cout, 4 if isinstance(target, Conv) else 2,
                         {"Add": f"adding to {target.name!r} a constant",
                          "Sub": f"subtracting from {target.name!r} a constant",
                          "Mul": f"multiplying {target.name!r} by a constant"}[op])
        c = np.broadcast_to(np.asarray(const, dtype=np.float64).reshape(-1), (cout,))
        if op == "Mul":
            target.weight = target.weight * c.reshape((-1,) + (1,) * (target.weight.ndim - 1))
            target.bias = target.bias * c
        else:
            target.bias = target.bias + (c if op == "Add" else -c)
        self.retarget(target, n.output[0])

    def op_Add(self, n, name, a):
        self.binary(n, name, Add)

    def op_Sub(self, n, name, a):
        self.binary(n, name, Sub)

    def op_Mul(self, n, name, a):
        self.binary(n, name, Mul)

    def op_Concat(self, n, name, a):
        for t in n.input:
            if t in self.consts:
                self.unsupported(n, name, f"a constant input ({t!r}; only computed tensors)")
        axis = int(a["axis"])
        rank = len(self.shapes.get(n.input[0], ()))
        if axis == 0 or (rank and axis == -rank):
            self.unsupported(n, name, f"axis={axis} (the batch axis)")
        self.emit(Concat(name, tuple(n.input), n.output[0], axis=axis))

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

    def pool_window(self, n, name, a) -> dict[str, tuple[int, ...]]:
        if a.get("ceil_mode", 0):
            self.unsupported(n, name, "ceil_mode=1")
        kernel = tuple(int(k) for k in a["kernel_shape"])
        if len(kernel) != 2:
            self.unsupported(n, name, f"a {len(kernel)}-D pooling window (only 2-D)")
        return self.window(n, name, a, kernel)

    def op_MaxPool(self, n, name, a):
        if len([o for o in n.output if o]) > 1:
            self.unsupported(n, name, "the Indices output")
        if a.get("storage_order", 0):
            self.unsupported(n, name, "storage_order=1")
        self.emit(MaxPool(name, (n.input[0],), n.output[0], **self.pool_window(n, name, a)))

    def op_AveragePool(self, n, name, a):
        self.emit(AvgPool(name, (n.input[0],), n.output[0], **self.pool_window(n, name, a),
                          count_include_pad=bool(a.get("count_include_pad", 0))))

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
        cls = Softmax if n.output[0] == self.out_name else HostSoftmax
        self.emit(cls(name, (n.input[0],), n.output[0], axis=a.get("axis", -1)))

    def host(self, n, name, cls: type[HostFloat], **attrs) -> None:
        self.emit(cls(name, (n.input[0],), n.output[0], **attrs))

    def op_Sigmoid(self, n, name, a):
        self.host(n, name, Sigmoid)

    def op_Tanh(self, n, name, a):
        self.host(n, name, Tanh)

    def op_LeakyRelu(self, n, name, a):
        self.host(n, name, LeakyRelu, alpha=float(a.get("alpha", 0.01)))

    def op_HardSigmoid(self, n, name, a):
        self.host(n, name, HardSigmoid, alpha=float(a.get("alpha", 0.2)),
                  beta=float(a.get("beta", 0.5)))

    def op_HardSwish(self, n, name, a):
        self.host(n, name, HardSwish)

    def op_Gelu(self, n, name, a):
        approximate = a.get("approximate", b"none")
        approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
        if approximate not in ("none", "tanh"):
            self.unsupported(n, name, f"approximate={approximate}")
        self.host(n, name, Gelu, approximate=approximate)

    def silu(self, n, x: str, y: str) -> bool:
        """Emit a Mul of ``x`` and ``Sigmoid(x)`` (``y``, used only here) as one SiLU."""
        sig = self.by_output.get(y)
        if not (isinstance(sig, Sigmoid) and sig.inputs == (x,) and self.consumers[y] == 1):
            return False
        self.nodes.remove(sig)
        del self.by_output[y]
        self.emit(Silu(sig.name, (x,), n.output[0]))
        return True
