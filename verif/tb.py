"""The testbench of one generated core: clock, reset, stream and CSR drivers, model, scoreboard.

A :class:`TB` wraps the cocotb handle of the top module. Stimulus is whole transactions (weight
rows, activation vectors, residual vectors, CSR accesses); every packet the DUT accepts is fed
to the :class:`~dcim.verif.model.CoreModel` by the source that sent it (the input monitor), and
every result packet the sink collects is compared, in order and bit for bit (all beats, padding
lanes included), with the model's prediction by the :class:`Scoreboard`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, Event, RisingEdge, SimTimeoutError, with_timeout
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from ..golden.config import CoreConfig
from ..golden.model import DpuParams
from .coverage import Coverage
from .csr import RegMapView
from .model import SCALARS, CoreModel
from .sequences import CLOCK_NS, MAX_PAUSE, pauses
from .streams import Packet, StreamSink, StreamSource, pack_beats, unpack_beats

__all__ = ["TB", "Scoreboard"]

class Scoreboard:
    """Compares result packets with the model's predictions, in order.

    Packets are compared in batches of up to :attr:`BATCH` (and whenever :meth:`compare` is
    called: the testbench does at every drain and at the end of a test), so that the model
    computes its passes many at a time. Whether a DPU result arrived before the residual it
    needs is checked at arrival.

    Attributes
    ----------
    compared : int
        Result packets compared.
    macs : int
        Multiply-accumulates those results verified (rows x cols per contributing pass).
    errors : list of str
        Mismatch descriptions (empty when everything matched).
    """

    BATCH = 64

    def __init__(self, cfg: CoreConfig, model: CoreModel):
        self.cfg = cfg
        self.model = model
        self.compared = 0
        self.macs = 0
        self.errors: list[str] = []
        self.digest = hashlib.sha256()
        self.event = Event()
        self._arrived: list[tuple[list[int], bool]] = []  # (beats, before its residual)

    @property
    def outstanding(self) -> int:
        """Predicted result packets that have not arrived yet."""
        return max(0, self.model.outstanding - len(self._arrived))

    def on_packet(self, beats: list[int]) -> None:
        """A result packet arrived."""
        self.digest.update(repr(beats).encode())
        exp = self.model.peek(len(self._arrived))
        self._arrived.append((beats, exp is not None and exp.waiting))
        self.event.set()
        if len(self._arrived) >= self.BATCH:
            self.compare()

    def compare(self) -> None:
        """Compare every packet that has arrived with its prediction."""
        arrived, self._arrived = self._arrived, []
        expected = self.model.expected
        for beats, early in arrived:
            if not expected:
                self.errors.append(f"unexpected result packet ({len(beats)} beats)")
                continue
            exp = expected.popleft()
            if early:
                self.errors.append("a DPU result arrived before the residual it needs was sent")
                continue
            if beats != exp.beats:
                self.errors.append(self._describe(exp, beats))
            self.compared += 1
            self.macs += exp.macs

    def _describe(self, exp, beats: list[int]) -> str:
        cfg = self.cfg
        what = "raw int32" if exp.raw else "int8"
        head = f"result {self.compared} ({what}) mismatch"
        if len(beats) != len(exp.beats):
            return f"{head}: {len(beats)} beats, expected {len(exp.beats)}"
        bits = 32 if exp.raw else 8
        lanes = cfg.y_lanes(exp.raw)
        got = unpack_beats(beats, bits, lanes, lanes * len(beats))
        want = unpack_beats(exp.beats, bits, lanes, lanes * len(beats))
        bad = np.flatnonzero(got != want)
        cols = ", ".join(f"col {c}: got {got[c]} expected {want[c]}" for c in bad[:4])
        pad = " (padding lanes)" if bad[0] >= cfg.cols else ""
        return f"{head} in {bad.size} lanes{pad}: {cols}"

    def check(self) -> None:
        """Compare what has arrived; raise AssertionError on any mismatch, any prediction not
        received, or nothing compared."""
        self.compare()
        if self.errors:
            raise AssertionError(f"{len(self.errors)} scoreboard error(s); first: "
                                 f"{self.errors[0]}")
        if self.model.expected:
            raise AssertionError(f"{len(self.model.expected)} expected result(s) never arrived")
        if self.compared == 0:
            raise AssertionError("the scoreboard compared nothing: a test must compare results")


class TB:
    """Testbench of one core.

    Parameters
    ----------
    dut : cocotb handle of the top module
    cfg : CoreConfig
    regmap : RegMapView
    rng : numpy.random.Generator
        Seeded from ``cocotb.RANDOM_SEED`` by the test.
    cov : Coverage
    idle : str
        Idle insertion on the input streams (see :func:`pauses`).
    backpressure : str
        Backpressure on ``m_axis_y`` (see :func:`pauses`).
    xcheck : bool
        Require every sampled handshake and every result beat to be 0/1 (Icarus).
    profile : bool
        Add the time spent in the model's activation monitor and the result monitor to
        :attr:`python_s` (the testbench's own Python, for benchmarks).

    Attributes
    ----------
    python_s : float
        Seconds spent in the monitors (only with ``profile``).
    """

    def __init__(self, dut, cfg: CoreConfig, regmap: RegMapView, rng: np.random.Generator,
                 cov: Coverage, *, idle: str = "none", backpressure: str = "none",
                 xcheck: bool = False, profile: bool = False):
        self.dut = dut
        self.cfg = cfg
        self.regs = regmap
        self.rng = rng
        self.cov = cov
        self.xcheck = xcheck
        self.model = CoreModel(cfg, cov, regmap)
        self.sb = Scoreboard(cfg, self.model)
        self.checks = 0
        self.python_s = 0.0
        self._profile = profile
        self._listeners: list[Callable[[list[int]], None]] = []
        self._swap_next = False  # weights were loaded into the shadow set: the next vector swaps
        clk = dut.clk
        self.clk = clk
        dut.rst.value = 1
        # impl="gpi": the clock toggles in cocotb's C++ layer, not in a Python task (cocotb 2.x
        # picks the Python clock unless COCOTB_TRUST_INERTIAL_WRITES is set): two Python
        # wake-ups per cycle fewer. It starts low, so that its first rising edge comes half a
        # period after every driver has set its initial values (a C++ edge at the start time
        # would let cocotbext-axi sample the DUT's ports before Icarus has settled them).
        Clock(clk, CLOCK_NS, unit="ns", impl="gpi").start(start_high=False)
        self.w_src = StreamSource(dut, "s_axis_w_", clk, pause=pauses(rng, idle), xcheck=xcheck)
        self.x_src = StreamSource(dut, "s_axis_x_", clk, pause=pauses(rng, idle), xcheck=xcheck)
        self.r_src = (StreamSource(dut, "s_axis_r_", clk, pause=pauses(rng, idle), xcheck=xcheck)
                      if cfg.dpu_residual else None)
        self.y_sink = StreamSink(dut, "m_axis_y_", clk, pause=pauses(rng, backpressure),
                                 on_packet=self._timed(self._on_result), xcheck=xcheck)
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil_"), clk, dut.rst)
        for part in (self.axil.write_if, self.axil.read_if):
            part.log.setLevel(logging.WARNING)
        if idle != "none":
            cov.hit("stalls.idle_inputs")
        if backpressure != "none":
            cov.hit(f"stalls.backpressure_{backpressure}")

    # ------------------------------------------------------------------------------------
    def _timed(self, fn: Callable) -> Callable:
        """``fn``, timed into :attr:`python_s` when profiling."""
        if not self._profile:
            return fn

        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.python_s += time.perf_counter() - t
        return wrapper

    def _on_result(self, beats: list[int]) -> None:
        self.sb.on_packet(beats)
        for listener in self._listeners:
            listener(beats)

    def add_result_listener(self, listener: Callable[[list[int]], None]) -> None:
        """Also call ``listener`` with the beats of every result packet (after the
        scoreboard has taken it)."""
        self._listeners.append(listener)

    # ------------------------------------------------------------------------------------
    async def reset(self, cycles: int = 3) -> None:
        """Assert ``rst`` for ``cycles`` clocks; drivers, model and expectations restart."""
        self.dut.rst.value = 1
        for src in (self.w_src, self.x_src, self.r_src):
            if src is not None:
                src.flush()
        self.y_sink.flush(restart=False)
        await ClockCycles(self.clk, cycles)
        self.sb.compare()  # what arrived before the reset, against what was predicted
        self.model.reset()
        self._swap_next = False
        self.dut.rst.value = 0
        await RisingEdge(self.clk)
        self.y_sink.flush()

    # ------------------------------------------------------------------------------------
    # CSRs
    async def read(self, addr: int) -> tuple[int, int]:
        """Read the word at ``addr``: ``(data, resp)``."""
        r = await self.axil.read(addr, 4)
        return int.from_bytes(r.data, "little"), int(r.resp)

    async def write(self, addr: int, word: int) -> int:
        """Write ``word`` to ``addr``; returns the response code."""
        r = await self.axil.write(addr, (word & 0xFFFFFFFF).to_bytes(4, "little"))
        return int(r.resp)

    async def read_reg(self, name: str) -> int:
        """Read register ``name``; a non-OKAY response fails."""
        data, resp = await self.read(self.regs[name].offset)
        assert resp == 0, f"read of {name} answered {resp}"
        return data

    async def write_reg(self, name: str, **fields: int) -> None:
        """Write register ``name`` with the given fields (others 0) and mirror it in the model."""
        reg = self.regs[name]
        resp = await self.write(reg.offset, reg.encode(**fields))
        assert resp == 0, f"write of {name} answered {resp}"
        m = self.model
        if name == "CTRL":
            bits = reg.field("RUN_BITS").written(fields.get("RUN_BITS", 0))
            if bits is not None:  # else RUN_BITS keeps its value
                m.run_bits = bits
            m.raw = bool(fields.get("RAW", 0))
            m.res_en = bool(fields.get("RES_EN", 0)) and self.cfg.dpu_residual
            if fields.get("CLEAR", 0):
                m.psum[:] = 0
        elif name == "W_ROW":
            row = reg.field("ROW").written(fields["ROW"])
            if row is not None:  # else W_ROW keeps its value
                m.w_row = row
        elif name == "PERF":
            if fields.get("CLEAR", 0):
                m.clear_perf()
        elif name in SCALARS:
            m.set_scalar(SCALARS[name], fields[name])

    async def set_ctrl(self, run_bits: int | None = None, raw: bool | None = None,
                       res_en: bool | None = None, clear: bool = False) -> None:
        """Write CTRL, keeping the fields not given at their modelled values."""
        m = self.model
        fields = {"RUN_BITS": m.run_bits if run_bits is None else run_bits,
                  "RAW": int(m.raw if raw is None else raw), "CLEAR": int(clear)}
        if self.cfg.dpu_residual:  # without the residual port CTRL has no RES_EN field
            fields["RES_EN"] = int(m.res_en if res_en is None else res_en)
        await self.write_reg("CTRL", **fields)

    async def set_dpu(self, p: DpuParams) -> None:
        """Write the DPU scalars and the per-column tables."""
        scalars = [("OUT_ZP", p.out_zp), ("ACT_MIN", p.act_min), ("ACT_MAX", p.act_max)]
        if self.cfg.dpu_residual:  # the residual scalars exist only with the residual port
            scalars += [("RES_MULT", p.res_multiplier), ("RES_SHIFT", p.res_shift),
                        ("RES_ZP", p.res_zp)]
        for name, value in scalars:
            await self.write_reg(name, **{name: value})
        for name, arr in (("BIAS", p.bias), ("MULT", p.multiplier), ("SHIFT", p.shift)):
            table = self.regs.table(name)
            for c, v in enumerate(arr.tolist()):
                resp = await self.write(table.addr(c), v)
                assert resp == 0, f"write of {name}[{c}] answered {resp}"
                self.model.set_table(name, c, v)

    async def wait_passes(self, timeout_cycles: int = 100000) -> None:
        """Wait until the PASSES counter shows every pass the model has seen (the core then
        holds no vector; safe to load weights)."""
        await self.x_src.idle.wait()
        want = self.model.passes & 0xFFFFFFFF
        for _ in range(timeout_cycles // 8):
            if await self.read_reg("PASSES") == want:
                return
        raise AssertionError(f"PASSES never reached {want}")

    # ------------------------------------------------------------------------------------
    # Streams
    def _feed(self, fn):
        return lambda pkt: fn(pkt.beats)

    def send_row(self, row) -> Packet:
        """Queue one weight row (``cols`` int values) for the row ``W_ROW`` points at when it
        is written; the model learns it with the time of its acceptance."""
        beats = pack_beats(np.asarray(row, dtype=np.int64), 8, self.cfg.w_lanes)
        return self.w_src.send_nowait(Packet(beats, 0, lambda pkt: self.model.weight_packet(
            pkt.beats, get_sim_time())))

    async def load_weights(self, W: np.ndarray, first_row: int = 0) -> None:
        """Load rows ``first_row..`` of the array with ``W`` (shape (n, cols)); waits until every
        row is accepted. Call only while the core holds no vector (see :meth:`wait_passes`).
        With two weight sets the rows go into the shadow set and the next vector sent
        (:meth:`send_vector`) swaps it in, so that a test written for one set computes with
        the rows it loaded."""
        if first_row != self.model.w_row:
            await self.write_reg("W_ROW", ROW=first_row)
        last = None
        for row in np.asarray(W):
            last = self.send_row(row)
        if last is not None:
            await last.sent.wait()
        self._swap_next = self.cfg.weight_sets == 2

    def send_vector(self, x, acc: bool = False, emit: bool = True, beats: int | None = None,
                    garbage: bool = False, swap: bool | None = None) -> Packet:
        """Queue one activation vector (int values; ``garbage`` fills the bits above the
        runtime precision with random bits, which the core must ignore). ``swap`` sets tuser
        SWAP (two weight sets only); None swaps if weights were loaded since the last
        vector (:meth:`load_weights`)."""
        cfg = self.cfg
        x = np.asarray(x, dtype=np.int64)
        if garbage:
            b = self.model.run_bits
            x = (x & ((1 << b) - 1)) | (self.rng.integers(0, 256, x.shape) & ~((1 << b) - 1))
        data = pack_beats(x, 8, cfg.x_lanes, beats)
        if swap is None:
            swap = self._swap_next
        assert not swap or cfg.weight_sets == 2, "SWAP needs two weight sets"
        self._swap_next = False
        tuser = int(acc) | (int(emit) << 1) | (int(swap) << 2)
        return self.x_src.send_nowait(Packet(data, tuser, self._timed(
            lambda pkt: self.model.activation_packet(pkt.beats, pkt.tuser, get_sim_time()))))

    def send_residual(self, r, beats: int | None = None) -> Packet:
        """Queue one int8 residual vector."""
        assert self.r_src is not None, "this configuration has no residual stream"
        data = pack_beats(np.asarray(r, dtype=np.int64), 8, self.cfg.x_lanes, beats)
        return self.r_src.send_nowait(Packet(data, 0, self._feed(self.model.residual_packet)))

    async def drain(self, timeout_cycles: int | None = None) -> None:
        """Wait until every queued input is accepted and every predicted result has arrived.

        ``timeout_cycles`` is the limit per outstanding result or queued packet; by default
        four times what one vector (:meth:`~dcim.golden.config.CoreConfig.latency_bound`) or
        one weight row may take under the heaviest stalls (:data:`MAX_PAUSE` before each
        beat), plus 200 cycles for the drivers.
        """
        cfg = self.cfg
        if timeout_cycles is None:
            timeout_cycles = 4 * max(cfg.latency_bound(1, stall=MAX_PAUSE),
                                     cfg.w_beats * (1 + MAX_PAUSE)) + 200
        async def _wait():
            for src in (self.w_src, self.x_src, self.r_src):
                if src is not None:
                    await src.idle.wait()
            while self.sb.outstanding and not self.sb.errors:
                self.sb.event.clear()
                await self.sb.event.wait()
        pending = self.sb.outstanding + sum(
            len(src.queue) + 1 for src in (self.w_src, self.x_src, self.r_src) if src is not None)
        total = 2000 + timeout_cycles * pending
        try:
            await with_timeout(_wait(), total * CLOCK_NS, "ns")
        except SimTimeoutError:
            raise AssertionError(f"drain timed out after {total} cycles: {self._state()}"
                                 ) from None
        self.sb.compare()
        if self.sb.errors:
            raise AssertionError(f"{len(self.sb.errors)} scoreboard error(s); first: "
                                 f"{self.sb.errors[0]}")

    def _state(self) -> str:
        """Where every stream stands (for a hang report)."""
        parts = [f"{self.sb.outstanding} result(s) outstanding, "
                 f"{self.sb.compared} compared, {self.model.passes} passes accepted"]
        for port in (self.w_src, self.x_src, self.r_src):
            if port is not None:
                parts.append(f"{port.name}: {port.packets} packets accepted, "
                             f"{len(port.queue)} queued, tvalid={port.bus.tvalid.value} "
                             f"tready={port.bus.tready.value}")
        y = self.y_sink
        parts.append(f"{y.name}: {y.packets} packets, {len(y._beats)} beats of a partial one, "
                     f"tvalid={y.bus.tvalid.value} tready={y.bus.tready.value}")
        return "; ".join(parts)

    def stream_errors(self) -> list[str]:
        """X-check violations collected by the stream drivers."""
        out = []
        for port in (self.w_src, self.x_src, self.r_src, self.y_sink):
            if port is not None:
                out += port.errors
        return out

    def finish(self) -> None:
        """Final checks of a test: no X, scoreboard clean, something compared."""
        errs = self.stream_errors()
        assert not errs, f"{len(errs)} X-check violation(s); first: {errs[0]}"
        self.sb.check()
