"""The output packer (``out`` in ``ctrl``): holds one pass result, sends it through the DPU (or
RAW) and packs it into ``m_axis_y`` beats.

The result formats are those of docs/core.md ("Results"): int8 DPU outputs, ``y_stream_bits/8``
per beat, or with ``CTRL.RAW`` int32 lanes holding the partial sums sign-extended from
``psum_bits``; lanes past ``cols`` are 0.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from ..golden.config import CoreConfig
from ._base import CfgComponent, CfgSignature
from .accum import PassResultSignature
from .axi import LANE_BITS, axi_stream_signature
from .dpu import input_layout, output_layout
from .rx import buffer_signature

__all__ = ["OutputPacker", "PackerCsrSignature"]

#: Bits of a RAW result lane (int32).
_RAW_BITS = 32


class PackerCsrSignature(CfgSignature):
    """What the output packer and the CSR block exchange (the packer's view).

    Members
    -------
    load : Out(1)
        A result is loaded this cycle: the CSR block samples ``CTRL.RAW`` and ``CTRL.RES_EN``
        for it.
    raw : In(1)
        The loaded result goes out RAW.
    res : In(1)
        The loaded result takes a residual packet (DPU results only).
    busy : Out(1)
        A result is in the output buffer.
    """

    def __init__(self, cfg: CoreConfig) -> None:
        super().__init__(cfg, {"load": Out(1), "raw": In(1), "res": In(1), "busy": Out(1)})


class OutputPacker(CfgComponent):
    """The output buffer, the DPU feed and the result stream.

    When an EMIT pass commits (``result.update`` and ``result.emit``), its partial sums are
    loaded into the output buffer; ``result.busy`` holds the next EMIT commit while the buffer
    is taken. A RAW result goes out of the buffer directly and frees it after its last ``y``
    beat. A DPU result is fed to the DPU one group of ``dpu_lanes`` columns per accepted
    ``dpu_i`` transfer (with the buffered residuals if ``csr.res``, after a residual packet is
    buffered, which it then takes), and the buffer is free again in the cycle its last group is
    fed: the next commit may load it in that cycle. The DPU's outputs are collected into one of
    two result banks (the result of the next pass collects into the other while this one is
    sent), and each beat goes out as soon as its columns are back. Feeding a result starts only
    when a bank is free; results leave in commit order (a RAW result waits for the DPU results
    before it).

    Parameters
    ----------
    cfg : CoreConfig

    Members
    -------
    result : In(PassResultSignature(cfg))
    r : In(buffer_signature(cols, 8)), only if ``cfg.dpu_residual``
        The residual buffer.
    csr : Out(PackerCsrSignature(cfg))
    dpu_i : Out(stream.Signature(dpu.input_layout(cfg)))
    dpu_o : In(stream.Signature(dpu.output_layout(cfg)))
    y : Out(axi_stream_signature(y_stream_bits))
    """

    #: Result banks the DPU's outputs are collected into.
    BANKS = 2

    def _members(self, cfg: CoreConfig) -> dict:
        members = {"result": In(PassResultSignature(cfg))}
        if cfg.dpu_residual:
            members["r"] = In(buffer_signature(cfg.cols, LANE_BITS))
        members.update({
            "csr": Out(PackerCsrSignature(cfg)),
            "dpu_i": Out(stream.Signature(input_layout(cfg))),
            "dpu_o": In(stream.Signature(output_layout(cfg))),
            "y": Out(axi_stream_signature(cfg.y_stream_bits)),
        })
        return members

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        cols, pb = cfg.cols, cfg.psum_bits
        res_in, y = self.result, self.y
        raw_q, res_q = self.csr.raw, self.csr.res
        res_done = Signal()
        if cfg.dpu_residual:
            r = self.r
            rbuf = [r.data[c * LANE_BITS:(c + 1) * LANE_BITS] for c in range(cols)]
            rbuf_full = r.full
            m.d.comb += r.take.eq(res_done)
        else:
            rbuf, rbuf_full = [Const(0, LANE_BITS)] * cols, Const(0, 1)

        L, groups = cfg.dpu_lanes, cfg.dpu_groups
        raw_beats, dpu_beats = cfg.y_beats(raw=True), cfg.y_beats(raw=False)
        obuf = [Signal(pb, reset_less=True, name=f"obuf{c}") for c in range(cols)]
        obuf_busy = Signal()
        # DPU results in the banks (their first group is back) and not yet sent: at most BANKS.
        pending = Signal(range(self.BANKS + 1))
        ob, rb = Signal(), Signal()  # the bank the DPU writes, the bank being sent
        load, fed_last, y_hs = Signal(), Signal(), Signal()
        m.d.comb += [load.eq(res_in.update & res_in.emit), self.csr.load.eq(load),
                     res_in.busy.eq(obuf_busy & ~fed_last),
                     self.csr.busy.eq(obuf_busy | (pending != 0)),
                     y_hs.eq(y.tvalid & y.tready)]
        yb = Signal(range(max(2, raw_beats, dpu_beats)))
        g = Signal(range(max(2, groups)))

        # RAW beats: int32 lanes, sign-extended partial sums.
        y32 = cfg.y_lanes(raw=True)
        raw_words = []
        for bi in range(raw_beats):
            lanes = []
            for li in range(y32):
                c = bi * y32 + li
                if c < cols:
                    v = obuf[c]
                    lanes.append(Cat(v, v[-1].replicate(_RAW_BITS - pb)) if pb < _RAW_BITS
                                 else v)
                else:
                    lanes.append(Const(0, _RAW_BITS))
            raw_words.append(Cat(lanes))

        # DPU feeder.
        ip = self.dpu_i
        feed_hs = Signal()
        m.d.comb += [
            ip.valid.eq(obuf_busy & ~raw_q & (~res_q | rbuf_full)),
            ip.payload.psum.eq(Array(Cat(obuf[gi * L:(gi + 1) * L])
                                     for gi in range(groups))[g]),
            ip.payload.res.eq(Array(Cat(rbuf[gi * L:(gi + 1) * L])
                                    for gi in range(groups))[g]),
            ip.payload.col.eq(g * L), ip.payload.last.eq(g == groups - 1),
            feed_hs.eq(ip.valid & ip.ready),
            fed_last.eq(feed_hs & ip.payload.last),
            res_done.eq(fed_last & res_q),
        ]
        with m.If(feed_hs):
            m.d.sync += g.eq(Mux(g == groups - 1, 0, g + 1))
        with m.If(fed_last):
            m.d.sync += obuf_busy.eq(0)
        with m.If(load):
            m.d.sync += [*(o.eq(p) for o, p in zip(obuf, res_in.psum)), obuf_busy.eq(1)]

        # DPU results into the bank ``ob``.
        op = self.dpu_o
        og = Signal(range(max(2, groups)))
        banks = [[Signal(L * LANE_BITS, reset_less=True, name=f"ybuf{b}_{gi}")
                  for gi in range(groups)] for b in range(self.BANKS)]
        ocnt = [Signal(range(cols + 1), name=f"ocnt{b}") for b in range(self.BANKS)]
        # The DPU stalls (without loss) while its next result would start a bank none is free.
        out_hs, claim = Signal(), Signal()
        m.d.comb += [op.ready.eq((og != 0) | (pending != self.BANKS)),
                     out_hs.eq(op.valid & op.ready), claim.eq(out_hs & (og == 0))]
        with m.If(out_hs):
            for b, bank in enumerate(banks):
                for gi, grp in enumerate(bank):
                    with m.If((ob == b) & (og == gi)):
                        m.d.sync += grp.eq(op.payload.y)
                with m.If(ob == b):
                    m.d.sync += ocnt[b].eq(ocnt[b] + L)
            m.d.sync += og.eq(Mux(og == groups - 1, 0, og + 1))
            with m.If(og == groups - 1):
                m.d.sync += ob.eq(~ob)

        # The result stream: the oldest DPU result (bank ``rb``) if any, else a RAW result.
        y8 = cfg.y_lanes(raw=False)
        bank_words = []
        for bank in banks:
            ybytes = [bank[c // L][(c % L) * LANE_BITS:(c % L + 1) * LANE_BITS]
                      for c in range(cols)]
            words = []
            for bi in range(dpu_beats):
                hi = min(cols, (bi + 1) * y8)
                pad = ((bi + 1) * y8 - hi) * LANE_BITS
                words.append(Cat(*ybytes[bi * y8:hi], Const(0, pad)) if pad
                             else Cat(ybytes[bi * y8:hi]))
            bank_words.append(words)
        need = Array(Const(min(cols, (bi + 1) * y8), range(cols + 1))
                     for bi in range(dpu_beats))[yb]
        ybits = cfg.y_stream_bits
        dpu_y = Signal()
        m.d.comb += [
            dpu_y.eq(pending != 0),
            y.tvalid.eq(Mux(dpu_y, Mux(rb, ocnt[1], ocnt[0]) >= need, obuf_busy & raw_q)),
            y.tdata.eq(Mux(dpu_y,
                           Mux(rb, Array(w[:ybits] for w in bank_words[1])[yb],
                               Array(w[:ybits] for w in bank_words[0])[yb]),
                           Array(w[:ybits] for w in raw_words)[yb])),
            y.tlast.eq(Mux(dpu_y, yb == dpu_beats - 1, yb == raw_beats - 1)),
        ]
        sent = Signal()
        m.d.comb += sent.eq(y_hs & y.tlast & dpu_y)
        with m.If(claim & ~sent):
            m.d.sync += pending.eq(pending + 1)
        with m.If(sent & ~claim):
            m.d.sync += pending.eq(pending - 1)
        with m.If(y_hs):
            with m.If(y.tlast):
                m.d.sync += yb.eq(0)
                with m.If(dpu_y):
                    m.d.sync += rb.eq(~rb)
                    for b in range(self.BANKS):
                        with m.If(rb == b):
                            m.d.sync += ocnt[b].eq(0)
                with m.Else():
                    m.d.sync += obuf_busy.eq(0)
            with m.Else():
                m.d.sync += yb.eq(yb + 1)
        return m
