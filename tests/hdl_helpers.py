"""Shared helpers of the Amaranth-simulator tests of the core (not a test module): a stand-in
DPU and the address map as docs/core.md states it. The bench of the whole core is
:mod:`amaranth_tb`."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
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
                 0x48: "PASSES", 0x4C: "W_ROW", 0x50: "PERF", 0x54: "CYCLES",
                 0x58: "BUSY_CYCLES", 0x60: "OUT_ZP", 0x64: "ACT_MIN", 0x68: "ACT_MAX"}
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
