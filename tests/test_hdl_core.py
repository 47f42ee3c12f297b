"""The whole core in Amaranth's simulator against the golden model (bit-exact)."""

from __future__ import annotations

import numpy as np
import pytest
from hdl_helpers import CoreBench, DpuStandin

from dcim.golden.config import CoreConfig
from dcim.golden.model import accumulate, mvm
from dcim.hdl.regmap import MAGIC

FAST_GRID = [
    dict(rows=1, cols=1, act_bits=1, weight_bits=1, dpu_residual=False),
    dict(rows=8, cols=4, serial_bits=2, tree_regs=1),
    dict(rows=5, cols=3, act_bits=4, serial_bits=4, weight_signed=False, act_signed=False,
         x_stream_bits=16, w_stream_bits=8, y_stream_bits=32),
    dict(rows=6, cols=6, act_bits=6, weight_bits=5, serial_bits=2, tree_regs=3, psum_bits=20,
         dpu_lanes=3, x_stream_bits=24),
]
SLOW_GRID = [
    dict(rows=16, cols=8, serial_bits=1),
    dict(rows=16, cols=8, serial_bits=8, tree_regs=4, y_stream_bits=128),
    dict(rows=7, cols=9, act_bits=8, serial_bits=4, act_signed=False, dpu_lanes=9),
    dict(rows=12, cols=5, act_bits=2, weight_bits=3, serial_bits=1, weight_signed=False),
    dict(rows=32, cols=2, tree_regs=2, x_stream_bits=256),
    dict(rows=3, cols=16, act_bits=8, serial_bits=2, w_stream_bits=128, dpu_lanes=4),
]


def _cfg_id(kw):
    return "-".join(f"{k}{v}" for k, v in kw.items())


def corner_vectors(cfg, bits, rng, count):
    """Random and corner activation vectors at ``bits`` runtime bits."""
    lo, hi = cfg.act_range_at(bits)
    corners = [np.full(cfg.rows, lo), np.full(cfg.rows, hi), np.zeros(cfg.rows, int),
               np.resize([lo, hi], cfg.rows), np.eye(1, cfg.rows, cfg.rows // 2, int)[0] * hi]
    rand = [rng.integers(lo, hi + 1, cfg.rows) for _ in range(count)]
    return [np.asarray(v, dtype=np.int64) for v in corners + rand]


def corner_weights(cfg, rng):
    lo, hi = cfg.weight_range
    W = rng.integers(lo, hi + 1, (cfg.rows, cfg.cols))
    W[0, :] = lo
    if cfg.rows > 1:
        W[1, :] = hi
    return W


def run_raw(kw, seed=0, stall=0.3, count=3, ktile=True):
    """Every runtime precision, RAW results, with K-tiled accumulation over several passes."""
    cfg = CoreConfig(**kw)
    rng = np.random.default_rng(seed)
    W = corner_weights(cfg, rng)
    plan = []  # (bits, x, acc, emit)
    for bits in range(1, cfg.act_bits + 1):
        for x in corner_vectors(cfg, bits, rng, count):
            plan.append((bits, x, False, True))
    if ktile:
        for x in corner_vectors(cfg, cfg.act_bits, rng, 2):
            plan.append((cfg.act_bits, x, True, False))
        plan.append((cfg.act_bits, corner_vectors(cfg, cfg.act_bits, rng, 1)[-1], True, True))
    bench = CoreBench(cfg, dpu_factory=DpuStandin, seed=seed, stall=stall)
    ctrl = bench.regs["CTRL"].offset

    async def main(b, ctx):
        await b.load_weights(ctx, W)
        current = None
        for n, (bits, x, acc, emit) in enumerate(plan):
            if bits != current:  # change CTRL only when idle
                await b.wait_packets(ctx, sum(p[3] for p in plan[:n]))
                assert await b.write(ctx, ctrl, bits | 16) == 0
                current = bits
            await b.send_x(ctx, x, acc=acc, emit=emit)
        await b.wait_packets(ctx, sum(p[3] for p in plan))

    bench.run(main)
    expected = []
    psum = np.zeros(cfg.cols, dtype=np.int64)
    for bits, x, acc, emit in plan:
        result = mvm(cfg, W, x, act_bits=bits)[0]
        psum = accumulate(cfg, psum if acc else 0, result)
        if emit:
            expected.append(psum.tolist())
    got = [bench.result(i, raw=True) for i in range(len(bench.packets))]
    assert len(got) == len(expected) > 0
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g == e, f"result {i}: {g} != {e}"
    return bench


@pytest.mark.parametrize("kw", FAST_GRID, ids=_cfg_id)
def test_raw_bit_exact_fast(kw):
    run_raw(kw)


@pytest.mark.slow
@pytest.mark.parametrize("kw", SLOW_GRID, ids=_cfg_id)
def test_raw_bit_exact_grid(kw):
    run_raw(kw, seed=1, count=4)
