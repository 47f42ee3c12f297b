"""The arithmetic spec against exact formulas written with fractions, independently of the code."""

from fractions import Fraction
import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dcim.golden.arith import INT32_MAX, INT32_MIN, quantize_multiplier, requantize, saturate

int32 = st.integers(INT32_MIN, INT32_MAX)
mult = st.integers(0, INT32_MAX)
shifts = st.integers(-31, 30)


def half_up(q: Fraction) -> int:
    """Round to nearest, ties toward +inf."""
    return math.floor(q + Fraction(1, 2))


def half_away(q: Fraction) -> int:
    """Round to nearest, ties away from zero."""
    return int(math.copysign(math.floor(abs(q) + Fraction(1, 2)), q))


def ref_single(x: int, m: int, s: int) -> int:
    return half_up(Fraction(x * m, 2 ** (31 - s)))


def ref_rne(x: int, m: int, s: int) -> int:
    return round(Fraction(x * m, 2 ** (31 - s)))  # Fraction rounds half to even, exactly


def ref_double(x: int, m: int, s: int) -> int:
    # gemmlowp: saturating left shift, then SaturatingRoundingDoublingHighMul (round(a*m/2^31);
    # its nudge 1 - 2^30 for negative products makes ties go toward +inf), then
    # RoundingDivideByPOT (round(h/2^right), ties away from zero).
    a = min(max(x * 2 ** max(s, 0), INT32_MIN), INT32_MAX)
    h = half_up(Fraction(a * m, 2**31))
    return half_away(Fraction(h, 2 ** max(-s, 0)))


REFS = {"single": ref_single, "double": ref_double, "rne": ref_rne}


@pytest.mark.parametrize("mode", sorted(REFS))
@given(x=int32, m=mult, s=shifts)
@settings(max_examples=400, deadline=None)
@example(x=INT32_MIN, m=INT32_MAX, s=30)
@example(x=INT32_MAX, m=INT32_MAX, s=30)
@example(x=INT32_MIN, m=INT32_MAX, s=-31)
@example(x=INT32_MAX, m=1, s=-31)
@example(x=12345, m=0, s=0)
@example(x=-1, m=1 << 30, s=0)   # -0.5: a tie of negative sign
@example(x=1, m=1 << 30, s=0)    # +0.5: a tie of positive sign
@example(x=3, m=1 << 30, s=0)    # 1.5
@example(x=-3, m=1 << 30, s=0)   # -1.5
@example(x=5, m=1 << 30, s=-1)   # 1.25 -> exercises the second rounding of `double`
@example(x=-5, m=1 << 30, s=-1)
@example(x=1 << 20, m=INT32_MAX, s=12)  # left shift saturates in `double`
def test_requantize_matches_formula(mode, x, m, s):
    got = requantize(np.array([x]), m, s, mode)
    assert int(got[0]) == REFS[mode](x, m, s)


@pytest.mark.parametrize(
    ("mode", "values", "expect"),
    [
        # x * 2^30 / 2^32 = x / 4 is -1.5, -0.5, 0.5, 1.5: a tie each.
        ("single", [-6, -2, 2, 6], [-1, 0, 1, 2]),
        ("double", [-6, -2, 2, 6], [-2, -1, 1, 2]),
        ("rne", [-6, -2, 2, 6], [-2, 0, 0, 2]),
    ],
)
def test_ties_by_mode(mode, values, expect):
    assert requantize(np.array(values), 1 << 30, -1, mode).tolist() == expect


def test_double_high_mul_ties_toward_plus_inf():
    # gemmlowp's SaturatingRoundingDoublingHighMul alone (shift 0): -0.5 -> 0, -1.5 -> -1.
    assert requantize(np.array([-3, -1, 1, 3]), 1 << 30, 0, "double").tolist() == [-1, 0, 1, 2]


