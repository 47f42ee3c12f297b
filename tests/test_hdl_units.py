"""Per-component tests in Amaranth's simulator: a column (cells, AND, adder tree) against the
golden model's per-cycle partial sums, the register placement rule, constructor errors."""

from __future__ import annotations

import gc
import warnings

import numpy as np
import pytest
from amaranth.hdl import Fragment, Module
from amaranth.sim import Simulator

from dcim.golden.config import CoreConfig
from dcim.golden.model import mvm_bitserial
from dcim.hdl.accum import Accum
from dcim.hdl.array import Array, Column, FastColumn, tree_register_levels
from dcim.hdl.core import Core
from dcim.hdl.csr import CsrBlock
from dcim.hdl.ctrl import Ctrl
from dcim.hdl.dpu import Dpu
from dcim.hdl.packer import OutputPacker
from dcim.hdl.rx import ActivationReceiver, StreamReceiver
from dcim.hdl.sequencer import PassSequencer

TREE_GRID = [
    dict(rows=1, act_bits=1, weight_bits=1),
    dict(rows=7, serial_bits=1),
    dict(rows=8, serial_bits=2, tree_regs=3),
    dict(rows=13, act_bits=8, serial_bits=4, tree_regs=2, weight_signed=False),
    dict(rows=16, act_bits=4, serial_bits=4, act_signed=False, weight_bits=3),
    dict(rows=5, act_bits=8, serial_bits=8, tree_regs=1),
]


# the csa style's own cases: registers between compressor levels, more stages than a ripple
# tree of the size has levels
CSA_GRID = [
    dict(rows=1, act_bits=1, weight_bits=1, tree_regs=1),
    dict(rows=7, serial_bits=1, tree_regs=4),
    dict(rows=6, act_bits=4, serial_bits=4, act_signed=False, weight_signed=False, tree_regs=2),
    dict(rows=9, act_bits=8, serial_bits=2, weight_bits=3, tree_regs=6),
]


def _grid_id(kw):
    return "-".join(f"{k}{v}" for k, v in kw.items())


@pytest.mark.parametrize("kw", [dict(kw, tree_style=s) for s in ("ripple", "csa")
                                for kw in TREE_GRID]
                         + [dict(kw, tree_style="csa") for kw in CSA_GRID], ids=_grid_id)
def test_column_matches_golden_partials(kw):
    cfg = CoreConfig(cols=1, **kw)
    rng = np.random.default_rng(7)
    wl, wh = cfg.weight_range
    al, ah = cfg.act_range
    cases = []
    for kind in ("lo", "hi", "rand", "rand", "alt"):
        W = {"lo": np.full((cfg.rows, 1), wl), "hi": np.full((cfg.rows, 1), wh)}.get(
            kind, rng.integers(wl, wh + 1, (cfg.rows, 1)))
        X = {"lo": np.full(cfg.rows, al), "hi": np.full(cfg.rows, ah),
             "alt": np.resize([al, ah], cfg.rows)}.get(kind, rng.integers(al, ah + 1, cfg.rows))
        cases.append((W, X))
    s, n = cfg.serial_bits, cfg.cycles_per_pass()
    dut = Column(cfg)
    got, want = [], []

    async def bench(ctx):
        for W, X in cases:
            bs = mvm_bitserial(cfg, W, X)
            # write the words through the one-hot word lines, one row per clock edge
            for k, w in enumerate(W[:, 0].tolist()):
                ctx.set(dut.wl, 1 << k)
                ctx.set(dut.wdata, w & ((1 << cfg.weight_bits) - 1))
                await ctx.tick()
            ctx.set(dut.wl, 0)
            ctx.set(dut.en, 1)
            for j in range(n):
                xbits = 0
                for k, x in enumerate(X.tolist()):
                    sl = (x >> (j * s)) & ((1 << s) - 1)
                    for i in range(s):
                        xbits |= ((sl >> i) & 1) << (i * cfg.rows + k)
                ctx.set(dut.x, xbits)
                ctx.set(dut.neg, int(j == n - 1))
                for _ in range(cfg.tree_regs):
                    await ctx.tick()
                got.append(ctx.get(dut.y))
                want.append(int(bs.partial[j, 0, 0]))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(got) == len(cases) * n and got == want


@pytest.mark.parametrize(("depth", "regs", "levels"), [
    (6, 0, []), (6, 1, [6]), (6, 2, [3, 6]), (6, 3, [2, 4, 6]), (6, 6, [1, 2, 3, 4, 5, 6]),
    (12, 4, [3, 6, 9, 12]), (3, 2, [2, 3])])
def test_tree_register_levels(depth, regs, levels):
    assert tree_register_levels(depth, regs) == levels


@pytest.mark.parametrize("cls", [Column, FastColumn, Array, Accum, Dpu, Core, Ctrl, CsrBlock,
                                 PassSequencer, OutputPacker, ActivationReceiver,
                                 StreamReceiver.weights, StreamReceiver.residuals])
def test_components_check_cfg(cls):
    # Amaranth reports unused elaboratables only once something was elaborated in the process
    Fragment.get(Module(), None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(TypeError, match=r"^cfg must be a CoreConfig, got dict$"):
            cls({})
        gc.collect()
    # the half-built component is not reported as an unused elaboratable
    assert [w.message for w in caught] == []
