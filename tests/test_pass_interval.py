"""The pass interval of back-to-back vectors measured on the RTL (Amaranth's simulator) equals
``CoreConfig.pass_interval``: raw and DPU results, accumulating passes, and the configurations
where the array, the activation stream, the result stream or the DPU sets it."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth_tb import AmaranthTB

from dcim.golden.config import CoreConfig

GRID = [
    dict(rows=16, cols=8, dpu_lanes=1),                           # 8 groups = 8 compute cycles
    dict(rows=16, cols=8, serial_bits=4, dpu_lanes=1),            # DPU: 8 groups, 2 cycles
    dict(rows=64, cols=4, x_stream_bits=32),                      # activation stream: 16 beats
    dict(rows=16, cols=16, serial_bits=4, dpu_lanes=16, y_stream_bits=32),  # 4 int8 beats
    dict(rows=8, cols=12, dpu_lanes=12, tree_regs=2, y_stream_bits=64),     # 1 group, 2 beats
    dict(rows=12, cols=6, act_bits=4, dpu_lanes=3, y_stream_bits=64),
    dict(rows=16, cols=8, serial_bits=8, dpu_lanes=4, x_stream_bits=128),   # 1-cycle passes
    dict(),                                                       # the default: balanced
]

#: Vectors sent back to back, and the first gaps left out (the pipeline filling: the DPU's
#: stages and the two result banks absorb a slower output stage for a dozen passes).
N_VEC, SKIP = 40, 24


def _measure(cfg: CoreConfig, raw: bool, emit: bool, n: int = N_VEC) -> list[int]:
    """The distinct gaps between pass commits of ``n`` vectors sent back to back, after the
    first ``SKIP``."""
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
        gaps.extend(np.diff(b.updates[start:])[SKIP:].tolist())

    bench.run(main, results=False)
    assert len(gaps) == n - 1 - SKIP
    return sorted(set(gaps))


@pytest.mark.parametrize("kw", GRID, ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
@pytest.mark.parametrize("mode", ["raw", "dpu", "accumulate"])
def test_measured_pass_interval_is_the_configs(kw, mode):
    cfg = CoreConfig(**kw)
    raw, emit = mode == "raw", mode != "accumulate"
    assert _measure(cfg, raw, emit) == [cfg.pass_interval(raw=raw, emit=emit)]


def test_the_bound_of_each_grid_point():
    # what each point of the grid exercises, worked by hand from the beat counts:
    # (compute cycles, x beats, DPU groups, int8 beats) = (8, 2, 8, 1), (2, 2, 8, 1),
    # (8, 16, 4, 1), (2, 2, 1, 4), (8, 1, 1, 2), (4, 2, 2, 1), (1, 1, 2, 1), (8, 8, 8, 4)
    bounds = [CoreConfig(**kw).pass_bound() for kw in GRID]
    assert bounds == ["array", "DPU", "activation stream", "result stream", "array", "array",
                      "DPU", "array"]
    # raw: 4, 4, 2, 16, 6, 3, 4, 16 int32 beats (+ 1)
    assert [CoreConfig(**kw).pass_bound(raw=True) for kw in GRID] == [
        "array", "result stream", "activation stream", "result stream", "array", "array",
        "result stream", "result stream"]


def test_the_default_configuration_is_balanced():
    # 64 rows x 32 columns, 8-bit activations one bit per cycle: a pass every 8 cycles needs
    # 32 / 8 = 4 DPU lanes, 64 / 8 = 8 activation bytes and 32 / 8 = 4 result bytes per beat
    cfg = CoreConfig()
    assert (cfg.dpu_lanes, cfg.x_stream_bits, cfg.y_stream_bits) == (4, 64, 64)
    assert cfg.pass_interval() == 8 and cfg.array_utilization() == 1.0


@pytest.mark.parametrize("kw, lanes, x_bits, y_bits", [
    (dict(rows=256, cols=256), 32, 256, 256),                  # 8 cycles: 32 lanes, 32 bytes
    (dict(rows=16, cols=8, serial_bits=4), 4, 64, 64),          # 2 cycles: 4 lanes
    (dict(rows=512, cols=96, act_bits=4, serial_bits=2), 48, 2048, 512),  # 2 cycles
    (dict(cols=30), 5, 64, 64),                                 # 30 / 8: the divisor 5
])
def test_automatic_fields_are_the_balanced_values(kw, lanes, x_bits, y_bits):
    cfg = CoreConfig(**kw)
    assert (cfg.dpu_lanes, cfg.x_stream_bits, cfg.y_stream_bits) == (lanes, x_bits, y_bits)
    assert cfg.pass_bound() == "array"
    # explicit values are kept, automatic ones follow a replace
    assert CoreConfig(**kw, dpu_lanes=1).replace(rows=8).dpu_lanes == 1
    assert cfg.replace(cols=2 * cfg.cols).dpu_lanes == 2 * lanes
