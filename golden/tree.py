"""The column adder trees as arithmetic: the tree styles, their depths and register levels.

A column sums ``rows`` terms (each a weight times the bits of its row's activation slice) in one
or two trees (:func:`column_trees`). Two styles (:class:`TreeStyle`) build them:

``ripple``
    A balanced tree of two-input adders over the rows' terms (Yosys maps each ``+`` to a
    ripple-carry adder): ``ceil(log2(rows))`` levels.
``csa``
    A carry-save tree over the bits of every term (the bit heap, :func:`heap_heights`):
    levels of full and half adders (3:2 and 2:2 compressors) that reduce each bit column to
    at most two bits, with the per-level targets of Dadda's scheme (:func:`csa_plan`), then one
    carry-propagate adder of the two rows: ``len(csa_plan) + 1`` levels.

Pipeline registers (``tree_regs``) sit after levels of the chosen style
(:func:`tree_register_levels`): between compressor levels and after the final adder in the
``csa`` style. This module is the one source of these facts (:class:`CoreConfig` reads them;
the RTL builds what they say). No amaranth or cocotb here.
"""

from __future__ import annotations

import functools
from enum import StrEnum
from typing import Any

__all__ = ["TREE_STYLES", "TreeStyle", "column_trees", "csa_plan", "heap_constant",
           "heap_heights", "heap_width", "tree_depth", "tree_planes", "tree_register_levels"]


class TreeStyle(StrEnum):
    """How a column adder tree is built (module docstring); its value is the name a
    configuration file holds."""

    RIPPLE = "ripple"
    CSA = "csa"


#: The tree styles, in the order the command line lists them.
TREE_STYLES = tuple(TreeStyle)


def _bits_for(lo: int, hi: int) -> int:
    from .config import signed_bits_for  # config imports this module

    return signed_bits_for(lo, hi)


def column_trees(cfg: Any) -> dict[str, tuple[int, int]]:
    """The adder trees of a column of ``cfg`` and the range of one of their leaves (one row's
    term): ``lo`` sums the slice planes that weigh +2**i (every plane for unsigned
    activations), ``top`` the top plane of a signed activation, whose sum the column negates
    at the root when ``neg``."""
    wlo, whi = cfg.weight_range
    plain = cfg.serial_bits - 1 if cfg.act_signed else cfg.serial_bits
    trees = {}
    if plain:
        top_x = (1 << plain) - 1  # the largest plain part of a slice
        trees["lo"] = (min(wlo * top_x, 0), max(whi * top_x, 0))
    if cfg.act_signed:
        trees["top"] = (min(wlo, 0), max(whi, 0))
    return trees


def tree_planes(cfg: Any, tree: str) -> list[tuple[int, int]]:
    """The slice planes a tree of :func:`column_trees` sums, as ``(plane, shift)``: bit
    ``plane`` of each row's slice ANDs its weight, shifted left by ``shift`` in the leaf."""
    if tree == "top":
        return [(cfg.serial_bits - 1, 0)]
    plain = cfg.serial_bits - 1 if cfg.act_signed else cfg.serial_bits
    return [(i, i) for i in range(plain)]


def heap_width(cfg: Any, tree: str) -> int:
    """Bits of the tree's sum (two's complement): the ``csa`` tree computes modulo
    ``2**heap_width`` and reads the result as signed."""
    lo1, hi1 = column_trees(cfg)[tree]
    return _bits_for(cfg.rows * lo1, cfg.rows * hi1)


def heap_constant(cfg: Any, tree: str) -> int:
    """The constant of the tree's bit heap modulo ``2**heap_width``: with signed weights each
    term's sign bit ``b`` (weight ``-2**j``) enters the heap inverted, as ``(1 - b) * 2**j``,
    and ``-2**j`` per term is added once, here."""
    if not cfg.weight_signed:
        return 0
    j = cfg.weight_bits - 1
    total = -cfg.rows * sum(1 << (j + shift) for _, shift in tree_planes(cfg, tree))
    return total % (1 << heap_width(cfg, tree))


def heap_heights(cfg: Any, tree: str) -> tuple[int, ...]:
    """Bits in each column (bit weight ``2**c``, ``c < heap_width``) of the tree's bit heap:
    bit ``j`` of every row's weight ANDed with every plane of the tree, at column
    ``j + shift``, and the set bits of :func:`heap_constant`."""
    width = heap_width(cfg, tree)
    heights = [0] * width
    for _, shift in tree_planes(cfg, tree):
        for j in range(cfg.weight_bits):
            if j + shift < width:
                heights[j + shift] += cfg.rows
    const = heap_constant(cfg, tree)
    for c in range(width):
        heights[c] += (const >> c) & 1
    return tuple(heights)


@functools.lru_cache(maxsize=256)
def csa_plan(heights: tuple[int, ...]) -> tuple[tuple[tuple[int, int], ...], ...]:
    """The compressor levels that reduce a bit heap to at most two bits per column.

    Each level is, per column, ``(full_adders, half_adders)``: a full adder takes three of the
    column's bits (those present before the level) and gives a sum bit to the column and a
    carry bit to the next one, a half adder the same from two bits; carries out of the top
    column are dropped (the heap is summed modulo ``2**len(heights)``). A level reduces the
    columns, from the lowest up and counting the carries that enter from below, to the
    largest of Dadda's heights (2, 3, 4, 6, 9, ...: ``d[i+1] = floor(1.5 * d[i])``) below
    the heap's tallest column, with as few adders as that takes.

    Returns
    -------
    tuple
        One entry per level (none when no column has more than two bits).
    """
    plan = []
    heights = list(heights)
    while max(heights, default=0) > 2:
        target = 2
        while target * 3 // 2 < max(heights):
            target = target * 3 // 2
        level, nxt, carry = [], [], 0
        for h in heights:
            excess = h + carry - target
            fa = min(max(excess, 0) // 2, h // 3)
            ha = 1 if excess - 2 * fa > 0 and h - 3 * fa >= 2 else 0
            level.append((fa, ha))
            nxt.append(h - 2 * fa - ha + carry)
            carry = fa + ha
        plan.append(tuple(level))
        heights = nxt
    return tuple(plan)


def tree_depth(cfg: Any) -> int:
    """Levels of one column adder tree in the configured style: ``ceil(log2(rows))`` adder
    levels for ``ripple``; for ``csa`` the compressor levels of the taller of the column's
    trees plus the final adder."""
    if cfg.tree_style == TreeStyle.RIPPLE:
        return (cfg.rows - 1).bit_length()
    return 1 + max(len(csa_plan(heap_heights(cfg, tree))) for tree in column_trees(cfg))


def tree_register_levels(depth: int, regs: int) -> list[int]:
    """Tree levels (1 = first level, ``depth`` = root) after which the ``regs`` pipeline
    registers sit, evenly spaced and the last one at the root."""
    return sorted(depth - (i * depth) // regs for i in range(regs))
