"""The shift-and-add accumulators and the K-tiled partial sums (``accum``)."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..golden.config import CoreConfig
from ._cfg import check_cfg

__all__ = ["Accum"]


class Accum(wiring.Component):
    """Per-column shift-and-add accumulator and saturating partial sum.

    The slice-time control (``valid``, ``first``, ``last``, ``shamt``, ``acc``, ``emit``) is
    given in the cycle the compute array sees the slice; it is delayed here by ``tree_regs``
    cycles to meet the adder-tree output ``t``. In the accumulate stage
    ``acc_c = (first ? 0 : acc_c) + (t_c << shamt)``; the cycle after the ``last`` slice
    (the commit stage) ``psum_c = sat((acc ? psum_c : 0) + acc_c)`` to ``psum_bits`` and
    ``update`` pulses with ``psum_next`` holding the new partial sums.

    A commit of an ``emit`` pass waits while ``obuf_busy``: then ``hold`` is set and the whole
    pipeline (delay line, accumulators, the array's registers, the sequencer) must stand still.

    Members
    -------
    t : In(signed(slice_psum_bits)) x cols
        Adder-tree outputs.
    valid, first, last, acc, emit : In(1)
    shamt : In(range(act_bits))
    clear : In(1)
        Zero every partial sum (takes effect at the clock edge).
    obuf_busy : In(1)
    hold : Out(1)
    update : Out(1)
        A pass commits this cycle.
    update_emit : Out(1)
        The committing pass has EMIT.
    psum_next : Out(signed(psum_bits)) x cols
        The partial sums after the commit (valid with ``update``).
    sat : Out(1)
        The commit saturated at least one column.
    busy : Out(1)
        A pass is somewhere in the pipeline.
    """

    def __init__(self, cfg: CoreConfig) -> None:
        self.cfg = check_cfg(cfg, self)
        super().__init__({
            "t": In(signed(cfg.slice_psum_bits)).array(cfg.cols),
            "valid": In(1), "first": In(1), "last": In(1), "acc": In(1), "emit": In(1),
            "shamt": In(range(max(2, cfg.act_bits))), "clear": In(1), "obuf_busy": In(1),
            "hold": Out(1), "update": Out(1), "update_emit": Out(1),
            "psum_next": Out(signed(cfg.psum_bits)).array(cfg.cols), "sat": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        pb, ab = cfg.psum_bits, cfg.acc_bits
        lo, hi = cfg.psum_range

        # Control delay line, matched to the adder tree's register stages.
        ctl = [self.valid, self.first, self.last, self.shamt, self.acc, self.emit]
        busy_terms = []
        for stage in range(cfg.tree_regs):
            nxt = [Signal.like(v, name=f"d{stage}_{i}") for i, v in enumerate(ctl)]
            with m.If(~self.hold):
                m.d.sync += [n.eq(v) for n, v in zip(nxt, ctl)]
            busy_terms.append(nxt[0])
            ctl = nxt
        d_valid, d_first, d_last, d_shamt, d_acc, d_emit = ctl

        # Commit stage registers.
        c_valid = Signal()
        c_acc = Signal()
        c_emit = Signal()
        m.d.comb += self.hold.eq(c_valid & c_emit & self.obuf_busy)
        m.d.comb += [self.update.eq(c_valid & ~self.hold), self.update_emit.eq(c_emit)]
        with m.If(~self.hold):
            m.d.sync += [c_valid.eq(d_valid & d_last), c_acc.eq(d_acc), c_emit.eq(d_emit)]
        busy_terms.append(c_valid)
        m.d.comb += self.busy.eq(_or_tree([self.valid, *busy_terms]))

        sats = []
        for c in range(cfg.cols):
            t = self.t[c]
            acc = Signal(signed(ab), name=f"acc{c}")
            with m.If(d_valid & ~self.hold):
                m.d.sync += acc.eq(Mux(d_first, 0, acc) + (t << d_shamt))
            psum = Signal(signed(pb), name=f"psum{c}")
            total = Signal(signed(pb + 1), name=f"sum{c}")
            nxt = Signal(signed(pb), name=f"next{c}")
            m.d.comb += total.eq(Mux(c_acc, psum, 0) + acc)
            over, under = total > hi, total < lo
            m.d.comb += nxt.eq(Mux(over, hi, Mux(under, lo, total)))
            sats.append(over | under)
            m.d.comb += self.psum_next[c].eq(nxt)
            with m.If(self.update):
                m.d.sync += psum.eq(nxt)
            with m.If(self.clear):
                m.d.sync += psum.eq(0)
        m.d.comb += self.sat.eq(self.update & _or_tree(sats))
        return m


def _or_tree(bits):
    while len(bits) > 1:
        bits = [bits[i] | bits[i + 1] if i + 1 < len(bits) else bits[i]
                for i in range(0, len(bits), 2)]
    return bits[0]
