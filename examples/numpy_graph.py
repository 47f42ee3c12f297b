"""A network as a graph of numpy layers (forward, backward, ONNX export), for the op examples.

:mod:`train_digits` trains fixed chains; the op examples (``train_ops_cnns.py``) have branches,
concatenations and products of tensors. :class:`Graph` runs its steps in order, each a layer
reading named tensors, and back-propagates through them in reverse, adding the gradients of a
tensor that several steps read. The layers add what ``train_digits`` has not (grouped, dilated
and strided convolution, padded average pooling, element-wise ops with broadcasting, the
activations of :mod:`train_lut_mlp` plus ReLU, ReLU6 and LeakyReLU) and reuse its
``BatchNorm``, ``Dense``, ``Param`` and Adam loop (``train``). Every layer writes its own ONNX
node(s), named after its step, so the ONNX graph is the numpy graph, tensor for tensor.

float64 throughout; NCHW.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from train_digits import BatchNorm, Dense, Param, _init
from train_lut_mlp import Act as LutAct

from dcim.golden.quant.tensor_ops import conv_out_size, im2col, pool_windows

__all__ = ["Act", "AvgPool", "BN", "Binary", "Concat", "Conv", "Fc", "Gap", "Graph", "Identity",
           "TorchFlatten"]


class Layer:
    """A step's computation: ``forward(*inputs, train)``, ``backward(dy)`` -> one gradient
    per input, ``onnx(name, inputs)`` -> ``(nodes, initializers)``."""

    def params(self):
        return []


def _taps_add(dxp, d, kh, kw, stride, dil, oh, ow):
    """Add ``d[..., i, j]`` (shape ``(N, C, OH, OW, kh, kw)``) into the padded gradient
    ``dxp`` at the input positions tap ``(i, j)`` read: the adjoint of the window view."""
    for i in range(kh):
        for j in range(kw):
            r, c = i * dil, j * dil
            dxp[:, :, r:r + stride * (oh - 1) + 1:stride,
                c:c + stride * (ow - 1) + 1:stride] += d[..., i, j]


class Conv(Layer):
    """2-D convolution with ``groups``, ``stride``, symmetric ``pad`` and ``dil``ation (He
    initialization); ONNX Conv."""

    def __init__(self, rng, cin, cout, k, stride=1, pad=0, dil=1, groups=1):
        fan_in = cin // groups * k * k
        self.w = Param(rng.normal(0, np.sqrt(2 / fan_in), (cout, cin // groups, k, k)))
        self.b = Param(np.zeros(cout))
        self.k, self.stride, self.pad, self.dil, self.groups = k, stride, pad, dil, groups

    def params(self):
        return [self.w, self.b]

    def forward(self, x, train):
        n, cin, h, w = self.xshape = x.shape
        k, s, p, d, g = self.k, self.stride, self.pad, self.dil, self.groups
        self.oh, self.ow = (conv_out_size(v, k, s, p, p, d) for v in (h, w))
        cols = im2col(x, (k, k), (s, s), (p,) * 4, 0, (d, d))  # (M, cin*k*k), (c, i, j) order
        self.cols = cols.reshape(len(cols), g, -1).transpose(1, 0, 2)  # (g, M, cin/g*k*k)
        wg = self.w.value.reshape(g, -1, self.cols.shape[2])  # (g, cout/g, cin/g*k*k)
        y = (self.cols @ wg.transpose(0, 2, 1)).transpose(1, 0, 2).reshape(len(cols), -1)
        y = y + self.b.value
        return y.reshape(n, self.oh, self.ow, -1).transpose(0, 3, 1, 2)

    def backward(self, dy):
        n, cin, h, w = self.xshape
        k, s, p, d, g = self.k, self.stride, self.pad, self.dil, self.groups
        cout = self.w.value.shape[0]
        dyf = dy.transpose(0, 2, 3, 1).reshape(-1, g, cout // g).transpose(1, 0, 2)  # (g, M, n)
        self.w.grad += (dyf.transpose(0, 2, 1) @ self.cols).reshape(self.w.value.shape)
        self.b.grad += dy.sum(axis=(0, 2, 3))
        wg = self.w.value.reshape(g, cout // g, -1)
        dcols = (dyf @ wg).transpose(1, 0, 2).reshape(n, self.oh, self.ow, cin, k, k)
        dxp = np.zeros((n, cin, h + 2 * p, w + 2 * p))
        _taps_add(dxp, dcols.transpose(0, 3, 1, 2, 4, 5), k, k, s, d, self.oh, self.ow)
        return (dxp[:, :, p:p + h, p:p + w],)

    def onnx(self, name, inputs):
        attrs = {"kernel_shape": [self.k, self.k], "pads": [self.pad] * 4,
                 "strides": [self.stride] * 2}
        if self.dil != 1:
            attrs["dilations"] = [self.dil] * 2
        if self.groups != 1:
            attrs["group"] = self.groups
        return ([helper.make_node("Conv", [*inputs, f"{name}.weight", f"{name}.bias"], [name],
                                  name=name, **attrs)],
                [_init(f"{name}.weight", self.w.value), _init(f"{name}.bias", self.b.value)])


class BN(BatchNorm):
    """:class:`train_digits.BatchNorm`; ONNX BatchNormalization (folded by the importers)."""

    def backward(self, dy):
        return (super().backward(dy),)

    def onnx(self, name, inputs):
        names = [f"{name}.{p}" for p in ("scale", "bias", "mean", "var")]
        return ([helper.make_node("BatchNormalization", [*inputs, *names], [name], name=name,
                                  epsilon=self.eps)],
                [_init(t, v) for t, v in zip(names, (self.g.value, self.b.value, self.mean,
                                                     self.var))])


class Fc(Dense):
    """:class:`train_digits.Dense`; ONNX Gemm."""

    def backward(self, dy):
        return (super().backward(dy),)

    def onnx(self, name, inputs):
        return ([helper.make_node("Gemm", [*inputs, f"{name}.weight", f"{name}.bias"], [name],
                                  name=name, transB=1)],
                [_init(f"{name}.weight", self.w.value), _init(f"{name}.bias", self.b.value)])


class Act(LutAct):
    """:class:`train_lut_mlp.Act` (silu, tanh, hswish, sigmoid, gelu, hsigmoid) plus ``relu``,
    ``relu6`` (ONNX Clip with ``(1,)``-shaped bounds 0 and 6, as some exporters write them)
    and ``lrelu`` (LeakyRelu, slope :attr:`ALPHA`)."""

    ALPHA = 0.1

    def f(self, x):
        if self.name == "relu":
            return np.maximum(x, 0.0)
        if self.name == "relu6":
            return np.clip(x, 0.0, 6.0)
        if self.name == "lrelu":
            return np.where(x > 0, x, self.ALPHA * x)
        return super().f(x)

    def df(self, x):
        if self.name == "relu":
            return (x > 0).astype(np.float64)
        if self.name == "relu6":
            return ((x > 0) & (x < 6)).astype(np.float64)
        if self.name == "lrelu":
            return np.where(x > 0, 1.0, self.ALPHA)
        return super().df(x)

    def backward(self, dy):
        return (super().backward(dy),)

    def onnx(self, name, inputs):
        (x,) = inputs
        if self.name == "silu":  # as exporters write it
            return [helper.make_node("Sigmoid", [x], [f"{name}.sig"], name=f"{name}.sig"),
                    helper.make_node("Mul", [x, f"{name}.sig"], [name], name=name)], []
        if self.name == "relu6":
            return ([helper.make_node("Clip", [x, f"{name}.min", f"{name}.max"], [name],
                                      name=name)],
                    [_init(f"{name}.min", np.array([0.0])), _init(f"{name}.max", np.array([6.0]))])
        op, attrs = {"relu": ("Relu", {}), "lrelu": ("LeakyRelu", {"alpha": self.ALPHA}),
                     "tanh": ("Tanh", {}), "hswish": ("HardSwish", {}),
                     "sigmoid": ("Sigmoid", {}), "gelu": ("Gelu", {}),
                     "hsigmoid": ("HardSigmoid", {})}[self.name]
        return [helper.make_node(op, [x], [name], name=name, **attrs)], []


class AvgPool(Layer):
    """Square average pooling with symmetric ``pad``; ``count_include_pad`` as in ONNX."""

    def __init__(self, k, stride, pad=0, count_include_pad=False):
        self.k, self.stride, self.pad, self.cip = k, stride, pad, count_include_pad

    def _windows(self, x):
        return pool_windows(x, (self.k, self.k), (self.stride, self.stride), (self.pad,) * 4, 0)

    def forward(self, x, train):
        self.xshape = x.shape
        if self.cip:
            self.count = float(self.k * self.k)
        else:
            self.count = self._windows(np.ones((1, 1) + x.shape[2:])).sum(axis=(-2, -1))
        return self._windows(x).sum(axis=(-2, -1)) / self.count

    def backward(self, dy):
        n, c, h, w = self.xshape
        p = self.pad
        dxp = np.zeros((n, c, h + 2 * p, w + 2 * p))
        g = np.broadcast_to((dy / self.count)[..., None, None], dy.shape + (self.k, self.k))
        _taps_add(dxp, g, self.k, self.k, self.stride, 1, *dy.shape[2:])
        return (dxp[:, :, p:p + h, p:p + w],)

    def onnx(self, name, inputs):
        return [helper.make_node("AveragePool", inputs, [name], name=name,
                                 kernel_shape=[self.k] * 2, strides=[self.stride] * 2,
                                 pads=[self.pad] * 4, count_include_pad=int(self.cip))], []


class Gap(Layer):
    """Global average pooling to ``(N, C, 1, 1)``."""

    def forward(self, x, train):
        self.xshape = x.shape
        return x.mean(axis=(2, 3), keepdims=True)

    def backward(self, dy):
        return (np.broadcast_to(dy / (self.xshape[2] * self.xshape[3]), self.xshape),)

    def onnx(self, name, inputs):
        return [helper.make_node("GlobalAveragePool", inputs, [name], name=name)], []


def _unbroadcast(g, shape):
    """Sum ``g`` over the axes along which an operand of ``shape`` was broadcast."""
    axes = tuple(i for i, (a, b) in enumerate(zip(shape, g.shape)) if a == 1 and b != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


class Binary(Layer):
    """Add, Sub or Mul of two tensors of the same rank, with broadcasting."""

    def __init__(self, op):
        self.op = op

    def forward(self, a, b, train):
        self.a, self.b = a, b
        return {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}[self.op](a, b)

    def backward(self, dy):
        da, db = {"Add": (dy, dy), "Sub": (dy, -dy), "Mul": (dy * self.b, dy * self.a)}[self.op]
        return _unbroadcast(da, self.a.shape), _unbroadcast(db, self.b.shape)

    def onnx(self, name, inputs):
        return [helper.make_node(self.op, inputs, [name], name=name)], []


class Concat(Layer):
    """Concatenation along the channels."""

    def forward(self, *xs, train):
        self.sizes = [x.shape[1] for x in xs]
        return np.concatenate(xs, axis=1)

    def backward(self, dy):
        return tuple(np.split(dy, np.cumsum(self.sizes)[:-1], axis=1))

    def onnx(self, name, inputs):
        return [helper.make_node("Concat", inputs, [name], name=name, axis=1)], []


class TorchFlatten(Layer):
    """``x.view(x.size(0), -1)`` as torch exports it: Shape -> Gather(0) -> Unsqueeze ->
    Concat with ``[-1]`` -> Reshape."""

    def forward(self, x, train):
        self.xshape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, dy):
        return (dy.reshape(self.xshape),)

    def onnx(self, name, inputs):
        (x,) = inputs
        t = [f"{name}.{s}" for s in ("shape", "n", "n1", "target")]
        nodes = [helper.make_node("Shape", [x], [t[0]], name=t[0]),
                 helper.make_node("Gather", [t[0], f"{name}.i0"], [t[1]], name=t[1], axis=0),
                 helper.make_node("Unsqueeze", [t[1], f"{name}.axes"], [t[2]], name=t[2]),
                 helper.make_node("Concat", [t[2], f"{name}.m1"], [t[3]], name=t[3], axis=0),
                 helper.make_node("Reshape", [x, t[3]], [name], name=name)]
        inits = [numpy_helper.from_array(np.array(v, dtype=np.int64), n) for n, v in
                 ((f"{name}.i0", 0), (f"{name}.axes", [0]), (f"{name}.m1", [-1]))]
        return nodes, inits


class Identity(Layer):
    """Identity (what torch exports for a dropout in eval mode)."""

    def forward(self, x, train):
        return x

    def backward(self, dy):
        return (dy,)

    def onnx(self, name, inputs):
        return [helper.make_node("Identity", inputs, [name], name=name)], []


class Graph:
    """Steps ``(name, layer, inputs)`` run in order from the input ``"x"``; the last step's
    output is the logits. :meth:`forward` / :meth:`backward` / :meth:`params` are what
    ``train_digits.train`` calls, :meth:`to_onnx` what ``train_digits.fit_checked`` calls.

    Parameters
    ----------
    name : str
        The ONNX graph's name.
    opset : int
        Its opset (Gelu needs 20, HardSwish 14).
    producer : str
        Its ``producer_name``.
    """

    def __init__(self, name: str, opset: int, producer: str):
        self.name, self.opset, self.producer = name, opset, producer
        self.steps: list[tuple[str, Layer, tuple[str, ...]]] = []

    def add(self, name: str, layer, *inputs: str) -> str:
        """Append a step; returns its output tensor's name (``name``)."""
        self.steps.append((name, layer, inputs))
        return name

    def params(self):
        return [p for _, layer, _ in self.steps for p in layer.params()]

    def forward(self, x, train=False):
        vals = {"x": x}
        for name, layer, inputs in self.steps:
            vals[name] = layer.forward(*(vals[i] for i in inputs), train=train)
        return vals[self.steps[-1][0]]

    def backward(self, d):
        grads = {self.steps[-1][0]: d}
        for name, layer, inputs in reversed(self.steps):
            dy = grads.pop(name, None)
            if dy is None:
                continue
            for i, g in zip(inputs, layer.backward(dy)):
                grads[i] = g if i not in grads else grads[i] + g

    def to_onnx(self) -> onnx.ModelProto:
        """The ONNX model: input ``x`` (N, 1, 8, 8), the steps, a final Softmax to ``prob``."""
        nodes, inits = [], []
        for name, layer, inputs in self.steps:
            more, more_inits = layer.onnx(name, inputs)
            nodes += more
            inits += more_inits
        nodes.append(helper.make_node("Softmax", [self.steps[-1][0]], ["prob"], name="softmax",
                                      axis=1))
        graph = helper.make_graph(
            nodes, self.name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
            [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 10])], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  producer_name=self.producer)
        model.ir_version = 8 if self.opset < 19 else 9
        onnx.checker.check_model(model, full_check=True)
        return model
