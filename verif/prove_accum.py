"""Bounded proof of the accumulators (:class:`dcim.hdl.accum.Accum`) against a reference
written here: the exact pass value and the saturating K-tiled partial sum of docs/core.md.

The harness drives ``ctl`` as the sequencer's contract has it (a pass of
``cfg.cycles_per_pass(b)`` slices, slice ``j`` weighing ``2**(j*serial_bits)``, the first with
``first``, the last with ``last``; passes back to back or with gaps; ``b``, ACC and EMIT free per
pass; everything frozen while ``ctl.hold``), and leaves free in every cycle the column sums
``sums.y`` (within ``cfg.slice_psum_range``, the adder trees' contract), ``result.busy``,
``status.clear`` and the reset. The column sum of a slice arrives ``cfg.tree_regs`` cycles
without hold after its control.

The reference keeps, per column, the exact pass value in a wide signed register (the sum of the
slices' column sums, each times the constant weight of its slice), and the expected partial sum:
at the commit (the cycle after the last slice's sum, unless held) ``clamp((ACC ? psum : 0) +
exact)`` to ``cfg.psum_range``, and 0 after ``clear`` (which wins). Assumed: at a commit the exact
pass value is within ``cfg.acc_range`` (every real dot product of ``rows`` terms is, whatever the
slicing). Asserted in every cycle: ``result.update``, ``status.done``, ``ctl.hold`` and
``status.busy`` are the reference's; at an update ``result.psum``, ``result.emit`` and
``status.sat`` are the expected values. Covered (the proof is not vacuous): an accumulating
commit (``accum``), a saturating one (``accum-sat``).

From reset with 32-bit partial sums no bounded trace reaches saturation (each pass adds at most
``acc_range``), so ``accum-sat`` proves the same harness at the narrowest legal
``psum_bits`` (``cfg.acc_width``), where two accumulating passes saturate.
"""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import Array, Cat, Const, Cover, Elaboratable, Module, Mux, Signal, signed
from amaranth.hdl import Assert, Assume

from ..golden.config import CoreConfig
from .prove import PropResult, bounded, prove_harness

__all__ = ["PROPERTIES", "AccumHarness", "accum_proof"]


