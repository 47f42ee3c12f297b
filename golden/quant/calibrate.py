"""Activation-range calibrators: ``minmax``, ``percentile``, ``entropy`` (KL) and ``mse``.

Each calibrator maps the values a tensor took on the calibration set to a range ``[lo, hi]``
that :func:`dcim.golden.quant.scheme.act_qparams` turns into a scale and zero point. The range
always contains 0 (it is widened if needed) and lies inside ``[min, max]`` of the values.

``minmax``
    ``[min, max]``.
``percentile``
    ``[P(100 - p), P(p)]`` with ``p = 99.99`` by default (a side that does not cross zero is
    kept at zero).
``entropy``
    TensorRT-style: a 4096-bin histogram (of ``x`` for a non-negative tensor, of ``|x|``
    otherwise); the threshold whose clipped, ``levels``-level re-quantized distribution has the
    smallest Kullback-Leibler divergence from the clipped reference; ``levels`` is the number
    of codes the side gets (255 for a non-negative int8 tensor, 128 for a signed one); the
    divergence of a candidate is TensorRT's plus ``-log`` of the share of the histogram's
    values inside it (the mass its renormalized Q leaves out), so that a candidate clipping
    nearly all values of a tensor far from zero does not score ~0. Exact
    zeros are left out of the histogram (zero is always exact; a ReLU's spike at zero would
    otherwise dominate the divergence). A tensor with at most :data:`DISCRETE` (256) distinct
    values (such as 4-bit image pixels) keeps its min/max range: the divergence of such spiky
    histograms compares normalized shapes only and would clip them all into one bin.
``mse``
    The range ``[a * min, a * max]``, ``a`` in a grid over (0, 1], that minimizes the mean
    squared quantize-dequantize error estimated on a 4096-bin histogram.
"""

from __future__ import annotations

import numpy as np

from ..config import CoreConfig
from ..errors import InputError
from .scheme import act_qparams, dequantize, quantize

__all__ = ["METHODS", "calibrate_range", "entropy_range", "minmax_range", "mse_range",
           "percentile_range"]

#: Calibration methods, in report order.
METHODS = ("minmax", "percentile", "entropy", "mse")
#: A tensor with at most this many distinct values is already a discrete (quantized) signal:
#: the entropy calibrator keeps its min/max range.
DISCRETE = 256
#: Histogram bins of the entropy and mse calibrators.
BINS = 4096


