"""Array utilization measured by the core's own counters with back-to-back vectors.

For each case: generate the Verilog, build it with Verilator, stream N back-to-back DPU vectors
through the cocotb benchmark test ``test_throughput`` (every result compared with the golden
model) and print the array utilization the core measured, ``BUSY_CYCLES / CYCLES`` over the
streamed vectors (docs/core.md, "Performance counters"), beside ``CoreConfig``'s prediction
``array_utilization()`` for the steady state. The window includes the pipeline's fill and drain
and the counter reads, so the measured figure is slightly below the prediction. Cases:

``default``
    ``CoreConfig()`` as shipped (64x32, automatic DPU lanes and stream widths).
``one-lane``
    The same with ``dpu_lanes=1``: the configuration before the balanced default.

Usage: python bench/bench_utilization.py [--cases default,one-lane] [--vectors N]
       [--view rtl|fast] [--sim verilator|icarus]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dcim.golden.config import CoreConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_regress import bench_one  # noqa: E402

CASES = {
    "default": CoreConfig(),
    "one-lane": CoreConfig(dpu_lanes=1),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--vectors", type=int, default=2000)
    ap.add_argument("--view", default="rtl", choices=("rtl", "fast"))
    ap.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    ap.add_argument("--out", type=Path, default=Path("build/bench_utilization"))
    ns = ap.parse_args(argv)
    results = []
    for name in ns.cases.split(","):
        if name not in CASES:
            ap.error(f"--cases: unknown case {name!r}; allowed: {', '.join(CASES)}")
        cfg = CASES[name]
        res = bench_one(cfg, ns.view, ns.sim, ns.vectors, ns.out / name)
        res.update(case=name, predicted=cfg.array_utilization(), bound=cfg.pass_bound(),
                   dpu_lanes=cfg.dpu_lanes, x_stream_bits=cfg.x_stream_bits,
                   y_stream_bits=cfg.y_stream_bits)
        results.append(res)
        print(f"{name:<9} {res['size']:>6} dpu_lanes {cfg.dpu_lanes:<3} x/y {cfg.x_stream_bits}/"
              f"{cfg.y_stream_bits} bits  {ns.vectors} vectors: array utilization "
              f"{100 * res['utilization']:5.1f} % measured (BUSY_CYCLES {res['busy_cycles']} / "
              f"CYCLES {res['csr_cycles']}), {100 * res['predicted']:5.1f} % predicted "
              f"(bound: {res['bound']})", flush=True)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
