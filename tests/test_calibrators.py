"""Each calibrator on distributions whose answer is known."""

import numpy as np
import pytest

from dcim.golden.quant.calibrate import (calibrate_range, entropy_range, minmax_range, mse_range,
                                   percentile_range)
from dcim.golden.config import CoreConfig
from dcim.golden.quant.scheme import act_qparams

CFG = CoreConfig()
rng = np.random.default_rng(7)
UNIFORM = rng.uniform(0.0, 1.0, 200_000)
# |N(0, 1)| with a single far outlier, and many exact zeros (a ReLU output).
RELU = np.concatenate([np.abs(rng.normal(size=100_000)), np.zeros(100_000), [100.0]])
SIGNED = np.concatenate([rng.normal(size=100_000), [-60.0]])


def test_minmax():
    assert minmax_range(np.array([-1.0, 3.0, 2.0])) == (-1.0, 3.0)
    assert minmax_range(np.array([1.0, 2.0])) == (0.0, 2.0)
    assert minmax_range(RELU) == (0.0, 100.0)


def test_percentile_hand_computed():
    v = np.arange(10_000, dtype=np.float64)  # linear interpolation: P(p) = p/100 * 9999
    lo, hi = percentile_range(v, 99.99)
    assert lo == 0.0
    assert hi == pytest.approx(0.9999 * 9999)
    lo, hi = percentile_range(v - 5000.0, 99.0)
    assert (lo, hi) == (pytest.approx(0.01 * 9999 - 5000), pytest.approx(0.99 * 9999 - 5000))
    with pytest.raises(ValueError, match=r"^percentile must be in \(50, 100\], got 40$"):
        percentile_range(v, 40)


@pytest.mark.parametrize("fn", [entropy_range, mse_range])
def test_no_outliers_keeps_the_range(fn):
    lo, hi = fn(UNIFORM, CFG)
    assert lo == 0.0
    assert 0.95 <= hi <= 1.0


def test_entropy_clips_outlier():
    lo, hi = entropy_range(RELU, CFG)
    assert lo == 0.0
    assert 2.5 < hi < 10.0  # far below the outlier, above the bulk of |N(0,1)|
    lo, hi = entropy_range(SIGNED, CFG)
    assert -10.0 < lo < -2.5
    assert 2.5 < hi <= SIGNED.max()


def test_entropy_does_not_clip_a_tensor_far_from_zero():
    """A sigmoid gate: values in [0.4, 1) and a few near 0.18 (examples/digits_glu_cnn.onnx's
    attn.gate). TensorRT's divergence, Q renormalized, scored the candidate just above 0.18
    ~0 (P and Q both a spike in its last bin) and clipped all but those few values: that
    model's entropy calibration fell 2.6 points below FP32."""
    v = np.concatenate([1 / (1 + np.exp(-rng.normal(1.5, 0.6, 50_000))).clip(0.4, None),
                        np.full(8, 0.18)])
    lo, hi = entropy_range(v, CFG)
    assert lo == 0.0
    assert np.mean(v > hi) < 0.001
    assert hi <= v.max()


@pytest.mark.parametrize("act_bits", [8, 4])
def test_entropy_keeps_discrete_values(act_bits):
    """17 distinct pixel values (k / 16): the divergence would clip them into one bin."""
    v = rng.integers(0, 17, 10_000) / 16.0
    assert entropy_range(v, CoreConfig(act_bits=act_bits)) == (0.0, 1.0)


def _true_mse(v, lo, hi):
    qp = act_qparams(CFG, lo, hi)
    q = np.clip(np.rint(v / qp.scale) + qp.zero_point, -128, 127)
    return float(np.mean((v - qp.scale * (q - qp.zero_point)) ** 2))


@pytest.mark.parametrize("values", [RELU, SIGNED, rng.laplace(size=50_000)])
def test_mse_minimizes_the_true_error(values):
    """The histogram estimate picks a range whose error on the samples themselves is within
    2 % of the best range of the grid (brute force on the samples)."""
    lo, hi = mse_range(values, CFG)
    vmin, vmax = min(values.min(), 0), max(values.max(), 0)
    best = min(_true_mse(values, a * vmin, a * vmax) for a in np.linspace(0.01, 1, 100))
    assert _true_mse(values, lo, hi) <= 1.02 * best
    # A lone far outlier still dominates the squared error: mse keeps most of its range.
    assert hi > 0.5 * vmax or lo < 0.5 * vmin


def test_constant_zero_tensor():
    z = np.zeros(100)
    for method in ("minmax", "percentile", "entropy", "mse"):
        assert calibrate_range(method, z, CFG) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (("kl", UNIFORM), r"^calibration method must be one of minmax, percentile, entropy, "
                          r"mse, got 'kl'$"),
        (("minmax", np.array([])), r"^cannot calibrate a range from no values$"),
        (("mse", np.array([1.0, np.inf])), r"^cannot calibrate a range from NaN or infinite "
                                           r"values$"),
    ],
)
def test_errors(args, pattern):
    with pytest.raises(ValueError, match=pattern):
        calibrate_range(*args, CFG)
