"""The array: weight storage (``weights``) and the AND + column adder trees (``compute``).

Both blocks are built from one per-column module. In simulation (:class:`Weights`,
:class:`Compute`) the blocks contain the Amaranth columns. For Verilog generation the core
instantiates the blocks by name instead, and :func:`array_verilog` writes them as structural
Verilog around the column modules ``<name>_wcol`` and ``<name>_ctree`` (each converted once by
Amaranth), with one port per column between them: a 4096 x 256 array then never passes through
Amaranth bit by bit.

Bus layouts
-----------
* Weights ``q[c]``: one signal per column; row ``r`` at bits ``[r*weight_bits, +weight_bits)``.
* Activation slice ``x``: plane-major; bit ``i`` of row ``k``'s slice at bit ``i*rows + k``.
* Column results ``y[c]``: one signed ``slice_psum_bits`` signal per column.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..golden.config import CoreConfig, signed_bits_for
from ._cfg import check_cfg

__all__ = ["ColumnTree", "Compute", "WeightColumn", "Weights", "array_verilog",
           "tree_register_levels"]


def tree_register_levels(depth: int, regs: int) -> list[int]:
    """Adder-tree levels (1 = first adder level, ``depth`` = root) after which the ``regs``
    pipeline registers sit, evenly spaced and the last one at the root."""
    return sorted(depth - (i * depth) // regs for i in range(regs))


class WeightColumn(wiring.Component):
    """One column of weight storage: ``rows`` words of ``weight_bits`` flip-flops.

    Written a word at a time through a one-hot row enable; every word is readable every cycle
    on ``q`` (row ``r`` at bits ``[r*weight_bits, +weight_bits)``). Not reset (a memory).
    This is the module a foundry SRAM or bit-cell macro replaces.

    Members
    -------
    row_en : In(rows)
        One-hot write enable (at most one bit set).
    wdata : In(weight_bits)
    q : Out(rows * weight_bits)
    """

    def __init__(self, cfg: CoreConfig) -> None:
        self.cfg = check_cfg(cfg, self)
        super().__init__({"row_en": In(cfg.rows), "wdata": In(cfg.weight_bits),
                          "q": Out(cfg.rows * cfg.weight_bits)})

    def elaborate(self, platform):
        m = Module()
        wb = self.cfg.weight_bits
        words = [Signal(wb, reset_less=True, name=f"w{r}") for r in range(self.cfg.rows)]
        for r, word in enumerate(words):
            with m.If(self.row_en[r]):
                m.d.sync += word.eq(self.wdata)
        m.d.comb += self.q.eq(Cat(words))
        return m


class ColumnTree(wiring.Component):
    """One column of the compute array: AND of each weight with each slice bit, then a
    balanced adder tree over the rows with ``tree_regs`` pipeline stages.

    ``y`` is ``sum_k w_k * slice_k`` where ``slice_k`` is the ``serial_bits``-bit slice of row
    ``k`` (plane-major ``x``), weighted as a signed number when ``neg`` is set and
    activations are signed (the top slice), unsigned otherwise. Registers advance when ``en``.

    Members
    -------
    w : In(rows * weight_bits)
    x : In(rows * serial_bits)
    neg : In(1)
    en : In(1)
    y : Out(signed(slice_psum_bits))
    """

    def __init__(self, cfg: CoreConfig) -> None:
        self.cfg = check_cfg(cfg, self)
        super().__init__({"w": In(cfg.rows * cfg.weight_bits),
                          "x": In(cfg.rows * cfg.serial_bits), "neg": In(1), "en": In(1),
                          "y": Out(signed(cfg.slice_psum_bits))})

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        rows, wb, s = cfg.rows, cfg.weight_bits, cfg.serial_bits
        lo, hi = cfg.slice_psum_range
        lo1, hi1 = lo // rows, hi // rows  # one row's product range

        nodes = []
        for k in range(rows):
            w = self.w[k * wb:(k + 1) * wb]
            w = w.as_signed() if cfg.weight_signed else w
            prod = 0
            for i in range(s):
                term = Mux(self.x[i * rows + k], w, 0)  # the AND of a weight with one bit
                if i == s - 1 and cfg.act_signed:
                    term = Mux(self.neg, -term, term)
                prod = prod + (term << i)
            nodes.append((prod, 1))

        reg_levels = set(tree_register_levels(cfg.tree_depth, cfg.tree_regs))
        level = 0
        while len(nodes) > 1:
            level += 1
            nxt = []
            for a in range(0, len(nodes) - 1, 2):
                (va, ca), (vb, cb) = nodes[a], nodes[a + 1]
                nxt.append((va + vb, ca + cb))
            if len(nodes) % 2:
                nxt.append(nodes[-1])
            if level in reg_levels:
                regd = []
                for idx, (v, c) in enumerate(nxt):
                    r = Signal(signed(signed_bits_for(c * lo1, c * hi1)), reset_less=True,
                               name=f"l{level}_n{idx}")
                    with m.If(self.en):
                        m.d.sync += r.eq(v)
                    regd.append((r, c))
                nxt = regd
            nodes = nxt
        m.d.comb += self.y.eq(nodes[0][0])
        return m


class Weights(wiring.Component):
    """Weight storage: ``cols`` :class:`WeightColumn` modules and the row decoder.

    When ``we`` is set, row ``row`` (``< rows``) takes ``wdata`` (column ``c`` at bits
    ``[c*weight_bits, +weight_bits)``) at the clock edge. ``q[c]`` shows every weight of
    column ``c``.
    """

    def __init__(self, cfg: CoreConfig) -> None:
        self.cfg = check_cfg(cfg, self)
        super().__init__(self.members(cfg))

    @staticmethod
    def members(cfg: CoreConfig) -> dict:
        """The signature members for ``cfg``."""
        return {"we": In(1), "row": In(range(max(2, cfg.rows))),
                "wdata": In(cfg.cols * cfg.weight_bits),
                "q": Out(cfg.rows * cfg.weight_bits).array(cfg.cols)}

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        wb = cfg.weight_bits
        row_en = Signal(cfg.rows)
        m.d.comb += row_en.eq(self.we << self.row)
        for c in range(cfg.cols):
            col = m.submodules[f"col{c}"] = WeightColumn(cfg)
            m.d.comb += [col.row_en.eq(row_en), col.wdata.eq(self.wdata[c * wb:(c + 1) * wb]),
                         self.q[c].eq(col.q)]
        return m


class Compute(wiring.Component):
    """The compute array: ``cols`` :class:`ColumnTree` modules sharing the activation slice;
    ``y[c]`` is column ``c``'s adder-tree output for weights ``w[c]``."""

    def __init__(self, cfg: CoreConfig) -> None:
        self.cfg = check_cfg(cfg, self)
        super().__init__(self.members(cfg))

    @staticmethod
    def members(cfg: CoreConfig) -> dict:
        """The signature members for ``cfg``."""
        return {"w": In(cfg.rows * cfg.weight_bits).array(cfg.cols),
                "x": In(cfg.rows * cfg.serial_bits), "neg": In(1), "en": In(1),
                "y": Out(signed(cfg.slice_psum_bits)).array(cfg.cols)}

    def elaborate(self, platform):
        m = Module()
        for c in range(self.cfg.cols):
            col = m.submodules[f"col{c}"] = ColumnTree(self.cfg)
            m.d.comb += [col.w.eq(self.w[c]), col.x.eq(self.x), col.neg.eq(self.neg),
                         col.en.eq(self.en), self.y[c].eq(col.y)]
        return m


