"""Control (``ctrl``): the AXI4-Lite CSRs built from :mod:`dcim.hdl.regmap`, the stream
receivers and buffers, the pass sequencer and the result output stage.

The behaviour is the one docs/core.md states; this module is wired by :class:`dcim.hdl.core.Core`
and is not meant to be used alone.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Elaboratable, Module, Mux, Signal
from amaranth.utils import exact_log2

from ..golden.config import CoreConfig
from .regmap import RegMap

__all__ = ["Ctrl"]

_OKAY, _SLVERR = 0, 2


class _Receiver:
    """Beat counting of one AXI4-Stream slave packet of ``beats`` beats.

    ``hs`` is the handshake, ``index`` the beat number (valid when ``write``), ``first`` the
    first beat, ``ok``/``err`` pulse on the ``tlast`` beat of a good/bad packet.
    """

    def __init__(self, m: Module, bus, beats: int, name: str) -> None:
        self.cnt = Signal(range(max(2, beats)), name=f"{name}_cnt")
        self.over = Signal(name=f"{name}_over")
        self.hs = Signal(name=f"{name}_hs")
        self.first = Signal(name=f"{name}_first")
        self.write = Signal(name=f"{name}_write")
        self.ok = Signal(name=f"{name}_ok")
        self.err = Signal(name=f"{name}_err")
        self.index = self.cnt
        m.d.comb += [
            self.hs.eq(bus.tvalid & bus.tready),
            self.first.eq((self.cnt == 0) & ~self.over),
            self.write.eq(self.hs & ~self.over),
            self.ok.eq(self.hs & bus.tlast & ~self.over & (self.cnt == beats - 1)),
            self.err.eq(self.hs & bus.tlast & ~self.ok),
        ]
        with m.If(self.hs):
            with m.If(bus.tlast):
                m.d.sync += [self.cnt.eq(0), self.over.eq(0)]
            with m.Elif(self.cnt == beats - 1):
                m.d.sync += self.over.eq(1)
            with m.Else():
                m.d.sync += self.cnt.eq(self.cnt + 1)
        self.active = (self.cnt != 0) | self.over


def _store_beats(m: Module, rx: _Receiver, count: int, lanes: int, width: int, lane_value,
                 name: str) -> list:
    """A buffer of ``count`` elements of ``width`` bits filled from the packets of ``rx``: on
    each written beat ``j``, element ``j*lanes + i`` takes ``lane_value(i)``. One register per
    beat, so that elaboration stays linear in the buffer size. Returns the elements."""
    elements = []
    for j in range(-(-count // lanes)):
        elems = range(j * lanes, min(count, (j + 1) * lanes))
        seg = Signal(len(elems) * width, reset_less=True, name=f"{name}{j}")
        with m.If(rx.write & (rx.index == j)):
            m.d.sync += seg.eq(Cat(lane_value(e - j * lanes) for e in elems))
        elements += [seg[i * width:(i + 1) * width] for i in range(len(elems))]
    return elements


def _or_all(values):
    out = Const(0, 1)
    for v in values:
        out = out | v
    return out


class Ctrl(Elaboratable):
    """CSRs, stream interfaces, sequencer and output stage of ``core``.

    Parameters
    ----------
    cfg : CoreConfig
    core : dcim.hdl.core.Core
        The top component (its ports and submodules ``array``, ``accum``,
        ``dpu`` are driven/read here).
    """

    def __init__(self, cfg: CoreConfig, core) -> None:
        self.cfg = cfg
        self.core = core
        self.regmap = RegMap(cfg)

    # ------------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        cfg, core = self.cfg, self.core
        array, accum, dpu = core.array, core.accum, core.dpu
        rows, cols = cfg.rows, cfg.cols
        ab, wb, s = cfg.act_bits, cfg.weight_bits, cfg.serial_bits
        pb = cfg.psum_bits

        csr = self._csr(m)
        run_bits = csr["CTRL.RUN_BITS"]

        # ---------------- weights: row buffer and commit
        sw = core.s_axis_w
        wrx = _Receiver(m, sw, cfg.w_beats, "w")
        w_pending = Signal()
        wl = cfg.w_lanes
        rowbuf = _store_beats(m, wrx, cols, wl, wb, lambda i: sw.tdata[i * 8:i * 8 + wb],
                              "rowbuf")
        run = Signal()
        commit = Signal()
        m.d.comb += [sw.tready.eq(~w_pending), commit.eq(w_pending & ~run),
                     array.write.we.eq(commit), array.write.row.eq(csr["W_ROW.ROW"]),
                     array.write.wdata.eq(Cat(rowbuf))]
        with m.If(commit):
            m.d.sync += w_pending.eq(0)
        with m.If(wrx.ok):
            m.d.sync += w_pending.eq(1)

        # ---------------- activations: vector buffer
        sx = core.s_axis_x
        xrx = _Receiver(m, sx, cfg.x_beats, "x")
        xfull = Signal()
        x_bits = Signal.like(run_bits, name="x_bits")
        x_acc = Signal()
        x_emit = Signal()
        start = Signal()
        with m.If(xrx.write & xrx.first):
            m.d.sync += [x_bits.eq(run_bits), x_acc.eq(sx.tuser[0]), x_emit.eq(sx.tuser[1])]
        b_now = Mux(xrx.first, run_bits, x_bits)
        xl = cfg.x_lanes
        ext = [Signal(ab, name=f"x_ext{i}") for i in range(xl)]
        m.d.comb += [e.eq(self._extend(sx.tdata[i * 8:i * 8 + 8], b_now))
                     for i, e in enumerate(ext)]
        xbuf = _store_beats(m, xrx, rows, xl, ab, lambda i: ext[i], "xbuf")
        m.d.comb += sx.tready.eq(~xfull | start)

        # ---------------- sequencer
        hold = accum.ctl.hold
        max_n = cfg.cycles_per_pass()
        j = Signal(range(max(2, max_n)))
        nlast = Signal(range(max(2, max_n)))
        t_acc = Signal()
        t_emit = Signal()
        xsr = Signal(rows * ab, reset_less=True)  # plane-major: bit p of row k at p*rows + k
        m.d.comb += start.eq(xfull & ~w_pending & ~hold & (~run | (j == nlast)))
        log_s = exact_log2(s)
        with m.If(start):
            m.d.sync += [
                xsr.eq(Cat(xbuf[k][p] for p in range(ab) for k in range(rows))),
                j.eq(0), nlast.eq((x_bits - 1) >> log_s), run.eq(1),
                t_acc.eq(x_acc), t_emit.eq(x_emit), xfull.eq(0)]
        with m.Elif(run & ~hold):
            with m.If(j == nlast):
                m.d.sync += run.eq(0)
            with m.Else():
                m.d.sync += [j.eq(j + 1), xsr.eq(xsr >> (s * rows))]
        with m.If(xrx.ok):
            m.d.sync += xfull.eq(1)
        m.d.comb += [
            array.compute.x.eq(xsr[:s * rows]), array.compute.neg.eq(j == nlast),
            array.compute.en.eq(~hold),
            accum.ctl.valid.eq(run), accum.ctl.first.eq(j == 0), accum.ctl.last.eq(j == nlast),
            accum.ctl.shamt.eq(j << log_s), accum.ctl.acc.eq(t_acc), accum.ctl.emit.eq(t_emit),
            accum.status.clear.eq(csr["CTRL.CLEAR"]),
        ]

        # ---------------- residuals
        rbuf = [Const(0, 8)] * cols
        rbuf_full = Signal()
        res_done = Signal()
        if cfg.dpu_residual:
            sr = core.s_axis_r
            rrx = _Receiver(m, sr, cfg.r_beats, "r")
            rbuf = _store_beats(m, rrx, cols, xl, 8, lambda i: sr.tdata[i * 8:i * 8 + 8], "rbuf")
            m.d.comb += sr.tready.eq(~rbuf_full)
            with m.If(res_done):
                m.d.sync += rbuf_full.eq(0)
            with m.If(rrx.ok):
                m.d.sync += rbuf_full.eq(1)
            r_err = rrx.err
        else:
            r_err = Const(0, 1)

        # ---------------- output stage
        obuf = [Signal(pb, reset_less=True, name=f"obuf{c}") for c in range(cols)]
        obuf_busy = Signal()
        raw_q = Signal()
        res_q = Signal()
        m.d.comb += accum.result.busy.eq(obuf_busy)
        y = core.m_axis_y
        y_hs = Signal()
        m.d.comb += y_hs.eq(y.tvalid & y.tready)
        raw_beats, dpu_beats = cfg.y_beats(raw=True), cfg.y_beats(raw=False)
        yb = Signal(range(max(2, raw_beats, dpu_beats)))
        L = cfg.dpu_lanes
        groups = cfg.dpu_groups
        g = Signal(range(max(2, groups)))
        fed_all = Signal()
        ocnt = Signal(range(cols + 1))
        ygroups = [Signal(L * 8, reset_less=True, name=f"ybuf{gi}") for gi in range(groups)]
        ybytes = [ygroups[c // L][(c % L) * 8:(c % L + 1) * 8] for c in range(cols)]
        with m.If(accum.result.update & accum.result.emit):
            m.d.sync += [*(o.eq(p) for o, p in zip(obuf, accum.result.psum)), obuf_busy.eq(1),
                         raw_q.eq(csr["CTRL.RAW"]),
                         res_q.eq(csr.get("CTRL.RES_EN", 0) & ~csr["CTRL.RAW"])]

        # RAW beats: int32 lanes, sign-extended partial sums.
        y32 = cfg.y_lanes(raw=True)
        raw_words = []
        for bi in range(raw_beats):
            lanes = []
            for li in range(y32):
                c = bi * y32 + li
                if c < cols:
                    v = obuf[c]
                    lanes.append(Cat(v, v[-1].replicate(32 - pb)) if pb < 32 else v)
                else:
                    lanes.append(Const(0, 32))
            raw_words.append(Cat(lanes))
        # DPU feeder.
        ip = dpu.i
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
        op = dpu.o
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
            pad = (bi + 1) * y8 * 8 - hi * 8
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

        # ---------------- DPU scalars and hardware-driven CSR inputs
        m.d.comb += [
            dpu.params.out_zp.eq(csr["OUT_ZP.OUT_ZP"]),
            dpu.params.act_min.eq(csr["ACT_MIN.ACT_MIN"]),
            dpu.params.act_max.eq(csr["ACT_MAX.ACT_MAX"]), dpu.params.res_en.eq(res_q),
        ]
        if cfg.dpu_residual:
            m.d.comb += [
                dpu.params.res_multiplier.eq(csr["RES_MULT.RES_MULT"]),
                dpu.params.res_shift.eq(csr["RES_SHIFT.RES_SHIFT"]),
                dpu.params.res_zp.eq(csr["RES_ZP.RES_ZP"]),
            ]
        self._hw = {
            "STATUS.BUSY": _or_all([xfull, run, accum.status.busy, obuf_busy, w_pending,
                                    xrx.active, wrx.active]),
            "STATUS.ERR_W_LEN": wrx.err, "STATUS.ERR_X_LEN": xrx.err,
            "STATUS.ERR_R_LEN": r_err, "STATUS.PSUM_SAT": accum.status.sat,
            "PASSES.COUNT": csr["PASSES.COUNT"],
        }
        passes = csr["PASSES.COUNT"]
        with m.If(accum.status.done):
            m.d.sync += passes.eq(passes + 1)
        with m.If(commit):
            m.d.sync += csr["W_ROW.ROW"].eq(
                Mux(csr["W_ROW.ROW"] == rows - 1, 0, csr["W_ROW.ROW"] + 1))
        self._axil(m, csr)
        return m

    def _extend(self, byte, bits):
        """The low ``bits`` (a runtime value) of ``byte``, sign/zero-extended to act_bits."""
        cfg = self.cfg
        sign = byte.bit_select((bits - 1).as_unsigned(), 1) if cfg.act_signed else Const(0, 1)
        return Cat(Mux(bits > p, byte[p], sign) for p in range(cfg.act_bits))

    # ------------------------------------------------------------------------------------
    def _csr(self, m: Module) -> dict:
        """Storage for every non-constant field, keyed ``REG.FIELD``."""
        csr = {}
        for reg in self.regmap.registers:
            for f in reg.fields:
                key = f"{reg.name}.{f.name}"
                if f.access in ("rw", "w1c") or key in ("PASSES.COUNT",):
                    # A field with a legal range stores only the bits the range needs; the
                    # write check sees the whole field (see _axil).
                    width = f.width if f.legal is None else max(1, f.legal[1].bit_length())
                    csr[key] = Signal(width, init=f.reset, name=key.replace(".", "_").lower())
                elif f.access == "w1p":
                    csr[key] = Signal(f.width, name=key.replace(".", "_").lower())
                else:
                    csr[key] = Const(f.reset, f.width)
        return csr

    def _axil(self, m: Module, csr: dict) -> None:
        cfg, rm = self.cfg, self.regmap
        bus = self.core.s_axil
        dpu = self.core.dpu
        addr = Signal(rm.addr_bits)
        wdata = Signal(32)
        rdata = Signal(32)
        resp = Signal(2)
        region = addr[14:16]
        word = addr[2:14]
        tbl_hit = (region != 0) & (word < cfg.cols) if cfg.cols < 1 << len(word) else region != 0
        hits = {reg.name: (region == 0) & (word == reg.offset >> 2) for reg in rm.registers}
        mapped = _or_all(list(hits.values()) + [tbl_hit])
        m.d.comb += [bus.bresp.eq(resp), bus.rresp.eq(resp), bus.rdata.eq(rdata),
                     dpu.tables.sel.eq(region - 1), dpu.tables.addr.eq(word),
                     dpu.tables.wdata.eq(wdata)]
        hw = self._hw
        writing = Signal()
        # Hardware set of sticky flags (a write-1-to-clear in the same cycle loses).
        for reg in rm.registers:
            for f in reg.fields:
                key = f"{reg.name}.{f.name}"
                if f.access == "w1c":
                    with m.If(writing & hits[reg.name] & wdata[f.lsb]):
                        m.d.sync += csr[key].eq(0)
                    with m.If(hw[key]):
                        m.d.sync += csr[key].eq(1)
                elif f.access == "rw":
                    value = wdata[f.lsb:f.lsb + f.width]
                    ok = writing & hits[reg.name]
                    if f.legal is not None and f.legal[0] > 0:
                        ok = ok & (value >= f.legal[0])
                    if f.legal is not None and f.legal[1] < (1 << f.width) - 1:
                        ok = ok & (value <= f.legal[1])
                    with m.If(ok):
                        m.d.sync += csr[key].eq(value)
                elif f.access == "w1p":
                    m.d.comb += csr[key].eq(writing & hits[reg.name] & wdata[f.lsb])
        words = {}
        for reg in rm.registers:
            parts = []
            for f in reg.fields:
                key = f"{reg.name}.{f.name}"
                val = hw.get(key, csr[key]) if f.access == "ro" else csr[key]
                if f.access == "w1p":
                    val = Const(0, f.width)
                parts.append((f.lsb, val))
            words[reg.name] = parts
        read_word = Signal(32)
        with m.Switch(addr[2:16]):
            for reg in rm.registers:
                with m.Case(reg.offset >> 2):
                    for lsb, val in words[reg.name]:
                        m.d.comb += read_word[lsb:lsb + len(val)].eq(val)
        with m.FSM(name="axil"):
            with m.State("IDLE"):
                with m.If(bus.awvalid & bus.wvalid):
                    m.d.comb += [bus.awready.eq(1), bus.wready.eq(1)]
                    m.d.sync += [addr.eq(bus.awaddr), wdata.eq(bus.wdata)]
                    m.next = "WRITE"
                with m.Elif(bus.arvalid):
                    m.d.comb += bus.arready.eq(1)
                    m.d.sync += addr.eq(bus.araddr)
                    m.next = "READ1"
            with m.State("WRITE"):
                m.d.comb += [writing.eq(1), dpu.tables.we.eq(tbl_hit)]
                m.d.sync += resp.eq(Mux(mapped, _OKAY, _SLVERR))
                m.next = "BRESP"
            with m.State("BRESP"):
                m.d.comb += bus.bvalid.eq(1)
                with m.If(bus.bready):
                    m.next = "IDLE"
            with m.State("READ1"):
                m.next = "READ2"
            with m.State("READ2"):
                m.d.sync += [rdata.eq(Mux(tbl_hit, dpu.tables.rdata, read_word)),
                             resp.eq(Mux(mapped, _OKAY, _SLVERR))]
                m.next = "RRESP"
            with m.State("RRESP"):
                m.d.comb += bus.rvalid.eq(1)
                with m.If(bus.rready):
                    m.next = "IDLE"
