"""The golden model: both MVM paths against Python big-int dot products, K-tiling and the DPU."""

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dcim.golden.config import CoreConfig, value_range
from dcim.golden.model import (DpuParams, accumulate, dpu, dpu_stages, fold_input_zero_point,
                               mvm, mvm_bitserial, mvm_tiled)


def bigint_mvm(W, X):
    """Independent reference: Python ints, one term at a time."""
    W = [[int(v) for v in row] for row in np.asarray(W).tolist()]
    return [[sum(W[k][c] * int(x[k]) for k in range(len(W))) for c in range(len(W[0]))]
            for x in np.asarray(X).tolist()]


@st.composite
def configs(draw, max_rows=40, max_cols=6):
    act_bits = draw(st.integers(1, 8))
    serial = draw(st.sampled_from([s for s in (1, 2, 4, 8) if act_bits % s == 0]))
    return CoreConfig(rows=draw(st.integers(1, max_rows)), cols=draw(st.integers(1, max_cols)),
                      act_bits=act_bits, weight_bits=draw(st.integers(1, 8)),
                      act_signed=draw(st.booleans()), weight_signed=draw(st.booleans()),
                      serial_bits=serial)


@st.composite
def cases(draw):
    cfg = draw(configs())
    bits = draw(st.integers(1, cfg.act_bits))
    wl, wh = cfg.weight_range
    al, ah = value_range(bits, cfg.act_signed)
    batch = draw(st.integers(1, 3))
    corner = draw(st.sampled_from(["random", "min", "max", "mixed"]))
    if corner == "random":
        W = draw(st.lists(st.integers(wl, wh), min_size=cfg.rows * cfg.cols,
                          max_size=cfg.rows * cfg.cols))
        X = draw(st.lists(st.integers(al, ah), min_size=batch * cfg.rows,
                          max_size=batch * cfg.rows))
    else:
        w = {"min": wl, "max": wh, "mixed": wl}[corner]
        x = {"min": al, "max": ah, "mixed": ah}[corner]
        W, X = [w] * (cfg.rows * cfg.cols), [x] * (batch * cfg.rows)
    W = np.array(W, dtype=np.int64).reshape(cfg.rows, cfg.cols)
    X = np.array(X, dtype=np.int64).reshape(batch, cfg.rows)
    return cfg, bits, W, X


@given(cases())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_bitserial_equals_mvm_equals_bigint(case):
    cfg, bits, W, X = case
    ref = bigint_mvm(W, X)
    assert mvm(cfg, W, X, bits).tolist() == ref
    res = mvm_bitserial(cfg, W, X, bits)
    assert res.sums.tolist() == ref
    assert res.cycles == cfg.cycles_per_pass(bits)
    # The trace is the hardware schedule. Cycle j's partial sums are the dot products with
    # slice j of the activations (bits j*s .. j*s+s-1, LSB first; the top slice of a signed
    # activation taken with its sign), and acc_j = sum_{i<=j} partial_i << (i * serial_bits).
    s = cfg.serial_bits
    acc = np.zeros_like(res.sums)
    for j in range(res.cycles):
        top = j == res.cycles - 1
        xs = [[(int(v) >> (j * s)) if top else (int(v) >> (j * s)) & ((1 << s) - 1)
               for v in x] for x in X.tolist()]
        assert res.partial[j].tolist() == bigint_mvm(W, xs)
        acc = acc + (res.partial[j] << (j * s))
        assert (res.acc[j] == acc).all()


@pytest.mark.parametrize(("asg", "wsg"), [(True, True), (False, True), (True, False),
                                          (False, False)])
@pytest.mark.parametrize("serial", [1, 2, 4, 8])
def test_extreme_chains_at_largest_rows(asg, wsg, serial):
    """Every product at its extreme, 4096 rows deep: the accumulator is exactly at its bound."""
    cfg = CoreConfig(rows=4096, cols=2, act_signed=asg, weight_signed=wsg, serial_bits=serial)
    wl, wh = cfg.weight_range
    al, ah = cfg.act_range
    W = np.array([[wl, wh]] * 4096)
    for x in (al, ah):
        X = np.full((1, 4096), x)
        expect = [4096 * wl * x, 4096 * wh * x]
        assert mvm(cfg, W, X).tolist() == [expect]
        assert mvm_bitserial(cfg, W, X).sums.tolist() == [expect]
    if asg and wsg:  # -128 x -128 chains: 4096 * 16384 = 2^26 needs the full 28 bits
        assert mvm(cfg, W, np.full(4096, -128))[0, 0] == 1 << 26
        assert cfg.acc_width == 28


