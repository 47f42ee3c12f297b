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
    """The output buffer and result stream.

    When an EMIT pass commits (``result.update`` and ``result.emit``), its partial sums are
    loaded and ``result.busy`` holds the next EMIT commit until the last ``y`` beat. A RAW
    result goes out directly; otherwise the packer feeds the DPU one group of ``dpu_lanes``
    columns per accepted ``dpu_i`` transfer (with the buffered residuals if ``csr.res``, after
    a residual packet is buffered, which it then takes), collects ``dpu_o`` and sends each
    beat as soon as its columns are back.

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

        obuf = [Signal(pb, reset_less=True, name=f"obuf{c}") for c in range(cols)]
        obuf_busy = Signal()
        load = Signal()
        m.d.comb += [load.eq(res_in.update & res_in.emit), self.csr.load.eq(load),
                     res_in.busy.eq(obuf_busy), self.csr.busy.eq(obuf_busy)]
        y_hs = Signal()
        m.d.comb += y_hs.eq(y.tvalid & y.tready)
        raw_beats, dpu_beats = cfg.y_beats(raw=True), cfg.y_beats(raw=False)
        yb = Signal(range(max(2, raw_beats, dpu_beats)))
        L = cfg.dpu_lanes
        groups = cfg.dpu_groups
        g = Signal(range(max(2, groups)))
        fed_all = Signal()
        ocnt = Signal(range(cols + 1))
        ygroups = [Signal(L * LANE_BITS, reset_less=True, name=f"ybuf{gi}")
                   for gi in range(groups)]
        ybytes = [ygroups[c // L][(c % L) * LANE_BITS:(c % L + 1) * LANE_BITS]
                  for c in range(cols)]
        with m.If(load):
            m.d.sync += [*(o.eq(p) for o, p in zip(obuf, res_in.psum)), obuf_busy.eq(1)]

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
        m.d.comb += [
            ip.valid.eq(obuf_busy & ~raw_q & ~fed_all & (~res_q | rbuf_full)),
            ip.payload.psum.eq(Array(Cat(obuf[gi * L:(gi + 1) * L])
                                     for gi in range(groups))[g]),
            ip.payload.res.eq(Array(Cat(rbuf[gi * L:(gi + 1) * L])
                                    for gi in range(groups))[g]),
            ip.payload.col.eq(g * L), ip.payload.last.eq(g == groups - 1),
            res_done.eq(ip.valid & ip.ready & ip.payload.last & res_q),
        ]
        with m.If(ip.valid & ip.ready):
            with m.If(g == groups - 1):
                m.d.sync += [fed_all.eq(1), g.eq(0)]
            with m.Else():
                m.d.sync += g.eq(g + 1)
        # DPU results into the result buffer.
        op = self.dpu_o
        og = Signal(range(max(2, groups)))
        m.d.comb += op.ready.eq(1)
        with m.If(op.valid):
            for gi, grp in enumerate(ygroups):
                with m.If(og == gi):
                    m.d.sync += grp.eq(op.payload.y)
            m.d.sync += [og.eq(Mux(og == groups - 1, 0, og + 1)), ocnt.eq(ocnt + L)]
        y8 = cfg.y_lanes(raw=False)
        dpu_words = []
        for bi in range(dpu_beats):
            hi = min(cols, (bi + 1) * y8)
            pad = ((bi + 1) * y8 - hi) * LANE_BITS
            dpu_words.append(Cat(*ybytes[bi * y8:hi], Const(0, pad)) if pad
                             else Cat(ybytes[bi * y8:hi]))
        need = Array(Const(min(cols, (bi + 1) * y8), range(cols + 1))
                     for bi in range(dpu_beats))[yb]
        ybits = cfg.y_stream_bits
        m.d.comb += [
            y.tvalid.eq(obuf_busy & (raw_q | (ocnt >= need))),
            y.tdata.eq(Mux(raw_q, Array(w[:ybits] for w in raw_words)[yb],
                           Array(w[:ybits] for w in dpu_words)[yb])),
            y.tlast.eq(Mux(raw_q, yb == raw_beats - 1, yb == dpu_beats - 1)),
        ]
        with m.If(y_hs):
            with m.If(y.tlast):
                m.d.sync += [obuf_busy.eq(0), yb.eq(0), fed_all.eq(0), ocnt.eq(0), og.eq(0)]
            with m.Else():
                m.d.sync += yb.eq(yb + 1)
        return m
