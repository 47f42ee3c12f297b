"""The op kinds of the float graph, each with its float reference and its quantized execution.

One class per op kind. Every op has a float64 reference (:meth:`Op.run_float`) and, once it
is part of a quantized layer (:class:`~dcim.golden.quant.qmodel.QLayer`), a way to fill the
layer's integer tables (:meth:`Op.quantize`) and to compute its output codes exactly
(:meth:`Op.run_int`) or in the fake-quant float simulation (:meth:`Op.run_fake`). The class
attributes tell the fusion plan, the calibration and the mapping what the op is.

This module holds the base class and the element-wise and layout ops off the array (clamps,
Add/Sub/Mul of two tensors, Concat, flatten, the final softmax); pooling is in
:mod:`dcim.golden.quant.pool`, the float activations computed on the host in
:mod:`dcim.golden.quant.host`, the weighted ops the array computes in
:mod:`dcim.golden.quant.matmul`.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from fractions import Fraction
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..arith import divide_round, quantize_multiplier, requantize, saturate
from ..errors import InputError
from .scheme import QParams, fake_round, round_like

if TYPE_CHECKING:  # pragma: no cover
    from ..config import CoreConfig
    from .qmodel import QLayer, QModel

__all__ = ["Add", "Clamp", "Clip", "Concat", "Flatten", "Mul", "Op", "OpKind", "Relu", "Softmax",
           "Sub", "Sum", "rescale", "rescale_fake", "rescale_mults", "softmax", "sum_table"]


class OpKind(enum.StrEnum):
    """What an op (:attr:`Op.kind`) or the quantized layer it starts (:attr:`Op.layer_kind`) is.

    The value is the name the mapping table, the reports and the exported vectors print; a
    DPU-table activation fused into a Conv/Gemm layer is shown as ``<kind>+<activation>``.
    """

    # layers computed on the array (``matmul`` is the layer kind of all three)
    CONV = "conv"
    GCONV = "gconv"
    GEMM = "gemm"
    MATMUL = "matmul"
    # clamps (a Relu/Clip absorbed by the layer before it, or a layer of its own)
    RELU = "relu"
    CLIP = "clip"
    CLAMP = "clamp"
    # element-wise and shape ops on the host
    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    CONCAT = "concat"
    FLATTEN = "flatten"
    MAXPOOL = "maxpool"
    AVGPOOL = "avgpool"
    GAP = "gap"
    SOFTMAX = "softmax"
    # activations on the host (``host`` is their layer kind), or as DPU tables after a layer
    HOST = "host"
    SIGMOID = "sigmoid"
    SILU = "silu"
    TANH = "tanh"
    LRELU = "lrelu"
    HSIGMOID = "hsigmoid"
    HSWISH = "hswish"
    GELU = "gelu"


@dataclasses.dataclass
class Op:
    """One node of the imported float graph.

    Attributes
    ----------
    name : str
        The ONNX node name (``<OpType>_<index>`` if the model leaves it empty); for folded
        nodes, the name of the Conv/Gemm/MatMul.
    inputs : tuple of str
        Names of the tensor inputs.
    output : str
        Name of the output tensor.
    """

    name: str
    inputs: tuple[str, ...]
    output: str

    #: The op's name in the float graph and in the mapping table.
    kind: ClassVar[OpKind]
    #: The kind of the quantized layer the op starts, in the report.
    layer_kind: ClassVar[OpKind]
    #: Whether the output gets its own calibrated scale and zero point (else it keeps its
    #: input's); such a layer also absorbs a following Relu/Clip as its clamp.
    requantizes: ClassVar[bool] = False
    #: Whether the output is integer codes (False: float, computed on the dequantized input).
    int_output: ClassVar[bool] = True
    #: Whether the op runs on the core's array.
    on_array: ClassVar[bool] = False

    def run_float(self, args: list[np.ndarray]) -> np.ndarray:
        """The float64 output for the float64 inputs ``args`` (in :attr:`inputs` order)."""
        raise NotImplementedError

    def quantize(self, cfg: CoreConfig, layer: QLayer, qparams: dict[str, QParams],
                 warnings: list[str]) -> None:
        """Fill ``layer``'s integer tables; ``qparams`` holds its input and output parameters.

        Fallbacks and overflow risks are appended to ``warnings``, one line each.
        """

    def run_int(self, m: QModel, layer: QLayer, args: list[np.ndarray]) -> np.ndarray:
        """The layer's int64 output codes for its int64 input codes, with exact integers."""
        raise NotImplementedError

    def run_fast(self, m: QModel, layer: QLayer, args: list[np.ndarray]) -> np.ndarray:
        """The codes of :meth:`run_int`, bit for bit, computed faster where the op knows how
        (the weighted ops: :mod:`dcim.golden.quant.fastpath`); :meth:`run_int` otherwise."""
        return self.run_int(m, layer, args)

    def run_fake(self, m: QModel, layer: QLayer, args: list[np.ndarray]) -> np.ndarray:
        """The output codes of the fake-quant float simulation (the integer path's codes where
        it involves no rescaling)."""
        return self.run_int(m, layer, args)