def _values(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        raise InputError("cannot calibrate a range from no values")
    if not np.isfinite(v).all():
        raise InputError("cannot calibrate a range from NaN or infinite values")
    return v


def minmax_range(values: np.ndarray) -> tuple[float, float]:
    """``(min(values, 0), max(values, 0))``."""
    v = _values(values)
    return min(float(v.min()), 0.0), max(float(v.max()), 0.0)


def percentile_range(values: np.ndarray, percentile: float = 99.99) -> tuple[float, float]:
    """``(P(100 - p), P(p))`` of the values, widened to contain 0.

    Raises
    ------
    ValueError
        ``percentile`` is not in (50, 100].
    """
    if not 50.0 < percentile <= 100.0:
        raise InputError(f"percentile must be in (50, 100], got {percentile}")
    v = _values(values)
    lo, hi = np.percentile(v, [100.0 - percentile, percentile])
    return min(float(lo), 0.0), max(float(hi), 0.0)


def _kl_threshold(hist: np.ndarray, levels: int) -> int:
    """Number of leading bins to keep (TensorRT entropy calibration)."""
    nbins = hist.size
    if nbins <= levels:
        return nbins
    best_i, best_kl = nbins, np.inf
    total = hist.sum()
    for i in range(levels, nbins + 1):
        ref = hist[:i].astype(np.float64).copy()
        ref[-1] += hist[i:].sum()
        # Merge the i bins into `levels` groups, spread each group's mass over its non-empty
        # bins.
        edges = np.linspace(0, i, levels + 1).astype(np.int64)
        src = hist[:i].astype(np.float64)
        if src.sum() == 0:
            continue  # nothing left inside the candidate range
        nonzero = src > 0
        group_sum = np.add.reduceat(src, edges[:-1])
        group_cnt = np.add.reduceat(nonzero.astype(np.float64), edges[:-1])
        per_bin = np.divide(group_sum, group_cnt, out=np.zeros_like(group_sum),
                            where=group_cnt > 0)
        q = np.repeat(per_bin, np.diff(edges)) * nonzero
        p_mask = ref > 0
        if q[p_mask].min(initial=np.inf) <= 0:
            # A reference bin the candidate cannot represent: smooth with a tiny floor.
            q = q + (q == 0) * 1e-12 * total
        p = ref / ref.sum()
        qn = q / q.sum()
        # Q is built from the in-range values only and renormalized, which hides how much it
        # leaves out: a candidate just above the smallest value of a tensor far from zero (a
        # sigmoid gate in [0.18, 1]) has P and Q both a spike in the last bin, divergence ~0,
        # and clipped 99.98 % of the values. -log(in-range share) is the divergence from Q
        # left at its true mass; it is ~0 for the small clipped shares the criterion is for.
        kl = float(np.sum(p[p_mask] * np.log(p[p_mask] / qn[p_mask]))) + float(
            np.log(total / src.sum()))
        if kl < best_kl:
            best_kl, best_i = kl, i
    return best_i


def entropy_range(values: np.ndarray, cfg: CoreConfig) -> tuple[float, float]:
    """KL-divergence (entropy) calibration; see the module docstring."""
    v = _values(values)
    qmin, qmax = cfg.act_range
    vmin, vmax = float(v.min()), float(v.max())
    if vmin >= 0.0:
        data, levels, top = v, qmax - qmin, vmax
    else:
        data, levels, top = np.abs(v), (qmax - qmin + 1) // 2, max(-vmin, vmax)
    if top == 0.0:
        return 0.0, 0.0
    if np.unique(data).size <= DISCRETE:
        # Few distinct values (e.g. 4-bit pixels): a histogram divergence compares shapes only
        # and would happily clip them all into one bin; keep the full range.
        return minmax_range(v)
    # Exact zeros are exact in every candidate (0 is a code); a ReLU's spike of zeros would
    # otherwise dominate the divergence of any candidate that merges bins.
    hist, edges = np.histogram(data[data != 0.0], bins=BINS, range=(0.0, top))
    t = float(edges[_kl_threshold(hist, levels)])
    if vmin >= 0.0:
        return 0.0, t
    return max(vmin, -t), min(vmax, t)


def mse_range(values: np.ndarray, cfg: CoreConfig, steps: int = 100) -> tuple[float, float]:
    """Mean-squared-error calibration; see the module docstring."""
    v = _values(values)
    lo, hi = minmax_range(v)
    if hi - lo == 0.0:
        return lo, hi
    hist, edges = np.histogram(v, bins=BINS, range=(lo, hi))
    centers = 0.5 * (edges[:-1] + edges[1:])
    best, best_err = (lo, hi), np.inf
    for a in np.linspace(1.0 / steps, 1.0, steps):
        qp = act_qparams(cfg, a * lo, a * hi)
        err = float(np.sum(hist * (centers - dequantize(quantize(centers, qp, cfg), qp)) ** 2))
        if err < best_err:
            best, best_err = (float(a * lo), float(a * hi)), err
    return best


def calibrate_range(method: str, values: np.ndarray, cfg: CoreConfig) -> tuple[float, float]:
    """The range ``method`` (one of :data:`METHODS`) picks for ``values``.

    Raises
    ------
    ValueError
        Unknown method, no values, or NaN/Inf values.
    """
    if method == "minmax":
        return minmax_range(values)
    if method == "percentile":
        return percentile_range(values)
    if method == "entropy":
        return entropy_range(values, cfg)
    if method == "mse":
        return mse_range(values, cfg)
    raise InputError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")
