"""Synthesis wall time against array size, and the hierarchical estimate against flat synthesis.

1. Flat synthesis (Yosys + OpenSTA, no power) of growing arrays: wall time of each run and a
   least-squares fit ``t = a * (rows*cols)**b`` over the sizes (the exponent says how it grows).
2. For each --validate size: the flat run with power, then :func:`dcim.synth.flow.estimate`
   (two flat runs with fewer columns, composed); the relative error of area, Fmax and energy
   per MAC of the estimate against flat synthesis, and both wall times, side by side.
3. For each --estimate size (e.g. 256x256): what `dcim synth` runs for it by default (the
   estimate, with power, its two parts at once), timed step by step; with --reference also the
   same estimate with the slower reference flow (ABC's SAT sweep back in, Icarus for the
   activity: the flow before issue 10's speed-up) and the relative difference of every figure.

The machine is shared: wall times include whatever else runs; the fit is only indicative.
Run: `.venv/bin/python bench/bench_synth.py [--sizes 8x4,16x8,32x16,64x32] [--validate 64x32]`;
the 256x256 run of docs/synth.md: `.venv/bin/python bench/bench_synth.py --sizes '' --validate ''
--estimate 256x256 --vectors 16 [--reference]`.
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
    v.write_text(verilog_text(cfg, array_model="rtl"))
    return v


def fit_power_law(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares fit of ``t = a * n**b`` in log space; returns ``(a, b)``."""
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(t) for _, t in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    return math.exp(my - b * mx), b


def figure_errors(new: dict, ref: dict) -> dict[str, float]:
    """Relative difference ``(new - ref) / ref`` of area (total and per block), Fmax and the
    energy per MAC of each workload of two results."""
    out = {"area": new["area"]["total_um2"] / ref["area"]["total_um2"] - 1,
           "fmax": new["derived"]["fmax_mhz"] / ref["derived"]["fmax_mhz"] - 1}
    for w, e in ref["derived"]["energy"].items():
        out[f"pj_mac_{w}"] = (new["derived"]["energy"][w]["energy_per_mac_pj"]
                              / e["energy_per_mac_pj"] - 1)
    for b, blk in ref["area"]["blocks"].items():
        if blk["area_um2"] > 0 and b in new["area"]["blocks"]:
            out[f"area_{b}"] = new["area"]["blocks"][b]["area_um2"] / blk["area_um2"] - 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="8x4,16x8,32x16,64x32")
    ap.add_argument("--validate", default="64x32", help="sizes for estimate vs flat ('' = none)")
    ap.add_argument("--clock-ns", type=float, default=10.0)
    ap.add_argument("--vectors", type=int, default=8)
    ap.add_argument("--estimate", default="", help="sizes run as `dcim synth` does by default "
                    "(the estimate with power), e.g. 256x256 ('' = none)")
    ap.add_argument("--reference", action="store_true",
                    help="also run each --estimate size with the reference flow and compare")
    ap.add_argument("--keep", type=Path, help="keep the run directories here")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_synth_"))
    report: dict = {"flat": [], "validate": [], "estimate": []}

    if args.sizes:
        print("flat synthesis (Yosys + OpenSTA, no power)")
        print(f"{'size':>8} {'MACs':>7} {'cells':>8} {'area um2':>12} {'Fmax MHz':>9} "
              f"{'yosys s':>8} {'total s':>8}")
    pts = []
    for rows, cols in (_sizes(args.sizes) if args.sizes else []):
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
        kw = dict(clock_ns=args.clock_ns, vectors=args.vectors, utilization=())
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
    for rows, cols in (_sizes(args.estimate) if args.estimate else []):
        cfg = CoreConfig(rows=rows, cols=cols)
        runs = {"default": {}}
        if args.reference:
            runs["reference"] = {"abc_sweep": True, "activity_sim": "icarus"}
        got = {}
        for name, extra in runs.items():
            t0 = time.monotonic()
            r = flow.estimate(cfg, _generate, base / f"est_{name}_{rows}x{cols}",
                              clock_ns=args.clock_ns, vectors=args.vectors, utilization=(),
                              **extra)
            wall = time.monotonic() - t0
            got[name] = r
            print(f"\n{rows}x{cols} ({r['method']}, {name} flow): {wall:.0f} s wall")
            for part, steps in zip(r["parts"], r["wall_time"]["parts_steps"]):
                print(f"  {part}: " + ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in steps.items()))
            d = r["derived"]
            print(f"  area {d['area_um2_total']:,.0f} um2, Fmax {d['fmax_mhz']:.1f} MHz, "
                  + ", ".join(f"{w} {e['energy_per_mac_pj']:.1f} pJ/MAC"
                              for w, e in d["energy"].items()))
            report["estimate"].append({"rows": rows, "cols": cols, "flow": name, "wall_s": wall,
                                       "parts_steps": r["wall_time"]["parts_steps"],
                                       "area_um2": d["area_um2_total"], "fmax_mhz": d["fmax_mhz"],
                                       "pj_mac": {w: e["energy_per_mac_pj"]
                                                  for w, e in d["energy"].items()}})
        if "reference" in got:
            print(f"  default flow against the reference flow at {rows}x{cols}:")
            for k, v in figure_errors(got["default"], got["reference"]).items():
                print(f"  {k:>24}: {100 * v:+.2f} %")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nrun directories: {base}")


if __name__ == "__main__":
    main()
