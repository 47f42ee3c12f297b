"""cocotb tests of the DPU's requantization at every scale, run by :mod:`dcim.sim.runner` after
:mod:`dcim.verif.test_swaps`, with the same harness (:mod:`dcim.verif.harness`).

TFLite's multipliers are normalized into [2**30, 2**31) and the typical shifts are large, so the
low bits of the DPU's products never reach the rounding point in :mod:`dcim.verif.test_core`:
`dcim mutate` found mutants of those bits (and of the residual's rescale) that every other test
passes. The DPU takes any multiplier in [0, 2**31): these tests use multipliers of random
magnitude (:func:`~dcim.verif.sequences.scaled_dpu`).
"""

from __future__ import annotations

from .harness import core_test, load_random_weights, record, send_and_drain, start
from .sequences import rand_vectors, scaled_dpu

#: DPU table sets of :func:`test_dpu_scales`, and vectors per set (and per residual mode).
SETS, VECTORS = 8, 8


@core_test(lambda e: SETS * VECTORS * (2 if e.cfg.dpu_residual else 1), 1, SETS)
async def test_dpu_scales(dut):
    """Random weights and vectors under DPU tables whose multipliers have random magnitudes
    and shifts that keep typical outputs inside int8; with the residual port, each set also
    with random residuals through a residual rescale of random magnitude. Every other set
    takes vectors of 2-bit magnitude with a scale to match (larger): a partial sum's low
    bits then move the outputs by a large part of one step."""
    tb = await start(dut, "test_dpu_scales")
    cfg = tb.cfg
    await load_random_weights(tb)
    for i in range(SETS):
        bits = cfg.act_bits if i % 2 == 0 else min(2, cfg.act_bits)
        await tb.set_dpu(scaled_dpu(cfg, tb.rng, bits))
        for res in (False, True) if cfg.dpu_residual else (False,):
            await tb.set_ctrl(raw=False, res_en=res)
            await send_and_drain(tb, rand_vectors(cfg, tb.rng, VECTORS, bits), res)
    tb.finish()
    record("test_dpu_scales", tb)
