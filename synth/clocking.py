"""The clock network's energy and a modelled clock gate of the weight cells.

**The clock block.** OpenSTA reports a net's switching power on the cell that drives it; the
clock net is driven by the ``clk`` port (an ideal clock: no buffer tree, no wire load), so its
switching energy is in no block of its report. It is separable: every clock edge charges or
discharges the clock pins of every flip-flop (and of a modelled clock gate), one rise and one
fall per cycle, ``E = C_clk * Vdd**2`` per cycle (:func:`clock_energy_pj`). A real clock tree
adds its buffers and wires: this is the lower bound.

**Clock gating of the weight cells (modelled: OSU 0.18 um has no integrated clock-gate cell).**
The weight flip-flops are written rarely (a row at a time, between passes) and clocked every
cycle; their clock pins' internal energy is most of the weight store's energy. The model puts
one clock gate on each weight word (``weight_bits`` flip-flops of one row of one column, the
unit a row write enables: its word line), built from cells the liberty has: a ``LATCH``
(transparent while the clock is high, holding the inverted word-line enable through the low
phase) and an ``OR2X1`` of the clock and the latch output, whose output rises only in cycles the
word is written (the OR-type gate of positive-edge flip-flops; the decoder's inverted word line
is taken as free). Per word and cycle the gate costs the latch's clock-pin energy and the two
gate inputs' clock-pin load, every cycle; in a written cycle the OR's output transition
(loaded by the word's clock pins), the gated net's switching and the flip-flops' clock-pin
energy. The flip-flops' clock-pin energy in the cycles the word is not written is what it
saves (:func:`gating_model`, :func:`gated_energy_pj`). Per word rather than per array row:
the column is the seam of the design (docs/core.md), so each column keeps its own gates; a
gate per array row would drive ``cols * weight_bits`` clock pins across every column (a
buffered tree, not modelled) for ``cols`` times fewer gates.
"""

from __future__ import annotations

import re
from typing import Any

from ..golden.config import CoreConfig
from .libpower import CellPower, parse_cell_power
from .netlist import block_of
from .tools import FlowError

__all__ = ["ICG_CELLS", "SLEW_NS", "clock_energy_pj", "clock_model", "clock_pins", "gated_energy_pj",
           "gating_model"]

#: The modelled clock gate: (cell, its clock pin) of the latch and of the OR gate, the OR's
#: output pin, and the latch's output pin and data pin.
ICG_CELLS = {"latch": ("LATCH", "CLK", "Q", "D"), "or": ("OR2X1", "A", "Y", "B")}


