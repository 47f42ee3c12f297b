"""Synthesis wall time against array size, and the hierarchical estimate against flat synthesis.

1. Flat synthesis (Yosys + OpenSTA, no power) of growing arrays: wall time of each run and a
   least-squares fit ``t = a * (rows*cols)**b`` over the sizes (the exponent says how it grows).
2. For each --validate size: the flat run with power, then :func:`dcim.synth.flow.estimate`
   (two flat runs with fewer columns, composed); the relative error of area, Fmax and energy
   per MAC of the estimate against flat synthesis, and both wall times, side by side.

The machine is shared: wall times include whatever else runs; the fit is only indicative.
Run: `.venv/bin/python bench/bench_synth.py [--sizes 8x4,16x8,32x16,64x32] [--validate 64x32]`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from dcim.golden.config import CoreConfig  # noqa: E402
from dcim.sim.build import verilog_text  # noqa: E402
from dcim.synth import flow  # noqa: E402


def _sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        r, c = item.lower().split("x")
        out.append((int(r), int(c)))
    return out


def _generate(cfg: CoreConfig, d: Path) -> Path:
    v = Path(d) / f"{cfg.name}.v"
    v.write_text(verilog_text(cfg))
    return v


def fit_power_law(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares fit of ``t = a * n**b`` in log space; returns ``(a, b)``."""
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(t) for _, t in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    return math.exp(my - b * mx), b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="8x4,16x8,32x16,64x32")
    ap.add_argument("--validate", default="64x32", help="sizes for estimate vs flat ('' = none)")
    ap.add_argument("--clock-ns", type=float, default=10.0)
    ap.add_argument("--vectors", type=int, default=8)
    ap.add_argument("--keep", type=Path, help="keep the run directories here")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_synth_"))
    report: dict = {"flat": [], "validate": []}

    print("flat synthesis (Yosys + OpenSTA, no power)")
    print(f"{'size':>8} {'MACs':>7} {'cells':>8} {'area um2':>12} {'Fmax MHz':>9} "
          f"{'yosys s':>8} {'total s':>8}")
    pts = []
    for rows, cols in _sizes(args.sizes):
        cfg = CoreConfig(rows=rows, cols=cols)
        d = base / f"flat_{rows}x{cols}"
        d.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        r = flow.synthesize(cfg, _generate(cfg, d), d, workloads=(), clock_ns=args.clock_ns)
        wall = time.monotonic() - t0
        pts.append((rows * cols, wall))
        report["flat"].append({"rows": rows, "cols": cols, "wall_s": wall,
                               "yosys_s": r["wall_time"]["yosys_s"],
                               "cells": r["area"]["cells"], "area_um2": r["area"]["total_um2"],
                               "fmax_mhz": r["derived"]["fmax_mhz"]})
        print(f"{rows:>4}x{cols:<3} {rows * cols:>7} {r['area']['cells']:>8} "
              f"{r['area']['total_um2']:>12,.0f} {r['derived']['fmax_mhz']:>9.1f} "
              f"{r['wall_time']['yosys_s']:>8.1f} {wall:>8.1f}")
    if len(pts) >= 2:
        a, b = fit_power_law(pts)
        report["fit"] = {"a": a, "b": b}
        print(f"fit: wall ~ {a:.3g} s * (rows*cols)^{b:.2f}; extrapolated 256x256: "
              f"{a * 65536 ** b / 60:.1f} min")

    for rows, cols in (_sizes(args.validate) if args.validate else []):
        cfg = CoreConfig(rows=rows, cols=cols)
        kw = dict(clock_ns=args.clock_ns, vectors=args.vectors)
        d = base / f"val_flat_{rows}x{cols}"
        d.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        fl = flow.synthesize(cfg, _generate(cfg, d), d, **kw)
        t_flat = time.monotonic() - t0
        t0 = time.monotonic()
        es = flow.estimate(cfg, _generate, base / f"val_est_{rows}x{cols}", **kw)
        t_est = time.monotonic() - t0

        def err(get):
            f, e = get(fl), get(es)
            return (e - f) / f

        errs = {
            "area": err(lambda r: r["area"]["total_um2"]),
            "fmax": err(lambda r: r["derived"]["fmax_mhz"]),
            "pj_mac_random": err(lambda r: r["derived"]["energy"]["random"]["energy_per_mac_pj"]),
            "pj_mac_sparse": err(lambda r: r["derived"]["energy"]["sparse"]["energy_per_mac_pj"]),
        }
        blocks = {b: (es["area"]["blocks"][b]["area_um2"] - fl["area"]["blocks"][b]["area_um2"])
                  / fl["area"]["blocks"][b]["area_um2"]
                  for b in fl["area"]["blocks"] if fl["area"]["blocks"][b]["area_um2"] > 0}
        report["validate"].append({"rows": rows, "cols": cols, "method": es["method"],
                                   "errors": errs, "block_area_errors": blocks,
                                   "wall_flat_s": t_flat, "wall_estimate_s": t_est})
        print(f"\nestimate vs flat at {rows}x{cols} ({es['method']}):")
        for k, v in errs.items():
            print(f"  {k:>14}: {100 * v:+.1f} %")
        print("  block areas: " + ", ".join(f"{b} {100 * v:+.1f} %" for b, v in blocks.items()))
        print(f"  wall time: flat {t_flat:.0f} s, estimate {t_est:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nrun directories: {base}")


if __name__ == "__main__":
    main()