class AccumHarness(Elaboratable):
    """The formal top of the accumulator proof (module docstring).

    Parameters
    ----------
    cfg : CoreConfig
    dut : Elaboratable, optional
        The accumulators to prove (default ``Accum(cfg)``; another with the same signature to
        show a broken one fails).
    saturating : bool
        Cover a saturating commit rather than an accumulating one.

    Attributes
    ----------
    ports : list of Signal
        The free inputs.
    """

    def __init__(self, cfg: CoreConfig, dut=None, saturating: bool = False) -> None:
        from ..hdl.accum import Accum

        self.cfg = cfg
        self.saturating = saturating
        self.dut = Accum(cfg) if dut is None else dut
        self.y = [Signal(signed(cfg.slice_psum_bits), name=f"f_y{c}") for c in range(cfg.cols)]
        self.start = Signal(name="f_start")
        self.bits = Signal(cfg.precision_bits, name="f_bits")
        self.acc = Signal(name="f_acc")
        self.emit = Signal(name="f_emit")
        self.busy = Signal(name="f_busy")
        self.clear = Signal(name="f_clear")
        # observation ports bound to the accumulators' registers (run_bmc's bind)
        self.o_acc = [Signal(signed(cfg.acc_width), name=f"o_acc{c}") for c in range(cfg.cols)]
        self.o_psum = [Signal(signed(cfg.psum_bits), name=f"o_psum{c}")
                       for c in range(cfg.cols)]
        self.bind = {**{f"o_acc{c}": f"dut.acc{c}" for c in range(cfg.cols)},
                     **{f"o_psum{c}": f"dut.psum{c}" for c in range(cfg.cols)}}
        self.ports = [*self.y, self.start, self.bits, self.acc, self.emit, self.busy,
                      self.clear, *self.o_acc, *self.o_psum]

    def elaborate(self, platform):
        m = Module()
        cfg, dut = self.cfg, self.dut
        m.submodules.dut = dut
        ctl, res, st = dut.ctl, dut.result, dut.status
        hold = ctl.hold
        cpp = cfg.cycles_per_pass()
        sb = cfg.serial_bits

        # The pass source: the sequencer's contract.
        run = Signal()
        j = Signal(range(max(2, cpp)))
        nlast = Signal.like(j)
        p_acc, p_emit = Signal(), Signal()
        last_of = Array(Const(cfg.cycles_per_pass(b) - 1 if 1 <= b <= cfg.act_bits else 0,
                              len(j)) for b in range(1 << len(self.bits)))
        m.d.comb += Assume(~self.start | ((self.bits >= 1) & (self.bits <= cfg.act_bits)))
        go = self.start & (~run | (j == nlast))
        with m.If(~hold):
            with m.If(go):
                m.d.sync += [run.eq(1), j.eq(0), nlast.eq(last_of[self.bits]),
                             p_acc.eq(self.acc), p_emit.eq(self.emit)]
            with m.Elif(run & (j == nlast)):
                m.d.sync += run.eq(0)
            with m.Elif(run):
                m.d.sync += j.eq(j + 1)
        m.d.comb += [ctl.valid.eq(run), ctl.first.eq(j == 0), ctl.last.eq(j == nlast),
                     ctl.shamt.eq(j * sb), ctl.acc.eq(p_acc), ctl.emit.eq(p_emit),
                     res.busy.eq(self.busy), st.clear.eq(self.clear)]
        lo_y, hi_y = cfg.slice_psum_range
        for c in range(cfg.cols):
            m.d.comb += [dut.sums.y[c].eq(self.y[c]),
                         Assume((self.y[c] >= lo_y) & (self.y[c] <= hi_y))]

        # The reference: the slice's control, tree_regs cycles without hold later.
        line = [run, j == 0, j == nlast, j, p_acc, p_emit]
        valids = []
        for stage in range(cfg.tree_regs):
            nxt = [Signal.like(v, name=f"r{stage}_{i}") for i, v in enumerate(line)]
            with m.If(~hold):
                m.d.sync += [n.eq(v) for n, v in zip(nxt, line)]
            valids.append(nxt[0])
            line = nxt
        r_valid, r_first, r_last, r_j, r_acc, r_emit = line
        pend, pend_acc, pend_emit = Signal(), Signal(), Signal()
        with m.If(~hold):
            m.d.sync += [pend.eq(r_valid & r_last), pend_acc.eq(r_acc), pend_emit.eq(r_emit)]
        commit = Signal()
        m.d.comb += commit.eq(pend & ~hold)
        m.d.comb += [Assert(hold == (pend & pend_emit & self.busy)),
                     Assert(res.update == commit), Assert(st.done == commit),
                     Assert(st.busy == Cat(run, *valids, pend).any())]

        ab = cfg.acc_width
        wide = cfg.psum_bits + 1
        shamt = Signal(cfg.shamt_bits)
        m.d.comb += shamt.eq(r_j * sb)
        lo_p, hi_p = cfg.psum_range
        sats = []
        for c in range(cfg.cols):
            # the pass value modulo 2**acc_width, read signed: the exact value, as every dot
            # product of rows terms is within acc_range, which acc_width bits hold
            exact = Signal(signed(ab), name=f"exact{c}")
            with m.If(r_valid & ~hold):
                m.d.sync += exact.eq(Mux(r_first, 0, exact) + (self.y[c] << shamt))
            psum = Signal(signed(cfg.psum_bits), name=f"ref_psum{c}")
            total = Signal(signed(wide), name=f"total{c}")
            expect = Signal(signed(wide), name=f"expect{c}")
            m.d.comb += total.eq(Mux(pend_acc, psum, 0) + exact)
            m.d.comb += expect.eq(Mux(total > hi_p, hi_p, Mux(total < lo_p, lo_p, total)))
            sats.append((total > hi_p) | (total < lo_p))
            m.d.comb += [Assert(~commit | (res.psum[c] == expect)),
                         Assert(self.o_acc[c] == exact), Assert(self.o_psum[c] == psum)]
            with m.If(commit):
                m.d.sync += psum.eq(expect)
            with m.If(self.clear):
                m.d.sync += psum.eq(0)
        m.d.comb += [Assert(st.sat == (commit & Cat(*sats).any())),
                     Assert(~commit | (res.emit == pend_emit))]
        covered = commit & pend_acc
        m.d.comb += Cover(covered & Cat(*sats).any() if self.saturating else covered)
        return m


def accum_depth(cfg: CoreConfig) -> int:
    """The default depth: two full-precision passes back to back from reset, the second
    accumulating into the first's partial sums, and their commits."""
    return 2 * cfg.cycles_per_pass() + cfg.tree_regs + 3


def accum_proof(cfg: CoreConfig, workdir: str | Path, *, depth: int | None = None,
                saturating: bool = False, dut=None, timeout: float = 600.0,
                solver: str = "yices", name: str | None = None) -> PropResult:
    """Prove the accumulators of ``cfg`` (module docstring) over ``depth`` cycles from reset.

    Parameters
    ----------
    cfg : CoreConfig
        The configuration proven (``saturating``: with ``psum_bits`` = ``acc_width``).
    workdir : path
    depth : int, optional
        Default :func:`accum_depth`.
    saturating : bool
        Prove at the narrowest ``psum_bits`` and cover a saturating commit.
    dut : callable, optional
        ``dut(cfg)`` builds the accumulators to prove instead of ``Accum(cfg)``.
    timeout, solver
        As for :func:`dcim.verif.prove.run_bmc`.
    name : str, optional
        The result's name (default ``accum`` / ``accum-sat``).

    Returns
    -------
    PropResult
    """
    if saturating:
        cfg = cfg.replace(psum_bits=cfg.acc_width, acc_bits=cfg.acc_width)
    harness = AccumHarness(cfg, None if dut is None else dut(cfg), saturating)
    return prove_harness(name or ("accum-sat" if saturating else "accum"), harness, workdir,
                         depth, accum_depth(cfg), timeout=timeout, solver=solver)


PROPERTIES = {
    "accum": bounded("accumulators: every pass commits clamp(psum*ACC + exact dot product); "
                     "hold, busy, done, EMIT", accum_proof),
    "accum-sat": bounded("accumulators at psum_bits = acc_width: saturation over passes as "
                         "golden's clamp", accum_proof, saturating=True),
}
