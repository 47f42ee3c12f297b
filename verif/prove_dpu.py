"""Bounded proof of the DPU's pipeline (:class:`dcim.hdl.dpu.Dpu`) as a stream: a bound checker
written here, with every input free (the input stream, the output's ``ready``, the scalars; no
table write while a group is in flight, the DPU's own rule).

Asserted: no output without an accepted group and at most ``cfg.dpu_latency`` groups inside;
outputs in input order (their ``last`` flags are the inputs', through a reference FIFO); a group
accepted ``cfg.dpu_latency`` cycles ago whose path was never stalled (``o.ready`` high in every
cycle between) is on the output now; with ``o.ready`` high the DPU accepts a group (one group
per cycle passes). Covered: a stalled output that is then taken.

The arithmetic of the stages (bias add, the two 32 x 31-bit requantizations, the residual sum,
the clamp) is in the model but no assertion reads it: the golden model's bit-exact agreement is
shown by simulation (tests/test_hdl_dpu.py), not here.
"""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import Array, Assert, Assume, Cat, Cover, Elaboratable, Module, Mux, Signal
from amaranth.hdl import Value

from ..golden.config import CoreConfig
from .prove import PropResult, bounded, prove_harness

__all__ = ["PROPERTIES", "DpuStreamHarness", "dpu_proof"]


class DpuStreamHarness(Elaboratable):
    """The formal top of ``dpu-stream`` (module docstring). ``dut``: a DPU to prove instead of
    ``Dpu(cfg)``."""

    def __init__(self, cfg: CoreConfig, dut=None) -> None:
        from ..hdl.dpu import Dpu

        self.cfg = cfg
        self.dut = Dpu(cfg) if dut is None else dut
        self.ports = [Value.cast(v) for _, member, v in self.dut.signature.flatten(self.dut)
                      if member.flow.name == "In"]

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        n = cfg.dpu_latency
        m.submodules.dut = dut = self.dut
        i, o = dut.i, dut.o
        i_hs, o_hs = i.valid & i.ready, o.valid & o.ready
        inside = Signal(range(n + 2))
        m.d.sync += inside.eq(inside + i_hs - o_hs)
        m.d.comb += [Assume(~dut.tables.we | ((inside == 0) & ~i.valid)),
                     Assert(~o.valid | (inside != 0)), Assert(inside <= n),
                     Assert(~o.ready | i.ready)]
        # The reference FIFO of the groups' last flags.
        size = n + 1
        fifo = Array(Signal(name=f"last{k}") for k in range(size))
        head, tail = Signal(range(size)), Signal(range(size))
        with m.If(i_hs):
            m.d.sync += [fifo[tail].eq(i.payload.last), tail.eq(Mux(tail == size - 1, 0,
                                                                     tail + 1))]
        with m.If(o_hs):
            m.d.sync += head.eq(Mux(head == size - 1, 0, head + 1))
        m.d.comb += Assert(~o.valid | (o.payload.last == fifo[head]))
        # The latency: accepted n cycles ago, never stalled since -> on the output now.
        accepted = [i_hs]
        ready = [o.ready]
        for d in range(1, n + 1):
            a, r = Signal(name=f"acc_{d}"), Signal(name=f"rdy_{d}")
            m.d.sync += [a.eq(accepted[-1]), r.eq(ready[-1])]
            accepted.append(a)
            ready.append(r)
        m.d.comb += Assert(~(accepted[n] & Cat(*ready[1:n]).all()) | o.valid)
        stalled = Signal()
        m.d.sync += stalled.eq(o.valid & ~o.ready)
        m.d.comb += Cover(stalled & o_hs & o.payload.last)
        return m


def dpu_depth(cfg: CoreConfig) -> int:
    """The default depth: the pipeline filled, stalled and drained."""
    return 2 * cfg.dpu_latency + 4


def dpu_proof(cfg: CoreConfig, workdir: str | Path, *, depth: int | None = None, dut=None,
              timeout: float = 600.0, solver: str = "yices") -> PropResult:
    """Prove ``dpu-stream`` (module docstring) over ``depth`` cycles from reset (default
    :func:`dpu_depth`); ``dut(cfg)`` builds another DPU to prove."""
    return prove_harness("dpu-stream", DpuStreamHarness(cfg, None if dut is None else dut(cfg)),
                         workdir, depth, dpu_depth(cfg), timeout=timeout, solver=solver)


PROPERTIES = {
    "dpu-stream": bounded("DPU pipeline: in order, no loss or invention, dpu_latency cycles "
                          "when not stalled, a group per cycle with o.ready", dpu_proof),
}
