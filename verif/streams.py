"""Whole-packet AXI4-Stream drivers that let the simulator run freely between handshakes.

:class:`StreamSource` sends packets (lists of beat integers) on a slave port; :class:`StreamSink`
collects packets from a master port. Both bind to the DUT by prefix through cocotbext-axi's
:class:`~cocotbext.axi.AxiStreamBus`. Python wakes only for a handshake, a beat to present or a
stall pattern step: while a stream waits on its partner (``tready`` or ``tvalid`` low) the
driver sleeps on the partner's rising edge instead of polling every clock.

Each port predicts, from the last transfer, whether its partner keeps its handshake high after
a transfer. If it did, the next beat waits for the next clock edge (one wake-up per beat of a
burst). If it did not (a core that takes one vector per pass), the next beat starts with a
look at the settled partner signal in the same time step (``ReadOnly``) and sleeps on its
rising edge straight away, instead of first waking at the next edge to find it low: three
wake-ups per beat instead of four. Both paths transfer at the same clock edges; only the number
of wake-ups differs. A port with a ``pause`` pattern always waits edge-first: the pattern draws
from the test's random generator, which the other drivers and the test share, and the order
of draws in one time step follows the order in which the drivers wake; keeping that order
keeps every stall test's stimulus (and its output digest) what it was.

A driver sets its side of a handshake only after the clock edge of the current time step, so
that the next edge is the first that can sample it. A source woken from idle by
:meth:`StreamSource.send_nowait` (and a sink when it starts) may run in a time step whose
rising edge is still to come: a test resumed by a timer that expires at an edge's time runs
before cocotb's clock toggles. Which edge then samples its writes depends on the simulator
(cocotb applies writes made outside ``ReadWrite`` at that phase): on Icarus that edge saw the
old ``tvalid`` while the driver, woken by it with ``tready`` high, counted the beat as sent
(a lost beat); on Verilator that edge took the beat while the driver waited for the next
(a duplicated beat). Such a driver first waits for ``ReadWrite``, which comes after the edge
of its time step, then drives. The draw from the stall pattern stays before that wait.

Idle and backpressure insertion: ``pause`` is an iterator of ints (cycles to wait before each
beat for a source, cycles of ``tready`` low before each beat for a sink), or None for none.

X checks: when ``xcheck`` is set, every sampled handshake signal must be 0 or 1 and every beat a
sink accepts must be fully known (no X/Z); violations are collected in :attr:`errors`.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import cocotb
from cocotb.triggers import ClockCycles, Event, ReadOnly, ReadWrite, RisingEdge
from cocotbext.axi import AxiStreamBus

from .beats import pack_beats, unpack_beats

__all__ = ["Packet", "StreamSink", "StreamSource", "pack_beats", "unpack_beats"]


@dataclass
class Packet:
    """A packet to send: its beats, its ``tuser`` (driven on every beat) and a callback run
    when its last beat is accepted (the input monitor of the model)."""

    beats: list[int]
    tuser: int = 0
    on_accept: Callable[[Packet], None] | None = None
    sent: Event = field(default_factory=Event)


def _is01(value) -> bool:
    return str(value) in ("0", "1")


class _Port:
    def __init__(self, dut, prefix: str, clock, xcheck: bool, pause: Iterator[int] | None):
        self.bus = AxiStreamBus.from_prefix(dut, prefix)
        self.pause = pause
        self.name = prefix.rstrip("_")
        self.clock = clock
        self.xcheck = xcheck
        self.errors: list[str] = []
        self.beats = 0
        self._edge = RisingEdge(clock)
        self._driven: dict[str, int] = {}
        # Whether the partner's handshake was still high after the last transfer (the
        # prediction of the module docstring).
        self._partner_stays = True

    def set_pause(self, pause: Iterator[int] | None) -> None:
        """Replace the stall pattern (None: none) from the next beat on."""
        self.pause = pause

    def _drive(self, name: str, value: int) -> None:
        """Write ``value`` to the bus signal ``name`` unless it already holds it (each write
        costs a scheduled GPI call; the handshake and framing signals rarely change)."""
        if self._driven.get(name) != value:
            getattr(self.bus, name).value = value
            self._driven[name] = value

    def _reset_driven(self, **values: int) -> None:
        """Write every signal of ``values`` now and remember it (initialization, flush)."""
        self._driven.clear()
        for name, value in values.items():
            getattr(self.bus, name).value = value
            self._driven[name] = value

    def _check01(self, handle, what: str) -> bool:
        value = handle.value
        if self.xcheck and not _is01(value):
            now = cocotb.utils.get_sim_time("ns")
            self.errors.append(f"{self.name}: {what} is {value} at {now} ns")
            return False
        return bool(int(value)) if _is01(value) else False

    async def _transfer(self, handle, what: str) -> None:
        """Return at the first clock edge at which the partner's handshake ``handle`` is
        sampled high. Called in the time step in which this driver has just set its own side
        of the handshake (and the data), so that a transfer at the next edge is not missed."""
        if self._partner_stays:
            await self._edge
            if self._check01(handle, what):
                return
        await self._wait_high(handle, what)

    async def _wait_high(self, handle, what: str) -> None:
        """Return at the first clock edge at which ``handle`` was sampled high; sleeps on its
        rising edge instead of polling. The value settled at ``ReadOnly`` is the one the next
        edge samples, so it is X-checked like a sample."""
        while True:
            await ReadOnly()
            high = self._check01(handle, what)
            if self.pause is None:  # see the module docstring: stall patterns keep edge-first
                self._partner_stays = high
            if not high:
                await RisingEdge(handle)
            await self._edge
            if self._check01(handle, what):
                return


class StreamSource(_Port):
    """Drives an AXI4-Stream slave port of the DUT with whole packets.

    Parameters
    ----------
    dut : cocotb handle
    prefix : str
        Port prefix including the trailing ``_`` that cocotbext-axi adds one more to
        (``"s_axis_x_"`` binds ``s_axis_x__tdata`` ...).
    clock : cocotb handle
    pause : iterator of int, optional
        Idle cycles (``tvalid`` low) inserted before each beat.
    """

    def __init__(self, dut, prefix: str, clock, *, pause: Iterator[int] | None = None,
                 xcheck: bool = False):
        super().__init__(dut, prefix, clock, xcheck, pause)
        self.queue: collections.deque[Packet] = collections.deque()
        self._kick = Event()
        self.idle = Event()
        self.idle.set()
        self.has_tuser = hasattr(self.bus, "tuser")
        self.bus.tdata.value = 0
        self._reset_driven(tvalid=0, tlast=0, **({"tuser": 0} if self.has_tuser else {}))
        self.packets = 0
        self._task = cocotb.start_soon(self._run())

    def send_nowait(self, packet: Packet) -> Packet:
        """Queue ``packet``; returns it (await ``packet.sent.wait()`` for its acceptance)."""
        self.queue.append(packet)
        self.idle.clear()
        self._kick.set()
        return packet

    async def send(self, packet: Packet) -> None:
        """Queue ``packet`` and wait until its last beat is accepted."""
        self.send_nowait(packet)
        await packet.sent.wait()

    def flush(self) -> None:
        """Drop every queued packet and restart (after a reset)."""
        self._task.cancel()
        self.queue.clear()
        self._reset_driven(tvalid=0, tlast=0)
        self.idle.set()
        self._task = cocotb.start_soon(self._run())

    async def _run(self) -> None:
        bus = self.bus
        woken = False  # resumed by send_nowait: perhaps before this time step's clock edge
        while True:
            if not self.queue:
                self._drive("tvalid", 0)
                self.idle.set()
                self._kick.clear()
                await self._kick.wait()
                woken = True
                continue
            pkt = self.queue.popleft()
            last = len(pkt.beats) - 1
            for j, beat in enumerate(pkt.beats):
                n = next(self.pause, 0) if self.pause is not None else 0
                if woken:  # see the module docstring: drive after this time step's edge
                    await ReadWrite()
                    woken = False
                if n:
                    self._drive("tvalid", 0)
                    await ClockCycles(self.clock, n)
                bus.tdata.value = beat
                self._drive("tlast", int(j == last))
                if self.has_tuser:
                    self._drive("tuser", pkt.tuser)
                self._drive("tvalid", 1)
                await self._transfer(bus.tready, "tready")
                self.beats += 1
            self.packets += 1
            if not self.queue:
                self._drive("tvalid", 0)
            if pkt.on_accept is not None:
                pkt.on_accept(pkt)
            pkt.sent.set()


class StreamSink(_Port):
    """Collects packets from an AXI4-Stream master port of the DUT.

    Parameters
    ----------
    pause : iterator of int, optional
        Cycles of ``tready`` low inserted before each beat (backpressure); without it
        ``tready`` stays high.
    on_packet : callable, optional
        Called with the list of beats of every complete packet (the output monitor).
    """

    def __init__(self, dut, prefix: str, clock, *, pause: Iterator[int] | None = None,
                 on_packet: Callable[[list[int]], None] | None = None, xcheck: bool = False):
        super().__init__(dut, prefix, clock, xcheck, pause)
        self.on_packet = on_packet
        self.packets = 0
        self._beats: list[int] = []
        self._reset_driven(tready=0)
        self._task = cocotb.start_soon(self._run())

    def flush(self, restart: bool = True) -> None:
        """Drop a partial packet; stop (``tready`` low) and restart unless ``restart`` is
        False (around a reset)."""
        self._task.cancel()
        self._beats = []
        self._reset_driven(tready=0)
        if restart:
            self._task = cocotb.start_soon(self._run())

    async def _run(self) -> None:
        bus = self.bus
        started = True  # perhaps before this time step's clock edge (module docstring)
        while True:
            n = next(self.pause, 0) if self.pause is not None else 0
            if started:
                await ReadWrite()
                started = False
            while n:
                self._drive("tready", 0)
                await ClockCycles(self.clock, n)
                n = next(self.pause, 0) if self.pause is not None else 0
            self._drive("tready", 1)
            await self._transfer(bus.tvalid, "tvalid")
            data, tlast = bus.tdata.value, bus.tlast.value
            if self.xcheck and not (data.is_resolvable and _is01(tlast)):
                self.errors.append(f"{self.name}: beat {len(self._beats)} has unknown bits: "
                                   f"tdata={data} tlast={tlast}")
                self._beats.append(0)
            else:
                self._beats.append(data.to_unsigned())
            self.beats += 1
            if _is01(tlast) and int(tlast):
                beats, self._beats = self._beats, []
                self.packets += 1
                if self.on_packet is not None:
                    self.on_packet(beats)
