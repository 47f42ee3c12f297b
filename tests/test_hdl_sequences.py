"""The cocotb tests' stimulus on the Amaranth simulator: one stimulus for both testbenches.

The CSR sweep of ``test_csr`` (:func:`dcim.verif.csr_sweep.csr_sweep`) and the sequences of
``test_random`` and ``test_k_tiled`` (:mod:`dcim.verif.sequences`) drive the core through
:class:`amaranth_tb.AmaranthTB`; the testbench's model and scoreboard check every result
packet, and the expected values here come from golden/ and the contract, not from the model.
"""

from __future__ import annotations

import numpy as np
from amaranth_tb import AmaranthTB
from hdl_helpers import DpuStandin

from dcim.golden.config import CoreConfig
from dcim.golden.model import accumulate, dpu, mvm, mvm_tiled
from dcim.hdl.regmap import Access
from dcim.verif.csr_sweep import csr_sweep
from dcim.verif.sequences import k_tiled, rand_dpu, rand_weights, random_passes


def test_csr_sweep():
    """The sweep of cocotb's ``test_csr`` (:func:`dcim.verif.csr_sweep.csr_sweep`)."""
    cfg = CoreConfig(rows=8, cols=4, x_stream_bits=32)
    bench = AmaranthTB(cfg)
    checks = []

    async def main(b):
        checks.append(await csr_sweep(b, np.random.default_rng(7)))

    bench.run(main, results=False)
    regs = bench.regs
    rw = sum(any(f.access is Access.RW for f in r.fields) for r in regs.registers.values())
    read_only = sum(r.read_only for r in regs.registers.values())
    unmapped = len(regs.unmapped_addresses())
    assert checks[0] >= len(regs.registers) + read_only + 2 * rw + 2 * unmapped


def test_random_passes_sequence():
    """``test_random``'s stimulus (random weights, DPU settings, passes with random ACC) in
    raw and DPU mode; the partial sums carry over the mode change."""
    cfg = CoreConfig(rows=8, cols=4, serial_bits=2, tree_regs=1)
    rng = np.random.default_rng(9)
    W, params = rand_weights(cfg, rng), rand_dpu(cfg, rng)
    plan = {raw: random_passes(cfg, rng, 6) for raw in (True, False)}
    bench = AmaranthTB(cfg, seed=9, stall=0.3)

    async def main(b):
        await b.load_weights(W)
        await b.set_dpu(params)
        sent = 0
        for raw in (True, False):
            await b.set_ctrl(raw=raw)  # CTRL changes only when no pass is in flight
            for p in plan[raw]:
                await b.send_vector(p.x, acc=p.acc, emit=p.emit)
            sent += len(plan[raw])
            await b.wait_packets(sent)

    bench.run(main)
    psum, expected = np.zeros(cfg.cols, dtype=np.int64), []
    for raw in (True, False):
        for p in plan[raw]:
            psum = accumulate(cfg, psum if p.acc else 0, mvm(cfg, W, p.x)[0])
            expected.append(psum.tolist() if raw else dpu(cfg, psum, params).tolist())
    assert any(p.acc for ps in plan.values() for p in ps)
    got = [bench.result(i, raw=i < len(plan[True])) for i in range(len(bench.packets))]
    assert got == expected


def test_k_tiled_sequence():
    """``test_k_tiled``'s layers (weights reloaded per tile, ACC, EMIT on the last tile) equal
    :func:`dcim.golden.model.mvm_tiled`."""
    cfg = CoreConfig(rows=8, cols=4, serial_bits=2, tree_regs=1)
    rng = np.random.default_rng(8)
    layers = [k_tiled(cfg, rng, depth) for depth in (3 * cfg.rows, 2 * cfg.rows + cfg.rows // 3)]
    bench = AmaranthTB(cfg, dpu_factory=DpuStandin, seed=8, stall=0.3)

    async def main(b):
        await b.set_ctrl(raw=True)
        for _, _, tiles in layers:
            for w, p in tiles:
                await b.wait_passes()
                await b.load_weights(w)
                await b.send_vector(p.x, acc=p.acc, emit=p.emit)
        await b.wait_packets(len(layers))

    bench.run(main)
    assert [len(t) for _, _, t in layers] == [3, 3]
    for i, (W, x, _) in enumerate(layers):
        assert bench.result(i, raw=True) == mvm_tiled(cfg, W, x)[0].tolist(), f"layer {i}"
