"""Bounded protocol proofs: the AXI4-Lite slave (:class:`dcim.hdl.csr.CsrBlock`) and the result
AXI4-Stream master (:class:`dcim.hdl.packer.OutputPacker`), as bound checkers written here.

``axil``: the bus master is free within the AXI rules (a valid stays up, with its address and
data, until its handshake; the ready signals free); every other input of the CSR block is free
in every cycle. Asserted: a write's address and data are taken in the same cycle (the block's
rule); at most one transaction is outstanding and each gets exactly one response (no response
without a request), within 3 cycles of its handshake; ``bvalid``/``rvalid`` stay up with their
response and data until taken; the response is SLVERR exactly when the address is unmapped,
where the mapped addresses are enumerated from :meth:`dcim.hdl.regmap.RegMap.decode` (the
registers' words of region 0 and each table's first ``cols`` words); an unmapped read returns 0
and no unmapped write reaches a DPU table.

``axis-y``: the packer's inputs follow their producers' contracts (an EMIT commit only while
``result.busy`` is low; ``CTRL.RAW`` sampled at the load, as the CSR block does), the DPU is an
abstract in-order stream (one result group per fed group, free values, free latency and
backpressure) and ``y.tready`` is free. Asserted: while ``tvalid & ~tready``, ``tvalid``,
``tdata`` and ``tlast`` stay; no beat without a loaded result; each result leaves as exactly
``cfg.y_beats(raw)`` beats with ``tlast`` on the last, in load order, RAW or not as loaded.
"""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import (Array, Assert, Assume, Cat, Cover, Elaboratable, Module, Mux,
                          Signal, Value)

from ..golden.config import CoreConfig
from .prove import PropResult, bounded, prove_harness

__all__ = ["PROPERTIES", "AxiLiteHarness", "ResultStreamHarness", "axil_proof", "axis_proof",
           "mapped_predicate"]

#: The most cycles from a request's handshake to its response (docs/core.md, "AXI4-Lite
#: behaviour": a write responds two cycles after it, a read three).
RESPONSE_CYCLES = 3


def _free_inputs(dut, skip=()) -> list:
    """The component's input signals (its signature's ``In`` members) but those whose path is
    in ``skip`` (the harness drives them): the harness leaves them free."""
    return [Value.cast(v) for path, member, v in dut.signature.flatten(dut)
            if member.flow.name == "In" and path not in skip]


def _stable(m: Module, hold, values, assume: bool) -> None:
    """While ``hold`` (a valid without its ready), ``values`` keep their value in the next
    cycle: assumed (a producer outside) or asserted (the block)."""
    was = Signal(name="was_held")
    m.d.sync += was.eq(hold)
    check = Assume if assume else Assert
    for v in values:
        prev = Signal.like(v, name=f"prev_{v.name}")
        m.d.sync += prev.eq(v)
        m.d.comb += check(~was | (v == prev))


def mapped_predicate(cfg: CoreConfig, addr):
    """An Amaranth expression: byte address ``addr`` is mapped, by enumeration of
    :meth:`RegMap.decode` over every word (region 0: the register words; a table's region: a
    prefix of its words, checked here)."""
    from ..hdl.regmap import RegMap

    rm = RegMap(cfg)
    words = 1 << (rm.region_lsb - rm.word_lsb)
    region, word = addr[rm.region_lsb:rm.addr_bits], addr[rm.word_lsb:rm.region_lsb]
    terms = []
    for r in range(1 << (rm.addr_bits - rm.region_lsb)):
        hit = [w for w in range(words)
               if rm.decode((r << rm.region_lsb) | (w << rm.word_lsb)) is not None]
        if r == 0:
            terms += [(region == 0) & (word == w) for w in hit]
        elif hit:
            assert hit == list(range(len(hit))), r  # a table's entries are a prefix
            terms.append((region == r) & (word < len(hit)))
    return Cat(*terms).any()


