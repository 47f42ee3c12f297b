"""The DPU (``dpu``): bias add, requantization, zero point, residual add and clamp, L lanes wide."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..golden.arith import (INT32_MAX, INT32_MIN, MULTIPLIER_BITS, SHIFT_BITS, SHIFT_RANGE,
                           TIE_RULE, Rounding, Tie)
from ..golden.config import CoreConfig, value_range
from ._cfg import CfgChecked, check_cfg
from ._base import CfgSignature
from .regmap import RegMap

__all__ = ["Dpu", "DpuParamsSignature", "TableBusSignature", "input_layout", "output_layout"]

# Requantization operand ranges (the register formats of the tables and scalars).
_SHIFT_MIN, _SHIFT_MAX = SHIFT_RANGE
_MULT_LO_BITS = 16  # the multiplier is split in two partial products at this bit
# Width of the main + residual sum before the zero point: saturating it to +-512 changes no
# output, since any |sum| >= 256 clamps after an int8 zero point is added.
_SUM_BITS = 10
#: Residuals, zero points and results are int8.
_INT8 = signed(8)


def input_layout(cfg: CoreConfig) -> data.StructLayout:
    """Payload of the DPU input stream: ``psum`` (L x signed psum_bits), ``res`` (L x int8),
    ``col`` (the column of lane 0) and ``last``."""
    lanes = cfg.dpu_lanes
    return data.StructLayout({"psum": data.ArrayLayout(signed(cfg.psum_bits), lanes),
                              "res": data.ArrayLayout(_INT8, lanes),
                              "col": unsigned(cfg.col_bits), "last": 1})


def output_layout(cfg: CoreConfig) -> data.StructLayout:
    """Payload of the DPU output stream: ``y`` (L x int8) and ``last``."""
    return data.StructLayout({"y": data.ArrayLayout(_INT8, cfg.dpu_lanes), "last": 1})


class TableBusSignature(CfgSignature):
    """The port through which the CSR block writes and reads the DPU tables (the CSR block's
    view: use ``In(...)`` in the DPU).

    Members
    -------
    we : Out(1)
        Write ``wdata`` into entry ``addr`` of table ``sel`` at the clock edge.
    sel : Out(RegMap.select_bits)
        The table: a ``Table.select`` of :class:`~dcim.hdl.regmap.RegMap`, or ``no_select``.
    addr : Out(col_bits)
        The column.
    wdata : Out(32)
        The written word (register format of the table).
    rdata : In(32)
        The entry at ``sel``/``addr`` of the previous cycle, in its register format.
    """

    def __init__(self, cfg: CoreConfig) -> None:
        rm = RegMap(cfg)
        super().__init__(cfg, {"we": Out(1), "sel": Out(rm.select_bits),
                               "addr": Out(cfg.col_bits), "wdata": Out(rm.data_bits),
                               "rdata": In(rm.data_bits)})


class DpuParamsSignature(CfgSignature):
    """The DPU scalars (the driver's view: use ``In(...)`` in the DPU).

    Members
    -------
    out_zp, act_min, act_max : Out(signed(8))
        Output zero point and clamp (``act_min > act_max`` gives ``act_max``).
    res_en : Out(1)
        Add the rescaled residual.
    res_multiplier : Out(unsigned(31))
    res_shift : Out(signed(6))
        Residual rescale; a shift outside -31..30 acts as the nearest end of that range.
    res_zp : Out(signed(8))
        Residual zero point.
    """

    def __init__(self, cfg: CoreConfig) -> None:
        super().__init__(cfg, {"out_zp": Out(_INT8), "act_min": Out(_INT8),
                               "act_max": Out(_INT8), "res_en": Out(1),
                               "res_multiplier": Out(unsigned(MULTIPLIER_BITS)),
                               "res_shift": Out(signed(SHIFT_BITS)), "res_zp": Out(_INT8)})


class Dpu(CfgChecked, wiring.Component):
    """The DPU: ``dpu_lanes`` lanes of bias add, requantization, output zero point, optional
    residual add and clamp, one group of lanes per cycle.

    For each lane ``l`` of an input group, channel ``c = col + l``::

        a   = sat32(psum + BIAS[c])
        y   = requantize(a, MULT[c], SHIFT[c]) + out_zp
        y  += requantize(res - res_zp, res_multiplier, res_shift)   # if res_en (and built)
        y   = min(max(y, act_min), act_max)

    with ``cfg.rounding`` as the rounding of both requantizations, bit-exact to
    :func:`dcim.golden.model.dpu` (intermediates behave as if unbounded).

    Parameters
    ----------
    cfg : CoreConfig
        Uses ``cols``, ``dpu_lanes`` (L), ``psum_bits``, ``rounding`` and ``dpu_residual``
        (when false the residual path is not built and ``res``/``res_*`` are ignored).

    Members
    -------
    i : In(stream.Signature(input_layout(cfg)))
        Input groups: ``psum`` (L x signed psum_bits), ``res`` (L x int8 residual), ``col``
        (column of lane 0, a multiple of L, below cols; lane ``l`` is column ``col + l``) and
        ``last`` (passed through to ``o``). ``i.ready`` may depend on ``o.ready``.
    o : Out(stream.Signature(output_layout(cfg)))
        Results: ``y`` (L x int8) and ``last``, in input order, ``cfg.dpu_latency`` cycles
        after the group was accepted when ``o`` is not stalled. Backpressure of any length
        stalls the DPU without loss; with ``o.ready`` high one group per cycle passes.
    tables : In(TableBusSignature(cfg))
        Table port (what the CSR block drives). The tables, their selectors and formats are
        those of :class:`~dcim.hdl.regmap.RegMap` (``RegMap(cfg).tables``). When ``tables.we``
        is high, the entry of column ``addr`` of the table whose ``select`` is ``sel`` takes
        ``wdata`` at the clock edge; a column at or above ``cols`` or a ``sel`` of no table
        is ignored. Groups accepted after the write use the new entry; write while no group
        is in flight. Register formats of ``wdata`` (write any value, read the stored, legal
        one):

        - BIAS: bits 31..0, int32.
        - MULT: bits 30..0, unsigned multiplier 0..2**31-1; bit 31 is ignored and reads 0.
        - SHIFT: bits 5..0, a signed 6-bit shift (positive: left), stored saturated to
          -31..30; bits 31..6 are ignored and read as the sign.

        ``rdata`` is the stored entry at ``sel``/``addr`` of the previous cycle (the read
        takes one cycle), in the register format above; 0 for a column at or above ``cols``
        or a ``sel`` of no table. Tables are storage, not reset: they hold their contents
        through ``rst`` (0 at power-up in simulation).
    params : In(DpuParamsSignature(cfg))
        The scalars ``out_zp`` .. ``res_zp``. They must be stable from the acceptance of a
        group until its result leaves ``o`` (they are CSRs changed while the core is idle).

    Raises
    ------
    TypeError
        ``cfg`` is not a CoreConfig.
    """

    def __init__(self, cfg: CoreConfig) -> None:
        self.cfg = check_cfg(cfg)
        super().__init__({
            "i": In(stream.Signature(input_layout(cfg))),
            "o": Out(stream.Signature(output_layout(cfg))),
            "tables": In(TableBusSignature(cfg)),
            "params": In(DpuParamsSignature(cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        lanes = cfg.dpu_lanes
        depth = cfg.dpu_groups
        double = cfg.rounding is Rounding.DOUBLE
        residual = cfg.dpu_residual
        n_stages = cfg.dpu_latency

        # ---------------------------------------------------------------- stage handshake
        # Stage k (1..n) holds valid[k]; it loads when it is empty or its successor loads
        # (bubbles collapse), so a stall on o fills the pipeline and then drops i.ready.
        valid = [self.i.valid] + [Signal(name=f"s{k}_valid") for k in range(1, n_stages + 1)]
        en = [None] + [Signal(name=f"s{k}_en") for k in range(1, n_stages + 1)]
        for k in range(1, n_stages + 1):
            nxt = self.o.ready if k == n_stages else en[k + 1]
            m.d.comb += en[k].eq(~valid[k] | nxt)
            with m.If(en[k]):
                m.d.sync += valid[k].eq(valid[k - 1])
        m.d.comb += [self.i.ready.eq(en[1]), self.o.valid.eq(valid[n_stages])]

        def stage(k, value, name, shape=None):
            """A data register of stage ``k`` loading ``value`` when the stage loads."""
            reg = Signal(value.shape() if shape is None else shape, name=f"s{k}_{name}",
                         reset_less=True)
            with m.If(en[k]):
                m.d.sync += reg.eq(value)
            return reg

        # ---------------------------------------------------------------- tables
        # The tables, their selectors and formats are the register map's.
        tbl = self.tables
        rm = RegMap(cfg)
        bias_t, mult_t, shift_t = (rm.table(n) for n in ("BIAS", "MULT", "SHIFT"))
        assert (bias_t.width, mult_t.width, shift_t.width) == (32, MULTIPLIER_BITS, SHIFT_BITS)
        wr_entry, wr_lane = _udivmod_const(tbl.addr, lanes, cfg.cols)
        wr_ok = tbl.we & (tbl.addr < cfg.cols)
        rd_entry, _ = _udivmod_const(self.i.payload.col, lanes, cfg.cols)
        shapes, wdata = {}, {}
        for t in rm.tables:
            shapes[t] = signed(t.width) if t.signed else unsigned(t.width)
            wdata[t] = tbl.wdata[:t.width]
        wdata[shift_t] = _saturate(wdata[shift_t].as_signed(), _SHIFT_MIN, _SHIFT_MAX,
                                   SHIFT_BITS)
        table = {t: [] for t in shapes}     # per lane: stage-1 read data
        readback = {t: [] for t in shapes}  # per lane: CSR read-back data
        for lane in range(lanes):
            for t, shape in shapes.items():
                we = wr_ok & (tbl.sel == t.select) & (wr_lane == lane)
                name = f"{t.name.lower()}{lane}"
                if depth == 1:
                    # One entry per lane: a register (a memory would have a 0-bit address).
                    reg = Signal(shape, name=name, reset_less=True)
                    with m.If(we):
                        m.d.sync += reg.eq(wdata[t])
                    table[t].append(reg)
                    readback[t].append(reg)
                    continue
                mem = Memory(shape=shape, depth=depth, init=[])
                m.submodules[name] = mem
                wp = mem.write_port()
                m.d.comb += [wp.addr.eq(wr_entry), wp.data.eq(wdata[t]), wp.en.eq(we)]
                rp = mem.read_port()
                m.d.comb += [rp.addr.eq(rd_entry), rp.en.eq(en[1])]
                table[t].append(rp.data)
                cp = mem.read_port()
                m.d.comb += cp.addr.eq(wr_entry)
                readback[t].append(cp.data)
        rb_sel = Signal.like(tbl.sel)
        rb_lane = Signal.like(wr_lane)
        rb_ok = Signal()
        m.d.sync += [rb_sel.eq(tbl.sel), rb_lane.eq(wr_lane), rb_ok.eq(tbl.addr < cfg.cols)]
        with m.If(rb_ok):
            for t in shapes:
                for lane in range(lanes):
                    with m.If((rb_sel == t.select) & (rb_lane == lane)):
                        # Sign- or zero-extended to 32 bits by the table's shape.
                        m.d.comb += tbl.rdata.eq(readback[t][lane])

        # ---------------------------------------------------------------- scalars
        par = self.params
        res_shift = _saturate(par.res_shift, _SHIFT_MIN, _SHIFT_MAX, SHIFT_BITS)
        tie = TIE_RULE[cfg.rounding]  # of single and rne (double rounds twice, its own way)

        # ---------------------------------------------------------------- datapath
        p_in = self.i.payload
        last = stage(1, p_in.last, "last")
        for k in range(2, n_stages + 1):
            last = stage(k, last, "last")
        m.d.comb += self.o.payload.last.eq(last)

        for lane in range(lanes):
            tag = f"l{lane}"
            # S1: input registers; the tables are read in the same stage.
            psum = stage(1, p_in.psum[lane], f"{tag}_psum")
            bias, mult, shift = (table[t][lane] for t in (bias_t, mult_t, shift_t))
            # S2: bias add, saturated to int32.
            a = stage(2, _saturate(psum + bias, INT32_MIN, INT32_MAX, 32), f"{tag}_a")
            mult2 = stage(2, mult, f"{tag}_mult")
            shift2 = stage(2, shift, f"{tag}_shift")
            # S3..S5: requantization, up to the final rounding increment.
            q_pre, inc = _requantize(m, stage, f"{tag}_y", a, mult2, shift2, per_group=True,
                                     double=double, tie=tie)
            # S6: main term + residual term, saturated to 10 bits (a sum beyond +-256 clamps
            # like the exact one once the int8 out_zp is added). The main term is first
            # saturated to S = R + 1 bits, R >= 10 the residual term's width: a main term
            # beyond that range keeps the sum beyond +-(2**(R-1) - 1) on its own side.
            if residual:
                res = stage(1, p_in.res[lane], f"{tag}_res")
                d = stage(2, res - par.res_zp, f"{tag}_d", signed(9))
                r_pre, r_inc = _requantize(m, stage, f"{tag}_r", d, par.res_multiplier,
                                           res_shift, per_group=False, double=double, tie=tie)
                assert len(r_pre) >= 10
                main_bits = len(r_pre) + 1
                total = (_saturate(q_pre, *value_range(main_bits, True), main_bits) + inc
                         + Mux(par.res_en, r_pre, 0) + (par.res_en & r_inc))
            else:
                total = _saturate(q_pre, *value_range(_SUM_BITS, True), _SUM_BITS) + inc
            s6 = stage(6, _saturate(total, *value_range(_SUM_BITS, True), _SUM_BITS), f"{tag}_sum")
            # S7: output zero point and clamp.
            total = s6 + par.out_zp
            clamped = Mux(total < par.act_min, par.act_min, total)
            clamped = Mux(clamped > par.act_max, par.act_max, clamped)
            y = stage(7, clamped, f"{tag}_out", _INT8)
            m.d.comb += self.o.payload.y[lane].eq(y)
        return m


def _requantize(m, stage, tag, x, mult, shift, *, per_group, double, tie):
    """Stages 3..5 of one requantization ``round(x * mult / 2**(31 - shift))``; returns its
    stage-5 registers ``(q_pre, inc)``, the result being ``q_pre + inc``.

    ``x`` is an int32-range value valid in stage 2; ``mult`` (unsigned 31 bits) and ``shift``
    (-31..30) too if ``per_group``, else they are stable scalars.

    Single and rne round ``p = x * mult`` once by ``n = 31 - shift``. Double rounds like
    gemmlowp: for ``shift >= 0`` the saturated ``sat32(x << shift) * mult`` is rounded by 31,
    which equals rounding ``p`` by ``31 - shift`` (ties up) unless the left shift saturates;
    for ``shift < 0`` ``p`` is rounded by 31 (ties up) and then by ``-shift`` (ties away from
    zero).
    """
    def carry(k, value, name):
        return stage(k, value, f"{tag}_{name}{k}") if per_group else value

    # S3: the two partial products of the multiply.
    pp_lo = stage(3, x * mult[:_MULT_LO_BITS], f"{tag}_pplo")
    pp_hi = stage(3, x * mult[_MULT_LO_BITS:], f"{tag}_pphi")
    p_bits = len(x) + MULTIPLIER_BITS  # |x * mult| <= 2**(len(x) - 1) * (2**31 - 1)
    product = (pp_hi << _MULT_LO_BITS) + pp_lo
    shift3 = carry(3, shift, "shift")
    if not double:
        # S4: the product; S5: the rounding shift.
        p = stage(4, product, f"{tag}_p", signed(p_bits))
        n = stage(4, 31 - shift3, f"{tag}_n", unsigned(6)) if per_group else 31 - shift
        q_pre, inc = _round_shift(p, n[:6], tie)
        return stage(5, q_pre, f"{tag}_qpre"), stage(5, inc, f"{tag}_inc")
    left = Mux(shift[-1], 0, shift.as_unsigned())[:5]
    ovf = stage(3, _shl_overflows(x, left), f"{tag}_ovf")
    pos = stage(3, ~x[-1], f"{tag}_pos")
    mult3 = carry(3, mult, "mult")
    # S4: the product, or for a saturated left shift directly the result of rounding
    # (2**31 - 1) * mult by 31, mult - (mult > 2**30), or (-2**31) * mult, -mult.
    sat_q = Mux(pos, mult3 - (mult3 > (1 << 30)), -mult3)
    p = stage(4, Mux(ovf, sat_q, product), f"{tag}_p", signed(max(p_bits, 33)))
    neg = shift3[-1]
    n = stage(4, Mux(ovf, 0, Mux(neg, 31, 31 - shift3)), f"{tag}_n", unsigned(6))
    right = stage(4, Mux(neg, -shift3, 0), f"{tag}_right", unsigned(5))
    # S5: round by n, ties up (an int32), then shift by right, ties away from zero.
    q1_pre, inc1 = _round_shift(p, n, Tie.UP)
    q1 = (q1_pre + inc1)[:32].as_signed()
    q_pre, inc = _round_shift(q1, right, Tie.AWAY)
    return stage(5, q_pre, f"{tag}_qpre"), stage(5, inc, f"{tag}_inc")


def _udivmod_const(x: Value, d: int, limit: int) -> tuple[Value, Value]:
    """``(x // d, x % d)`` for ``0 <= x < limit``, by a multiply with a constant reciprocal."""
    rem_bits = max(1, ceil_log2(d))
    if d & (d - 1) == 0:
        k = d.bit_length() - 1
        return x[k:], Cat(x[:k], Const(0, rem_bits))[:rem_bits]
    for k in range(len(x), 2 * len(x) + d.bit_length() + 1):
        r = -(-(1 << k) // d)
        if all((v * r) >> k == v // d for v in range(limit)):
            quo = (x * r)[k:]
            return quo, (x - quo * d)[:rem_bits]
    raise AssertionError(f"no reciprocal for division by {d}")  # pragma: no cover


def _saturate(x: Value, lo: int, hi: int, bits: int) -> Value:
    """``x`` clamped to ``[lo, hi]`` as a signed ``bits``-wide value."""
    return Mux(x > hi, hi, Mux(x < lo, lo, x))[:bits].as_signed()


def _shl_overflows(x: Value, left: Value) -> Value:
    """Whether the signed ``x << left`` (``left`` in 0..30) leaves the int32 range."""
    sign = x[-1]
    terms = [(x[i] ^ sign) & (left >= 31 - i) for i in range(1, len(x) - 1)]
    return Cat(*terms).any() if terms else Const(0, 1)


def _round_shift(v: Value, n: Value, tie: Tie) -> tuple[Value, Value]:
    """``v / 2**n`` rounded to nearest as ``(floor(v / 2**n), increment)``; ties up (``up``),
    to even (``even``) or away from zero (``away``). ``n`` may be 0."""
    ext = Cat(Const(0, 1), v).as_signed()  # v * 2, so that a shift by n leaves bit n - 1 of v
    v1 = ext >> n
    q = v1[1:].as_signed()
    rb = v1[0]
    if tie is Tie.UP:
        return q, rb
    # Bits of ext below position n (n never exceeds its own range).
    span = min(len(ext), (1 << len(n)) - 1)
    sticky = Cat(*(ext[i] & (n > i) for i in range(span))).any()
    if tie is Tie.EVEN:
        return q, rb & (sticky | q[0])
    return q, rb & (sticky | ~v[-1])