def array_verilog(cfg: CoreConfig) -> str:
    """Structural Verilog of the blocks ``<name>_weights`` and ``<name>_compute``.

    Ports as :class:`Weights` and :class:`Compute` (plus ``clk``, ``rst``), with the per-column
    members as ports ``q_<c>``, ``w_<c>``, ``y_<c>``. They instantiate ``<name>_wcol`` and
    ``<name>_ctree`` (ports as :class:`WeightColumn` and :class:`ColumnTree`, plus ``clk``,
    ``rst`` where Amaranth gives them: always for the weight column, with ``tree_regs`` for
    the tree).
    """
    check_cfg(cfg)
    n, rows, cols = cfg.name, cfg.rows, cfg.cols
    wb, s, spb = cfg.weight_bits, cfg.serial_bits, cfg.slice_psum_bits
    rb = max(1, (max(2, rows) - 1).bit_length())
    span = rows * wb
    out = [f"module {n}_weights(clk, rst, we, row, wdata, "
           + ", ".join(f"q_{c}" for c in range(cols)) + ");",
           "  input clk;", "  input rst;", "  input we;", f"  input [{rb - 1}:0] row;",
           f"  input [{cols * wb - 1}:0] wdata;"]
    out += [f"  output [{span - 1}:0] q_{c};" for c in range(cols)]
    out.append(f"  wire [{rows - 1}:0] row_en;")
    if rows == 1:
        out.append("  assign row_en = we & ~row;")
    else:
        out.append(f"  assign row_en = {{{{{rows - 1}{{1'b0}}}}, we}} << row;")
    for c in range(cols):
        out.append(f"  {n}_wcol col{c} (.clk(clk), .rst(rst), .row_en(row_en), "
                   f".wdata(wdata[{(c + 1) * wb - 1}:{c * wb}]), .q(q_{c}));")
    out += ["endmodule", ""]
    clk = ".clk(clk), .rst(rst), " if cfg.tree_regs else ""
    out += [f"module {n}_compute(clk, rst, x, neg, en, "
            + ", ".join(f"w_{c}" for c in range(cols)) + ", "
            + ", ".join(f"y_{c}" for c in range(cols)) + ");",
            "  input clk;", "  input rst;", f"  input [{rows * s - 1}:0] x;", "  input neg;",
            "  input en;"]
    out += [f"  input [{span - 1}:0] w_{c};" for c in range(cols)]
    out += [f"  output [{spb - 1}:0] y_{c};" for c in range(cols)]
    for c in range(cols):
        out.append(f"  {n}_ctree col{c} ({clk}.w(w_{c}), .x(x), .neg(neg), .en(en), "
                   f".y(y_{c}));")
    out += ["endmodule", ""]
    return "\n".join(out)