class AxiLiteHarness(Elaboratable):
    """The formal top of ``axil`` (module docstring). ``dut``: a CSR block to prove instead of
    ``CsrBlock(cfg)``."""

    def __init__(self, cfg: CoreConfig, dut=None) -> None:
        from ..hdl.csr import CsrBlock

        self.cfg = cfg
        self.dut = CsrBlock(cfg) if dut is None else dut
        self.ports = _free_inputs(self.dut)

    def elaborate(self, platform):
        from ..hdl.axi import OKAY, SLVERR

        m = Module()
        m.submodules.dut = dut = self.dut
        bus = dut.bus
        aw_hs, w_hs = bus.awvalid & bus.awready, bus.wvalid & bus.wready
        ar_hs = bus.arvalid & bus.arready
        b_hs, r_hs = bus.bvalid & bus.bready, bus.rvalid & bus.rready
        # The master keeps a valid, with its payload, up until its handshake.
        _stable(m, bus.awvalid & ~bus.awready, [bus.awvalid, bus.awaddr], assume=True)
        _stable(m, bus.wvalid & ~bus.wready, [bus.wvalid, bus.wdata, bus.wstrb], assume=True)
        _stable(m, bus.arvalid & ~bus.arready, [bus.arvalid, bus.araddr], assume=True)
        # The slave keeps a response up until it is taken.
        _stable(m, bus.bvalid & ~bus.bready, [bus.bvalid, bus.bresp], assume=False)
        _stable(m, bus.rvalid & ~bus.rready, [bus.rvalid, bus.rresp, bus.rdata], assume=False)
        m.d.comb += Assert(aw_hs == w_hs)

        for kind, req, resp, valid, addr_in in (("w", aw_hs, bus.bresp, bus.bvalid,
                                                 bus.awaddr),
                                                ("r", ar_hs, bus.rresp, bus.rvalid,
                                                 bus.araddr)):
            done = b_hs if kind == "w" else r_hs
            outstanding = Signal(2, name=f"{kind}_outstanding")
            waited = Signal(range(RESPONSE_CYCLES + 2), name=f"{kind}_waited")
            addr = Signal.like(addr_in, name=f"{kind}_addr")
            m.d.sync += outstanding.eq(outstanding + req - done)
            with m.If(req):
                m.d.sync += [addr.eq(addr_in), waited.eq(1)]
            with m.Elif((outstanding != 0) & ~valid):
                m.d.sync += waited.eq(waited + 1)
            ok = mapped_predicate(self.cfg, addr)
            m.d.comb += [Assert(outstanding <= 1), Assert(~valid | (outstanding == 1)),
                         Assert(~(outstanding != 0) | valid | (waited < RESPONSE_CYCLES)),
                         Assert(~valid | (resp == Mux(ok, OKAY, SLVERR)))]
            if kind == "r":
                m.d.comb += [Assert(~valid | ok | (bus.rdata == 0)), Cover(r_hs & ~ok)]
            else:
                # a table write only for a mapped table entry, while the write is outstanding
                rm_region = addr[dut.regmap.region_lsb:]
                m.d.comb += [Assert(~dut.tables.we | ((outstanding == 1) & ok
                                                      & (rm_region != 0))),
                             Cover(b_hs & ~ok)]
        return m


def axil_depth(cfg: CoreConfig) -> int:
    """The default depth: four back-to-back transactions with their responses."""
    return 4 * (RESPONSE_CYCLES + 1) + 1


def axil_proof(cfg: CoreConfig, workdir: str | Path, *, depth: int | None = None, dut=None,
               timeout: float = 600.0, solver: str = "yices") -> PropResult:
    """Prove ``axil`` (module docstring) on ``cfg``'s CSR block over ``depth`` cycles from
    reset (default :func:`axil_depth`); ``dut(cfg)`` builds another block to prove."""
    return prove_harness("axil", AxiLiteHarness(cfg, None if dut is None else dut(cfg)),
                         workdir, depth, axil_depth(cfg), timeout=timeout, solver=solver)



