"""Verified MAC/s and simulated cycles/s of the cocotb testbench, per size, array view and
simulator.

For each (size, view, simulator): generate the Verilog, build it (timed), then run the benchmark
test ``test_throughput`` (back-to-back DPU vectors, no stalls, every result compared with the
golden model) with N vectors. Prints the build time, the run time, the part of the run spent
in Python (the measured wall time minus the cycles at the simulator's own speed, which the
test measures first with Python asleep on a timer for 2000 idle cycles while cocotb's C++
clock toggles; and, measured directly, the time in
the testbench's model, scoreboard and packing), simulated cycles/s and verified
MAC/s. The split is meaningful for Verilator (it evaluates the whole design every cycle,
busy or idle); Icarus is event-driven and runs idle cycles far faster than busy ones.
The physical floor printed beside it is rows x cols one-bit adds per compute cycle: the
work one core does per simulated cycle. Beside the MAC/s it prints the array utilization the
core itself measured over the streamed vectors: the differences of its ``BUSY_CYCLES`` and
``CYCLES`` counters (docs/core.md, "Performance counters"). Goals (issue 10): >= 1e7
verified MAC/s at 64x64 and >= 3e7 at 256x256 on Verilator (1e8 the aim); build of 256x256
<= 5 min, 512x512 <= 15 min.

With ``--k-layer V`` it runs ``test_k_layer`` instead, for weight_sets 1 and 2: a K-tiled,
column-tiled layer (8 weight tiles, V raw passes each), reloading each tile between passes
with one weight set and streaming the next tile into the shadow set with two, and prints the
array utilization the CSRs measured over the layer (issue 13's "K-tiled layer with weight
swaps").

Usage: python bench/bench_regress.py [--sizes 64x64,256x256] [--sims verilator,icarus]
       [--views rtl,fast] [--vectors N] [--x-stream-bits B]
       python bench/bench_regress.py --k-layer 64 --sizes 64x32 --sims verilator --views rtl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from dcim.golden.config import CoreConfig
from dcim.sim import runner
from dcim.sim.build import generate


def _run(cfg: CoreConfig, view: str, sim: str, vectors: int, out: Path, test: str):
    """Generate, build and run the benchmark test ``test`` with ``DCIM_BENCH=vectors``:
    ``(runner result, generate s, build s, the test's recorded figures)``."""
    rtl = out / "rtl"
    t0 = time.perf_counter()
    if not (rtl / f"{cfg.name}.v").exists():
        generate(cfg, rtl, array_model=view)
    gen_s = time.perf_counter() - t0
    cfg.save(out / "core.json")
    build_s = runner.build(sim, rtl / f"{cfg.name}.v", cfg.name, out / sim / "build",
                           timeout=7200)
    os.environ["DCIM_BENCH"] = str(vectors)
    try:
        r = runner.run_tests(sim, cfg.name, out / sim / "build", out / sim / "run",
                             config_json=out / "core.json",
                             regmap_json=rtl / f"{cfg.name}_regs.json", seed=1,
                             tests=f"{test}$")
    finally:
        os.environ.pop("DCIM_BENCH", None)
    t = r.stats.get("tests", {}).get(test, {})
    if not r.ok or not t:
        raise SystemExit(f"benchmark run failed: {r.error or r.failures} (log: {r.log})")
    return r, gen_s, build_s, t


def k_layer(cfg: CoreConfig, view: str, sim: str, vectors: int, out: Path) -> dict:
    """``test_k_layer`` (a K-tiled, column-tiled layer, ``vectors`` per tile) on ``cfg``: the
    array utilization from the CSRs."""
    _, _, build_s, t = _run(cfg, view, sim, vectors, out, "test_k_layer")
    return {"size": f"{cfg.rows}x{cfg.cols}", "view": view, "sim": sim,
            "weight_sets": cfg.weight_sets, "build_s": build_s, "tiles": t["tiles"],
            "vectors": vectors, "busy_cycles": t["busy_cycles"], "csr_cycles": t["csr_cycles"],
            "utilization": t["utilization"]}


def bench_one(cfg: CoreConfig, view: str, sim: str, vectors: int, out: Path) -> dict:
    r, gen_s, build_s, t = _run(cfg, view, sim, vectors, out, "test_throughput")
    cycles, wall = t["cycles"], t["wall"]
    sim_s = min(wall, cycles / t["idle_cycles_per_s"])
    return {"size": f"{cfg.rows}x{cfg.cols}", "view": view, "sim": sim, "generate_s": gen_s,
            "build_s": build_s, "run_s": r.seconds, "measured_s": wall,
            "setup_s": r.seconds - wall, "simulator_s": sim_s, "python_s": wall - sim_s,
            "idle_cycles_per_s": t["idle_cycles_per_s"], "testbench_s": t["testbench_s"],
            "vectors": vectors, "cycles": cycles,
            "cycles_per_s": cycles / wall, "macs": t["macs"], "mac_per_s": t["macs"] / wall,
            "cpu_s": t["cpu"], "mac_per_cpu_s": t["macs"] / t["cpu"],
            "idle_cycles_per_cpu_s": t["idle_cycles_per_cpu_s"],
            "busy_cycles": t["busy_cycles"], "csr_cycles": t["csr_cycles"],
            "utilization": t["utilization"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64x64,256x256")
    ap.add_argument("--sims", default="verilator,icarus")
    ap.add_argument("--views", default="rtl,fast", help="array views (rtl, fast)")
    ap.add_argument("--vectors", type=int, default=2000)
    ap.add_argument("--icarus-vectors", type=int, default=20)
    ap.add_argument("--x-stream-bits", type=int, default=None,
                    help="activation stream width (default: one beat per vector)")
    ap.add_argument("--dpu-lanes", type=int, default=None,
                    help="DPU lanes (default: CoreConfig's automatic value, the fewest that "
                         "keep up with one pass per cycles_per_pass cycles)")
    ap.add_argument("--k-layer", type=int, default=None, metavar="V",
                    help="instead: the array utilization of a K-tiled layer (test_k_layer, V "
                         "vectors per tile) with one and with two weight sets (swaps)")
    ap.add_argument("--out", type=Path, default=Path("build/bench_regress"))
    ns = ap.parse_args(argv)
    if ns.k_layer is not None:
        return _k_layers(ns)
    results = []
    for size in ns.sizes.split(","):
        rows, cols = (int(v) for v in size.split("x"))
        xbits = ns.x_stream_bits or min(4096, 8 * rows)
        cfg = CoreConfig(rows=rows, cols=cols, x_stream_bits=xbits, dpu_lanes=ns.dpu_lanes,
                         w_stream_bits=min(4096, 8 * cols), y_stream_bits=min(4096, 8 * cols))
        lanes = cfg.dpu_lanes
        for view in ns.views.split(","):
            for sim in ns.sims.split(","):
                n = ns.icarus_vectors if sim == "icarus" else ns.vectors
                res = bench_one(cfg, view, sim, n,
                                ns.out / f"{rows}x{cols}_x{xbits}_l{lanes}_{view}")
                results.append(res)
                floor = rows * cols * res["cycles_per_s"]
                print(f"{res['size']:>8} {view:<4} {sim:<9} build {res['build_s']:7.1f} s  run "
                      f"{res['run_s']:6.1f} s (set-up {res['setup_s']:5.1f} s; measured "
                      f"{res['measured_s']:6.1f} s = simulator {res['simulator_s']:6.1f} s + "
                      f"Python {res['python_s']:6.1f} s; testbench model/scoreboard/packing "
                      f"{res['testbench_s']:5.2f} s)  {res['cycles_per_s']:9.0f} cycles/s "
                      f"(simulator alone {res['idle_cycles_per_s']:9.0f}; {floor:.2e} bit-adds/s)"
                      f"  {res['mac_per_s']:10.3e} verified MAC/s (array utilization "
                      f"{100 * res['utilization']:.1f} % from the CSRs: BUSY_CYCLES "
                      f"{res['busy_cycles']} / CYCLES {res['csr_cycles']}; "
                      f"{res['mac_per_cpu_s']:.3e} "
                      f"per CPU-second of the simulator process; simulator alone "
                      f"{res['idle_cycles_per_cpu_s']:.0f} cycles per CPU-second)", flush=True)
    print(json.dumps(results, indent=1))
    return 0


def _k_layers(ns: argparse.Namespace) -> int:
    """``--k-layer``: per size, view and simulator, test_k_layer with weight_sets 1 and 2 on
    the core's default streams and DPU."""
    results = []
    for size in ns.sizes.split(","):
        rows, cols = (int(v) for v in size.split("x"))
        for sets in (1, 2):
            cfg = CoreConfig(rows=rows, cols=cols, weight_sets=sets)
            for view in ns.views.split(","):
                for sim in ns.sims.split(","):
                    res = k_layer(cfg, view, sim, ns.k_layer,
                                  ns.out / f"k_layer_{rows}x{cols}_s{sets}_{view}")
                    results.append(res)
                    print(f"{res['size']:>8} {view:<4} {sim:<9} weight_sets {sets}: K-tiled "
                          f"layer of {res['tiles']} tiles x {ns.k_layer} raw passes: array "
                          f"utilization {100 * res['utilization']:.1f} % from the CSRs "
                          f"(BUSY_CYCLES {res['busy_cycles']} / CYCLES {res['csr_cycles']})",
                          flush=True)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