def clock_pins(netlist: dict, top: str, clock: str = "clk",
               ) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Leaf-cell pins on the clock port's net, per block: ``{block: {"CELL/PIN": count}}``
    (blocks as :func:`dcim.synth.netlist.block_of`), and the instance paths (OpenSTA names) of
    the clocked cells of the ``weights`` block.

    Raises
    ------
    ValueError
        ``top`` has no one-bit port ``clock``.
    """
    mods = netlist["modules"]
    port = mods[top]["ports"].get(clock)
    if port is None or len(port["bits"]) != 1:
        raise ValueError(f"module {top} has no one-bit clock port {clock!r}")
    out: dict[str, dict[str, int]] = {}
    weights: list[str] = []
    stack = [("", top, {port["bits"][0]})]
    while stack:
        path, mod, clk = stack.pop()
        for cname, cell in mods[mod]["cells"].items():
            t, conn = cell["type"], cell["connections"]
            full = f"{path}/{cname}" if path else cname
            if t in mods:
                sub = mods[t]["ports"]
                inner = {cb for pname, p in sub.items()
                         for cb, pb in zip(p["bits"], conn.get(pname, [])) if pb in clk}
                if inner:
                    stack.append((full, t, inner))
                continue
            for pin, bits in conn.items():
                if len(bits) == 1 and bits[0] in clk:
                    block = block_of(full)
                    counts = out.setdefault(block, {})
                    counts[f"{t}/{pin}"] = counts.get(f"{t}/{pin}", 0) + 1
                    if block == "weights":
                        weights.append(full)
    return out, weights


def clock_energy_pj(pins: dict[str, int], cells: dict[str, CellPower], vdd: float) -> float:
    """Energy per cycle (pJ, with the liberty in pF and V) of charging and discharging the
    clock pins ``{"CELL/PIN": count}`` once each: ``sum(count * C_pin) * vdd**2``.

    Raises
    ------
    KeyError
        A cell or pin is not in ``cells``.
    """
    cap = 0.0
    for key, n in pins.items():
        cell, pin = key.split("/")
        cap += n * cells[cell].capacitance[pin]
    return cap * vdd * vdd


#: The transition (ns) at which the clock gate's tables are read: the smallest the OSU018
#: tables characterize. OpenSTA's ideal clock reads them there too: a weight flip-flop that
#: is not written costs it the DFFPOSX1's CLK-pin energy plus its Q-pin energy related to CLK
#: at 0.06 ns (0.117 + 0.104 pJ per cycle, 16x8 core, 0.01 % from OpenSTA's instance power).
SLEW_NS = 0.06


def gating_model(cells: dict[str, CellPower], flop: str, clock_pin: str, word_bits: int,
                 vdd: float, period_ns: float, flop_clock_pj: float,
                 slew_ns: float = SLEW_NS) -> dict[str, Any]:
    """The per-word energies of the modelled clock gate (module doc), in pJ per cycle.

    Parameters
    ----------
    cells : dict
        The liberty's :class:`~dcim.synth.libpower.CellPower` by cell.
    flop, clock_pin : str
        The weight flip-flops' cell and its clock pin (e.g. ``DFFPOSX1``, ``CLK``).
    word_bits : int
        Flip-flops behind one gate.
    vdd, period_ns : float
        Supply and clock period (for the gate's leakage).
    flop_clock_pj : float
        One weight flip-flop's internal energy per clock cycle when it is not written (the
        flow takes it from OpenSTA's power of the weight flip-flops in the window).
    slew_ns : float
        The transition at which the gate's tables are read.

    Returns
    -------
    dict
        ``flop_clock_pj``, ``flop_clock_cap_pf`` (its clock-pin capacitance), and per gate:
        ``gate_cycle_pj`` (the latch's clock-edge energy, its CLK pin and its Q pin related to
        CLK as OpenSTA charges a clocked cell, and both cells' leakage, every cycle),
        ``gate_clock_cap_pf`` (its clock-pin load), ``gate_write_pj`` (the extra internal
        energy of a written cycle: the OR's output rise and fall into the word's clock pins,
        the latch's output following its data).
    """
    lname, lclk, lq, ld = ICG_CELLS["latch"]
    oname, oclk, oy, oen = ICG_CELLS["or"]
    latch, gate, ff = cells[lname], cells[oname], cells[flop]
    ff_cap = ff.capacitance[clock_pin]
    leak_pj = (latch.leakage + gate.leakage) * period_ns * 1e-6  # nW * ns = 1e-6 pJ
    q_load = gate.capacitance[oen]
    return {
        "flop": flop, "word_bits": word_bits, "slew_ns": slew_ns, "vdd": vdd,
        "flop_clock_pj": flop_clock_pj,
        "flop_clock_cap_pf": ff_cap,
        "gate_cells": f"{lname} + {oname}",
        "gate_cycle_pj": (latch.transition_energy(lclk, None, slew_ns)
                          + latch.transition_energy(lq, lclk, slew_ns, q_load) + leak_pj),
        "gate_clock_cap_pf": latch.capacitance[lclk] + gate.capacitance[oclk],
        "gate_write_pj": (gate.transition_energy(oy, oclk, slew_ns, word_bits * ff_cap)
                          + latch.transition_energy(lq, ld, slew_ns, q_load)),
    }


def gated_energy_pj(model: dict[str, Any], words: int, writes_per_cycle: float,
                    words_per_gate: int = 1) -> dict[str, float]:
    """Energy per cycle (pJ) that gating the ``words`` weight words changes, with
    ``writes_per_cycle`` word writes per cycle on average (all words together), one gate per
    ``words_per_gate`` words (1: per word; ``rows``: per column, where a write clocks every
    word of the column, the recirculating multiplexers keeping the others; that gate's
    output drives ``rows * weight_bits`` clock pins through a buffer tree, which is not
    modelled beyond the pins' load, and only toggles in written cycles).

    Returns
    -------
    dict
        ``weights_saved`` (the flip-flops' clock-pin energy in the cycles their word is not
        written), ``weights_added`` (the gates' internal energy), ``clock_ungated`` (the weight
        flip-flops' clock pins on the clock net every cycle) and ``clock_gated`` (the gates'
        clock pins every cycle plus the written words' gated nets).

    Raises
    ------
    ValueError
        ``writes_per_cycle`` is not in [0, words].
    """
    if not 0 <= writes_per_cycle <= words:
        raise ValueError(f"writes_per_cycle must be in [0, {words}], got {writes_per_cycle}")
    if words_per_gate < 1 or words % words_per_gate:
        raise ValueError(f"words_per_gate must divide the words ({words}), got {words_per_gate}")
    m = model
    v2 = m["vdd"] ** 2
    gates = words // words_per_gate
    flops = words * m["word_bits"]
    clocked = min(flops, writes_per_cycle * words_per_gate * m["word_bits"])
    return {
        "weights_saved": (flops - clocked) * m["flop_clock_pj"],
        "weights_added": gates * m["gate_cycle_pj"] + writes_per_cycle * m["gate_write_pj"],
        "clock_ungated": flops * m["flop_clock_cap_pf"] * v2,
        "clock_gated": (gates * m["gate_clock_cap_pf"] + clocked * m["flop_clock_cap_pf"]) * v2,
    }


def clock_model(cfg: CoreConfig, netlist: dict, lib_text: str, areas: dict[str, float],
                instance_w: dict[str, float], period_ns: float) -> dict[str, Any]:
    """The clock network (its pins per block and their energy per cycle) and the clock-gating
    model of the weight cells of a synthesized core, as ``synth.json`` holds them (``clock``).

    Parameters
    ----------
    netlist, lib_text, areas
        The mapped JSON netlist, the liberty's text and the cells' LEF areas.
    instance_w : dict
        OpenSTA's power (W) of every leaf cell in a window where no weight is written: the
        weight flip-flops' median is their clock energy per cycle.
    period_ns : float
        The clock period of that power.

    Raises
    ------
    FlowError
        The weights block's clocked cells are not of one flip-flop type.
    """
    cells = parse_cell_power(lib_text)
    m = re.search(r"\bnom_voltage\s*:\s*([0-9.]+)", lib_text)
    vdd = float(m.group(1)) if m else 1.8
    pins, wflops = clock_pins(netlist, cfg.name)
    energy = {b: clock_energy_pj(p, cells, vdd) for b, p in pins.items()}
    w = sorted(instance_w[n] for n in wflops if n in instance_w)
    if not w or len(pins.get("weights", {})) != 1:
        raise FlowError(f"the weights block has clocked cells {pins.get('weights')}; the "
                        "clock-gating model needs one flip-flop type")
    flop, pin = next(iter(pins["weights"])).split("/")
    model = gating_model(cells, flop, pin, cfg.weight_bits, vdd, period_ns,
                         w[len(w) // 2] * period_ns * 1e3)
    lname, oname = (c.strip() for c in model["gate_cells"].split("+"))
    model["gate_area_um2"] = areas[lname] + areas[oname]
    return {"pins": pins, "energy_pj_per_cycle": energy, "vdd": vdd,
            "words": cfg.rows * cfg.cols, "words_per_column": cfg.rows, "gating": model,
            "flop_clock_pj_range": [w[0] * period_ns * 1e3, w[-1] * period_ns * 1e3]}