def test_exact_beyond_float32_range():
    # 4096 * 16384 = 2^26 > 2^24: a float32 GEMM would round; the model must stay exact.
    cfg = CoreConfig(rows=4096, cols=1)
    W = np.full((4096, 1), -128, dtype=np.int8)
    X = np.full((1, 4096), -128, dtype=np.int8)
    X[0, 0] = -127  # makes the sum odd: 2^26 - 128
    assert mvm(cfg, W, X)[0, 0] == (1 << 26) - 128


def test_int8_dtype_does_not_wrap():
    cfg = CoreConfig(rows=2, cols=1)
    W = np.array([[-128], [127]], dtype=np.int8)
    X = np.array([[-128, 127]], dtype=np.int8)
    assert mvm(cfg, W, X)[0, 0] == 16384 + 16129


@pytest.mark.parametrize(
    ("W", "X", "exc", "pattern"),
    [
        (np.zeros((4, 2)), np.zeros(4, int), TypeError,
         r"^weights must be an integer array, got dtype float64$"),
        (np.zeros((4, 3), int), np.zeros(4, int), ValueError,
         r"^weights must have shape \(4, 2\) \(rows, cols\), got \(4, 3\)$"),
        (np.full((4, 2), 128), np.zeros(4, int), ValueError,
         r"^weights \(8-bit signed\) must be in \[-128, 127\], got 128$"),
        (np.zeros((4, 2), int), np.zeros(5, int), ValueError,
         r"^activations must have shape \(4,\) or \(batch, 4\), got \(1, 5\)$"),
        (np.zeros((4, 2), int), np.full(4, 200), ValueError,
         r"^activations \(8-bit signed\) must be in \[-128, 127\], got 200$"),
        (np.zeros((4, 2), int), np.zeros((1, 1, 4), int), ValueError,
         r"^activations must have shape"),
    ],
)
def test_operand_errors(W, X, exc, pattern):
    cfg = CoreConfig(rows=4, cols=2)
    with pytest.raises(exc, match=pattern):
        mvm(cfg, W, X)
    with pytest.raises(exc, match=pattern):
        mvm_bitserial(cfg, W, X)


def test_runtime_precision_bounds_activations():
    cfg = CoreConfig(rows=2, cols=1, act_bits=8)
    with pytest.raises(ValueError, match=r"^activations \(4-bit signed\) must be in \[-8, 7\], "
                                         r"got 8$"):
        mvm(cfg, np.ones((2, 1), int), np.array([8, 0]), act_bits=4)
    assert mvm_bitserial(cfg, np.ones((2, 1), int), np.array([-8, 7]), act_bits=4).cycles == 4


@given(cfg=configs(max_rows=8, max_cols=3), K=st.integers(1, 30), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=100, deadline=None)
def test_tiled_equals_bigint(cfg, K, seed):
    rng = np.random.default_rng(seed)
    W = rng.integers(*cfg.weight_range, endpoint=True, size=(K, cfg.cols))
    X = rng.integers(*cfg.act_range, endpoint=True, size=(2, K))
    assert mvm_tiled(cfg, W, X).tolist() == bigint_mvm(W, X)


def test_psum_saturates_at_psum_bits():
    cfg = CoreConfig(rows=64, cols=1, psum_bits=22)
    assert accumulate(cfg, [(1 << 21) - 10], [100]).tolist() == [(1 << 21) - 1]
    assert accumulate(cfg, [-(1 << 21) + 10], [-100]).tolist() == [-(1 << 21)]
    # 2^20 per pass, three passes: saturates to 2^21 - 1 instead of reaching 3 * 2^20.
    W = np.full((192, 1), -128)
    X = np.full((1, 192), -128)
    assert mvm_tiled(cfg, W, X)[0, 0] == (1 << 21) - 1


def _dpu_ref(acc, bias, m, s, zp, lo, hi, rnd, res=None, rm=0, rs=0, rzp=0):
    """Scalar reference of the DPU from the spec text, using the formula tests' rounding."""
    from fractions import Fraction
    import math

    def rq(v, mm, ss):
        q = Fraction(v * mm, 2 ** (31 - ss))
        if rnd == "single":
            return math.floor(q + Fraction(1, 2))
        if rnd == "rne":
            return round(q)
        a = min(max(v * 2 ** max(ss, 0), -2**31), 2**31 - 1)
        h = math.floor(Fraction(a * mm, 2**31) + Fraction(1, 2))
        d = Fraction(h, 2 ** max(-ss, 0))
        return int(math.copysign(math.floor(abs(d) + Fraction(1, 2)), d))

    a = min(max(acc + bias, -2**31), 2**31 - 1)
    y = rq(a, m, s) + zp
    if res is not None:
        y += rq(res - rzp, rm, rs)
    return min(max(y, lo), hi)


