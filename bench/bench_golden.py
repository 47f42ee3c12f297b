"""Golden-model throughput: `mvm` and `mvm_bitserial` beside the best exact numpy path.

Every path starts from the same int8 weight and activation arrays and ends in exact int64 sums,
so conversions are counted on both sides. Ratios are measured side by side in one run. The last
column is the floor of any BLAS-based bit-serial model: one float32 GEMM over the stacked
activation bit-planes (cycles_per_pass x the work of `mvm`), relative to `mvm`.
Run: `make bench` or `.venv/bin/python bench/bench_golden.py [--repeat N]`.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from dcim.golden.config import CoreConfig  # noqa: E402
from dcim.golden.model import mvm, mvm_bitserial  # noqa: E402


def numpy_paths(W: np.ndarray, X: np.ndarray, exact_f32: bool) -> dict:
    """Exact numpy ways to compute X @ W from int8 arrays (float32 only where it is exact)."""
    paths = {
        "float64 GEMM": lambda: (X.astype(np.float64) @ W.astype(np.float64)).astype(np.int64),
        "int64 matmul": lambda: X.astype(np.int64) @ W.astype(np.int64),
    }
    if exact_f32:
        paths["float32 GEMM"] = (
            lambda: (X.astype(np.float32) @ W.astype(np.float32)).astype(np.int64))
    return paths


def best_times(fns: dict, repeat: int, min_seconds: float = 0.1) -> dict:
    """Best per-call seconds of each function; rounds interleave the functions so that drift
    (warm-up, other load) hits them alike."""
    calls = {}
    for name, fn in fns.items():
        fn()
        n = 1
        while True:
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            if time.perf_counter() - t0 >= min_seconds:
                break
            n *= 2
        calls[name] = n
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / calls[name])
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--cols", type=int, default=256)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1024])
    args = parser.parse_args()
    cfg = CoreConfig(rows=args.rows, cols=args.cols)
    rng = np.random.default_rng(0)
    W = rng.integers(-128, 128, size=(cfg.rows, cfg.cols), dtype=np.int8)
    lo, hi = cfg.acc_range
    exact_f32 = max(-lo, hi) < 1 << 24
    print(f"# golden model, {cfg.rows}x{cfg.cols} int8, OPENBLAS_NUM_THREADS="
          f"{os.environ['OPENBLAS_NUM_THREADS']}, best of {args.repeat}")
    print(f"{'batch':>6} {'best numpy path':>16} {'numpy GMAC/s':>13} {'mvm GMAC/s':>11} "
          f"{'mvm/numpy':>10} {'bitserial GMAC/s':>17} {'bitserial/mvm':>14} "
          f"{'plane-GEMM floor':>17}")
    for batch in args.batches:
        X = rng.integers(-128, 128, size=(batch, cfg.rows), dtype=np.int8)
        macs = batch * cfg.rows * cfg.cols
        ref = X.astype(np.int64) @ W.astype(np.int64)
        fns = numpy_paths(W, X, exact_f32)
        for name, fn in fns.items():
            assert np.array_equal(fn(), ref), name
        assert np.array_equal(mvm(cfg, W, X), ref)
        assert np.array_equal(mvm_bitserial(cfg, W, X).sums, ref)
        fns["mvm"] = lambda: mvm(cfg, W, X)
        fns["mvm_bitserial"] = lambda: mvm_bitserial(cfg, W, X)
        # The floor of any bit-serial model built on BLAS: one GEMM over the stacked planes.
        planes = np.zeros((cfg.cycles_per_pass() * batch, cfg.rows), dtype=np.float32)
        w32 = W.astype(np.float32)
        fns["plane GEMM"] = lambda: planes @ w32
        timings = best_times(fns, args.repeat)
        t_mvm = timings.pop("mvm")
        t_bs = timings.pop("mvm_bitserial")
        t_floor = timings.pop("plane GEMM")
        best_name = min(timings, key=timings.get)
        t_np = timings[best_name]
        print(f"{batch:>6} {best_name:>16} {macs / t_np / 1e9:>13.2f} {macs / t_mvm / 1e9:>11.2f} "
              f"{t_np / t_mvm:>9.2f}x {macs / t_bs / 1e9:>17.2f} {t_bs / t_mvm:>13.1f}x "
              f"{t_floor / t_mvm:>16.1f}x")


if __name__ == "__main__":
    main()
