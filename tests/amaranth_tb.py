"""The whole core in Amaranth's simulator behind the cocotb testbench's model and scoreboard.

:class:`AmaranthTB` is an adapter, not a second testbench: it drives the core's AXI ports from
an Amaranth testbench (what cocotb's drivers do on Icarus and Verilator) and hands every packet
the core accepted to the same :class:`~dcim.verif.model.CoreModel`, and every result packet to
the same :class:`~dcim.verif.tb.Scoreboard`, as :class:`~dcim.verif.tb.TB` does. Beats are
packed by :mod:`dcim.verif.beats`, the register map is the :class:`~dcim.verif.csr.RegMapView`
of the generated JSON, and the CSR methods (``write_reg``, ``read_reg``, ``set_ctrl``,
``set_dpu``, which mirror each write in the model) are :class:`~dcim.verif.tb.TB`'s own: they
need only ``cfg``, ``regs``, ``model``, :meth:`AmaranthTB.read` and :meth:`AmaranthTB.write`.

What is Amaranth-only: the port-level drivers (AXI4-Lite transactions, stream beats with a
seeded stall pattern, the result sink), and what only a cycle-level simulation can measure:
the cycle of the first ``tvalid`` of each result (:attr:`AmaranthTB.first_valid`), of each
pass commit (:attr:`AmaranthTB.updates`, from ``accum.result.update``) and of each activation
packet's last handshake (:attr:`AmaranthTB.x_last`).
"""

from __future__ import annotations

import random

import numpy as np
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from dcim.golden.config import CoreConfig
from dcim.hdl.core import Core
from dcim.verif.beats import pack_beats, unpack_beats
from dcim.verif.csr import RegMapView
from dcim.verif.model import CoreModel
from dcim.verif.tb import TB, Scoreboard

__all__ = ["AmaranthTB"]