@pytest.mark.parametrize("rounding", ["single", "double", "rne"])
@given(data=st.data())
@settings(max_examples=150, deadline=None)
def test_dpu_matches_spec(rounding, data):
    cols = data.draw(st.integers(1, 4))
    cfg = CoreConfig(cols=cols, rounding=rounding)
    i32 = st.integers(-2**31, 2**31 - 1)
    psum = data.draw(st.lists(i32, min_size=cols, max_size=cols))
    bias = data.draw(st.lists(i32, min_size=cols, max_size=cols))
    mult = data.draw(st.lists(st.integers(0, 2**31 - 1), min_size=cols, max_size=cols))
    shift = data.draw(st.lists(st.integers(-31, 30), min_size=cols, max_size=cols))
    zp = data.draw(st.integers(-128, 127))
    lo = data.draw(st.integers(-128, 127))
    hi = data.draw(st.integers(lo, 127))
    use_res = data.draw(st.booleans())
    res = data.draw(st.lists(st.integers(-128, 127), min_size=cols, max_size=cols))
    rm, rs, rzp = (data.draw(st.integers(0, 2**31 - 1)), data.draw(st.integers(-31, 30)),
                   data.draw(st.integers(-128, 127)))
    params = DpuParams(bias=np.array(bias), multiplier=np.array(mult), shift=np.array(shift),
                       out_zp=zp, act_min=lo, act_max=hi, res_multiplier=rm, res_shift=rs,
                       res_zp=rzp)
    got = dpu(cfg, np.array(psum), params, np.array(res) if use_res else None)
    expect = [_dpu_ref(psum[c], bias[c], mult[c], shift[c], zp, lo, hi, rounding,
                       res[c] if use_res else None, rm, rs, rzp) for c in range(cols)]
    assert got.tolist() == expect


def test_dpu_saturation_both_ends_and_relu():
    cfg = CoreConfig(cols=3)
    one = 1 << 30  # multiplier 2^30, shift 1: x * 1.0
    p = DpuParams(bias=np.zeros(3, int), multiplier=np.full(3, one), shift=np.ones(3, int))
    assert dpu(cfg, np.array([1000, -1000, 5]), p).tolist() == [127, -128, 5]
    relu = DpuParams(bias=np.zeros(3, int), multiplier=np.full(3, one), shift=np.ones(3, int),
                     out_zp=-10, act_min=-10, act_max=127)
    assert dpu(cfg, np.array([-5, 300, 7]), relu).tolist() == [-10, 127, -3]
    # The bias add saturates to int32 before requantization: (2^31 - 1) / 2^31 rounds to 1,
    # where the unsaturated (2^32 - 2) / 2^31 would give 2.
    sat = DpuParams(bias=np.array([2**31 - 1]), multiplier=np.array([one]), shift=np.array([-30]))
    assert dpu(CoreConfig(cols=1), np.array([2**31 - 1]), sat).tolist() == [1]


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"multiplier": np.array([-1])}, ValueError, r"^multiplier must be in \[0, 2147483647\], "
                                                     r"got -1$"),
        ({"shift": np.array([31])}, ValueError, r"^shift must be in \[-31, 30\], got 31$"),
        ({"bias": np.array([2**31])}, ValueError, r"^bias must be in \[-2147483648, 2147483647\]"),
        ({"bias": np.array([0.5])}, TypeError, r"^bias must be an integer array, got dtype float"),
        ({"bias": np.zeros((1, 1), int)}, ValueError, r"^bias must be a 1-D per-channel array"),
        ({"bias": np.zeros(2, int)}, ValueError,
         r"^bias, multiplier and shift must have the same length, got 2, 1, 1$"),
        ({"out_zp": 128}, ValueError, r"^out_zp must be in \[-128, 127\], got 128$"),
        ({"act_min": 1.5}, TypeError, r"^act_min must be an int in \[-128, 127\], got float 1\.5$"),
        ({"act_min": 10, "act_max": 5}, ValueError, r"^act_min must be <= act_max \(5\), got 10$"),
        ({"res_shift": -40}, ValueError, r"^res_shift must be in \[-31, 30\], got -40$"),
    ],
)
def test_dpu_params_errors(kwargs, exc, pattern):
    args = {"bias": np.zeros(1, int), "multiplier": np.ones(1, int), "shift": np.zeros(1, int),
            **kwargs}
    with pytest.raises(exc, match=pattern):
        DpuParams(**args)


