"""The pass interval of back-to-back vectors measured on the RTL (Amaranth's simulator) equals
``CoreConfig.pass_interval``: raw and DPU results, accumulating passes, and the configurations
where the array, the activation stream, the result stream or the DPU sets it."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth_tb import AmaranthTB

from dcim.golden.config import CoreConfig

GRID = [
    dict(rows=16, cols=8),                                        # DPU-bound, 8 groups
    dict(rows=16, cols=8, serial_bits=4),                         # 2 compute cycles
    dict(rows=64, cols=4, x_stream_bits=32),                      # activation stream: 16 beats
    dict(rows=8, cols=24, y_stream_bits=32, dpu_lanes=8),         # result stream: 6 / 24 beats
    dict(rows=8, cols=12, dpu_lanes=12, tree_regs=2),             # one DPU group, 2 int8 beats
    dict(rows=12, cols=6, act_bits=4, dpu_lanes=3, y_stream_bits=64),
]


def _measure(cfg: CoreConfig, raw: bool, emit: bool, n: int = 8) -> list[int]:
    """The distinct gaps between pass commits of ``n`` vectors sent back to back, after the
    first two (the pipeline filling)."""
    bench = AmaranthTB(cfg)
    gaps = []

    async def main(b):
        await b.load_weights(np.zeros((cfg.rows, cfg.cols), int))
        await b.set_ctrl(run_bits=cfg.act_bits, raw=raw, res_en=False)
        start = len(b.updates)
        for _ in range(n):
            await b.send_vector(np.zeros(cfg.rows, int), emit=emit)
        if emit:
            await b.wait_packets(n)
        else:
            await b.tick(n * cfg.pass_interval(emit=False) + 4 * cfg.pass_latency())
        gaps.extend(np.diff(b.updates[start:])[2:].tolist())

    bench.run(main, results=False)
    assert len(gaps) == n - 3
    return sorted(set(gaps))


@pytest.mark.parametrize("kw", GRID, ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
@pytest.mark.parametrize("mode", ["raw", "dpu", "accumulate"])
def test_measured_pass_interval_is_the_configs(kw, mode):
    cfg = CoreConfig(**kw)
    raw, emit = mode == "raw", mode != "accumulate"
    assert _measure(cfg, raw, emit) == [cfg.pass_interval(raw=raw, emit=emit)]


def test_the_bound_of_each_grid_point():
    # what each point of the grid exercises, worked by hand from the beat counts
    bounds = [CoreConfig(**kw).pass_bound() for kw in GRID]
    assert bounds == ["DPU", "DPU", "activation stream", "result stream", "result stream", "DPU"]
    # raw: 4, 4, 2, 24, 6, 3 int32 beats (+ 1) against 8, 2, 8, 8, 8, 4 compute cycles
    assert [CoreConfig(**kw).pass_bound(raw=True) for kw in GRID] == [
        "array", "result stream", "activation stream", "result stream", "array", "array"]