class ResultStreamHarness(Elaboratable):
    """The formal top of ``axis-y`` (module docstring). ``dut``: an output packer to prove
    instead of ``OutputPacker(cfg)``.

    ``fifo`` bounds the loaded results not yet sent that the reference holds (traces that would
    load more are excluded: an assumption, stated in the result's depth).
    """

    fifo = 8

    def __init__(self, cfg: CoreConfig, dut=None, mixed: bool = True) -> None:
        from ..hdl.packer import OutputPacker

        self.cfg = cfg
        self.mixed = mixed
        self.dut = OutputPacker(cfg) if dut is None else dut
        self.f_raw = Signal(name="f_raw")
        self.f_res = Signal(name="f_res")
        self.ports = [*_free_inputs(self.dut, skip={("csr", "raw"), ("csr", "res"),
                                                    ("dpu_o", "valid")}),
                      self.f_raw, self.f_res, Value.cast(self.dut.dpu_o.valid)]

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        m.submodules.dut = dut = self.dut
        res, y, ip, op = dut.result, dut.y, dut.dpu_i, dut.dpu_o
        # The producers: the accumulators hold an EMIT commit while busy; the CSR block samples
        # CTRL.RAW (and CTRL.RES_EN without RAW) at the load.
        load = res.update & res.emit
        m.d.comb += Assume(~(load & res.busy))
        raw_q, res_q = Signal(), Signal()
        # Software changes CTRL.RAW only while STATUS.BUSY is 0 (docs/core.md, CTRL), which
        # needs this block's busy low: between two loads of different kinds it was low once.
        idle_seen = Signal(init=1)
        with m.If(load):
            m.d.sync += idle_seen.eq(0)
        with m.Elif(~dut.csr.busy):
            m.d.sync += idle_seen.eq(1)
        if self.mixed:
            m.d.comb += Assume(~load | idle_seen | (self.f_raw == raw_q))
        else:  # one kind of result in the whole trace
            first = Signal(init=1)
            with m.If(load):
                m.d.sync += first.eq(0)
            m.d.comb += Assume(first | ~load | (self.f_raw == raw_q))
        with m.If(dut.csr.load):
            m.d.sync += [raw_q.eq(self.f_raw), res_q.eq(self.f_res & ~self.f_raw)]
        m.d.comb += [dut.csr.raw.eq(raw_q), dut.csr.res.eq(res_q),
                     Assert(dut.csr.load == load)]
        if cfg.dpu_residual:  # the residual buffer keeps a packet until it is taken
            _stable(m, dut.r.full & ~dut.r.take, [dut.r.full, dut.r.data], assume=True)
        # The DPU: an in-order stream, one result group per group fed, a valid held until taken.
        owed = Signal(4)
        m.d.sync += owed.eq(owed + (ip.valid & ip.ready) - (op.valid & op.ready))
        m.d.comb += [Assume(~op.valid | (owed != 0)), Assume(owed != 15)]
        _stable(m, op.valid & ~op.ready, [op.valid, Value.cast(op.payload)], assume=True)

        # The result stream.
        _stable(m, y.tvalid & ~y.tready, [y.tvalid, y.tdata, y.tlast], assume=False)
        y_hs = y.tvalid & y.tready
        kinds = Array(Signal(name=f"kind{i}") for i in range(self.fifo))
        head, tail = Signal(range(self.fifo)), Signal(range(self.fifo))
        count = Signal(range(self.fifo + 1))
        done = y_hs & y.tlast
        m.d.comb += Assume(~load | (count < self.fifo))
        with m.If(load):
            m.d.sync += [kinds[tail].eq(self.f_raw),
                         tail.eq(Mux(tail == self.fifo - 1, 0, tail + 1))]
        with m.If(done):
            m.d.sync += head.eq(Mux(head == self.fifo - 1, 0, head + 1))
        m.d.sync += count.eq(count + load - done)
        beat = Signal(range(max(cfg.y_beats(raw=True), cfg.y_beats(raw=False)) + 1))
        with m.If(y_hs):
            m.d.sync += beat.eq(Mux(y.tlast, 0, beat + 1))
        head_raw = kinds[head]
        last = Mux(head_raw, cfg.y_beats(raw=True) - 1, cfg.y_beats(raw=False) - 1)
        m.d.comb += [Assert(~y.tvalid | (count != 0)),
                     Assert(~y_hs | (y.tlast == (beat == last))),
                     Cover(done & head_raw), Cover(done & ~head_raw)]
        return m


def axis_depth(cfg: CoreConfig) -> int:
    """The default depth: a DPU result and a RAW result, loaded, fed and sent."""
    return (cfg.dpu_groups + cfg.y_beats(raw=False) + cfg.y_beats(raw=True)
            + RESPONSE_CYCLES + 6)


def axis_proof(cfg: CoreConfig, workdir: str | Path, *, depth: int | None = None, dut=None,
               mixed: bool = False, timeout: float = 600.0,
               solver: str = "yices") -> PropResult:
    """Prove ``axis-y`` (``mixed``: ``axis-y-order``; module docstring) on ``cfg``'s output
    packer over ``depth`` cycles from reset (default :func:`axis_depth`); ``dut(cfg)`` builds
    another packer to prove."""
    harness = ResultStreamHarness(cfg, None if dut is None else dut(cfg), mixed)
    return prove_harness("axis-y-order" if mixed else "axis-y", harness, workdir, depth,
                         axis_depth(cfg), timeout=timeout, solver=solver)


PROPERTIES = {
    "axil": bounded("AXI4-Lite: one response per request within 3 cycles, held until taken; "
                    "SLVERR exactly on unmapped addresses (RegMap)", axil_proof),
    "axis-y": bounded("result AXI4-Stream: tvalid/tdata/tlast held while stalled; "
                      "y_beats(raw) beats per result, tlast on the last, in load order",
                      axis_proof),
    "axis-y-order": bounded("result AXI4-Stream with RAW and DPU results mixed (CTRL.RAW "
                            "changed while STATUS.BUSY is 0): in load order", axis_proof,
                            default=False, mixed=True),
}
