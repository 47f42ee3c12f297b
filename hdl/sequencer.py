"""The pass sequencer (``seq`` in ``ctrl``): owns the array's ports, writes waiting weight rows
(between passes, or with two weight sets into the shadow set while passes compute), swaps the
weight sets and shifts each activation vector through the array one slice per cycle.

The rules are those of docs/core.md ("Passes, and when to write weights, tables and scalars").
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..golden.config import CoreConfig
from ._base import CfgComponent, CfgSignature
from .accum import PassControlSignature
from .array import RowWriteSignature, SliceSignature
from .rx import buffer_signature, x_user

__all__ = ["PassSequencer", "SequencerCsrSignature"]


class SequencerCsrSignature(CfgSignature):
    """What the sequencer and the CSR block exchange (the sequencer's view).

    Members
    -------
    row : In(row_bits)
        ``W_ROW``: the row the waiting weight packet is written to.
    written : Out(1)
        A row is written this cycle (``W_ROW`` advances, wrapping at ``rows``).
    busy : Out(1)
        A pass is in its compute cycles.
    compute : Out(1)
        A compute cycle: a slice of a pass is in the array and the pipeline is not held
        (``cycles_per_pass(b)`` of them per pass; ``BUSY_CYCLES`` counts them).
    wset : Out(1), only with ``weight_sets`` 2
        The active weight set (``STATUS.W_SET``).
    """

    def __init__(self, cfg: CoreConfig) -> None:
        members = {"row": In(cfg.row_bits), "written": Out(1), "busy": Out(1),
                   "compute": Out(1)}
        if cfg.weight_sets == 2:
            members["wset"] = Out(1)
        super().__init__(cfg, members)


class PassSequencer(CfgComponent):
    """Sequencer of the passes and the weight-row writes.

    One weight set: a waiting weight row (``w.full``) is written in the first cycle no pass
    computes. A pass starts (``x.take``) when a vector waits, no weight row waits, the
    accumulators do not hold and the previous pass is in its last compute cycle or done; it
    copies the vector into a plane-major shifter and runs ``ceil(b / serial_bits)`` compute
    cycles (``b`` = ``x.bits``), the last one with ``neg`` (the top slice). ``accum.hold``
    freezes everything.

    Two weight sets: the array computes with set ``compute.sel`` (0 after reset) and a waiting
    row is written at once into the other (shadow) set, whether passes run or not. A vector
    with ``user.swap`` toggles ``compute.sel`` in the cycle its pass starts (its first slice is
    the first on the new set; the slices before it, in flight in the adder trees, were summed
    on the old one). A swap pass does not start while a row accepted no later than its vector
    waits (that row goes into the set the swap activates); a row accepted after the swap
    vector waits until the swap pass has started (it goes into the new shadow). Other passes
    do not wait for rows.

    Parameters
    ----------
    cfg : CoreConfig

    Members
    -------
    w : In(buffer_signature(cols, weight_bits))
        The weight row buffer.
    x : In(buffer_signature(rows, act_bits, user=x_user(cfg), bits=precision_bits))
        The activation vector buffer (``user``: ACC, EMIT, with two sets SWAP; ``bits``: its
        precision).
    csr : Out(SequencerCsrSignature(cfg))
    write : Out(RowWriteSignature(cfg))
    compute : Out(SliceSignature(cfg))
    accum : Out(PassControlSignature(cfg))
    """

    def _members(self, cfg: CoreConfig) -> dict:
        return {
            "w": In(buffer_signature(cfg.cols, cfg.weight_bits)),
            "x": In(buffer_signature(cfg.rows, cfg.act_bits, user=x_user(cfg),
                                     bits=cfg.precision_bits)),
            "csr": Out(SequencerCsrSignature(cfg)),
            "write": Out(RowWriteSignature(cfg)),
            "compute": Out(SliceSignature(cfg)),
            "accum": Out(PassControlSignature(cfg)),
        }

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        rows, ab, s = cfg.rows, cfg.act_bits, cfg.serial_bits
        w, x, ctl = self.w, self.x, self.accum
        hold = ctl.hold

        # Weight rows: with one set written while no pass computes; with two at once into the
        # shadow, except a row accepted after a waiting swap vector (``after``), which waits
        # until the swap pass has started.
        two = cfg.weight_sets == 2
        run = Signal()
        commit = Signal()
        after = Signal()
        m.d.comb += [commit.eq(w.full & ~after if two else w.full & ~run), w.take.eq(commit),
                     self.write.we.eq(commit), self.write.row.eq(self.csr.row),
                     self.write.wdata.eq(w.data),
                     self.csr.written.eq(commit), self.csr.busy.eq(run)]

        # Passes.
        max_n = cfg.cycles_per_pass()
        j = Signal(range(max(2, max_n)))
        nlast = Signal(range(max(2, max_n)))
        t_acc = Signal()
        t_emit = Signal()
        xsr = Signal(rows * ab, reset_less=True)  # plane-major: bit p of row k at p*rows + k
        start = Signal()
        if two:
            sel = Signal()  # the active weight set
            swap = x.full & x.user.swap
            m.d.comb += [start.eq(x.full & ~(swap & w.full & ~after) & ~hold
                                  & (~run | (j == nlast))),
                         self.compute.sel.eq(sel), self.csr.wset.eq(sel)]
            with m.If(start):
                m.d.sync += after.eq(0)
                with m.If(x.user.swap):
                    m.d.sync += sel.eq(~sel)
            with m.Elif(swap):
                # From the cycle after the swap vector completed, every row accepted is after
                # it: the one waiting now (accepted no later) is written in this cycle, and the
                # row buffer may take the next row's beat in the same cycle.
                m.d.sync += after.eq(1)
        else:
            m.d.comb += start.eq(x.full & ~w.full & ~hold & (~run | (j == nlast)))
        m.d.comb += x.take.eq(start)
        log_s = exact_log2(s)
        with m.If(start):
            m.d.sync += [
                xsr.eq(Cat(x.data[k * ab + p] for p in range(ab) for k in range(rows))),
                j.eq(0), nlast.eq((x.bits - 1) >> log_s), run.eq(1),
                t_acc.eq(x.user.acc), t_emit.eq(x.user.emit)]
        with m.Elif(run & ~hold):
            with m.If(j == nlast):
                m.d.sync += run.eq(0)
            with m.Else():
                m.d.sync += [j.eq(j + 1), xsr.eq(xsr >> (s * rows))]
        m.d.comb += [
            self.compute.x.eq(xsr[:s * rows]), self.compute.neg.eq(j == nlast),
            self.compute.en.eq(~hold),
            self.csr.compute.eq(run & ~hold),
            ctl.valid.eq(run), ctl.first.eq(j == 0), ctl.last.eq(j == nlast),
            ctl.shamt.eq(j << log_s), ctl.acc.eq(t_acc), ctl.emit.eq(t_emit),
        ]
        return m
