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
    histograms compares normalized shapes only and would clip them all into one bin. The
    search scores every candidate at once and re-scores near ties one by one: it picks the bin
    a loop over the candidates picks (:func:`_kl_threshold`).
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


def _kl_divergence(hist: np.ndarray, i: int, levels: int) -> float:
    """Divergence of keeping the ``i`` leading bins, one candidate, bin by bin (``inf`` if
    they hold no value); the exact score :func:`_kl_threshold` ranks near-ties by."""
    total = hist.sum()
    src = hist[:i].astype(np.float64)
    if src.sum() == 0:
        return np.inf  # nothing left inside the candidate range
    ref = src.copy()
    ref[-1] += hist[i:].sum()
    # Merge the i bins into `levels` groups, spread each group's mass over its non-empty bins.
    edges = np.linspace(0, i, levels + 1).astype(np.int64)
    nonzero = src > 0
    group_sum = np.add.reduceat(src, edges[:-1])
    group_cnt = np.add.reduceat(nonzero.astype(np.float64), edges[:-1])
    per_bin = np.divide(group_sum, group_cnt, out=np.zeros_like(group_sum), where=group_cnt > 0)
    q = np.repeat(per_bin, np.diff(edges)) * nonzero
    p_mask = ref > 0
    if q[p_mask].min(initial=np.inf) <= 0:
        # A reference bin the candidate cannot represent: smooth with a tiny floor.
        q = q + (q == 0) * 1e-12 * total
    p = ref / ref.sum()
    qn = q / q.sum()
    # Q is built from the in-range values only and renormalized, which hides how much it
    # leaves out: a candidate just above the smallest value of a tensor far from zero (a
    # sigmoid gate in [0.18, 1]) has P and Q both a spike in the last bin, divergence ~0, and
    # clipped 99.98 % of the values. -log(in-range share) is the divergence from Q left at its
    # true mass; it is ~0 for the small clipped shares the criterion is for.
    return float(np.sum(p[p_mask] * np.log(p[p_mask] / qn[p_mask]))) + float(
        np.log(total / src.sum()))


def _kl_divergences(hist: np.ndarray, levels: int) -> np.ndarray:
    """:func:`_kl_divergence` of every candidate ``i = levels .. hist.size`` at once.

    The same quantity rewritten as sums per group, so that every candidate is a row of one
    ``(candidates, levels)`` array: with ``T`` the total, ``S`` the in-range count, ``G_j``
    and ``C_j`` the count and nonzero bins of group ``j``, ``r`` the last bin plus the tail
    and ``q_last`` its Q value, ``T * KL = sum_b h_b log h_b (b < i - 1) + r log r
    - sum_j G_j log(G_j / C_j) + h_(i-1) log(G_last / C_last) - r log q_last``, then
    ``- log T + log(sum Q) + log(T / S)``. Equal to it up to float rounding (different
    summation order), not bit for bit.
    """
    h = hist.astype(np.float64)
    total = h.sum()
    cand = np.arange(levels, h.size + 1)
    csum = np.concatenate([[0.0], np.cumsum(h)])
    cnz = np.concatenate([[0.0], np.cumsum(h > 0)])
    hlogh = np.concatenate([[0.0], np.cumsum(h * np.log(np.where(h > 0, h, 1.0)))])
    edges = np.linspace(0, cand, levels + 1, axis=1).astype(np.int64)  # (candidates, levels+1)
    gsum = np.diff(csum[edges], axis=1)
    gcnt = np.diff(cnz[edges], axis=1)
    full = gcnt > 0
    log_pb = np.log(np.where(full, gsum, 1.0) / np.where(full, gcnt, 1.0))
    cross = np.sum(np.where(full, gsum * log_pb, 0.0), axis=1)
    inside = csum[cand]
    last = h[cand - 1]
    r = last + (total - inside)  # the last reference bin: the last bin plus the clipped tail
    eps = 1e-12 * total
    smoothed = (last == 0) & (r > 0)  # a reference bin Q cannot represent: Q gets a floor
    log_q_last = np.where(smoothed, np.log(eps), log_pb[:, -1])
    q_total = inside + np.where(smoothed, eps * (cand - cnz[cand]), 0.0)
    t_kl = (hlogh[cand - 1] + r * np.log(np.where(r > 0, r, 1.0)) - cross
            + np.where(last > 0, last * log_pb[:, -1], 0.0)
            - np.where(r > 0, r * log_q_last, 0.0))
    with np.errstate(divide="ignore"):
        kl = t_kl / total - np.log(total) + np.log(q_total) + np.log(total / inside)
    return np.where(inside > 0, kl, np.inf)


#: Candidates whose vectorized divergence is within this of the smallest are re-scored one by
#: one with :func:`_kl_divergence` (the vectorized sums differ from it by ~1e-14).
KL_TIE = 1e-9


def _kl_threshold(hist: np.ndarray, levels: int) -> int:
    """Number of leading bins to keep (TensorRT entropy calibration).

    The candidate ``i`` (``levels <= i <= hist.size``) of smallest :func:`_kl_divergence`,
    the first on a tie. All candidates are scored at once by :func:`_kl_divergences`; those
    within :data:`KL_TIE` of its minimum are scored again one by one, so the choice is the one
    a loop over :func:`_kl_divergence` makes (tests/test_kl_threshold.py checks it against
    that loop).
    """
    nbins = hist.size
    if nbins <= levels:
        return nbins
    kl = _kl_divergences(hist, levels)
    best = kl.min()
    if not np.isfinite(best):
        return nbins
    near = np.flatnonzero(kl <= best + KL_TIE * max(1.0, abs(best))) + levels
    exact = [_kl_divergence(hist, int(i), levels) for i in near]
    return int(near[int(np.argmin(exact))])


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
