"""Element-wise activations the DPU has no stage for, computed in float on the host.

Each is ``y = quantize(f(dequantize(x)))``: the input codes dequantized with their scale and
zero point, ``f`` in float64, the result quantized with the output's calibrated parameters
(round half to even, as ONNX QuantizeLinear) and clamped like any layer (a following Relu/Clip
is fused as that clamp). This is the one place where the integer path computes in float: the
integer path and the fake-quant twin give the same codes. A DPU lookup-table mode for these
functions (int8 in, int8 out) is a later step (docs/calibration.md).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np

from ..activation import Activation
from ..arith import saturate
from .ops import Op, OpKind, softmax
from .scheme import dequantize, quantize

__all__ = ["Gelu", "HardSigmoid", "HardSwish", "HostFloat", "HostSoftmax", "LeakyRelu", "Sigmoid",
           "Silu", "Tanh"]

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for large |x|


@dataclasses.dataclass
class HostFloat(Op):
    """An element-wise function ``f`` applied in float between dequantize and quantize
    (abstract: subclasses define :meth:`f`)."""

    layer_kind = OpKind.HOST
    requantizes = True
    #: The DPU's LUT mode for the function (None: host only), used when the op directly
    #: follows a Conv/Gemm (:func:`dcim.golden.quant.qmodel.plan`).
    lut_mode: ClassVar[Activation | None] = None

    def lut_args(self) -> dict:
        """Extra parameters of :func:`dcim.golden.activation.build_lut` (HardSigmoid's)."""
        return {}

    def f(self, x: np.ndarray) -> np.ndarray:
        """The float64 function."""
        raise NotImplementedError

    def run_float(self, args):
        return self.f(args[0])

    def run_int(self, m, layer, args):
        qin, qout = m.qparams[layer.inputs[0]], m.qparams[layer.output]
        y = quantize(self.f(dequantize(args[0], qin)), qout, m.cfg)
        return saturate(y, layer.act_min, layer.act_max)


@dataclasses.dataclass
class Sigmoid(HostFloat):
    """``1 / (1 + exp(-x))``."""

    kind = OpKind.SIGMOID
    lut_mode = Activation.SIGMOID

    def f(self, x):
        return _sigmoid(x)


@dataclasses.dataclass
class Silu(HostFloat):
    """SiLU (swish), ``x * sigmoid(x)``: a ``Mul`` of a tensor and its own ``Sigmoid``, as
    exporters write it, imported as one op."""

    kind = OpKind.SILU
    lut_mode = Activation.SILU

    def f(self, x):
        return x * _sigmoid(x)


@dataclasses.dataclass
class Tanh(HostFloat):
    """``tanh(x)``."""

    kind = OpKind.TANH
    lut_mode = Activation.TANH

    def f(self, x):
        return np.tanh(x)


@dataclasses.dataclass
class LeakyRelu(HostFloat):
    """``x`` for ``x >= 0``, else ``alpha * x``.

    Attributes
    ----------
    alpha : float
    """

    alpha: float = 0.01
    kind = OpKind.LRELU

    def f(self, x):
        return np.where(x >= 0, x, self.alpha * x)


@dataclasses.dataclass
class HardSigmoid(HostFloat):
    """``max(0, min(1, alpha * x + beta))``.

    Attributes
    ----------
    alpha, beta : float
    """

    alpha: float = 0.2
    beta: float = 0.5
    kind = OpKind.HSIGMOID
    lut_mode = Activation.HARDSIGMOID

    def lut_args(self):
        return {"alpha": self.alpha, "beta": self.beta}

    def f(self, x):
        return np.clip(self.alpha * x + self.beta, 0.0, 1.0)


@dataclasses.dataclass
class HardSwish(HostFloat):
    """``x * max(0, min(1, x / 6 + 0.5))``."""

    kind = OpKind.HSWISH
    lut_mode = Activation.HARDSWISH

    def f(self, x):
        return x * np.clip(x / 6.0 + 0.5, 0.0, 1.0)


@dataclasses.dataclass
class Gelu(HostFloat):
    """GELU, ``0.5 x (1 + erf(x / sqrt(2)))``, or its ``tanh`` approximation.

    Attributes
    ----------
    approximate : str
        ``none`` or ``tanh`` (ONNX Gelu, opset 20).
    """

    approximate: str = "none"
    kind = OpKind.GELU

    @property
    def lut_mode(self):  # the tanh approximation has no table mode
        return Activation.GELU if self.approximate == "none" else None

    def f(self, x):
        if self.approximate == "tanh":
            return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
        return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


@dataclasses.dataclass
class HostSoftmax(HostFloat):
    """A Softmax inside the network (the final one is :class:`~dcim.golden.quant.ops.Softmax`,
    whose float output is the model's).

    Attributes
    ----------
    axis : int
    """

    axis: int = -1
    kind = OpKind.SOFTMAX

    def f(self, x):
        return softmax(x, self.axis)
