"""The entropy calibrator's threshold search against the original per-candidate loop.

:func:`_reference_kl_threshold` is the Python loop ``golden/quant/calibrate.py`` had before it
was vectorized (commit f53bb8c), kept here verbatim as the slow, obviously-correct reference:
one candidate at a time, P and Q built bin by bin as TensorRT describes. The thresholds are
bin indices, so the two must agree exactly, on realistic histograms and on the edge cases
(all mass in one bin, an empty tail, a few nonzero bins, an empty head, fewer bins than
levels).
"""

import numpy as np
import pytest

from dcim.golden.quant.calibrate import (BINS, KL_TIE, _kl_divergence, _kl_divergences,
                                         _kl_threshold)


def _reference_kl_threshold(hist: np.ndarray, levels: int) -> int:
    """Number of leading bins to keep (TensorRT entropy calibration), one candidate a time."""
    nbins = hist.size
    if nbins <= levels:
        return nbins
    best_i, best_kl = nbins, np.inf
    total = hist.sum()
    for i in range(levels, nbins + 1):
        ref = hist[:i].astype(np.float64).copy()
        ref[-1] += hist[i:].sum()
        edges = np.linspace(0, i, levels + 1).astype(np.int64)
        src = hist[:i].astype(np.float64)
        if src.sum() == 0:
            continue
        nonzero = src > 0
        group_sum = np.add.reduceat(src, edges[:-1])
        group_cnt = np.add.reduceat(nonzero.astype(np.float64), edges[:-1])
        per_bin = np.divide(group_sum, group_cnt, out=np.zeros_like(group_sum),
                            where=group_cnt > 0)
        q = np.repeat(per_bin, np.diff(edges)) * nonzero
        p_mask = ref > 0
        if q[p_mask].min(initial=np.inf) <= 0:
            q = q + (q == 0) * 1e-12 * total
        p = ref / ref.sum()
        qn = q / q.sum()
        kl = float(np.sum(p[p_mask] * np.log(p[p_mask] / qn[p_mask]))) + float(
            np.log(total / src.sum()))
        if kl < best_kl:
            best_kl, best_i = kl, i
    return best_i


def _hist(values: np.ndarray, bins: int) -> np.ndarray:
    """The calibrator's histogram: zeros left out, ``[0, max]`` in ``bins`` bins."""
    v = np.abs(values)
    return np.histogram(v[v != 0], bins=bins, range=(0.0, v.max()))[0]


def _one_bin(bins: int, at: int, count: int = 5000) -> np.ndarray:
    h = np.zeros(bins, dtype=np.int64)
    h[at] = count
    return h


rng = np.random.default_rng(2026)
#: (name, histogram, levels): realistic shapes at 4096 bins (the calibrator's) and smaller.
CASES = [
    ("relu-normal-outlier", _hist(np.r_[rng.normal(size=40_000), 30.0], BINS), 255),
    ("signed-laplace", _hist(rng.laplace(size=40_000), BINS), 128),
    ("sigmoid-gate", _hist(np.r_[1 / (1 + np.exp(-rng.normal(1.5, 0.6, 30_000))), 0.05],
                           BINS), 255),
    ("exponential", _hist(rng.exponential(size=40_000), BINS), 255),
    ("uniform", _hist(rng.uniform(size=20_000), 1024), 255),
    ("bimodal", _hist(np.r_[rng.normal(1, 0.1, 9000), rng.normal(5, 0.3, 3000)], 1024), 128),
    ("heavy-tail-t", _hist(rng.standard_t(2, size=20_000), 1024), 128),
    ("lognormal", _hist(rng.lognormal(0, 1, 20_000), 768), 255),
    ("small-counts", _hist(rng.normal(size=300), 1024), 255),
    ("4-bit-levels", _hist(rng.normal(size=20_000), 512), 15),
    ("4-bit-signed", _hist(rng.laplace(size=20_000), 512), 8),
    ("random-counts", rng.integers(0, 50, 700), 128),
    ("sparse-random", rng.integers(0, 50, 700) * (rng.random(700) < 0.05), 64),
    # Edge cases.
    ("all-mass-first-bin", _one_bin(1024, 0), 255),
    ("all-mass-middle-bin", _one_bin(1024, 600), 255),
    ("all-mass-last-bin", _one_bin(1024, 1023), 255),
    ("empty-tail", np.r_[rng.integers(1, 100, 300), np.zeros(724, dtype=np.int64)], 255),
    ("empty-head", np.r_[np.zeros(700, dtype=np.int64), rng.integers(0, 100, 324)], 128),
    ("three-nonzero-bins", np.bincount([3, 3, 3, 400, 1023, 1023], minlength=1024), 255),
    ("two-far-bins", np.bincount([0] * 900 + [1023], minlength=1024), 128),
    ("gap-then-outlier", np.r_[rng.integers(0, 30, 200), np.zeros(823, dtype=np.int64), [1]],
     255),
    ("fewer-bins-than-levels", rng.integers(0, 10, 200), 255),
    ("bins-equal-levels", rng.integers(0, 10, 255), 255),
]


@pytest.mark.parametrize(("hist", "levels"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_threshold_is_the_reference_loops(hist, levels):
    assert _kl_threshold(hist, levels) == _reference_kl_threshold(hist, levels)


def test_the_cases_are_not_all_trivial():
    """The comparison means something only if the reference picks thresholds inside the range
    on the realistic histograms (not always the first or the last candidate)."""
    picks = {name: _reference_kl_threshold(h, lv) for name, h, lv in CASES[:4]}
    assert all(lv < picks[name] < h.size for name, h, lv in CASES[:4]), picks


@pytest.mark.parametrize(("hist", "levels"), [c[1:] for c in CASES if c[1].size > c[2]],
                         ids=[c[0] for c in CASES if c[1].size > c[2]])
def test_vectorized_divergences_are_the_per_candidate_ones(hist, levels):
    """Every candidate's divergence from the all-at-once sums is the one-candidate value to far
    below :data:`KL_TIE` (the margin within which the search re-scores candidates), and a
    candidate holding no value is ``inf`` in both."""
    fast = _kl_divergences(hist, levels)
    slow = np.array([_kl_divergence(hist, i, levels) for i in range(levels, hist.size + 1)])
    assert (np.isinf(fast) == np.isinf(slow)).all()
    finite = np.isfinite(slow)
    assert np.abs(fast[finite] - slow[finite]).max(initial=0.0) < KL_TIE / 1000
