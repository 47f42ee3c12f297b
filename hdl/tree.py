"""The column adder trees in the styles of :class:`dcim.golden.tree.TreeStyle`.

:func:`column_tree` builds one tree of a :class:`dcim.hdl.array.Column` (``lo`` or ``top``, the
trees of :func:`dcim.golden.tree.column_trees`) inside the column's module and returns its root,
a signed value equal to ``sum_k sum_(plane, shift) x[plane*rows + k] * w_k << shift``:

``ripple``
    The terms of the rows (each the sum of its weight ANDed with the tree's planes) are added
    pairwise, level by level (:func:`ripple_tree`); a register stage after level ``l`` holds
    the level's nodes as ``<tag>_l<l>_n<i>``.
``csa``
    Every bit of every term goes into a bit heap (:func:`dcim.golden.tree.heap_heights`; a
    signed weight's sign bit inverted, the constant that makes up for it added as bits); the
    levels of full and half adders of :func:`dcim.golden.tree.csa_plan` reduce it to two rows,
    which one adder sums modulo ``2**heap_width`` (:func:`csa_tree`). A register stage after
    compressor level ``l`` holds bit column ``c`` as ``<tag>_l<l>_c<c>`` (one bit per heap bit
    of the column); one after the final adder (the last level) holds the root as
    ``<tag>_l<l>_n0``.

The levels after which registers sit come from the configuration
(:attr:`dcim.golden.config.CoreConfig.tree_register_levels`); every register loads when
``en``. The column proof (:mod:`dcim.verif.formal`) reads these register names.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed

from ..golden.config import CoreConfig, TreeStyle, signed_bits_for
from ..golden.tree import column_trees, csa_plan, heap_constant, heap_heights, heap_width
from ..golden.tree import tree_planes

__all__ = ["column_tree", "csa_tree", "ripple_tree"]


def column_tree(m: Module, cfg: CoreConfig, tag: str, words: list, x, reg_levels: set[int],
                en):
    """Build the tree ``tag`` (``lo`` or ``top``) of a column of ``cfg`` in ``m``.

    Parameters
    ----------
    m : Module
        The column's module (the tree's logic and registers go into it).
    cfg : CoreConfig
        ``tree_style`` chooses the style.
    tag : str
        A key of :func:`dcim.golden.tree.column_trees`; prefixes the register names.
    words : list of Value
        The ``rows`` stored weights, signed values when ``weight_signed``.
    x : Value
        The activation slice, plane-major (bit ``i`` of row ``k`` at ``i*rows + k``).
    reg_levels : set of int
        Levels after which a register stage sits (1..``cfg.tree_depth``).
    en : Value
        The registers load at the clock edge only when ``en`` is 1.

    Returns
    -------
    Value
        The tree's sum, signed, in ``rows`` times the leaf range of ``column_trees(cfg)[tag]``.
    """
    planes = tree_planes(cfg, tag)
    if cfg.tree_style == TreeStyle.RIPPLE:
        if tag == "top":  # one plane, no shift
            leaves = [Mux(x[planes[0][0] * cfg.rows + k], w, 0) for k, w in enumerate(words)]
        else:
            leaves = [sum((Mux(x[p * cfg.rows + k], w, 0) << sh for p, sh in planes), 0)
                      for k, w in enumerate(words)]
        return ripple_tree(m, leaves, *column_trees(cfg)[tag], reg_levels, tag, en)
    return csa_tree(m, cfg, tag, words, x, reg_levels, en)


def _register(m: Module, value, shape, name: str, en) -> Signal:
    r = Signal(shape, reset_less=True, name=name)
    with m.If(en):
        m.d.sync += r.eq(value)
    return r


def ripple_tree(m: Module, leaves: list, lo1: int, hi1: int, reg_levels: set[int], tag: str,
                en):
    """The balanced adder tree over ``leaves`` (each in [lo1, hi1]), with a register stage
    after each level in ``reg_levels`` that loads when ``en``; returns the root."""
    nodes = [(v, 1) for v in leaves]
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
            nxt = [(_register(m, v, signed(signed_bits_for(c * lo1, c * hi1)),
                              f"{tag}_l{level}_n{idx}", en), c)
                   for idx, (v, c) in enumerate(nxt)]
        nodes = nxt
    return nodes[0][0]


def _heap(cfg: CoreConfig, tag: str, words: list, x) -> list[list]:
    """The bit heap of the tree: per bit column (weight ``2**c``), its bits, in the order and
    with the heights of :func:`dcim.golden.tree.heap_heights`."""
    width = heap_width(cfg, tag)
    top_bit = cfg.weight_bits - 1
    heap: list[list] = [[] for _ in range(width)]
    for p, shift in tree_planes(cfg, tag):
        for k, w in enumerate(words):
            xb = x[p * cfg.rows + k]
            for j in range(cfg.weight_bits):
                if j + shift >= width:
                    continue
                bit = xb & w[j]
                # a signed weight's sign bit weighs -2**j: (1 - b) * 2**j, and the -2**j of
                # every term is in heap_constant
                heap[j + shift].append(~bit if cfg.weight_signed and j == top_bit else bit)
    const = heap_constant(cfg, tag)
    for c in range(width):
        if (const >> c) & 1:
            heap[c].append(Const(1, 1))
    if tuple(len(col) for col in heap) != heap_heights(cfg, tag):
        raise AssertionError(f"the {tag} heap differs from golden.tree.heap_heights")
    return heap


def _wires(m: Module, heap: list[list], prefix: str) -> list[list]:
    """The heap's columns as wires ``<prefix>_c<c>`` (so that every level is one layer of
    logic over named signals, not an expression that grows with the levels)."""
    out = []
    for c, col in enumerate(heap):
        if not col:
            out.append([])
            continue
        w = Signal(len(col), name=f"{prefix}_c{c}")
        m.d.comb += w.eq(Cat(*col))
        out.append([w[i] for i in range(len(col))])
    return out


def csa_tree(m: Module, cfg: CoreConfig, tag: str, words: list, x, reg_levels: set[int], en):
    """The carry-save (Dadda) tree of ``tag`` (module docstring): compressor levels, then one
    final adder at level ``cfg.tree_depth``, with register stages after the levels in
    ``reg_levels``; returns the root (signed, :func:`dcim.golden.tree.heap_width` bits).
    A tree with fewer compressor levels than the column's taller tree passes its heap through
    the levels it does not need."""
    heap = _wires(m, _heap(cfg, tag, words, x), f"{tag}_s0")
    width = len(heap)
    plan = csa_plan(heap_heights(cfg, tag))
    root = cfg.tree_depth
    for level in range(1, root):
        if level <= len(plan):
            nxt: list[list] = [[] for _ in range(width)]
            for c, (fa, ha) in enumerate(plan[level - 1]):
                bits = heap[c]
                for i in range(fa):
                    a, b, d = bits[3 * i:3 * i + 3]
                    nxt[c].append(a ^ b ^ d)
                    if c + 1 < width:
                        nxt[c + 1].append((a & b) | (a & d) | (b & d))
                for i in range(ha):
                    a, b = bits[3 * fa + 2 * i:3 * fa + 2 * i + 2]
                    nxt[c].append(a ^ b)
                    if c + 1 < width:
                        nxt[c + 1].append(a & b)
                # bits the level does not compress go first: they are the older ones
                nxt[c][:0] = bits[3 * fa + 2 * ha:]
            heap = _wires(m, nxt, f"{tag}_s{level}")
        if level in reg_levels:
            regs = [_register(m, Cat(*col), len(col), f"{tag}_l{level}_c{c}", en) if col else None
                    for c, col in enumerate(heap)]
            heap = [[r[i] for i in range(len(r))] if r is not None else [] for r in regs]
    rows2 = [Cat(*(col[i] if len(col) > i else Const(0, 1) for col in heap)) for i in (0, 1)]
    total = (rows2[0] + rows2[1])[:width].as_signed()
    if root in reg_levels:
        total = _register(m, total, signed(width), f"{tag}_l{root}_n0", en)
    return total
