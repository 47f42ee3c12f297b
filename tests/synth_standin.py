"""A stand-in core for developing and testing the synthesis flow without the real generator.

It has the contract's top-level ports (AXI4-Stream ``s_axis_w``, ``s_axis_x``, ``m_axis_y``; no
AXI4-Lite) and the five submodules ``weights``, ``compute``, ``accum``, ``dpu``, ``ctrl``, with the
same kind of logic in each (flip-flop weight store, AND + column adder trees with ``tree_regs``
pipeline stages, shift-and-add accumulators, a multiply/shift/clamp DPU, stream control). It is
NOT functionally verified: it only has to look like the core to Yosys and OpenSTA.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from dcim.golden.config import CoreConfig


def _axis(width: int, user: int = 0) -> wiring.Signature:
    members = {"tdata": Out(width), "tvalid": Out(1), "tready": In(1), "tlast": Out(1)}
    if user:
        members["tuser"] = Out(user)
    return wiring.Signature(members)


class Weights(wiring.Component):
    def __init__(self, cfg: CoreConfig):
        self.cfg = cfg
        super().__init__({"we": In(1), "row": In(range(cfg.rows)),
                          "wdata": In(cfg.cols * cfg.weight_bits),
                          "q": Out(cfg.rows * cfg.cols * cfg.weight_bits)})

    def elaborate(self, platform):
        m = Module()
        c = self.cfg
        rowbits = c.cols * c.weight_bits
        for r in range(c.rows):
            reg = Signal(rowbits, name=f"w_{r}")
            with m.If(self.we & (self.row == r)):
                m.d.sync += reg.eq(self.wdata)
            m.d.comb += self.q[r * rowbits:(r + 1) * rowbits].eq(reg)
        return m


class Compute(wiring.Component):
    def __init__(self, cfg: CoreConfig):
        self.cfg = cfg
        super().__init__({"w": In(cfg.rows * cfg.cols * cfg.weight_bits),
                          "x": In(cfg.rows * cfg.serial_bits),
                          "s": Out(cfg.cols * cfg.slice_psum_bits)})

    def elaborate(self, platform):
        m = Module()
        c = self.cfg
        wb, sb, pb = c.weight_bits, c.serial_bits, c.slice_psum_bits
        depth = c.tree_depth
        # register after these tree levels (evenly spread)
        reg_after = {round((i + 1) * depth / (c.tree_regs + 1)) for i in range(c.tree_regs)}
        for col in range(c.cols):
            terms = []
            for r in range(c.rows):
                w = self.w[(r * c.cols + col) * wb:(r * c.cols + col + 1) * wb].as_signed()
                xs = self.x[r * sb:(r + 1) * sb]
                p = Signal(signed(wb + sb + 1), name=f"p_{col}_{r}")
                m.d.comb += p.eq(w * xs)
                terms.append(p)
            level = 0
            while len(terms) > 1:
                nxt = []
                for i in range(0, len(terms) - 1, 2):
                    s = Signal(signed(pb), name=f"t_{col}_{level}_{i // 2}")
                    dom = m.d.sync if (level + 1) in reg_after else m.d.comb
                    dom += s.eq(terms[i] + terms[i + 1])
                    nxt.append(s)
                if len(terms) % 2:
                    nxt.append(terms[-1])
                terms = nxt
                level += 1
            m.d.comb += self.s[col * pb:(col + 1) * pb].eq(terms[0])
        return m


class Accum(wiring.Component):
    def __init__(self, cfg: CoreConfig):
        self.cfg = cfg
        super().__init__({"s": In(cfg.cols * cfg.slice_psum_bits), "step": In(range(8)),
                          "en": In(1), "top": In(1), "first": In(1), "acc_en": In(1),
                          "psum": Out(cfg.cols * cfg.psum_bits)})

    def elaborate(self, platform):
        m = Module()
        c = self.cfg
        pb = c.slice_psum_bits
        for col in range(c.cols):
            s = self.s[col * pb:(col + 1) * pb].as_signed()
            acc = Signal(signed(c.acc_bits), name=f"acc_{col}")
            ps = Signal(signed(c.psum_bits), name=f"psum_{col}")
            term = Mux(self.top, -(s << self.step), s << self.step)
            with m.If(self.en):
                m.d.sync += acc.eq(Mux(self.first, 0, acc) + term)
            with m.If(self.acc_en):
                m.d.sync += ps.eq(ps + acc)
            m.d.comb += self.psum[col * c.psum_bits:(col + 1) * c.psum_bits].eq(ps)
        return m


class Dpu(wiring.Component):
    def __init__(self, cfg: CoreConfig):
        self.cfg = cfg
        lanes = cfg.dpu_lanes
        super().__init__({"psum": In(cfg.cols * cfg.psum_bits), "sel": In(range(cfg.cols)),
                          "y": Out(lanes * 8)})

    def elaborate(self, platform):
        m = Module()
        c = self.cfg
        groups = c.cols // c.dpu_lanes
        for lane in range(c.dpu_lanes):
            bias = Signal(signed(32), name=f"bias_{lane}", init=lane * 7 + 3)
            mult = Signal(signed(32), name=f"mult_{lane}", init=0x40000000 + lane)
            shift = Signal(6, name=f"shift_{lane}", init=8)
            sel = Signal(signed(c.psum_bits), name=f"sel_{lane}")
            with m.Switch(self.sel[:max(1, (groups - 1).bit_length())] if groups > 1 else 0):
                for g in range(groups):
                    col = g * c.dpu_lanes + lane
                    with m.Case(g):
                        m.d.comb += sel.eq(
                            self.psum[col * c.psum_bits:(col + 1) * c.psum_bits].as_signed())
            prod = Signal(signed(64), name=f"prod_{lane}")
            m.d.sync += prod.eq((sel + bias) * mult)
            r = Signal(signed(64), name=f"r_{lane}")
            m.d.comb += r.eq((prod + (1 << 30)) >> (shift + 31))
            y = Signal(signed(8), name=f"y_{lane}")
            m.d.sync += y.eq(Mux(r > 127, 127, Mux(r < -128, -128, r)))
            m.d.comb += self.y[lane * 8:(lane + 1) * 8].eq(y)
        return m


class StandinCore(wiring.Component):
    """Top level with the contract's stream ports and the five submodules."""

    def __init__(self, cfg: CoreConfig):
        self.cfg = cfg
        super().__init__({"s_axis_w": In(_axis(cfg.w_stream_bits)),
                          "s_axis_x": In(_axis(cfg.x_stream_bits, 2)),
                          "m_axis_y": Out(_axis(cfg.y_stream_bits))})

    def elaborate(self, platform):
        m = Module()
        c = self.cfg
        m.submodules.weights = weights = Weights(c)
        m.submodules.compute = compute = Compute(c)
        m.submodules.accum = accum = Accum(c)
        m.submodules.dpu = dpu = Dpu(c)
        m.submodules.ctrl = ctrl = _Ctrl(c)
        m.d.comb += [
            ctrl.w_tdata.eq(self.s_axis_w.tdata), ctrl.w_tvalid.eq(self.s_axis_w.tvalid),
            self.s_axis_w.tready.eq(ctrl.w_tready),
            ctrl.x_tdata.eq(self.s_axis_x.tdata), ctrl.x_tvalid.eq(self.s_axis_x.tvalid),
            ctrl.x_tuser.eq(self.s_axis_x.tuser),
            self.s_axis_x.tready.eq(ctrl.x_tready),
            self.m_axis_y.tdata.eq(ctrl.y_tdata), self.m_axis_y.tvalid.eq(ctrl.y_tvalid),
            self.m_axis_y.tlast.eq(ctrl.y_tlast), ctrl.y_tready.eq(self.m_axis_y.tready),
            weights.we.eq(ctrl.we), weights.row.eq(ctrl.row), weights.wdata.eq(ctrl.wdata),
            compute.w.eq(weights.q), compute.x.eq(ctrl.xbits),
            accum.s.eq(compute.s), accum.step.eq(ctrl.step), accum.en.eq(ctrl.acc_step_en),
            accum.top.eq(ctrl.top), accum.first.eq(ctrl.first), accum.acc_en.eq(ctrl.acc_en),
            dpu.psum.eq(accum.psum), dpu.sel.eq(ctrl.sel), ctrl.dpu_y.eq(dpu.y),
        ]
        return m