class AmaranthTB:
    """Drives a :class:`~dcim.hdl.core.Core` through its AXI ports in Amaranth's simulator.

    Parameters
    ----------
    cfg : CoreConfig
    dpu_factory : callable, optional
        Passed to :class:`~dcim.hdl.core.Core` (a stand-in DPU; then only RAW results match
        the model).
    seed : int
        Seed of the stall pattern.
    stall : float
        Probability of an idle cycle before each input beat and of a low ``tready`` on the
        result stream in each cycle.

    Attributes
    ----------
    model : CoreModel
        Fed with every packet the core accepted (on its last handshake) and every CSR write
        made through the ``write_reg`` family.
    sb : Scoreboard
        Compares every result packet with the model's prediction, in order, bit for bit.
    packets : list of list of int
        The result packets received (beats).
    ctx : amaranth.sim.SimulatorContext
        The testbench context while :meth:`run` runs.
    block : bool
        Hold the result stream's ``tready`` low while set.
    """

    # The cocotb testbench's CSR methods: the same encoding and the same mirroring in the model.
    read_reg = TB.read_reg
    write_reg = TB.write_reg
    set_ctrl = TB.set_ctrl
    set_dpu = TB.set_dpu

    def __init__(self, cfg: CoreConfig, dpu_factory=None, seed: int = 0, stall: float = 0.0):
        self.cfg = cfg
        self.dut = Core(cfg, dpu_factory=dpu_factory)
        self.regs = RegMapView.of(cfg)
        self.model = CoreModel(cfg, regs=self.regs)
        self.sb = Scoreboard(cfg, self.model)
        self.rng = random.Random(seed)
        self.stall = stall
        self.ctx = None
        self.now = 0            # cycles seen by the main testbench
        self.packets: list[list[int]] = []
        self.first_valid: list[int] = []   # cycle of the first tvalid of each result packet
        self.last_beat: list[int] = []     # cycle of the tlast handshake of each result packet
        self.updates: list[int] = []       # cycles in which a pass committed
        self.x_last: list[int] = []        # cycle of the last handshake of each x packet
        self.block = False
        self._monitors = {"s_axis_w": (self.model.weight_packet, False),
                          "s_axis_x": (self.model.activation_packet, True)}
        if cfg.dpu_residual:
            self._monitors["s_axis_r"] = (self.model.residual_packet, False)
        self._partial: dict[str, list[int]] = {}   # beats accepted of an unfinished packet
        self._y_beats: list[int] = []

    # ------------------------------------------------------------------------------------
    # AXI4-Lite
    async def tick(self, n: int = 1) -> None:
        """Let ``n`` clock cycles pass."""
        for _ in range(n):
            await self.ctx.tick()
            self.now += 1

    async def _transaction(self, request, ready, response, response_valid, accept):
        """Raise the ``request`` valids until ``ready``, then take the response."""
        ctx = self.ctx
        for sig, value in request:
            ctx.set(sig, value)
        ctx.set(accept, 1)
        while not ctx.get(ready):
            await self.tick()
        await self.tick()
        for sig, _ in request:
            if len(sig) == 1:
                ctx.set(sig, 0)
        while not ctx.get(response_valid):
            await self.tick()
        out = [ctx.get(sig) for sig in response]
        await self.tick()
        ctx.set(accept, 0)
        return out

    async def write(self, addr: int, word: int) -> int:
        """Write ``word`` to ``addr`` (not mirrored in the model); returns BRESP."""
        bus = self.dut.s_axil
        (resp,) = await self._transaction(
            [(bus.awaddr, addr), (bus.wdata, word & 0xFFFFFFFF), (bus.awvalid, 1),
             (bus.wvalid, 1)], bus.awready, [bus.bresp], bus.bvalid, bus.bready)
        return resp

    async def read(self, addr: int) -> tuple[int, int]:
        """Read the word at ``addr``: ``(data, resp)``."""
        bus = self.dut.s_axil
        data, resp = await self._transaction(
            [(bus.araddr, addr), (bus.arvalid, 1)], bus.arready, [bus.rdata, bus.rresp],
            bus.rvalid, bus.rready)
        return data, resp

    # ------------------------------------------------------------------------------------
    # Streams
    async def send(self, port: str, beats: list[int], user: int | None = None,
                   last_at: int | None = None) -> int:
        """Present ``beats`` on the stream ``port`` (``"s_axis_x"`` ...), ``tlast`` on beat
        ``last_at`` (default: the last one). Every beat accepted goes to the model, a packet
        at a time (at its ``tlast``), whatever the grouping of the calls. Returns the cycle of
        the last handshake."""
        ctx, bus = self.ctx, getattr(self.dut, port)
        last_at = len(beats) - 1 if last_at is None else last_at
        for i, word in enumerate(beats):
            while self.stall and self.rng.random() < self.stall:
                ctx.set(bus.tvalid, 0)
                await self.tick()
            ctx.set(bus.tdata, word)
            ctx.set(bus.tlast, int(i == last_at))
            if user is not None:
                ctx.set(bus.tuser, user)
            ctx.set(bus.tvalid, 1)
            while not ctx.get(bus.tready):
                await self.tick()
            done = self.now
            self._accepted(port, word, i == last_at, user or 0)
            await self.tick()
        ctx.set(bus.tvalid, 0)
        return done

    def _accepted(self, port: str, word: int, last: bool, user: int) -> None:
        packet = self._partial.setdefault(port, [])
        packet.append(word)
        if last:
            del self._partial[port]
            feed, with_user = self._monitors[port]
            feed(packet, user) if with_user else feed(packet)

    async def load_weights(self, W, first_row: int = 0) -> None:
        """Load rows ``first_row..`` with ``W`` (shape (n, cols)), as :meth:`TB.load_weights`."""
        if first_row != self.model.w_row:
            await self.write_reg("W_ROW", ROW=first_row)
        for row in np.asarray(W):
            await self.send("s_axis_w", pack_beats(row, 8, self.cfg.w_lanes))

    async def send_vector(self, x, acc: bool = False, emit: bool = True) -> int:
        """Send one activation vector; returns the cycle of its last handshake."""
        done = await self.send("s_axis_x", pack_beats(x, 8, self.cfg.x_lanes),
                               user=int(acc) | (int(emit) << 1))
        self.x_last.append(done)
        return done

    async def send_residual(self, r) -> None:
        """Send one int8 residual vector."""
        await self.send("s_axis_r", pack_beats(r, 8, self.cfg.x_lanes))

    async def wait_packets(self, count: int, limit: int = 100000) -> None:
        """Wait until ``count`` result packets have arrived (AssertionError after ``limit``
        cycles)."""
        for _ in range(limit):
            if len(self.packets) >= count:
                return
            await self.tick()
        raise AssertionError(f"timeout: {len(self.packets)} of {count} result packets")

    async def wait_passes(self, limit: int = 100000) -> None:
        """Wait until the PASSES counter shows every pass the model has seen (the core then
        holds no vector; safe to load weights), as :meth:`TB.wait_passes`."""
        want = self.model.passes & 0xFFFFFFFF
        for _ in range(limit // 8):
            if await self.read_reg("PASSES") == want:
                return
        raise AssertionError(f"PASSES never reached {want}")

    async def reset(self, cycles: int = 1) -> None:
        """Assert the domain's reset for ``cycles`` clocks; unfinished packets are dropped, what
        arrived is compared, the model restarts (as :meth:`TB.reset`)."""
        self.ctx.set(self.domain.rst, 1)
        await self.tick(cycles)
        self._partial.clear()
        self._y_beats = []
        self.sb.compare()
        self.model.reset()
        self.ctx.set(self.domain.rst, 0)

    # ------------------------------------------------------------------------------------
    async def _sink(self, ctx) -> None:
        y = self.dut.m_axis_y
        t, seen = 0, False
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
                self._y_beats.append(ctx.get(y.tdata))
                if ctx.get(y.tlast):
                    self.last_beat.append(t)
                    beats, self._y_beats, seen = self._y_beats, [], False
                    self.packets.append(beats)
                    self.sb.on_packet(beats)
            await ctx.tick()
            t += 1

    def run(self, main, results: bool = True, vcd: str | None = None) -> None:
        """Simulate ``await main(self)``, then check the scoreboard: every result packet
        matched its prediction and none is missing; with ``results`` also that something was
        compared (a test whose results are all checked elsewhere passes False)."""
        top = Module()
        top.domains.sync = self.domain = ClockDomain("sync")
        top.submodules.core = self.dut
        sim = Simulator(top)
        sim.add_clock(1e-8)
        sim.add_testbench(self._sink, background=True)

        async def bench(ctx):
            self.ctx = ctx
            await main(self)

        sim.add_testbench(bench)
        if vcd:
            with sim.write_vcd(vcd):
                sim.run()
        else:
            sim.run()
        if results:
            self.sb.check()
        else:
            self.sb.compare()
            assert not self.sb.errors, self.sb.errors[0]
            assert not self.model.expected, "a predicted result never arrived"

    def result(self, index: int, raw: bool) -> list[int]:
        """The ``cols`` values of result packet ``index`` (int32 sums if ``raw``, else int8)."""
        cfg = self.cfg
        return unpack_beats(self.packets[index], 32 if raw else 8, cfg.y_lanes(raw),
                            cfg.cols).tolist()