def test_dpu_operand_errors():
    cfg = CoreConfig(cols=2, dpu_residual=False)
    p = DpuParams(bias=np.zeros(2, int), multiplier=np.ones(2, int), shift=np.zeros(2, int))
    with pytest.raises(ValueError, match=r"^residual given, but the configuration has "
                                         r"dpu_residual = false$"):
        dpu(cfg, np.zeros(2, int), p, np.zeros(2, int))
    with pytest.raises(ValueError, match=r"^partial sums must be in \[-2147483648, 2147483647\]"):
        dpu(cfg, np.array([2**31, 0]), p)
    with pytest.raises(ValueError, match=r"^DPU tables must have cols \(3\) entries, got 2$"):
        dpu(CoreConfig(cols=3), np.zeros(3, int), p)


def test_dpu_params_npz_round_trip(tmp_path):
    p = DpuParams(bias=np.array([1, -2]), multiplier=np.array([3, 4]), shift=np.array([-5, 6]),
                  out_zp=-7, act_min=-8, act_max=9, res_multiplier=10, res_shift=-11, res_zp=12)
    np.savez(tmp_path / "p.npz", **p.to_npz_dict())
    with np.load(tmp_path / "p.npz") as data:
        q = DpuParams.from_npz(data)
    assert all(np.array_equal(getattr(p, k), getattr(q, k)) for k in DpuParams._ARRAYS)
    assert [getattr(q, k) for k in DpuParams._SCALARS] == [-7, -8, 9, 10, -11, 12]
    with pytest.raises(ValueError, match=r"^DPU parameters are missing key\(s\) shift$"):
        DpuParams.from_npz({"bias": [0], "multiplier": [0]})
    with pytest.raises(ValueError, match=r"^unknown DPU parameter key\(s\) scale; allowed: "):
        DpuParams.from_npz({"bias": [0], "multiplier": [0], "shift": [0], "scale": 1})


@given(zp=st.integers(-128, 127), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=50, deadline=None)
@example(zp=-128, seed=0)
@example(zp=127, seed=0)
def test_folded_zero_point_equals_centered_inputs(zp, seed):
    """MVM of raw inputs + folded bias == MVM of zero-point-centered inputs + bias."""
    rng = np.random.default_rng(seed)
    cfg = CoreConfig(rows=16, cols=4)
    W = rng.integers(-127, 128, size=(16, 4))
    Xq = rng.integers(-128, 128, size=(3, 16))
    bias = rng.integers(-1000, 1000, size=4)
    folded = fold_input_zero_point(W, bias, zp)
    centered = np.array(bigint_mvm(W, Xq - zp)) + bias
    assert (mvm(cfg, W, Xq) + folded).tolist() == centered.tolist()


@pytest.mark.parametrize(("rounding", "main"), [("single", [9, -2]), ("rne", [9, -3]),
                                                ("double", [9, -2])])
def test_dpu_stages_by_hand(rounding, main):
    # acc = [15, -7]; M = 2**30 at shift 0 halves it: 7.5 and -3.5, both ties. single rounds
    # them up (8, -3), rne to even (8, -4), gemmlowp's double high multiply ties up too (its
    # nudge 1 - 2**30 then truncation gives -3); out_zp 1. The residual [4, 0] at M = 2**30,
    # shift 1 is kept as is; the clamp [-1, 12] takes 13 to 12.
    cfg = CoreConfig(rows=4, cols=2, rounding=rounding)
    p = DpuParams(np.array([5, 0]), np.array([1 << 30, 1 << 30]), np.array([0, 0]), out_zp=1,
                  act_min=-1, act_max=12, res_multiplier=1 << 30, res_shift=1)
    sg = dpu_stages(cfg, np.array([[10, -7]]), p, np.array([[4, 0]]))
    assert sg.biased.tolist() == sg.acc.tolist() == [[15, -7]]
    assert sg.product.tolist() == [[15 << 30, -7 << 30]]
    assert sg.tie.tolist() == [[True, True]]
    assert sg.main.tolist() == [main]
    assert sg.total.tolist() == [[main[0] + 4, main[1]]]
    assert sg.out.tolist() == [[12, max(-1, main[1])]]
    assert dpu(cfg, np.array([[10, -7]]), p, np.array([[4, 0]])).tolist() == sg.out.tolist()


def test_dpu_stages_saturate_the_bias_add():
    cfg = CoreConfig(rows=4, cols=2)
    p = DpuParams(np.array([20, -20]), np.array([1 << 30, 0]), np.array([0, 0]))
    sg = dpu_stages(cfg, np.array([(1 << 31) - 10, -(1 << 31) + 10]), p)
    assert sg.biased.tolist() == [(1 << 31) + 10, -(1 << 31) - 10]
    assert sg.acc.tolist() == [(1 << 31) - 1, -(1 << 31)]
    # (2**31 - 1) / 2 = 2**30 - 0.5 rounds up to 2**30; the multiplier 0 gives 0
    assert sg.main.tolist() == [1 << 30, 0] and sg.out.tolist() == [127, 0]
    assert sg.tie.tolist() == [True, False]