class _Ctrl(wiring.Component):
    def __init__(self, cfg: CoreConfig):
        self.cfg = cfg
        super().__init__({
            "w_tdata": In(cfg.w_stream_bits), "w_tvalid": In(1), "w_tready": Out(1),
            "x_tdata": In(cfg.x_stream_bits), "x_tvalid": In(1), "x_tready": Out(1),
            "x_tuser": In(2),
            "y_tdata": Out(cfg.y_stream_bits), "y_tvalid": Out(1), "y_tready": In(1),
            "y_tlast": Out(1),
            "we": Out(1), "row": Out(range(cfg.rows)), "wdata": Out(cfg.cols * cfg.weight_bits),
            "xbits": Out(cfg.rows * cfg.serial_bits), "step": Out(range(8)),
            "acc_step_en": Out(1), "top": Out(1), "first": Out(1), "acc_en": Out(1),
            "sel": Out(range(cfg.cols)), "dpu_y": In(cfg.dpu_lanes * 8)})

    def elaborate(self, platform):
        m = Module()
        c = self.cfg
        # weight rows: collect w_beats beats, then write the row
        wbuf = Signal(c.w_beats * c.w_stream_bits)
        wbeat = Signal(range(c.w_beats + 1))
        m.d.comb += [self.w_tready.eq(1), self.wdata.eq(wbuf)]
        m.d.sync += self.we.eq(0)
        with m.If(self.w_tvalid):
            m.d.sync += wbuf.eq(Cat(wbuf[c.w_stream_bits:], self.w_tdata))
            with m.If(wbeat == c.w_beats - 1):
                m.d.sync += [wbeat.eq(0), self.we.eq(1)]
            with m.Else():
                m.d.sync += wbeat.eq(wbeat + 1)
        with m.If(self.we):
            m.d.sync += self.row.eq(Mux(self.row == c.rows - 1, 0, self.row + 1))
        # activations: collect x_beats beats, then run cycles_per_pass steps
        xbuf = Signal(c.x_beats * c.x_stream_bits)
        xbeat = Signal(range(c.x_beats + 1))
        busy = Signal()
        step = Signal(range(8))
        m.d.comb += self.x_tready.eq(~busy)
        with m.If(self.x_tvalid & ~busy):
            m.d.sync += xbuf.eq(Cat(xbuf[c.x_stream_bits:], self.x_tdata))
            with m.If(xbeat == c.x_beats - 1):
                m.d.sync += [xbeat.eq(0), busy.eq(1), step.eq(0)]
            with m.Else():
                m.d.sync += xbeat.eq(xbeat + 1)
        sb = c.serial_bits
        for r in range(c.rows):
            m.d.comb += self.xbits[r * sb:(r + 1) * sb].eq(
                (xbuf[r * 8:(r + 1) * 8] >> (step * sb))[:sb])
        last = c.cycles_per_pass() - 1
        m.d.comb += [self.step.eq(step * sb), self.acc_step_en.eq(busy),
                     self.top.eq(step == last), self.first.eq(step == 0)]
        m.d.sync += self.acc_en.eq(0)
        with m.If(busy):
            m.d.sync += step.eq(step + 1)
            with m.If(step == last):
                m.d.sync += [busy.eq(0), self.acc_en.eq(1)]
        # results: sweep sel over the column groups into the output beat
        yv = Signal()
        m.d.comb += [self.y_tvalid.eq(yv), self.y_tlast.eq(1), self.y_tdata.eq(self.dpu_y)]
        with m.If(self.acc_en):
            m.d.sync += yv.eq(1)
        with m.Elif(yv & self.y_tready):
            m.d.sync += [self.sel.eq(self.sel + c.dpu_lanes), yv.eq(0)]
        return m


def standin_verilog(cfg: CoreConfig) -> str:
    """Return the stand-in core's Verilog, top module ``cfg.name``."""
    top = StandinCore(cfg)
    return verilog.convert(top, name=cfg.name, emit_src=False)