def rescale_fake(m: QModel, v: np.ndarray, qin: QParams, qout: QParams, shift) -> np.ndarray:
    """Fake-quant rescaling of codes ``v`` from ``qin`` to ``qout`` (no zero point added):
    ``(v - zp_in) * (s_in / s_out)`` rounded as the requantization with ``shift`` rounds."""
    return fake_round((v - qin.zero_point) * (qin.scale / qout.scale), shift, m.cfg.rounding)


def rescale(m: QModel, v: np.ndarray, qin: QParams, qout: QParams, mult: tuple[int, int],
            fake: bool) -> np.ndarray:
    """Codes ``v`` at ``qin`` moved to the scale of ``qout`` (no zero point added): exactly,
    ``requantize(v - zp_in, *mult)`` with ``mult = quantize_multiplier(s_in / s_out)``, or in
    the fake-quant simulation (:func:`rescale_fake`). int64."""
    if fake:
        return rescale_fake(m, v, qin, qout, mult[1]).astype(np.int64)
    return requantize(v.astype(np.int64) - qin.zero_point, *mult, m.cfg.rounding)


def rescale_mults(layer: QLayer, qparams: dict[str, QParams]) -> list[tuple[int, int]]:
    """One ``quantize_multiplier(s_in / s_out)`` per input of ``layer``."""
    qout = qparams[layer.output]
    return [quantize_multiplier(qparams[t].scale / qout.scale) for t in layer.inputs]


# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Clamp(Op):
    """Relu or Clip: a clamp of the codes (fused into the preceding layer where it can be).

    Attributes
    ----------
    clip : tuple of float
        The real-valued ``(lo, hi)``.
    """

    clip: tuple[float, float] = (-math.inf, math.inf)
    layer_kind = OpKind.CLAMP

    def run_float(self, args):
        return np.clip(args[0], *self.clip)

    def run_int(self, m, layer, args):
        return saturate(args[0], layer.act_min, layer.act_max)


@dataclasses.dataclass
class Relu(Clamp):
    """Relu: a clamp at 0."""

    clip: tuple[float, float] = (0.0, math.inf)
    kind = OpKind.RELU


@dataclasses.dataclass
class Clip(Clamp):
    """Clip with constant bounds."""

    kind = OpKind.CLIP


@dataclasses.dataclass
class Sum(Op):
    """Add or Sub of two tensors off the array, on the host (an Add after a weighted layer is
    fused into the DPU's residual stage instead, where it can be): the exact real sum rounded
    once, ``zp_y + round((s_a (a - zp_a) +/- s_b (b - zp_b)) / s_y)``, clamped, as ONNX's
    ``Q(DQ(a) +/- DQ(b))`` defines it. The scales are taken as the exact rationals their
    float64 values are, and the rounding (:func:`~dcim.golden.arith.divide_round`, the tie rule
    of ``cfg.rounding``) is exact integer arithmetic: the output code of every pair of input
    codes is one entry of a table (:func:`sum_table`, ``(qmax - qmin + 1)**2`` entries) built
    when the layer is quantized. Operands broadcast as in ONNX."""

    requantizes = True
    #: +1 (Add) or -1 (Sub): the sign of the second operand.
    sign: ClassVar[int] = 1

    def run_float(self, args):
        return args[0] + self.sign * args[1]

    def quantize(self, cfg, layer, qparams, warnings):
        qa, qb = (qparams[t] for t in layer.inputs)
        layer.table = sum_table(cfg, qa, qb, qparams[layer.output], self.sign)

    def run_int(self, m, layer, args):
        qmin = m.cfg.act_range[0]
        y = layer.table[args[0].astype(np.int64) - qmin, args[1].astype(np.int64) - qmin]
        return saturate(y, layer.act_min, layer.act_max)

    def run_fake(self, m, layer, args):
        qa, qb = (m.qparams[t] for t in layer.inputs)
        qout = m.qparams[layer.output]
        v = ((args[0] - qa.zero_point) * (qa.scale / qout.scale)
             + self.sign * (args[1] - qb.zero_point) * (qb.scale / qout.scale))
        y = round_like(v, m.cfg.rounding) + qout.zero_point
        return saturate(y.astype(np.int64), layer.act_min, layer.act_max)


