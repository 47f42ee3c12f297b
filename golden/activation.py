"""The DPU's activation modes and the int8 -> int8 lookup tables of the LUT mode.

The DPU ends every output with a clamp to ``[act_min, act_max]`` (:attr:`Activation.CLAMP`:
identity, ReLU, ReLU6, Clip). In the LUT mode it then maps the clamped int8 code through a
256-entry table (``DpuParams.lut``, index ``code + 128``), which holds an element-wise function
between two quantizations: entry ``q`` is the output code of ``f(s_in (q - zp_in))``.

A table is built offline and exactly (:func:`build_lut`): the input value ``v = s_in (q -
zp_in)`` is the exact rational of the float64 scale; the output code is ``clamp(zp_out +
divide_round(f(v) / s_out))`` with :func:`dcim.golden.arith.divide_round` (the tie rule of the
configuration's rounding mode) on the exact rational of ``f(v) / s_out``, and

* the piecewise-linear modes (HardSigmoid, HardSwish) evaluate ``f`` exactly in rationals
  (``alpha`` and ``beta`` as the exact rationals of their float64 values);
* the transcendental ones (Sigmoid, Tanh, SiLU, GELU) evaluate ``f(v)`` once in float64 with
  Python's ``math`` (``v`` rounded to float64 first) and round that float64 value exactly.

No float rounding enters the division or the final rounding.
"""

from __future__ import annotations

import enum
import math
from fractions import Fraction

import numpy as np

from .arith import divide_round
from .errors import InputError

__all__ = ["LUT_SIZE", "Activation", "activation_value", "build_lut"]

#: Entries of a DPU lookup table (int8 in).
LUT_SIZE = 256


class Activation(enum.Enum):
    """The DPU's activation modes: the clamp alone, or the clamp then a lookup table."""

    CLAMP = "clamp"
    SIGMOID = "sigmoid"
    TANH = "tanh"
    HARDSIGMOID = "hsigmoid"
    HARDSWISH = "hswish"
    SILU = "silu"
    GELU = "gelu"

    @property
    def uses_lut(self) -> bool:
        """Whether the mode needs a lookup table."""
        return self is not Activation.CLAMP


def _sigmoid(x: float) -> float:
    return 0.5 * (1.0 + math.tanh(0.5 * x))


def activation_value(mode: Activation, v: Fraction, alpha: float = 0.2, beta: float = 0.5
                     ) -> Fraction:
    """``f(v)`` for the LUT modes, exact for HardSigmoid (``max(0, min(1, alpha v + beta))``)
    and HardSwish (``v max(0, min(1, v / 6 + 1/2))``), else the exact rational of the float64
    value of ``f(float(v))`` (GELU: ``v/2 (1 + erf(v / sqrt 2))``)."""
    if mode is Activation.HARDSIGMOID:
        return min(max(Fraction(alpha) * v + Fraction(beta), Fraction(0)), Fraction(1))
    if mode is Activation.HARDSWISH:
        return v * min(max(v / 6 + Fraction(1, 2), Fraction(0)), Fraction(1))
    x = float(v)
    if mode is Activation.SIGMOID:
        y = _sigmoid(x)
    elif mode is Activation.TANH:
        y = math.tanh(x)
    elif mode is Activation.SILU:
        y = x * _sigmoid(x)
    elif mode is Activation.GELU:
        y = 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))
    else:
        raise ValueError(f"activation mode {mode.value!r} has no lookup table")
    return Fraction(y)


def build_lut(mode: Activation, in_scale: float, in_zp: int, out_scale: float, out_zp: int,
              rounding: str, alpha: float = 0.2, beta: float = 0.5) -> np.ndarray:
    """The 256-entry int8 -> int8 table of ``mode`` between two quantizations (module
    docstring).

    Parameters
    ----------
    in_scale, in_zp, out_scale, out_zp
        ``real = scale * (code - zero_point)``; scales positive, zero points in [-128, 127].
    rounding : str
        ``single``, ``double`` or ``rne``: the tie rule of the final rounding.
    alpha, beta : float
        HardSigmoid's parameters (ONNX defaults).

    Returns
    -------
    numpy.ndarray of int64, shape (256,)
        Entry ``i`` for the input code ``i - 128``; values in [-128, 127].

    Raises
    ------
    ValueError
        A scale is not positive and finite, a zero point is out of range, or the mode has no
        table.
    """
    for name, s in (("input scale", in_scale), ("output scale", out_scale)):
        if not (math.isfinite(s) and s > 0):
            raise InputError(f"{name} must be finite and > 0, got {s!r}")
    for name, z in (("input zero point", in_zp), ("output zero point", out_zp)):
        if not -128 <= z <= 127:
            raise InputError(f"{name} must be in [-128, 127], got {z}")
    s_in, s_out = Fraction(in_scale), Fraction(out_scale)
    out = np.empty(LUT_SIZE, dtype=np.int64)
    for i in range(LUT_SIZE):
        q = (activation_value(mode, s_in * (i - 128 - in_zp), alpha, beta) / s_out)
        y = int(divide_round(q.numerator, q.denominator, rounding)) + out_zp
        out[i] = min(max(y, -128), 127)
    return out
