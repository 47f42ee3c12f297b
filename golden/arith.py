"""The arithmetic spec: saturation, requantization rounding modes and multiplier quantization.

Every function here is exact integer arithmetic on Python ints or numpy int64 arrays (never
floats, never numpy int8 arithmetic), except :func:`quantize_multiplier`, which turns a real
scale into the integer ``(multiplier, shift)`` pair offline.

Requantization computes ``round(x * M / 2**(31 - shift))`` for an int32 ``x``, a multiplier
``M`` in [0, 2**31 - 1] and ``shift`` in [-31, 30], with the rounding named by the mode:

``single``
    ``(x*M + 2**(t-1)) >> t`` with ``t = 31 - shift`` and an arithmetic shift: ties toward
    +infinity (TFLite single rounding, CMSIS-NN).
``double``
    gemmlowp / TFLite's default: ``SaturatingRoundingDoublingHighMul(sat32(x << max(shift, 0)),
    M)`` then ``RoundingDivideByPOT(., max(-shift, 0))``, bit for bit as gemmlowp's C code: the
    high multiply rounds to nearest with ties toward +infinity (its nudge is ``1 - 2**30`` for
    negative products), the division by a power of two rounds ties away from zero. The left
    shift saturates to int32.
``rne``
    Round half to even of the exact quotient (ONNX ``QuantizeLinear``).
"""

from __future__ import annotations

import functools
import math
from enum import StrEnum

import numpy as np

from .errors import InputError, InputTypeError

__all__ = [
    "INT32_MAX",
    "INT32_MIN",
    "MULTIPLIER_BITS",
    "MULTIPLIER_RANGE",
    "SHIFT_BITS",
    "SHIFT_RANGE",
    "TIE_RULE",
    "Rounding",
    "Tie",
    "check_range",
    "check_values",
    "divide_round",
    "int_array",
    "quantize_multiplier",
    "requantize",
    "saturate",
]

class Rounding(StrEnum):
    """A requantization rounding mode (see the module docstring); its value is the name a
    configuration file holds."""

    SINGLE = "single"
    DOUBLE = "double"
    RNE = "rne"


class Tie(StrEnum):
    """Where a quotient that lies exactly halfway between two integers is rounded."""

    UP = "up"        #: toward +infinity
    AWAY = "away"    #: away from zero
    EVEN = "even"    #: to the even neighbour


#: The tie rule of a single division rounded to nearest in each mode (:func:`divide_round`):
#: ``double``'s one division has one rounding, gemmlowp's ``RoundingDivideByPOT``.
TIE_RULE = {Rounding.SINGLE: Tie.UP, Rounding.DOUBLE: Tie.AWAY, Rounding.RNE: Tie.EVEN}


INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
#: Inclusive range of a requantization multiplier.
MULTIPLIER_RANGE = (0, INT32_MAX)
#: Inclusive range of a requantization shift (positive: left).
SHIFT_RANGE = (-31, 30)
#: Bits of an unsigned field that holds every multiplier (31).
MULTIPLIER_BITS = MULTIPLIER_RANGE[1].bit_length()
#: Bits of a two's complement field that holds every shift (6).
SHIFT_BITS = max(-SHIFT_RANGE[0] - 1, SHIFT_RANGE[1]).bit_length() + 1


def check_range(name: str, values: np.ndarray, lo: int, hi: int) -> None:
    """Raise ValueError naming ``name`` unless every element of ``values`` is in [lo, hi]."""
    if values.size == 0:
        return
    vmin, vmax = int(values.min()), int(values.max())
    if vmin < lo or vmax > hi:
        bad = vmin if vmin < lo else vmax
        raise InputError(f"{name} must be in [{lo}, {hi}], got {bad}")


def int_array(name: str, value) -> np.ndarray:
    """``value`` as a numpy array if its dtype is an integer one (TypeError naming ``name``
    otherwise); not copied, not converted."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise InputTypeError(f"{name} must be an integer array, got dtype {arr.dtype}")
    return arr


@functools.lru_cache(maxsize=64)
def _dtype_within(dtype: np.dtype, lo: int, hi: int) -> bool:
    info = np.iinfo(dtype)
    return lo <= info.min and info.max <= hi


def check_values(name: str, arr: np.ndarray, lo: int, hi: int) -> None:
    """:func:`check_range`, skipped where ``arr``'s dtype cannot hold a value outside
    [lo, hi] (an int8 array against [-128, 127])."""
    if not _dtype_within(arr.dtype, lo, hi):
        check_range(name, arr, lo, hi)


def saturate(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Clamp an int64 array to [lo, hi]."""
    return np.clip(np.asarray(x, dtype=np.int64), lo, hi)