def sum_table(cfg: CoreConfig, qa: QParams, qb: QParams, qy: QParams, sign: int) -> np.ndarray:
    """The output codes of ``a +/- b`` for every pair of input codes, exactly.

    ``T[i, j] = clamp(zp_y + divide_round(p_a (a - zp_a) + sign p_b (b - zp_b), D))`` with
    ``a = qmin + i``, ``b = qmin + j`` (``(qmin, qmax) = cfg.act_range``) and ``p_a / D = s_a /
    s_y``, ``p_b / D = s_b / s_y`` the exact ratios of the float64 scales over a common
    denominator (Python integers, no float rounding).

    Returns
    -------
    numpy.ndarray of int64, shape (qmax - qmin + 1, qmax - qmin + 1)
        Codes in ``cfg.act_range``.
    """
    qmin, qmax = cfg.act_range
    ra, rb = (Fraction(q.scale) / Fraction(qy.scale) for q in (qa, qb))
    den = math.lcm(ra.denominator, rb.denominator)
    pa, pb = ra.numerator * (den // ra.denominator), rb.numerator * (den // rb.denominator)
    codes = np.arange(qmin, qmax + 1).astype(object)
    num = (pa * (codes - qa.zero_point))[:, None] + (sign * pb * (codes - qb.zero_point))[None, :]
    y = divide_round(num, den, cfg.rounding) + qy.zero_point
    return np.minimum(np.maximum(y, qmin), qmax).astype(np.int64)


@dataclasses.dataclass
class Add(Sum):
    """Add of two tensors (a residual)."""

    kind = layer_kind = OpKind.ADD


@dataclasses.dataclass
class Sub(Sum):
    """Sub of two tensors (never fused: the DPU's residual multiplier is non-negative)."""

    kind = layer_kind = OpKind.SUB
    sign = -1


@dataclasses.dataclass
class Mul(Op):
    """Mul of two tensors, on the host: the exact product of the centred codes requantized,
    ``zp_y + requantize((a - zp_a) * (b - zp_b), quantize_multiplier(s_a s_b / s_y))``,
    clamped (the product of two int8 values fits int32). Operands broadcast as in ONNX."""

    kind = layer_kind = OpKind.MUL
    requantizes = True

    def run_float(self, args):
        return args[0] * args[1]

    def quantize(self, cfg, layer, qparams, warnings):
        qa, qb = (qparams[t] for t in layer.inputs)
        layer.mults = [quantize_multiplier(qa.scale * qb.scale / qparams[layer.output].scale)]

    def _product(self, m, layer, args):
        qa, qb = (m.qparams[t] for t in layer.inputs)
        return (args[0].astype(np.int64) - qa.zero_point) * (args[1].astype(np.int64)
                                                             - qb.zero_point)

    def run_int(self, m, layer, args):
        mult, shift = layer.mults[0]
        y = requantize(self._product(m, layer, args), mult, shift, m.cfg.rounding)
        return saturate(y + m.qparams[layer.output].zero_point, layer.act_min, layer.act_max)

    def run_fake(self, m, layer, args):
        qa, qb = (m.qparams[t] for t in layer.inputs)
        qout = m.qparams[layer.output]
        y = fake_round(self._product(m, layer, args) * (qa.scale * qb.scale / qout.scale),
                       layer.mults[0][1], m.cfg.rounding)
        return saturate(y.astype(np.int64) + qout.zero_point, layer.act_min, layer.act_max)


@dataclasses.dataclass
class Concat(Op):
    """Concat of tensors along a non-batch axis, on the host: every input rescaled to the
    output's scale, ``zp_y + requantize(q_i - zp_i, quantize_multiplier(s_i / s_y))``, clamped.

    Attributes
    ----------
    axis : int
        ONNX ``axis`` (negative counts from the end).
    """

    axis: int = 1
    kind = layer_kind = OpKind.CONCAT
    requantizes = True

    def run_float(self, args):
        return np.concatenate(args, axis=self.axis)

    def quantize(self, cfg, layer, qparams, warnings):
        layer.mults = rescale_mults(layer, qparams)

    def _concat(self, m, layer, args, fake):
        qout = m.qparams[layer.output]
        parts = [rescale(m, v, m.qparams[t], qout, mult, fake)
                 for t, v, mult in zip(layer.inputs, args, layer.mults)]
        return saturate(qout.zero_point + np.concatenate(parts, axis=self.axis), layer.act_min,
                        layer.act_max)

    def run_int(self, m, layer, args):
        return self._concat(m, layer, args, False)

    def run_fake(self, m, layer, args):
        return self._concat(m, layer, args, True)


@dataclasses.dataclass
class Flatten(Op):
    """Flatten to ``(batch, -1)`` (Flatten axis 1, or a flattening Reshape).

    Attributes
    ----------
    flat_size : int or None
        Second dimension a ``Reshape`` asked for (checked at run time), else None.
    """

    flat_size: int | None = None
    kind = layer_kind = OpKind.FLATTEN

    def run_float(self, args):
        return self.flatten(args[0])

    def run_int(self, m, layer, args):
        return self.flatten(args[0])

    def flatten(self, x: np.ndarray) -> np.ndarray:
        """``x`` reshaped to ``(batch, -1)``.

        Raises
        ------
        ValueError
            The size does not match the Reshape's :attr:`flat_size`.
        """
        y = x.reshape(x.shape[0], -1)
        if self.flat_size is not None and y.shape[1] != self.flat_size:
            raise InputError(f"{self.name}: Reshape to (batch, {self.flat_size}) of a tensor "
                             f"with {y.shape[1]} elements per sample")
        return y


@dataclasses.dataclass
class Softmax(Op):
    """The final Softmax, computed in float on the dequantized logits.

    Attributes
    ----------
    axis : int
    """

    axis: int = 1
    kind = layer_kind = OpKind.SOFTMAX
    int_output = False

    def run_float(self, args):
        return softmax(args[0], self.axis)


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """Softmax of float ``x`` along ``axis`` (the maximum subtracted first)."""
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)
