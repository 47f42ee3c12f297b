"""Entropy (KL) calibration time per tensor: the per-candidate loop beside the vectorized search.

`entropy_range` on every calibration tensor of the named models (the values each took on the
calibration set, as `dcim calibrate` collects them), twice per round: once with the threshold
search as it was before issue 11's vectorization (a Python loop scoring one candidate at a
time with `_kl_divergence`), once as shipped (`_kl_threshold`: every candidate at once, near
ties re-scored one by one). Both must return the same range for every tensor (the script
fails otherwise); times are the best of `--repeat` rounds, interleaved so drift hits both.
Run: `.venv/bin/python bench/bench_entropy.py [--model M.onnx ...] [--calib C.npz]
[--repeat N] [--per-tensor]`.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from tabulate import tabulate  # noqa: E402

from dcim.golden.config import CoreConfig  # noqa: E402
from dcim.golden.quant import calibrate  # noqa: E402
from dcim.golden.quant.onnx_import import load_model  # noqa: E402
from dcim.golden.quant.qmodel import calibration_tensors, plan  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MODELS = ("digits_mobile_cnn.onnx", "digits_glu_cnn.onnx", "digits_cnn.onnx")
SHIPPED = calibrate._kl_threshold


def loop_kl_threshold(hist: np.ndarray, levels: int) -> int:
    """The search before vectorization: every candidate scored in turn, the first minimum."""
    if hist.size <= levels:
        return hist.size
    best_i, best_kl = hist.size, np.inf
    for i in range(levels, hist.size + 1):
        kl = calibrate._kl_divergence(hist, i, levels)
        if kl < best_kl:
            best_kl, best_i = kl, i
    return best_i


def _timed(search, values: np.ndarray, cfg: CoreConfig) -> tuple[float, tuple[float, float]]:
    calibrate._kl_threshold = search
    try:
        t0 = time.perf_counter()
        rng = calibrate.entropy_range(values, cfg)
        return time.perf_counter() - t0, rng
    finally:
        calibrate._kl_threshold = SHIPPED


def bench_model(path: Path, calib: np.ndarray, cfg: CoreConfig, repeat: int) -> list[list]:
    """One row per calibration tensor: size, loop and vectorized seconds, ratio."""
    g = load_model(path)
    env = g.forward(calib, keep_all=True)
    rows = []
    for t in calibration_tensors(g, plan(g, cfg.dpu_residual)):
        best = {"loop": np.inf, "vectorized": np.inf}
        ranges = {}
        for _ in range(repeat):
            for name, search in (("loop", loop_kl_threshold), ("vectorized", SHIPPED)):
                dt, ranges[name] = _timed(search, env[t], cfg)
                best[name] = min(best[name], dt)
        if ranges["loop"] != ranges["vectorized"]:
            raise SystemExit(f"{path.name} {t}: loop {ranges['loop']} != vectorized "
                             f"{ranges['vectorized']}")
        rows.append([path.name, t, env[t].size, best["loop"], best["vectorized"]])
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, action="append",
                    help=f"ONNX model(s) (default: {', '.join(MODELS)})")
    ap.add_argument("--calib", type=Path, default=EXAMPLES / "digits_calib.npz",
                    help="calibration images, key x (default: the digits calibration set)")
    ap.add_argument("--repeat", type=int, default=3, help="timed rounds (default 3)")
    ap.add_argument("--per-tensor", action="store_true", help="print every tensor's row")
    args = ap.parse_args()
    cfg = CoreConfig()
    calib = np.load(args.calib)["x"].astype(np.float32)
    print(f"entropy_range per calibration tensor, {len(calib)} calibration images; best of "
          f"{args.repeat} rounds; OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}; "
          f"load average {os.getloadavg()[0]:.1f}")
    rows = []
    for path in args.model or [EXAMPLES / m for m in MODELS]:
        rows += bench_model(path, calib, cfg, args.repeat)
    if args.per_tensor:
        print(tabulate([[m, t, n, f"{a * 1e3:.1f}", f"{b * 1e3:.1f}", f"{a / b:.1f}x"]
                        for m, t, n, a, b in rows],
                       headers=["model", "tensor", "values", "loop ms", "vectorized ms",
                                "speed-up"], colalign=("left", "left", "right", "right",
                                                       "right", "right")))
        print()
    summary = []
    for m in dict.fromkeys(r[0] for r in rows):
        a = np.array([r[3] for r in rows if r[0] == m])
        b = np.array([r[4] for r in rows if r[0] == m])
        summary.append([m, a.size, f"{a.mean() * 1e3:.1f}", f"{b.mean() * 1e3:.1f}",
                        f"{a.sum() / b.sum():.1f}x", "yes"])
    print(tabulate(summary, headers=["model", "tensors", "loop ms/tensor",
                                     "vectorized ms/tensor", "speed-up", "same ranges"],
                   colalign=("left", "right", "right", "right", "right", "left")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
