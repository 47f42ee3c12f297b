"""The AXI4-Lite CSR block (``csr`` in ``ctrl``): register storage, address decoding and the
DPU table port, all built from :class:`dcim.hdl.regmap.RegMap`.

Addresses, field positions, widths, legal ranges, reset values, table regions and table
selectors come from the register map; nothing about the map is restated here. The bus
behaviour is that of docs/core.md ("AXI4-Lite behaviour").
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib.wiring import In, Out

from ..golden.config import CoreConfig
from ._base import CfgComponent
from .accum import AccumStatusSignature
from .axi import OKAY, SLVERR, axi_lite_signature
from .dpu import DpuParamsSignature, TableBusSignature
from .packer import PackerCsrSignature
from .regmap import Access, RegMap
from .rx import rx_status_signature
from .sequencer import SequencerCsrSignature

__all__ = ["CsrBlock"]

#: Read-only fields the core counts in a register of their own (see ``CsrBlock.elaborate``
#: for what each counts).
_COUNTERS = ("PASSES.COUNT", "CYCLES.COUNT", "BUSY_CYCLES.COUNT")
#: The counters ``PERF.CLEAR`` zeroes.
_PERF = ("CYCLES.COUNT", "BUSY_CYCLES.COUNT")
#: The DPU scalar each register field drives.
_DPU_PARAMS = {"out_zp": "OUT_ZP.OUT_ZP", "act_min": "ACT_MIN.ACT_MIN",
               "act_max": "ACT_MAX.ACT_MAX", "res_multiplier": "RES_MULT.RES_MULT",
               "res_shift": "RES_SHIFT.RES_SHIFT", "res_zp": "RES_ZP.RES_ZP"}


def _or_all(values):
    out = Const(0, 1)
    for v in values:
        out = out | v
    return out


class CsrBlock(CfgComponent):
    """The register map of ``cfg`` behind an AXI4-Lite slave.

    One transaction at a time: a write when ``awvalid`` and ``wvalid`` are both high (before a
    read presented in the same cycle), taking effect at the end of the cycle after its
    handshake, ``bvalid`` in the next; a read returns three cycles after its handshake. An
    address is decoded by :meth:`RegMap.decode`'s rules: a register, an entry of a DPU table
    (forwarded on ``tables``), or unmapped (``SLVERR``: write ignored, read 0).

    Parameters
    ----------
    cfg : CoreConfig

    Members
    -------
    bus : In(axi_lite_signature(RegMap.addr_bits, RegMap.data_bits))
    w_rx, x_rx : In(rx_status_signature(...))
        The weight and activation receivers (``x_rx.run_bits`` is ``CTRL.RUN_BITS``).
    r_rx : In(rx_status_signature()), only if ``cfg.dpu_residual``
    seq : In(SequencerCsrSignature(cfg))
        ``W_ROW`` for the sequencer; it advances on ``seq.written`` (a bus write in the same
        cycle wins). ``BUSY_CYCLES`` counts ``seq.compute``; ``STATUS.W_SET`` reads
        ``seq.wset`` (two weight sets).
    out : In(PackerCsrSignature(cfg))
        ``CTRL.RAW`` and ``CTRL.RES_EN`` sampled for each loaded result.
    accum : In(AccumStatusSignature(cfg))
        ``CTRL.CLEAR``; ``PASSES`` counts ``accum.done``; ``STATUS.PSUM_SAT``. ``CYCLES``
        counts every cycle; ``PERF.CLEAR`` zeroes it and ``BUSY_CYCLES`` (the clear wins over
        that cycle's count).
    tables : Out(TableBusSignature(cfg))
    dpu : Out(DpuParamsSignature(cfg))
        The DPU scalar registers, and ``res_en``: the sampled ``CTRL.RES_EN`` of the result
        in the output buffer (with ``CTRL.RAW`` clear).

    Attributes
    ----------
    regmap : RegMap
        The register map the block is built from.
    """

    def _members(self, cfg: CoreConfig) -> dict:
        self.regmap = RegMap(cfg)
        members = {
            "bus": In(axi_lite_signature(RegMap.addr_bits, RegMap.data_bits)),
            "w_rx": In(rx_status_signature()),
            "x_rx": In(rx_status_signature(cfg.precision_bits)),
        }
        if cfg.dpu_residual:
            members["r_rx"] = In(rx_status_signature())
        members.update({
            "seq": In(SequencerCsrSignature(cfg)), "out": In(PackerCsrSignature(cfg)),
            "accum": In(AccumStatusSignature(cfg)),
            "tables": Out(TableBusSignature(cfg)), "dpu": Out(DpuParamsSignature(cfg)),
        })
        return members

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        csr = self._storage()
        ctrl_raw = csr["CTRL.RAW"]
        ctrl_res = csr.get("CTRL.RES_EN", Const(0, 1))

        # Fields the rest of the core reads.
        m.d.comb += [self.x_rx.run_bits.eq(csr["CTRL.RUN_BITS"]),
                     self.seq.row.eq(csr["W_ROW.ROW"]),
                     self.accum.clear.eq(csr["CTRL.CLEAR"])]
        for name, key in _DPU_PARAMS.items():
            if key in csr:
                port = getattr(self.dpu, name)
                assert len(port) == len(csr[key]), key
                m.d.comb += port.eq(csr[key])
        raw_q, res_q = Signal(), Signal()
        with m.If(self.out.load):
            m.d.sync += [raw_q.eq(ctrl_raw), res_q.eq(ctrl_res & ~ctrl_raw)]
        m.d.comb += [self.out.raw.eq(raw_q), self.out.res.eq(res_q),
                     self.dpu.res_en.eq(res_q)]

        # Fields the core drives.
        hw = {"STATUS.BUSY": _or_all([self.x_rx.busy, self.seq.busy, self.accum.busy,
                                      self.out.busy, self.w_rx.busy]),
              "STATUS.ERR_W_LEN": self.w_rx.err, "STATUS.ERR_X_LEN": self.x_rx.err,
              "STATUS.PSUM_SAT": self.accum.sat}
        if cfg.dpu_residual:
            hw["STATUS.ERR_R_LEN"] = self.r_rx.err
        if cfg.weight_sets == 2:
            hw["STATUS.W_SET"] = self.seq.wset
        counts = {"PASSES.COUNT": self.accum.done, "CYCLES.COUNT": Const(1, 1),
                  "BUSY_CYCLES.COUNT": self.seq.compute}
        assert set(counts) == set(_COUNTERS)
        for key, event in counts.items():
            count = csr[key]
            with m.If(event):
                m.d.sync += count.eq(count + 1)
            if key in _PERF:
                with m.If(csr["PERF.CLEAR"]):  # the later assignment wins
                    m.d.sync += count.eq(0)
        row = csr["W_ROW.ROW"]
        with m.If(self.seq.written):
            m.d.sync += row.eq(Mux(row == cfg.rows - 1, 0, row + 1))
        self._bus(m, csr, hw)
        return m

    def _storage(self) -> dict:
        """Storage for every non-constant field, keyed ``REG.FIELD``; constants for the rest."""
        csr = {}
        for reg in self.regmap.registers:
            for f in reg.fields:
                key = f"{reg.name}.{f.name}"
                name = key.replace(".", "_").lower()
                if f.access in (Access.RW, Access.W1C) or key in _COUNTERS:
                    # A field with a legal range stores only the bits the range needs; the
                    # write check sees the whole field (see _bus).
                    width = f.width if f.legal is None else max(1, f.legal[1].bit_length())
                    csr[key] = Signal(width, init=f.reset, name=name)
                elif f.access is Access.W1P:
                    csr[key] = Signal(f.width, name=name)
                else:
                    csr[key] = Const(f.reset, f.width)
        return csr

    def _bus(self, m: Module, csr: dict, hw: dict) -> None:
        """The AXI4-Lite slave, the address decoder and the field writes and reads."""
        rm, bus, tbl = self.regmap, self.bus, self.tables
        addr = Signal(rm.addr_bits)
        wdata = Signal(rm.data_bits)
        rdata = Signal(rm.data_bits)
        resp = Signal.like(bus.bresp)
        # Decoding (RegMap.decode): the region, then the word in it.
        region = addr[rm.region_lsb:]
        word = addr[rm.word_lsb:rm.region_lsb]
        entry_ok = word < self.cfg.cols if self.cfg.cols < 1 << len(word) else Const(1, 1)
        hits = {reg.name: (region == rm.region(reg.offset)) & (word == rm.word(reg.offset))
                for reg in rm.registers}
        tbl_hit = _or_all((region == rm.region(t.base)) & entry_ok for t in rm.tables)
        mapped = _or_all([*hits.values(), tbl_hit])
        with m.Switch(region):
            for t in rm.tables:
                with m.Case(rm.region(t.base)):
                    m.d.comb += tbl.sel.eq(t.select)
            with m.Default():
                m.d.comb += tbl.sel.eq(rm.no_select)
        m.d.comb += [bus.bresp.eq(resp), bus.rresp.eq(resp), bus.rdata.eq(rdata),
                     tbl.addr.eq(word), tbl.wdata.eq(wdata)]
        writing = Signal()
        for reg in rm.registers:
            for f in reg.fields:
                key = f"{reg.name}.{f.name}"
                if f.access is Access.W1C:
                    # Set by the core; a write-1-to-clear in the same cycle loses.
                    with m.If(writing & hits[reg.name] & wdata[f.lsb]):
                        m.d.sync += csr[key].eq(0)
                    with m.If(hw[key]):
                        m.d.sync += csr[key].eq(1)
                elif f.access is Access.RW:
                    value = wdata[f.lsb:f.lsb + f.width]
                    ok = writing & hits[reg.name]
                    if f.legal is not None and f.legal[0] > 0:
                        ok = ok & (value >= f.legal[0])
                    if f.legal is not None and f.legal[1] < (1 << f.width) - 1:
                        ok = ok & (value <= f.legal[1])
                    with m.If(ok):
                        m.d.sync += csr[key].eq(value)
                elif f.access is Access.W1P:
                    m.d.comb += csr[key].eq(writing & hits[reg.name] & wdata[f.lsb])
        read_word = Signal(rm.data_bits)
        with m.Switch(addr[rm.word_lsb:]):
            for reg in rm.registers:
                with m.Case(reg.offset >> rm.word_lsb):
                    for f in reg.fields:
                        if f.access is Access.W1P:
                            continue  # reads 0
                        key = f"{reg.name}.{f.name}"
                        val = hw.get(key, csr[key]) if f.access is Access.RO else csr[key]
                        m.d.comb += read_word[f.lsb:f.lsb + len(val)].eq(val)
        with m.FSM(name="axil"):
            with m.State("IDLE"):
                with m.If(bus.awvalid & bus.wvalid):
                    m.d.comb += [bus.awready.eq(1), bus.wready.eq(1)]
                    m.d.sync += [addr.eq(bus.awaddr), wdata.eq(bus.wdata)]
                    m.next = "WRITE"
                with m.Elif(bus.arvalid):
                    m.d.comb += bus.arready.eq(1)
                    m.d.sync += addr.eq(bus.araddr)
                    m.next = "READ1"
            with m.State("WRITE"):
                m.d.comb += [writing.eq(1), tbl.we.eq(tbl_hit)]
                m.d.sync += resp.eq(Mux(mapped, OKAY, SLVERR))
                m.next = "BRESP"
            with m.State("BRESP"):
                m.d.comb += bus.bvalid.eq(1)
                with m.If(bus.bready):
                    m.next = "IDLE"
            with m.State("READ1"):
                m.next = "READ2"
            with m.State("READ2"):
                m.d.sync += [rdata.eq(Mux(tbl_hit, tbl.rdata, read_word)),
                             resp.eq(Mux(mapped, OKAY, SLVERR))]
                m.next = "RRESP"
            with m.State("RRESP"):
                m.d.comb += bus.rvalid.eq(1)
                with m.If(bus.rready):
                    m.next = "IDLE"