def test_requantize_vectorized_per_channel():
    x = np.array([[100, -100], [7, -7]])
    got = requantize(x, np.array([1 << 30, 1 << 29]), np.array([0, 1]), "single")
    assert got.tolist() == [[50, -50], [4, -3]]  # 7/2 = 3.5 -> 4; -7/2 (2^29*2) = -3.5 -> -3


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"x": [INT32_MAX + 1]}, r"^requantize input must be in \[-2147483648, 2147483647\], "
                                 r"got 2147483648$"),
        ({"multiplier": -1}, r"^multiplier must be in \[0, 2147483647\], got -1$"),
        ({"shift": 31}, r"^shift must be in \[-31, 30\], got 31$"),
        ({"shift": -32}, r"^shift must be in \[-31, 30\], got -32$"),
        ({"mode": "floor"}, r"^rounding must be one of single, double, rne, got 'floor'$"),
    ],
)
def test_requantize_errors(kwargs, pattern):
    args = {"x": [1], "multiplier": 1, "shift": 0, "mode": "single", **kwargs}
    with pytest.raises(ValueError, match=pattern):
        requantize(np.array(args["x"]), args["multiplier"], args["shift"], args["mode"])


def test_requantize_rejects_float():
    with pytest.raises(TypeError, match=r"^expected an integer array, got dtype float64$"):
        requantize(np.array([1.0]), 1, 0, "single")


@given(real=st.floats(min_value=2.0**-32, max_value=1e6, allow_nan=False))
@settings(max_examples=300, deadline=None)
@example(real=1.0)
@example(real=0.5)
@example(real=1.0 - 2.0**-40)  # rounds up to 2^31: renormalized
def test_quantize_multiplier_approximates(real):
    m, s = quantize_multiplier(real)
    assert (1 << 30) <= m <= INT32_MAX
    assert -31 <= s <= 30
    # The pair is the nearest 31-bit fraction: |real - m*2^(s-31)| <= 2^(s-32).
    assert abs(Fraction(real) - Fraction(m) * Fraction(2) ** (s - 31)) <= Fraction(2) ** (s - 32)


def test_quantize_multiplier_edges():
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    assert quantize_multiplier(2.0**-40) == (0, 0)          # below 2^-32: flushed to zero
    assert quantize_multiplier(2.0**40) == (INT32_MAX, 30)  # saturated
    with pytest.raises(ValueError, match=r"^real multiplier must be finite and >= 0, got -1\.0$"):
        quantize_multiplier(-1.0)
    with pytest.raises(ValueError, match=r"^real multiplier must be finite and >= 0, got nan$"):
        quantize_multiplier(float("nan"))
    with pytest.raises(TypeError, match=r"^real multiplier must be a float, got str '1'$"):
        quantize_multiplier("1")


def test_saturate_clamps_to_int64():
    y = saturate(np.array([-(1 << 40), -5, 0, 9, 1 << 40], dtype=np.int64), -2, 3)
    assert y.dtype == np.int64 and y.tolist() == [-2, -2, 0, 3, 3]
    assert saturate(np.array([200], dtype=np.uint8), -128, 127).tolist() == [127]


@pytest.mark.parametrize("mode", ["single", "double", "rne"])
def test_divide_round_against_fractions(mode):
    """Every quotient n / d for n in [-60, 60], d in 1..8 (ties included) against Python's
    Fraction: round() is half to even; single rounds ties up, double away from zero."""
    from fractions import Fraction
    import math

    from dcim.golden.arith import divide_round

    n = np.arange(-60, 61, dtype=np.int64)[:, None]
    d = np.arange(1, 9, dtype=np.int64)[None, :]
    got = divide_round(n, d, mode)
    for (i, j), g in np.ndenumerate(got):
        v = Fraction(int(n[i, 0]), int(d[0, j]))
        if mode == "rne":
            want = round(v)
        elif mode == "single":
            want = math.floor(v + Fraction(1, 2))
        else:
            want = int(math.copysign(math.floor(abs(v) + Fraction(1, 2)), v))
        assert g == want, (int(n[i, 0]), int(d[0, j]))
    big = np.array([3 * 10**30 + 1], dtype=object)  # Python ints, no int64 overflow
    assert divide_round(big, 2 * 10**30, mode)[0] == 2
    with pytest.raises(ValueError, match="rounding must be one of"):
        divide_round(n, d, "up")
