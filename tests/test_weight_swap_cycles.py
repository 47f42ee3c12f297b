"""The weight-load overlap of two weight sets measured on the RTL (Amaranth's simulator) against
the mapping's cycle model (:func:`dcim.golden.quant.mapping.hidden_load`).

A chain of ``n`` weight tiles, each ``rows`` row packets and then ``v`` passes, is streamed the
way ``dcim calibrate``'s mapping assumes: with one weight set each tile's rows are sent once the
previous tile's passes have committed; with two, tile ``t+1``'s rows are sent as soon as tile
``t``'s first (SWAP) vector is accepted, so they load while tile ``t`` computes. The passes
accumulate without EMIT (no result stream, no CSR set-up): each commits ``cfg.pass_interval(
emit=False)`` cycles after the one before. The measured totals must follow the model: one set
``n * (L + C)``, two sets ``L + (n-1) * max(C, L) + C`` (``L`` one tile's load, ``C`` its
passes), both up to the pipeline's few cycles per tile.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from dcim.golden.config import CoreConfig
from dcim.golden.quant.mapping import hidden_load
from dcim.hdl.core import Core
from dcim.verif.beats import pack_beats


def _chain(cfg: CoreConfig, n: int, v: int) -> tuple[int, int]:
    """Cycles from the first weight beat to the last pass commit of ``n`` tiles of ``v``
    passes each, and the cycles of the first tile's load alone (its last row accepted)."""
    top = Module()
    top.domains.sync = ClockDomain("sync")
    dut = top.submodules.core = Core(cfg)
    two = cfg.weight_sets == 2
    rng = np.random.default_rng(1)
    state = {"now": 0, "commits": 0, "loaded": [], "swapped": [], "first_load": None}
    row_beats = [pack_beats(r, 8, cfg.w_lanes) for r in rng.integers(-8, 8, (cfg.rows, cfg.cols))]
    x_beats = pack_beats(rng.integers(-8, 8, cfg.rows), 8, cfg.x_lanes)

    async def send(ctx, bus, beats, user=None):
        for i, word in enumerate(beats):
            ctx.set(bus.tdata, word)
            ctx.set(bus.tlast, int(i == len(beats) - 1))
            if user is not None:
                ctx.set(bus.tuser, user)
            ctx.set(bus.tvalid, 1)
            while not ctx.get(bus.tready):
                await ctx.tick()
            await ctx.tick()
        ctx.set(bus.tvalid, 0)

    async def weights(ctx):
        for t in range(n):
            while (len(state["swapped"]) < t if two else state["commits"] < t * v):
                await ctx.tick()
            for beats in row_beats:
                await send(ctx, dut.s_axis_w, beats)
            state["loaded"].append(state["now"])

    async def vectors(ctx):
        for t in range(n):
            while len(state["loaded"]) <= t:
                await ctx.tick()
            for i in range(v):
                swap = two and i == 0
                await send(ctx, dut.s_axis_x, x_beats, user=int(i > 0) | (int(swap) << 2))
                if swap:
                    state["swapped"].append(state["now"])

    async def clock(ctx):
        while True:
            ctx.set(dut.m_axis_y.tready, 1)
            await ctx.tick()
            state["now"] += 1
            if ctx.get(dut.accum.result.update):
                state["commits"] += 1
                state["last"] = state["now"]

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(clock, background=True)
    sim.add_testbench(weights, background=True)

    async def main(ctx):
        await vectors(ctx)
        while state["commits"] < n * v:
            await ctx.tick()
    sim.add_testbench(main)
    sim.run()
    return state["last"], state["loaded"][0]


# (passes per tile): compute-bound tiles (the loads after the first hide entirely) and
# load-bound ones (each tile's passes hide under the next load)
@pytest.mark.parametrize("v", [4, 1])
@pytest.mark.parametrize("w_stream_bits", [64, 16])  # rows of 1 and of 4 beats
def test_measured_overlap_follows_the_mapping_model(v, w_stream_bits):
    n = 4
    one = CoreConfig(rows=8, cols=8, w_stream_bits=w_stream_bits)
    two = one.replace(weight_sets=2)
    t1, load = _chain(one, n, v)
    t2, load2 = _chain(two, n, v)
    # The mapping's tile load: the weight stream never stalls, one cycle per beat.
    assert one.w_beats == 64 // w_stream_bits
    assert load2 == load == one.tile_load_cycles == one.rows * one.w_beats
    compute = v * one.pass_interval(emit=False)
    # The chain without overlap: n loads and n compute runs, plus a few pipeline cycles per
    # tile (the vector buffer, the accumulate stage, the commit).
    serial = n * (load + compute)
    assert serial <= t1 <= serial + n * (one.tree_regs + 4)
    # With two sets: the model's hidden cycles, measured as the difference, within the same
    # few pipeline cycles per tile.
    hidden = hidden_load(two, load, [(compute, n - 1)])
    assert hidden == (n - 1) * min(load, compute) > 0
    assert hidden_load(one, load, [(compute, n - 1)]) == 0
    assert abs((t1 - t2) - hidden) <= n * (one.tree_regs + 4), (t1, t2, hidden)
    overlapped = load + (n - 1) * max(compute, load) + compute
    assert overlapped <= t2 <= overlapped + n * (one.tree_regs + 4), (t2, overlapped)
