"""Shared helpers of the Amaranth-simulator tests of the core (not a test module)."""

from __future__ import annotations

from amaranth.hdl import ClockDomain, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from dcim.hdl.dpu import DpuParamsSignature, TableBusSignature, input_layout, output_layout
from dcim.hdl.regmap import RegMap


class DpuStandin(wiring.Component):
    """A stand-in with the DPU's interface for tests that do not check DPU arithmetic:
    ``y = clamp(psum, act_min, act_max)`` per lane, one cycle of latency; tables are plain
    registers read back unchanged."""

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "i": In(stream.Signature(input_layout(cfg))),
            "o": Out(stream.Signature(output_layout(cfg))),
            "tables": In(TableBusSignature(cfg)), "params": In(DpuParamsSignature(cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        tbl, par = self.tables, self.params
        selects = [t.select for t in RegMap(cfg).tables]
        tables = {s: [Signal(32, name=f"t{s}_{c}") for c in range(cfg.cols)] for s in selects}
        for s in selects:
            for c in range(cfg.cols):
                with m.If(tbl.we & (tbl.sel == s) & (tbl.addr == c)):
                    m.d.sync += tables[s][c].eq(tbl.wdata)
                with m.If((tbl.sel == s) & (tbl.addr == c)):
                    m.d.sync += tbl.rdata.eq(tables[s][c])
        with m.If(self.o.ready | ~self.o.valid):
            m.d.sync += self.o.valid.eq(self.i.valid)
            m.d.sync += self.o.payload.last.eq(self.i.payload.last)
            for lane in range(cfg.dpu_lanes):
                p = self.i.payload.psum[lane]
                m.d.sync += self.o.payload.y[lane].eq(
                    Mux(p > par.act_max, par.act_max, Mux(p < par.act_min, par.act_min, p)))
        m.d.comb += self.i.ready.eq(self.o.ready | ~self.o.valid)
        return m


# ------------------------------------------------------------------------------------------
# The address map as docs/core.md states it (typed from the document, not taken from RegMap):
# register offsets, table bases, 4-byte table stride, address bits 1..0 ignored, an entry at
# or past cols and every other address unmapped.
DOC_REGISTERS = {0x00: "MAGIC", 0x04: "VERSION", 0x08: "ROWS", 0x0C: "COLS", 0x10: "PREC",
                 0x14: "DPU", 0x18: "WIDTHS", 0x1C: "STREAMS", 0x40: "CTRL", 0x44: "STATUS",
                 0x48: "PASSES", 0x4C: "W_ROW", 0x60: "OUT_ZP", 0x64: "ACT_MIN",
                 0x68: "ACT_MAX"}
DOC_RESIDUAL_REGISTERS = {0x6C: "RES_MULT", 0x70: "RES_SHIFT", 0x74: "RES_ZP"}
DOC_TABLES = {"BIAS": 0x4000, "MULT": 0x8000, "SHIFT": 0xC000}


def doc_decode(addr, cols, residual):
    """What docs/core.md says ``addr`` reaches: a register name, ``(table, column)`` or None."""
    word = addr & 0xFFFC
    for name, base in DOC_TABLES.items():
        if base <= word < base + 4 * cols:
            return name, (word - base) // 4
    regs = DOC_REGISTERS | (DOC_RESIDUAL_REGISTERS if residual else {})
    return regs.get(word)


# ------------------------------------------------------------------------------------------
# A cycle-driven bench of the whole core in Amaranth's simulator.

import random  # noqa: E402

import numpy as np  # noqa: E402
from amaranth.sim import Simulator  # noqa: E402

from dcim.hdl.core import Core  # noqa: E402


def pack_bytes(values, lanes, bits=8):
    """Beats (ints) carrying ``values`` one per byte lane (low ``bits`` bits of each)."""
    mask = (1 << bits) - 1
    beats = []
    for start in range(0, len(values), lanes):
        word = 0
        for i, v in enumerate(values[start:start + lanes]):
            word |= (int(v) & mask) << (8 * i)
        beats.append(word)
    return beats


def unpack_lanes(beats, lane_bits, lanes_per_beat, count):
    """The first ``count`` two's complement lanes of ``lane_bits`` from beats (ints)."""
    out = []
    for word in beats:
        for i in range(lanes_per_beat):
            v = (word >> (i * lane_bits)) & ((1 << lane_bits) - 1)
            out.append(v - (1 << lane_bits) if v >> (lane_bits - 1) else v)
    return out[:count]


class CoreBench:
    """Drives a :class:`Core` through its AXI ports in the Amaranth simulator.

    ``stall`` is the probability of an idle cycle before each input beat and of a low
    ``tready`` on the result stream in each cycle.
    """

    def __init__(self, cfg, dpu_factory=None, seed=0, stall=0.0):
        self.cfg = cfg
        self.dut = Core(cfg, dpu_factory=dpu_factory)
        self.regs = RegMap(cfg)
        self.rng = random.Random(seed)
        self.stall = stall
        self.now = 0            # cycles seen by the main testbench
        self.packets = []       # result packets: lists of beats
        self.first_valid = []   # cycle of the first tvalid of each result packet
        self.updates = []       # cycles in which a pass committed
        self.x_last = []        # cycle of the last-beat handshake of each activation packet
        self.block = False      # hold the result stream's tready low

    # -- main-side primitives
    async def tick(self, ctx, n=1):
        for _ in range(n):
            await ctx.tick()
            self.now += 1

    async def _transaction(self, ctx, request, ready, response, response_valid, accept):
        """Raise the ``request`` valids until ``ready``, then take the response."""
        for sig, value in request:
            ctx.set(sig, value)
        ctx.set(accept, 1)
        while not ctx.get(ready):
            await self.tick(ctx)
        await self.tick(ctx)
        for sig, _ in request:
            if len(sig) == 1:
                ctx.set(sig, 0)
        while not ctx.get(response_valid):
            await self.tick(ctx)
        out = [ctx.get(sig) for sig in response]
        await self.tick(ctx)
        ctx.set(accept, 0)
        return out

    async def write(self, ctx, addr, value):
        """AXI4-Lite write; returns bresp."""
        bus = self.dut.s_axil
        (resp,) = await self._transaction(
            ctx, [(bus.awaddr, addr), (bus.wdata, value & 0xFFFFFFFF), (bus.awvalid, 1),
                  (bus.wvalid, 1)], bus.awready, [bus.bresp], bus.bvalid, bus.bready)
        return resp

    async def read(self, ctx, addr):
        """AXI4-Lite read; returns (rdata, rresp)."""
        bus = self.dut.s_axil
        data, resp = await self._transaction(
            ctx, [(bus.araddr, addr), (bus.arvalid, 1)], bus.arready, [bus.rdata, bus.rresp],
            bus.rvalid, bus.rready)
        return data, resp

    async def send(self, ctx, bus, beats, user=None, last_at=None):
        """Send one packet; ``last_at`` puts ``tlast`` on another beat index (or None: the
        last one). Returns the cycle of the last handshake."""
        last_at = len(beats) - 1 if last_at is None else last_at
        for i, word in enumerate(beats):
            while self.stall and self.rng.random() < self.stall:
                ctx.set(bus.tvalid, 0)
                await self.tick(ctx)
            ctx.set(bus.tdata, word)
            ctx.set(bus.tlast, int(i == last_at))
            if user is not None:
                ctx.set(bus.tuser, user)
            ctx.set(bus.tvalid, 1)
            while not ctx.get(bus.tready):
                await self.tick(ctx)
            done = self.now
            await self.tick(ctx)
        ctx.set(bus.tvalid, 0)
        return done

    async def load_weights(self, ctx, W):
        cfg = self.cfg
        await self.write(ctx, self.regs["W_ROW"].offset, 0)
        for row in np.asarray(W).tolist():
            await self.send(ctx, self.dut.s_axis_w,
                            pack_bytes(row, cfg.w_lanes, cfg.weight_bits))

    async def send_x(self, ctx, x, acc=False, emit=True):
        cfg = self.cfg
        done = await self.send(ctx, self.dut.s_axis_x, pack_bytes(x, cfg.x_lanes),
                               user=int(acc) | (int(emit) << 1))
        self.x_last.append(done)
        return done

    async def send_r(self, ctx, r):
        await self.send(ctx, self.dut.s_axis_r, pack_bytes(r, self.cfg.x_lanes))

    async def wait_packets(self, ctx, count, limit=100000):
        for _ in range(limit):
            if len(self.packets) >= count:
                return
            await self.tick(ctx)
        raise AssertionError(f"timeout: {len(self.packets)} of {count} result packets")

    # -- background
    async def _sink(self, ctx):
        y = self.dut.m_axis_y
        beats, t, seen = [], 0, False
        while True:
            ready = not (self.block or (self.stall and self.rng.random() < self.stall))
            ctx.set(y.tready, int(ready))
            valid = ctx.get(y.tvalid)
            if valid and not seen:
                self.first_valid.append(t)
                seen = True
            if ctx.get(self.dut.accum.result.update):
                self.updates.append(t)
            if valid and ready:
                beats.append(ctx.get(y.tdata))
                if ctx.get(y.tlast):
                    self.packets.append(beats)
                    beats, seen = [], False
            await ctx.tick()
            t += 1

    def run(self, main, vcd=None):
        top = Module()
        top.domains.sync = self.domain = ClockDomain("sync")
        top.submodules.core = self.dut
        sim = Simulator(top)
        sim.add_clock(1e-8)
        sim.add_testbench(self._sink, background=True)

        async def top(ctx):
            await main(self, ctx)

        sim.add_testbench(top)
        if vcd:
            with sim.write_vcd(vcd):
                sim.run()
        else:
            sim.run()

    # -- decoding
    def result(self, index, raw):
        cfg = self.cfg
        return unpack_lanes(self.packets[index], 32 if raw else 8, cfg.y_lanes(raw), cfg.cols)
