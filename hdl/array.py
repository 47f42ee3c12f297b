"""The array: ``cols`` columns of a digital SRAM compute-in-memory macro and their word lines.

One :class:`Column` holds what a column of a D-IMC macro holds: the weight cells of the column
(``rows`` words of ``weight_bits``), the AND of every weight with its row's activation slice, and
the column adder tree (with ``tree_regs`` pipeline stages). The :class:`Array` decodes the row
address into one-hot word lines shared by every column and places ``cols`` columns. The column
is the seam (docs/core.md, "The column"): every column has the ports of
:class:`ColumnSignature`, and a foundry SRAM-CIM macro, a custom bit-cell array or the fast
simulation model (:class:`FastColumn`) takes its place.

For Verilog generation the array instantiates the column module by name (``column=``), so that
the column is elaborated once (:func:`dcim.sim.build.verilog_text` converts it on its own); for
Amaranth's simulator it elaborates the :class:`Column` components themselves.

Bus layouts
-----------
* Activation slice ``x``: plane-major; bit ``i`` of row ``k``'s slice at bit ``i*rows + k``.
* Array write data ``wdata``: column ``c``'s word at bits ``[c*weight_bits, +weight_bits)``.
* Column results ``y[c]``: one signed ``slice_psum_bits`` signal per column.

The array's ports are three interfaces: :class:`RowWriteSignature` (a row write),
:class:`SliceSignature` (the compute slice) and :class:`ColumnSumsSignature` (the results).
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Instance, Module, Mux, ResetSignal, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..golden.config import CoreConfig
from ..golden.tree import column_trees, tree_register_levels
from ._cfg import CfgChecked, check_cfg
from ._base import CfgSignature
from .tree import column_tree

__all__ = ["FAST_COLUMN_MODULE", "Array", "Column", "ColumnSignature", "ColumnSumsSignature",
           "FastColumn", "RowWriteSignature", "SliceSignature", "column_trees",
           "tree_register_levels"]

#: Module name of the behavioural column model (``hdl/dcim_column_fast.v``).
FAST_COLUMN_MODULE = "dcim_column_fast"


def _sel(cfg: CoreConfig, direction) -> dict:
    """The ``sel`` member (the active weight set) of a configuration with two weight sets."""
    return {"sel": direction(1)} if cfg.weight_sets == 2 else {}


class ColumnSignature(CfgSignature):
    """The ports of one column of ``cfg`` (the seam of docs/core.md, "The column").

    Members
    -------
    wl : In(rows)
        One-hot word lines: at the clock edge, the word of the row whose line is set takes
        ``wdata`` (at most one line set; independent of ``en``).
    wdata : In(weight_bits)
        The word to write.
    x : In(rows * serial_bits)
        The activation slice, plane-major (bit ``i`` of row ``k`` at ``i*rows + k``).
    neg : In(1)
        ``x`` is the top slice of a signed activation: its top bit weighs ``-2**(s-1)``.
    en : In(1)
        The adder-tree pipeline registers advance (ignored when ``tree_regs`` is 0).
    y : Out(signed(slice_psum_bits))
        ``sum_k w_k * slice_k``, ``tree_regs`` enabled clock edges after ``x`` and ``neg``
        (combinational when ``tree_regs`` is 0), from the words before any write at the edge
        that samples ``x``.
    sel : In(1), only with ``weight_sets`` 2
        The active weight set: ``y`` sums set ``sel`` (sampled with ``x``), and a write goes
        to the word of set ``1 - sel``.
    """

    def __init__(self, cfg: CoreConfig) -> None:
        super().__init__(cfg, {"wl": In(cfg.rows), "wdata": In(cfg.weight_bits),
                               "x": In(cfg.rows * cfg.serial_bits), "neg": In(1), "en": In(1),
                               **_sel(cfg, In), "y": Out(signed(cfg.slice_psum_bits))})


class RowWriteSignature(CfgSignature):
    """A row write into the array (the writer's view: the array has ``In(...)``).

    Members
    -------
    we : Out(1)
        Row ``row`` of every column takes its word of ``wdata`` at the clock edge.
    row : Out(row_bits)
        The row, below ``rows``.
    wdata : Out(cols * weight_bits)
        Column ``c``'s word at bits ``[c*weight_bits, +weight_bits)``.
    """

    def __init__(self, cfg: CoreConfig) -> None:
        super().__init__(cfg, {"we": Out(1), "row": Out(cfg.row_bits),
                               "wdata": Out(cfg.cols * cfg.weight_bits)})


class SliceSignature(CfgSignature):
    """The activation slice every column computes with (the driver's view).

    Members
    -------
    x : Out(rows * serial_bits)
        The slice, plane-major (bit ``i`` of row ``k`` at ``i*rows + k``).
    neg : Out(1)
        ``x`` is the top slice of a signed activation.
    en : Out(1)
        The adder-tree pipeline registers advance.
    sel : Out(1), only with ``weight_sets`` 2
        The weight set the columns compute with (row writes go to the other one).
    """

    def __init__(self, cfg: CoreConfig) -> None:
        super().__init__(cfg, {"x": Out(cfg.rows * cfg.serial_bits), "neg": Out(1),
                               "en": Out(1), **_sel(cfg, Out)})


class ColumnSumsSignature(CfgSignature):
    """The column results (the array's view: the accumulators have ``In(...)``).

    Members
    -------
    y : Out(signed(slice_psum_bits)) x cols
        Column ``c``'s adder-tree output (:class:`ColumnSignature` ``y``).
    """

    def __init__(self, cfg: CoreConfig) -> None:
        super().__init__(cfg, {"y": Out(signed(cfg.slice_psum_bits)).array(cfg.cols)})


class _Cells(CfgChecked, wiring.Component):
    """The weight cells of one column: ``rows`` words of ``weight_bits`` flip-flops written
    through one-hot word lines, all readable every cycle on ``q`` (row ``r`` at bits
    ``[r*weight_bits, +weight_bits)``). Not reset (a memory; initial value 0).

    With ``weight_sets`` 2, two such sets (words ``w<r>`` of set 0, ``s<r>`` of set 1): ``q``
    reads set ``sel`` and a word line writes the word of set ``1 - sel``."""

    def __init__(self, cfg: CoreConfig) -> None:
        self.cfg = check_cfg(cfg)
        super().__init__({"wl": In(cfg.rows), "wdata": In(cfg.weight_bits), **_sel(cfg, In),
                          "q": Out(cfg.rows * cfg.weight_bits)})

    def elaborate(self, platform):
        m = Module()
        wb = self.cfg.weight_bits
        words = [Signal(wb, reset_less=True, name=f"w{r}") for r in range(self.cfg.rows)]
        if self.cfg.weight_sets == 1:
            for r, word in enumerate(words):
                with m.If(self.wl[r]):
                    m.d.sync += word.eq(self.wdata)
            m.d.comb += self.q.eq(Cat(words))
            return m
        shadow = [Signal(wb, reset_less=True, name=f"s{r}") for r in range(self.cfg.rows)]
        for r, (word, other) in enumerate(zip(words, shadow)):
            with m.If(self.wl[r] & self.sel):
                m.d.sync += word.eq(self.wdata)
            with m.If(self.wl[r] & ~self.sel):
                m.d.sync += other.eq(self.wdata)
        m.d.comb += self.q.eq(Mux(self.sel, Cat(shadow), Cat(words)))
        return m


class Column(CfgChecked, wiring.Component):
    """One column, synthesizable: weight cells, AND with the activation slice, adder tree.

    The cells are the submodule ``cells`` (the part a bit-cell array replaces); the AND of each
    weight with each slice bit and the balanced adder trees over the rows, with
    ``tree_regs`` pipeline stages (:func:`tree_register_levels`) that load when ``en``, are the
    column's own logic. With signed activations the top bit plane has a tree of its own
    (registers ``top_l<level>_n<i>``, beside ``lo_...`` for the other planes) whose sum is
    negated once, at the root, when ``neg`` (delayed with the trees: ``neg_l<level>``): one
    negation per column instead of one per row (a 64-row INT8 column: 5,627 -> 3,922 Yosys
    generic cells). Ports: :class:`ColumnSignature`.
    """

    def __init__(self, cfg: CoreConfig) -> None:
        self.cfg = check_cfg(cfg)
        super().__init__(ColumnSignature(cfg))

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        rows, wb, s = cfg.rows, cfg.weight_bits, cfg.serial_bits
        cells = m.submodules.cells = _Cells(cfg)
        m.d.comb += [cells.wl.eq(self.wl), cells.wdata.eq(self.wdata)]
        if cfg.weight_sets == 2:
            m.d.comb += cells.sel.eq(self.sel)

        words = [Signal(wb, name=f"w{k}") for k in range(rows)]
        m.d.comb += [w.eq(cells.q[k * wb:(k + 1) * wb]) for k, w in enumerate(words)]
        signed_w = [w.as_signed() if cfg.weight_signed else w for w in words]
        # The planes whose bits weigh +2**i are summed by one tree; the top plane of a signed
        # activation (weight -2**(s-1) when ``neg``) by a tree of its own, and its sign is
        # applied once, at the root, instead of once per row (hdl/tree.py builds the trees).
        trees = column_trees(cfg)
        regs = set(cfg.tree_register_levels)
        y = 0
        if "lo" in trees:
            y = column_tree(m, cfg, "lo", signed_w, self.x, regs, self.en)
        if "top" in trees:
            t = column_tree(m, cfg, "top", signed_w, self.x, regs, self.en)
            neg = self.neg
            for level in sorted(regs):  # ``neg`` through as many enabled stages as the trees
                d = Signal(name=f"neg_l{level}", reset_less=True)
                with m.If(self.en):
                    m.d.sync += d.eq(neg)
                neg = d
            y = y + (Mux(neg, -t, t) << (s - 1))
        m.d.comb += self.y.eq(y)
        return m


class FastColumn(CfgChecked, wiring.Component):
    """One column, fast simulation view: the behavioural model ``dcim_column_fast``
    (``hdl/dcim_column_fast.v``, as SRAM macros ship one) with this configuration's parameters.

    Same ports and cycle behaviour as :class:`Column` (shown equivalent by the column proof and
    by simulation digests, docs/verification.md); not for synthesis. Amaranth's simulator cannot
    run it (an instance of a Verilog module).
    """

    def __init__(self, cfg: CoreConfig) -> None:
        self.cfg = check_cfg(cfg)
        super().__init__(ColumnSignature(cfg))

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        if cfg.weight_sets == 1:
            m.submodules.model = self._model(self.wl, self.x, self.neg, self.y)
            return m
        # Two weight sets: one model per set (``model`` set 0, ``shadow`` set 1). The active
        # one sees the slice, the other the word lines; ``y`` is the model that was active
        # when the slice now at the output entered (``sel`` delayed like the pipeline).
        ys = [Signal(signed(cfg.slice_psum_bits), name=f"y{k}") for k in range(2)]
        for k, name in enumerate(("model", "shadow")):
            on = self.sel if k else ~self.sel
            m.submodules[name] = self._model(Mux(on, 0, self.wl), Mux(on, self.x, 0),
                                             self.neg & on, ys[k])
        sel = self.sel
        for i in range(cfg.tree_regs):
            d = Signal(name=f"sel_d{i}", reset_less=True)
            with m.If(self.en):
                m.d.sync += d.eq(sel)
            sel = d
        m.d.comb += self.y.eq(Mux(sel, ys[1], ys[0]))
        return m

    def _model(self, wl, x, neg, y) -> Instance:
        cfg = self.cfg
        return Instance(
            FAST_COLUMN_MODULE,
            p_ROWS=cfg.rows, p_WB=cfg.weight_bits, p_SB=cfg.serial_bits,
            p_WSIGNED=int(cfg.weight_signed), p_ASIGNED=int(cfg.act_signed),
            p_REGS=cfg.tree_regs, p_YBITS=cfg.slice_psum_bits,
            i_clk=ClockSignal(), i_rst=ResetSignal(), i_wl=wl, i_wdata=self.wdata,
            i_x=x, i_neg=neg, i_en=self.en, o_y=y)


class Array(CfgChecked, wiring.Component):
    """The array: the row decoder and ``cols`` columns sharing the word lines and the slice.

    When ``write.we`` is set, row ``write.row`` (``< rows``) of every column takes its word of
    ``write.wdata`` at the clock edge (with two weight sets, in the set ``compute.sel`` does
    not select). ``sums.y[c]`` is column ``c``'s output for the slice ``compute``
    (:class:`ColumnSignature`).

    Parameters
    ----------
    cfg : CoreConfig
    column : str, optional
        Instantiate the Verilog module of this name for every column (ports as
        :class:`ColumnSignature`, plus ``clk`` and ``rst``), for Verilog generation. By
        default the :class:`Column` components are elaborated (for Amaranth's simulator).

    Members
    -------
    write : In(RowWriteSignature(cfg))
    compute : In(SliceSignature(cfg))
    sums : Out(ColumnSumsSignature(cfg))
    """

    def __init__(self, cfg: CoreConfig, *, column: str | None = None) -> None:
        self.cfg = check_cfg(cfg)
        self.column = column
        super().__init__({"write": In(RowWriteSignature(cfg)),
                          "compute": In(SliceSignature(cfg)),
                          "sums": Out(ColumnSumsSignature(cfg))})

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        wb = cfg.weight_bits
        wr, sl = self.write, self.compute
        wl = Signal(cfg.rows)
        m.d.comb += wl.eq(wr.we << wr.row)
        for c in range(cfg.cols):
            wdata = wr.wdata[c * wb:(c + 1) * wb]
            y = self.sums.y[c]
            if self.column is None:
                col = m.submodules[f"col{c}"] = Column(cfg)
                m.d.comb += [col.wl.eq(wl), col.wdata.eq(wdata), col.x.eq(sl.x),
                             col.neg.eq(sl.neg), col.en.eq(sl.en), y.eq(col.y)]
                if cfg.weight_sets == 2:
                    m.d.comb += col.sel.eq(sl.sel)
            else:
                sel = {"i_sel": sl.sel} if cfg.weight_sets == 2 else {}
                m.submodules[f"col{c}"] = Instance(
                    self.column, i_clk=ClockSignal(), i_rst=ResetSignal(), i_wl=wl,
                    i_wdata=wdata, i_x=sl.x, i_neg=sl.neg, i_en=sl.en, **sel, o_y=y)
        return m
