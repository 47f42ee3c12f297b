"""The shift-and-add accumulators and the K-tiled partial sums (``accum``)."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..golden.config import CoreConfig
from ._cfg import CfgChecked, check_cfg
from ._base import CfgSignature
from .array import ColumnSumsSignature

__all__ = ["Accum", "AccumStatusSignature", "PassControlSignature", "PassResultSignature"]


class PassControlSignature(CfgSignature):
    """The slice-time control of the accumulators (the sequencer's view: the accumulators have
    ``In(...)``), given in the cycle the array sees the slice.

    Members
    -------
    valid : Out(1)
        A slice of a pass is in the array.
    first, last : Out(1)
        It is the pass's first / last slice.
    shamt : Out(shamt_bits)
        Its weight: the column results are shifted left by ``shamt``.
    acc, emit : Out(1)
        The pass adds into the partial sums (else replaces them) / sends a result.
    hold : In(1)
        The whole pipeline stands still this cycle (the array's registers, the sequencer).
    """

    def __init__(self, cfg: CoreConfig) -> None:
        super().__init__(cfg, {"valid": Out(1), "first": Out(1), "last": Out(1),
                               "shamt": Out(cfg.shamt_bits), "acc": Out(1),
                               "emit": Out(1), "hold": In(1)})


class PassResultSignature(CfgSignature):
    """The partial sums a pass commits (the accumulators' view: the output stage has
    ``In(...)``).

    Members
    -------
    update : Out(1)
        A pass commits this cycle.
    emit : Out(1)
        The committing pass has EMIT.
    psum : Out(signed(psum_bits)) x cols
        The partial sums after the commit (valid with ``update``).
    busy : In(1)
        The output stage still holds the previous result: the commit of an EMIT pass waits.
    """

    def __init__(self, cfg: CoreConfig) -> None:
        super().__init__(cfg, {"update": Out(1), "emit": Out(1),
                               "psum": Out(signed(cfg.psum_bits)).array(cfg.cols),
                               "busy": In(1)})


class AccumStatusSignature(CfgSignature):
    """What the CSRs see of the accumulators (the accumulators' view).

    Members
    -------
    busy : Out(1)
        A pass is somewhere in the pipeline.
    sat : Out(1)
        This cycle's commit saturated at least one column.
    done : Out(1)
        A pass commits this cycle.
    clear : In(1)
        Zero every partial sum (takes effect at the clock edge).
    """

    def __init__(self, cfg: CoreConfig) -> None:
        super().__init__(cfg, {"busy": Out(1), "sat": Out(1), "done": Out(1), "clear": In(1)})


class Accum(CfgChecked, wiring.Component):
    """Per-column shift-and-add accumulator and saturating partial sum.

    The slice-time control ``ctl`` is given in the cycle the compute array sees the slice; it
    is delayed here by ``tree_regs`` cycles to meet the adder-tree outputs ``sums.y``. In the
    accumulate stage ``acc_c = (first ? 0 : acc_c) + (y_c << shamt)``; the cycle after the
    ``last`` slice (the commit stage) ``psum_c = sat((acc ? psum_c : 0) + acc_c)`` to
    ``psum_bits`` and ``result.update`` pulses with ``result.psum`` holding the new partial
    sums.

    A commit of an ``emit`` pass waits while ``result.busy``: then ``ctl.hold`` is set and the
    whole pipeline (delay line, accumulators, the array's registers, the sequencer) must stand
    still.

    Members
    -------
    sums : In(ColumnSumsSignature(cfg))
        Adder-tree outputs.
    ctl : In(PassControlSignature(cfg))
    result : Out(PassResultSignature(cfg))
    status : Out(AccumStatusSignature(cfg))
    """

    def __init__(self, cfg: CoreConfig) -> None:
        self.cfg = check_cfg(cfg)
        super().__init__({
            "sums": In(ColumnSumsSignature(cfg)), "ctl": In(PassControlSignature(cfg)),
            "result": Out(PassResultSignature(cfg)), "status": Out(AccumStatusSignature(cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        pb, ab = cfg.psum_bits, cfg.acc_width
        lo, hi = cfg.psum_range
        ctl, res, st = self.ctl, self.result, self.status
        hold = ctl.hold

        # Control delay line, matched to the adder tree's register stages.
        line = [ctl.valid, ctl.first, ctl.last, ctl.shamt, ctl.acc, ctl.emit]
        busy_terms = []
        for stage in range(cfg.tree_regs):
            nxt = [Signal.like(v, name=f"d{stage}_{i}") for i, v in enumerate(line)]
            with m.If(~hold):
                m.d.sync += [n.eq(v) for n, v in zip(nxt, line)]
            busy_terms.append(nxt[0])
            line = nxt
        d_valid, d_first, d_last, d_shamt, d_acc, d_emit = line

        # Commit stage registers.
        c_valid = Signal()
        c_acc = Signal()
        c_emit = Signal()
        m.d.comb += hold.eq(c_valid & c_emit & res.busy)
        m.d.comb += [res.update.eq(c_valid & ~hold), res.emit.eq(c_emit),
                     st.done.eq(res.update)]
        with m.If(~hold):
            m.d.sync += [c_valid.eq(d_valid & d_last), c_acc.eq(d_acc), c_emit.eq(d_emit)]
        busy_terms.append(c_valid)
        m.d.comb += st.busy.eq(_or_tree([ctl.valid, *busy_terms]))

        sats = []
        for c in range(cfg.cols):
            t = self.sums.y[c]
            acc = Signal(signed(ab), name=f"acc{c}")
            with m.If(d_valid & ~hold):
                m.d.sync += acc.eq(Mux(d_first, 0, acc) + (t << d_shamt))
            psum = Signal(signed(pb), name=f"psum{c}")
            total = Signal(signed(pb + 1), name=f"sum{c}")
            nxt = Signal(signed(pb), name=f"next{c}")
            m.d.comb += total.eq(Mux(c_acc, psum, 0) + acc)
            over, under = total > hi, total < lo
            m.d.comb += nxt.eq(Mux(over, hi, Mux(under, lo, total)))
            sats.append(over | under)
            m.d.comb += res.psum[c].eq(nxt)
            with m.If(res.update):
                m.d.sync += psum.eq(nxt)
            with m.If(st.clear):
                m.d.sync += psum.eq(0)
        m.d.comb += st.sat.eq(res.update & _or_tree(sats))
        return m


def _or_tree(bits):
    while len(bits) > 1:
        bits = [bits[i] | bits[i + 1] if i + 1 < len(bits) else bits[i]
                for i in range(0, len(bits), 2)]
    return bits[0]
