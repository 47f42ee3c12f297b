"""Wall time and peak memory of `dcim generate` per array size (each size in its own process).

Prints one row per size: rows x cols, seconds, peak RSS (MB), Verilog size (MB). Sizes run one
after another in child processes, so every row's RSS is that generation's alone.
Run: `.venv/bin/python bench/bench_generate.py [--sizes 64x32,4096x256,256x4096]`.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _one(rows: int, cols: int) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "dcim.sim.cli", "generate", "--rows", str(rows),
                        "--cols", str(cols), "-q", "-o", tmp], check=True,
                       stdout=subprocess.DEVNULL, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
        seconds = time.monotonic() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        size = (Path(tmp) / "dcim_core.v").stat().st_size
    # ru_maxrss of children is the largest child so far: sizes are run smallest first.
    return seconds, max(peak, before) / 1024, size / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64x32,256x256,4096x256,256x4096",
                    help="comma-separated ROWSxCOLS, smallest first")
    args = ap.parse_args()
    print(f"{'size':>10}  {'seconds':>8}  {'peak MB':>8}  {'verilog MB':>10}")
    for item in args.sizes.split(","):
        rows, cols = (int(v) for v in item.lower().split("x"))
        seconds, peak, size = _one(rows, cols)
        print(f"{rows:>4}x{cols:<5}  {seconds:8.1f}  {peak:8.0f}  {size:10.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