def _as_i64(x) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise InputTypeError(f"expected an integer array, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _single(x: np.ndarray, m: np.ndarray, shift: np.ndarray) -> np.ndarray:
    t = 31 - shift
    p = x * m  # a new array: the in-place steps below touch no operand
    p += np.int64(1) << (t - 1)
    p >>= t
    return p


def _rne(x: np.ndarray, m: np.ndarray, shift: np.ndarray) -> np.ndarray:
    t = 31 - shift
    p = x * m
    q = p >> t
    r = p - (q << t)
    half = np.int64(1) << (t - 1)
    return q + ((r > half) | ((r == half) & ((q & 1) == 1)))


def _double(x: np.ndarray, m: np.ndarray, shift: np.ndarray) -> np.ndarray:
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    a = np.clip(x << left, INT32_MIN, INT32_MAX)
    # SaturatingRoundingDoublingHighMul(a, m); only a == m == INT32_MIN overflows, and
    # m >= 0 here, so it never does.
    ab = a * m
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    s = ab + nudge
    # C division truncates toward zero: floor division corrected for negative inexact quotients.
    high = s >> 31
    high = high + ((s < 0) & ((s & ((1 << 31) - 1)) != 0))
    # RoundingDivideByPOT(high, right)
    mask = (np.int64(1) << right) - 1
    remainder = high & mask
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + (remainder > threshold)


_MODES = {Rounding.SINGLE: _single, Rounding.DOUBLE: _double, Rounding.RNE: _rne}


def requantize(x, multiplier, shift, mode: str, check: bool = True) -> np.ndarray:
    """Requantize int32 values with a fixed-point multiplier, exactly.

    Parameters
    ----------
    x : array_like of int
        Values in int32 range; any shape.
    multiplier, shift : array_like of int
        Broadcastable against ``x``: multiplier in :data:`MULTIPLIER_RANGE`, shift in
        :data:`SHIFT_RANGE` (positive means a left shift).
    mode : Rounding or str
        ``single``, ``double`` or ``rne`` (see the module docstring).
    check : bool
        Validate the mode and the operand ranges (False: the caller guarantees them and
        passes int64 arrays, as the fast integer path does; the result is the same).

    Returns
    -------
    numpy.ndarray of int64
        ``round(x * multiplier / 2**(31 - shift))`` under ``mode``; not saturated.

    Raises
    ------
    ValueError
        Unknown mode, or an operand out of its range (named in the message).
    """
    if not check:  # operands broadcast inside the arithmetic (no full-size shift arrays)
        return _MODES[mode](x, multiplier, shift)
    if mode not in _MODES:
        raise InputError(f"rounding must be one of {', '.join(_MODES)}, got {mode!r}")
    x = _as_i64(x)
    m = _as_i64(multiplier)
    s = _as_i64(shift)
    check_range("requantize input", x, INT32_MIN, INT32_MAX)
    check_range("multiplier", m, *MULTIPLIER_RANGE)
    check_range("shift", s, *SHIFT_RANGE)
    x, m, s = np.broadcast_arrays(x, m, s)
    return _MODES[mode](x, m, s)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """Turn a non-negative real scale into ``(multiplier, shift)`` as TFLite's
    ``QuantizeMultiplier`` does.

    ``real ~= multiplier * 2**(shift - 31)`` with multiplier in [2**30, 2**31) (or 0 for a
    zero or tiny scale) and shift in :data:`SHIFT_RANGE`; scales at or above 2**30 saturate to
    the largest representable pair.

    Raises
    ------
    TypeError
        ``real`` is not a real number.
    ValueError
        ``real`` is negative, NaN or infinite.
    """
    if isinstance(real, bool) or not isinstance(real, (int, float, np.floating, np.integer)):
        raise InputTypeError(f"real multiplier must be a float, got {type(real).__name__} {real!r}")
    real = float(real)
    if not math.isfinite(real) or real < 0:
        raise InputError(f"real multiplier must be finite and >= 0, got {real!r}")
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    # TfLiteRound: half away from zero (q > 0 here).
    q_fixed = math.floor(q * (1 << 31) + 0.5)
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < SHIFT_RANGE[0]:
        return 0, 0
    if shift > SHIFT_RANGE[1]:
        return INT32_MAX, SHIFT_RANGE[1]
    return int(q_fixed), int(shift)


def divide_round(n, d, mode: str):
    """The exact quotient ``n / d`` of integers rounded to an integer with the tie rule of a
    rounding mode (:data:`TIE_RULE`): ``single`` ties toward +infinity, ``double`` ties away
    from zero (one division has one rounding), ``rne`` ties to even.

    Parameters
    ----------
    n : int or numpy.ndarray of int64 or object (Python ints)
        Numerators; object arrays keep Python's unbounded integers.
    d : int or array_like
        Positive denominators, broadcastable against ``n``.
    mode : str

    Returns
    -------
    The rounded quotients, of the type of ``n`` (floor division and remainder are exact).

    Raises
    ------
    ValueError
        Unknown mode.
    """
    if mode not in _MODES:
        raise InputError(f"rounding must be one of {', '.join(_MODES)}, got {mode!r}")
    q, r = n // d, n % d  # floor quotient, 0 <= r < d
    twice = 2 * r
    tie = TIE_RULE[mode]
    if tie is Tie.UP:
        up = twice >= d
    elif tie is Tie.AWAY:
        up = (twice > d) | ((twice == d) & (q >= 0))
    else:
        up = (twice > d) | ((twice == d) & (q % 2 == 1))
    return q + up
