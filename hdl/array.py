"""The array: weight storage (``weights``) and the AND + column adder trees (``compute``).

Both blocks are built from one per-column module, so that generated Verilog holds each column
module once (``<name>_wcol``, ``<name>_ctree``) and instantiates it ``cols`` times: with
``hier=True`` the blocks instantiate those modules by name (:class:`amaranth.hdl.Instance`;
:func:`dcim.sim.build.generate` emits their definitions); with ``hier=False`` (simulation) they
contain the Amaranth columns directly.

Bus layouts
-----------
* Weights ``q``: column-major; weight ``(row r, column c)`` at bits
  ``[(c*rows + r)*weight_bits, +weight_bits)``.
* Activation slice ``x``: plane-major; bit ``i`` of row ``k``'s slice at bit ``i*rows + k``.
* Column results ``y``: column ``c`` at bits ``[c*slice_psum_bits, +slice_psum_bits)``,
  two's complement.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Instance, Module, Mux, ResetSignal, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..golden.config import CoreConfig, signed_bits_for

__all__ = ["ColumnTree", "Compute", "WeightColumn", "Weights", "tree_register_levels"]


def _check_cfg(cfg) -> CoreConfig:
    if not isinstance(cfg, CoreConfig):
        raise TypeError(f"cfg must be a CoreConfig, got {type(cfg).__name__}")
    return cfg


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
        self.cfg = _check_cfg(cfg)
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
        self.cfg = _check_cfg(cfg)
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

    When ``we`` is set, the row ``row`` (``< rows``) takes ``wdata`` (column ``c`` at bits
    ``[c*weight_bits, +weight_bits)``) at the clock edge. ``q`` shows every weight,
    column-major (see the module docstring).

    Parameters
    ----------
    cfg : CoreConfig
    hier : bool
        Instantiate the column module ``<module_prefix>_wcol`` by name instead of elaborating
        the columns.
    module_prefix : str
        Prefix of the column module name (the top module name).
    """

    def __init__(self, cfg: CoreConfig, hier: bool = False, module_prefix: str = "") -> None:
        self.cfg = _check_cfg(cfg)
        self.hier = hier
        self.module_prefix = module_prefix or cfg.name
        super().__init__({"we": In(1), "row": In(range(max(2, cfg.rows))),
                          "wdata": In(cfg.cols * cfg.weight_bits),
                          "q": Out(cfg.rows * cfg.cols * cfg.weight_bits)})

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        rows, wb = cfg.rows, cfg.weight_bits
        row_en = Signal(rows)
        for r in range(rows):
            m.d.comb += row_en[r].eq(self.we & (self.row == r))
        span = rows * wb
        for c in range(cfg.cols):
            wdata = self.wdata[c * wb:(c + 1) * wb]
            q = self.q[c * span:(c + 1) * span]
            if self.hier:
                m.submodules[f"col{c}"] = Instance(
                    f"{self.module_prefix}_wcol", i_clk=ClockSignal(), i_rst=ResetSignal(), i_row_en=row_en,
                    i_wdata=wdata, o_q=q)
            else:
                col = m.submodules[f"col{c}"] = WeightColumn(cfg)
                m.d.comb += [col.row_en.eq(row_en), col.wdata.eq(wdata), q.eq(col.q)]
        return m


class Compute(wiring.Component):
    """The compute array: ``cols`` :class:`ColumnTree` modules sharing the activation slice.

    Parameters are as for :class:`Weights` (column module ``<module_prefix>_ctree``).
    """

    def __init__(self, cfg: CoreConfig, hier: bool = False, module_prefix: str = "") -> None:
        self.cfg = _check_cfg(cfg)
        self.hier = hier
        self.module_prefix = module_prefix or cfg.name
        super().__init__({"w": In(cfg.rows * cfg.cols * cfg.weight_bits),
                          "x": In(cfg.rows * cfg.serial_bits), "neg": In(1), "en": In(1),
                          "y": Out(cfg.cols * cfg.slice_psum_bits)})

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        span = cfg.rows * cfg.weight_bits
        pb = cfg.slice_psum_bits
        for c in range(cfg.cols):
            w = self.w[c * span:(c + 1) * span]
            y = self.y[c * pb:(c + 1) * pb]
            if self.hier:
                ports = dict(i_w=w, i_x=self.x, i_neg=self.neg, i_en=self.en, o_y=y)
                if cfg.tree_regs:
                    ports["i_clk"], ports["i_rst"] = ClockSignal(), ResetSignal()
                m.submodules[f"col{c}"] = Instance(f"{self.module_prefix}_ctree", **ports)
            else:
                col = m.submodules[f"col{c}"] = ColumnTree(cfg)
                m.d.comb += [col.w.eq(w), col.x.eq(self.x), col.neg.eq(self.neg),
                             col.en.eq(self.en), y.eq(col.y)]
        return m
