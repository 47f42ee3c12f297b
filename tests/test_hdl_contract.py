"""Rules of docs/core.md a testbench written from the contract alone relies on, pinned in
Amaranth's simulator: W_ROW's legal range, reset and the partial sums, AXI4-Lite arbitration
and AW/W arriving apart, lanes past rows/cols, a core without a residual port. Every result
packet is also checked against the cocotb testbench's model (:mod:`amaranth_tb`)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth_tb import AmaranthTB
from hdl_helpers import DpuStandin

from dcim.golden.config import CoreConfig
from dcim.golden.model import mvm


@pytest.mark.parametrize("rows", [16, 20])
def test_w_row_write_of_a_value_of_rows_or_more_is_ignored(rows):
    """W_ROW keeps its value on a write >= rows, also where the low bits would be a legal row
    (16 at 16 rows reads 0 if truncated; 33 at 20 rows read 1 before); the next weight row
    lands at the kept W_ROW (the array is zero first: the model computes only with rows it
    has seen loaded)."""
    cfg = CoreConfig(rows=rows, cols=2, w_stream_bits=16)
    bench = AmaranthTB(cfg, dpu_factory=DpuStandin)
    w_row = bench.regs["W_ROW"].offset
    bad = [rows, rows + 3, 33, 64 + 5, 1 << 16 | 2, 0x80000001, 0xFFFFFFFF]
    seen = []

    async def main(b):
        await b.load_weights(np.zeros((rows, cfg.cols), dtype=np.int64))
        await b.write_reg("W_ROW", ROW=5)
        seen.append(await b.read(w_row))
        for value in bad:
            assert await b.write(w_row, value) == 0  # OKAY: mapped, value ignored
            seen.append(await b.read(w_row))
        await b.write_reg("W_ROW", ROW=rows - 1)
        seen.append(await b.read(w_row))
        await b.send("s_axis_w", [0x0201])                  # row rows-1: weights 1, 2
        await b.tick(4)
        seen.append(await b.read(w_row))                    # wrapped to 0
        # The row landed at rows-1: a one-hot activation vector picks it out.
        x = [0] * rows
        x[rows - 1] = 3
        await b.set_ctrl(run_bits=cfg.act_bits, raw=True)
        await b.send_vector(x)
        await b.wait_packets(1)

    bench.run(main)
    assert seen == [(5, 0)] * (1 + len(bad)) + [(rows - 1, 0), (0, 0)]
    assert bench.result(0, raw=True) == [3, 6]


def test_reset_clears_partial_sums_not_weights():
    """A non-emitting pass leaves a partial sum; after reset an ACC+EMIT pass gives its own
    result only (reset zeroed the partial sums), computed with the weights loaded before the
    reset (the array is not cleared)."""
    cfg = CoreConfig(rows=4, cols=3, x_stream_bits=32, w_stream_bits=32)
    rng = np.random.default_rng(3)
    W = rng.integers(-128, 128, (4, 3))
    x1, x2 = rng.integers(-128, 128, 4), rng.integers(-128, 128, 4)
    bench = AmaranthTB(cfg, dpu_factory=DpuStandin)

    async def main(b):
        await b.load_weights(W)
        await b.set_ctrl(run_bits=cfg.act_bits, raw=True)
        await b.send_vector(x1, acc=False, emit=False)
        await b.send_vector(x2, acc=True, emit=True)      # before reset: x1 + x2
        await b.wait_packets(1)
        await b.reset(2)
        await b.set_ctrl(run_bits=cfg.act_bits, raw=True)  # reset cleared RAW
        await b.send_vector(x2, acc=True, emit=True)      # after reset: x2 only
        await b.wait_packets(2)

    bench.run(main)
    assert bench.result(0, raw=True) == (mvm(cfg, W, x1) + mvm(cfg, W, x2))[0].tolist()
    assert bench.result(1, raw=True) == mvm(cfg, W, x2)[0].tolist()


def test_axil_write_wins_over_read_and_waits_for_both_aw_and_w():
    """A write (AW and W both valid) and a read presented in the same cycle: the write is
    taken first, the read after it (and sees the written value). AW alone, or W alone, is not
    accepted; both readies rise in the cycle both valids are high."""
    cfg = CoreConfig(rows=4, cols=2)
    bench = AmaranthTB(cfg, dpu_factory=DpuStandin)
    out_zp = bench.regs["OUT_ZP"].offset
    log = {}

    async def main(b):
        ctx, bus = b.ctx, b.dut.s_axil
        ctx.set(bus.bready, 1)
        ctx.set(bus.rready, 1)
        # AW alone for 5 cycles: no awready; then W too: both readies in that cycle.
        ctx.set(bus.awaddr, out_zp)
        ctx.set(bus.awvalid, 1)
        alone = []
        for _ in range(5):
            alone.append((ctx.get(bus.awready), ctx.get(bus.wready)))
            await b.tick()
        ctx.set(bus.wdata, 0x11)
        ctx.set(bus.wvalid, 1)
        log["both"] = (ctx.get(bus.awready), ctx.get(bus.wready))
        await b.tick()
        ctx.set(bus.awvalid, 0)
        ctx.set(bus.wvalid, 0)
        while not ctx.get(bus.bvalid):
            await b.tick()
        await b.tick()
        # W alone: no wready.
        ctx.set(bus.wdata, 0x22)
        ctx.set(bus.wvalid, 1)
        w_alone = []
        for _ in range(3):
            w_alone.append((ctx.get(bus.awready), ctx.get(bus.wready)))
            await b.tick()
        # Now AW and AR together with the waiting W: the write goes first.
        ctx.set(bus.awvalid, 1)
        ctx.set(bus.araddr, out_zp)
        ctx.set(bus.arvalid, 1)
        log["race"] = (ctx.get(bus.awready), ctx.get(bus.wready), ctx.get(bus.arready))
        await b.tick()
        ctx.set(bus.awvalid, 0)
        ctx.set(bus.wvalid, 0)
        order = []
        for _ in range(12):
            ar = ctx.get(bus.arready)
            if ctx.get(bus.bvalid):
                order.append("b")
            if ar:
                order.append("ar")
            if ctx.get(bus.rvalid):
                order.append("r")
                log["rdata"] = ctx.get(bus.rdata)
            await b.tick()
            if ar:
                ctx.set(bus.arvalid, 0)
        log["alone"], log["w_alone"], log["order"] = alone, w_alone, order

    bench.run(main, results=False)
    assert log["alone"] == [(0, 0)] * 5 and log["w_alone"] == [(0, 0)] * 3
    assert log["both"] == (1, 1)
    assert log["race"] == (1, 1, 0)
    assert log["order"][:3] == ["b", "ar", "r"] and log["rdata"] == 0x22


def test_lanes_past_rows_and_cols_are_ignored_and_zero():
    """Activation lanes past rows and weight lanes past cols carry garbage that changes
    nothing; raw result lanes past cols are 0."""
    cfg = CoreConfig(rows=5, cols=3, x_stream_bits=64, w_stream_bits=64, y_stream_bits=128)
    rng = np.random.default_rng(5)
    W = rng.integers(-128, 128, (5, 3))
    x = rng.integers(-128, 128, 5)
    bench = AmaranthTB(cfg, dpu_factory=DpuStandin)

    def with_garbage(values, lanes):
        word = 0
        for i in range(lanes):
            byte = int(values[i]) & 0xFF if i < len(values) else int(rng.integers(1, 256))
            word |= byte << (8 * i)
        return word

    async def main(b):
        await b.write_reg("W_ROW", ROW=0)
        for row in W:
            await b.send("s_axis_w", [with_garbage(row, 8)])
        await b.set_ctrl(run_bits=cfg.act_bits, raw=True)
        await b.send("s_axis_x", [with_garbage(x, 8)], user=2)
        await b.wait_packets(1)

    bench.run(main)
    (beat,) = bench.packets[0]
    lanes = [(beat >> (32 * i)) & 0xFFFFFFFF for i in range(4)]
    want = [v & 0xFFFFFFFF for v in mvm(cfg, W, x)[0].tolist()]
    assert lanes == want + [0]


def test_core_without_residual_port_has_no_residual_registers():
    """dpu_residual=False: RES_MULT/RES_SHIFT/RES_ZP answer SLVERR (read 0); CTRL bit 5
    (RES_EN with a residual port) and STATUS bit 10 (ERR_R_LEN) are unused bits: they read
    0."""
    cfg = CoreConfig(rows=4, cols=2, dpu_residual=False)
    bench = AmaranthTB(cfg, dpu_factory=DpuStandin)
    ctrl = bench.regs["CTRL"].offset
    got = {}

    async def main(b):
        for offset in (0x6C, 0x70, 0x74):
            got[offset] = (await b.write(offset, 5), await b.read(offset))
        await b.write(ctrl, cfg.act_bits | 1 << 5)
        got["ctrl"] = await b.read(ctrl)
        await b.send("s_axis_x", [0] * (cfg.x_beats + 1))  # a long packet
        got["status"] = await b.read(b.regs["STATUS"].offset)

    bench.run(main, results=False)
    assert all(got[o] == (2, (0, 2)) for o in (0x6C, 0x70, 0x74)), got
    assert got["ctrl"] == (cfg.act_bits, 0)
    assert got["status"] == (1 << 9, 0)  # ERR_X_LEN only
    assert bench.model.errors["x_len"] == 1
