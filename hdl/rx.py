"""Stream receivers (``w_rx``, ``x_rx``, ``r_rx`` in ``ctrl``): AXI4-Stream slaves that take
packets of a fixed beat count into a one-packet buffer.

The packet rules are those of docs/core.md ("Streams"): byte lane ``i`` of beat ``j`` is element
``j*lanes + i`` (lanes past the element count are ignored); a packet with another beat count
(``tlast`` early, or missing on the expected last beat: then every beat up to ``tlast`` is
consumed) is dropped whole and reported on ``status.err``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..golden.config import CoreConfig
from ._cfg import CfgChecked, check_cfg
from .axi import LANE_BITS, axi_stream_signature

__all__ = ["ActivationReceiver", "StreamReceiver", "buffer_signature",
           "rx_status_signature", "x_user"]


def x_user(cfg: CoreConfig) -> data.StructLayout:
    """``tuser`` of the activation stream (docs/core.md): bit 0 ACC, bit 1 EMIT and, with
    ``weight_sets`` 2, bit 2 SWAP (``cfg.x_user_bits`` bits)."""
    fields = {"acc": 1, "emit": 1} | ({"swap": 1} if cfg.weight_sets == 2 else {})
    layout = data.StructLayout(fields)
    assert layout.size == cfg.x_user_bits
    return layout


def buffer_signature(count: int, width: int, *, user=None, bits=None) -> wiring.Signature:
    """The buffer of a receiver as its consumer sees it (the receiver's view: the consumer has
    ``In(...)``).

    Members
    -------
    data : Out(count * width)
        The buffered packet: element ``e`` at bits ``[e*width, +width)``.
    full : Out(1)
        ``data`` holds a whole packet.
    take : In(1)
        The consumer takes the packet this cycle (``full`` falls unless another completes).
    user : Out(user), if ``user``
        ``tuser`` of the packet's first beat.
    bits : Out(bits), if ``bits``
        The runtime precision the packet was received with (:class:`ActivationReceiver`).
    """
    members = {"data": Out(count * width), "full": Out(1), "take": In(1)}
    if user is not None:
        members["user"] = Out(user)
    if bits is not None:
        members["bits"] = Out(bits)
    return wiring.Signature(members)


def rx_status_signature(run_bits=None) -> wiring.Signature:
    """What the CSR block sees of a receiver (the receiver's view).

    Members
    -------
    busy : Out(1)
        A packet is partly received or waits in the buffer.
    err : Out(1)
        Pulses on the ``tlast`` beat of a packet with a wrong beat count.
    run_bits : In(run_bits), if ``run_bits``
        ``CTRL.RUN_BITS`` (:class:`ActivationReceiver`).
    """
    members = {"busy": Out(1), "err": Out(1)}
    if run_bits is not None:
        members["run_bits"] = In(run_bits)
    return wiring.Signature(members)


class StreamReceiver(wiring.Component):
    """An AXI4-Stream slave taking packets of ``beats`` beats into a buffer of ``count``
    elements of ``width`` bits (the low ``width`` bits of byte lanes, ``lanes`` per beat).

    A complete, well-formed packet sets ``buf.full``; while it is full the stream is stalled
    (``tready`` low), except in the cycle the consumer takes it when ``overlap``. A packet's
    beats are written into the buffer as they arrive, one register per beat, so that
    elaboration stays linear in the buffer size.

    Parameters
    ----------
    stream_bits, beats, lanes, count, width : int
    user : shape, optional
        Layout of ``tuser`` (sampled on a packet's first beat, presented as ``buf.user``).
    overlap : bool
        Accept beats in the cycle the buffer is taken.
    precision : shape, optional
        Shape of a runtime precision ``status.run_bits`` sampled on a packet's first beat and
        presented as ``buf.bits`` (what :class:`ActivationReceiver` extends the lanes by).

    Members
    -------
    s : In(axi_stream_signature(stream_bits, user bits))
    buf : Out(buffer_signature(count, width, user=user, bits=precision))
    status : Out(rx_status_signature(precision))
    """

    def __init__(self, *, stream_bits: int, beats: int, lanes: int, count: int, width: int,
                 user=None, overlap: bool = False, precision=None) -> None:
        self.beats, self.lanes, self.count, self.width = beats, lanes, count, width
        self.overlap = overlap
        user_bits = 0 if user is None else Shape.cast(user).width
        super().__init__({
            "s": In(axi_stream_signature(stream_bits, user_bits=user_bits)),
            "buf": Out(buffer_signature(count, width, user=user, bits=precision)),
            "status": Out(rx_status_signature(precision)),
        })

    @classmethod
    def weights(cls, cfg: CoreConfig) -> StreamReceiver:
        """The weight-row receiver: ``cols`` weights of ``weight_bits``."""
        check_cfg(cfg)
        return cls(stream_bits=cfg.w_stream_bits, beats=cfg.w_beats, lanes=cfg.w_lanes,
                   count=cfg.cols, width=cfg.weight_bits, overlap=True)

    @classmethod
    def residuals(cls, cfg: CoreConfig) -> StreamReceiver:
        """The residual receiver: ``cols`` int8 values on the activation-stream width."""
        check_cfg(cfg)
        return cls(stream_bits=cfg.x_stream_bits, beats=cfg.r_beats, lanes=cfg.x_lanes,
                   count=cfg.cols, width=LANE_BITS)

    def elaborate(self, platform):
        m = Module()
        s, buf, beats = self.s, self.buf, self.beats
        cnt = Signal(range(max(2, beats)))
        over = Signal()
        hs, first, write, ok = Signal(), Signal(), Signal(), Signal()
        active = Signal()
        m.d.comb += [
            hs.eq(s.tvalid & s.tready),
            first.eq((cnt == 0) & ~over),
            write.eq(hs & ~over),
            ok.eq(hs & s.tlast & ~over & (cnt == beats - 1)),
            self.status.err.eq(hs & s.tlast & ~ok),
            active.eq((cnt != 0) | over),
            self.status.busy.eq(buf.full | active),
            s.tready.eq((~buf.full | buf.take) if self.overlap else ~buf.full),
        ]
        with m.If(hs):
            with m.If(s.tlast):
                m.d.sync += [cnt.eq(0), over.eq(0)]
            with m.Elif(cnt == beats - 1):
                m.d.sync += over.eq(1)
            with m.Else():
                m.d.sync += cnt.eq(cnt + 1)
        with m.If(buf.take):
            m.d.sync += buf.full.eq(0)
        with m.If(ok):
            m.d.sync += buf.full.eq(1)
        if "user" in buf.signature.members:
            with m.If(write & first):
                m.d.sync += buf.user.eq(s.tuser)
        lanes = self._lanes(m, write & first, first)
        # One register per beat: on each written beat j, element j*lanes + i takes lane i.
        segs = []
        for j in range(-(-self.count // self.lanes)):
            n = min(self.count, (j + 1) * self.lanes) - j * self.lanes
            seg = Signal(n * self.width, reset_less=True, name=f"beat{j}")
            with m.If(write & (cnt == j)):
                m.d.sync += seg.eq(Cat(lanes[:n]))
            segs.append(seg)
        m.d.comb += buf.data.eq(Cat(segs))
        return m

    def _lanes(self, m: Module, start, first) -> list:
        """The element each byte lane of the current beat carries: its low ``width`` bits.
        ``start`` is high on the written first beat of a packet, ``first`` on its first beat."""
        return [self.s.tdata[i * LANE_BITS:i * LANE_BITS + self.width]
                for i in range(self.lanes)]


class ActivationReceiver(CfgChecked, StreamReceiver):
    """The activation receiver: ``rows`` activations, each the low ``b`` bits of its byte lane
    sign-extended (if ``act_signed``) or zero-extended to ``act_bits``, where ``b`` is
    ``status.run_bits`` (``CTRL.RUN_BITS``) when the packet's first beat arrives; ``buf.bits``
    is that ``b`` and ``buf.user`` the packet's ``tuser`` (:func:`x_user`). The buffer may be
    refilled in the cycle it is taken.
    """

    def __init__(self, cfg: CoreConfig) -> None:
        self.cfg = check_cfg(cfg)
        super().__init__(stream_bits=cfg.x_stream_bits, beats=cfg.x_beats, lanes=cfg.x_lanes,
                         count=cfg.rows, width=cfg.act_bits, user=x_user(cfg), overlap=True,
                         precision=cfg.precision_bits)

    def _lanes(self, m: Module, start, first) -> list:
        cfg = self.cfg
        with m.If(start):
            m.d.sync += self.buf.bits.eq(self.status.run_bits)
        b_now = Mux(first, self.status.run_bits, self.buf.bits)
        ext = [Signal(cfg.act_bits, name=f"x_ext{i}") for i in range(self.lanes)]
        for i, e in enumerate(ext):
            byte = self.s.tdata[i * LANE_BITS:(i + 1) * LANE_BITS]
            # The low b_now bits of the byte, sign- or zero-extended to act_bits.
            sign = (byte.bit_select((b_now - 1).as_unsigned(), 1) if cfg.act_signed
                    else Const(0, 1))
            m.d.comb += e.eq(Cat(Mux(b_now > p, byte[p], sign) for p in range(cfg.act_bits)))
        return ext
