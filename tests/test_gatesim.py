"""The cycle-based gate-level simulator of the activity flow (dcim.synth.gatesim): liberty
functions (dcim.synth.libcells), three-valued tables, flattening, and toggle counts on
hand-built netlists.

Its agreement with Icarus on a synthesized core is tested in tests/test_synth_flow.py."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from synth_tech import osu018

from dcim.synth import gatesim
from dcim.synth.libcells import X, parse_function, parse_liberty_cells

LIB = """library(t) {
  cell (INV) { pin(A) { direction : input; } pin(Y) { direction : output; function : "(!A)"; } }
  cell (AO) {
    pin(A) { direction : input; } pin(B) { direction : input; } pin(C) { direction : input; }
    pin(Y) { direction : output; function : "(A B)+C"; }
  }
  cell (MUX) {
    pin(A) { direction : input; } pin(B) { direction : input; } pin(S) { direction : input; }
    pin(Y) { direction : output; function : "(S*A) | (S' & B)"; }
  }
  cell (HA) {
    pin(A) { direction : input; } pin(B) { direction : input; }
    pin(C) { direction : output; function : "A B"; }
    pin(S) { direction : output; function : "A^B"; }
  }
  cell (DFF) {
    ff (IQ,IQN) { next_state : "D"; clocked_on : "CK"; }
    pin(CK) { direction : input; clock : true; }
    pin(D) { direction : input; }
    pin(Q) { direction : output; function : "IQ"; }
    pin(QN) { direction : output; function : "IQN"; }
  }
  cell (DFFN) {
    ff (IQ,IQN) { next_state : "D"; clocked_on : "!CK"; }
    pin(CK) { direction : input; } pin(D) { direction : input; }
    pin(Q) { direction : output; function : "IQ"; }
  }
  cell (DFFR) {
    ff (IQ,IQN) { next_state : "D"; clocked_on : "CK"; clear : "!R"; }
    pin(CK) { direction : input; } pin(D) { direction : input; } pin(R) { direction : input; }
    pin(Q) { direction : output; function : "IQ"; }
  }
  cell (LAT) {
    latch (IQ,IQN) { enable : "G"; data_in : "D"; }
    pin(G) { direction : input; } pin(D) { direction : input; }
    pin(Q) { direction : output; function : "IQ"; }
  }
  cell (TB) {
    pin(A) { direction : input; } pin(E) { direction : input; }
    pin(Y) { direction : output; function : "A"; three_state : "!E"; }
  }
}
"""


@pytest.fixture(scope="module")
def cells():
    return parse_liberty_cells(LIB)


def test_parse_function_precedence_and_forms():
    cases = {
        "(!((A B)+C))": lambda a, b, c: not ((a and b) or c),
        "A+B C": lambda a, b, c: a or (b and c),
        "A^B C": lambda a, b, c: (a != b) and c,
        "A' | B & !C": lambda a, b, c: (not a) or (b and not c),
        "((A*B)+(B*C))+(C*A)": lambda a, b, c: (a + b + c) >= 2,
        "1 & A | 0": lambda a, b, c: a,
    }
    for expr, want in cases.items():
        fn = parse_function(expr)
        for a, b, c in itertools.product((False, True), repeat=3):
            assert fn({"A": a, "B": b, "C": c}) == bool(want(a, b, c)), (expr, a, b, c)
    for bad in ("(A", "A +", "A B )"):
        with pytest.raises(ValueError):
            parse_function(bad)


def test_liberty_cells_and_three_valued_tables(cells):
    assert cells["AO"].inputs == ["A", "B", "C"]
    ao = cells["AO"].outputs["Y"]

    def code(*v):
        return sum(d * 3 ** i for i, d in enumerate(v))
    assert ao[code(1, 1, 0)] == 1 and ao[code(0, 1, 0)] == 0
    # X only where the known inputs do not decide the output
    assert ao[code(X, 0, 0)] == 0          # A&0 = 0
    assert ao[code(X, 1, 0)] == X
    assert ao[code(X, X, 1)] == 1          # ... + 1 = 1
    mux = cells["MUX"].outputs["Y"]
    assert mux[code(1, 1, X)] == 1 and mux[code(0, 1, X)] == X and mux[code(0, 1, 0)] == 1
    assert set(cells["HA"].outputs) == {"C", "S"}
    dff = cells["DFF"]
    assert dff.clock == "CK" and not dff.falling and dff.inputs == ["D"]
    assert dff.outputs["Q"][:3].tolist() == [0, 1, X]
    assert dff.outputs["QN"][:3].tolist() == [1, 0, X]
    assert cells["DFFN"].falling
    assert "asynchronous" in cells["DFFR"].unsupported
    assert "latch" in cells["LAT"].unsupported
    assert "tri-state" in cells["TB"].unsupported


def test_osu018_every_cell_but_latch_tristate_and_async_flop_is_modelled():
    lib, _ = osu018()
    c = parse_liberty_cells(lib.read_text())
    assert {k for k, m in c.items() if m.unsupported} == {"DFFSR", "LATCH", "TBUFX1", "TBUFX2"}
    # the inverting multiplexer of the OSU library: Y = !(S ? A : B)
    mux = c["MUX2X1"].outputs["Y"]
    assert c["MUX2X1"].inputs == ["A", "B", "S"]
    assert mux[1 + 0 * 3 + 1 * 9] == 0 and mux[1 + 0 * 3 + 0 * 9] == 1


def _module(ports, cells, netnames=None):
    return {"ports": {n: {"direction": d, "bits": b} for n, (d, b) in ports.items()},
            "cells": {n: {"type": t, "connections": c} for n, (t, c) in cells.items()},
            "netnames": netnames or {}}


def _counter_netlist():
    """top(clk, en, q[1:0]): a 2-bit counter in submodule ``cnt``; q = state."""
    sub = _module({"clk": ("input", [2]), "en": ("input", [3]), "q": ("output", [4, 5])},
                  {"f0": ("DFF", {"CK": [2], "D": [10], "Q": [4]}),
                   "f1": ("DFF", {"CK": [2], "D": [11], "Q": [5]}),
                   "x0": ("HA", {"A": [4], "B": [3], "S": [10], "C": [12]}),
                   "x1": ("HA", {"A": [5], "B": [12], "S": [11], "C": [13]})})
    top = _module({"clk": ("input", [2]), "en": ("input", [3]), "q": ("output", [7, 8])},
                  {"cnt": ("sub", {"clk": [2], "en": [3], "q": [7, 8]}),
                   "tie": ("INV", {"A": ["1"], "Y": [9]})})
    return {"modules": {"top": top, "sub": sub}}


def _program(enable_at, n_cycles, window=(2, 6)):
    def prog():
        yield {"en": 0}
        for cyc in range(n_cycles):
            yield ("negedge",)
            if cyc == enable_at:
                yield {"en": 1}
            if cyc == window[0]:
                yield ("window", True)
            if cyc == window[1]:
                yield ("window", False)
    return prog()


def test_flatten_maps_pins_to_nets_and_constants(cells):
    nl = gatesim.load(_counter_netlist(), "top", cells)
    assert nl.pin_nets["cnt/f0/Q"] == nl.ports["q"][1][0]
    assert nl.pin_nets["cnt/f0/CK"] == nl.clock
    assert nl.const_pins == {"tie/A": 1}
    assert nl.cells == 2 + 4 + 1  # two flops, two half adders with two outputs, one inverter


def test_counter_toggles_and_duty_by_hand(cells):
    nl = gatesim.load(_counter_netlist(), "top", cells)
    lanes = [gatesim.Lane(_program(0, 8)), gatesim.Lane(_program(100, 8)),
             gatesim.Lane(_program(0, 8, window=(3, 7)))]
    gatesim.run(nl, lanes)
    q0, q1 = nl.ports["q"][1]
    # lane 0: en from the first falling edge; the flops start X, and the first rising edge
    # with en known (X + 1 = X) keeps them X: the counter never leaves X
    assert lanes[0].toggles[q0] == 0 and lanes[0].high[q0] == 0
    # the clock toggles twice per cycle in every window of 4 cycles
    for lane in lanes:
        assert lane.window_cycles == 4 and lane.half_cycles == 8
        assert lane.toggles[nl.clock] == 8 and lane.high[nl.clock] == 4


def _reset_counter_netlist():
    """A 2-bit counter whose state is cleared by ``rst`` (synchronous, through an AO cell with
    an inverted reset)."""
    sub = _module({"clk": ("input", [2]), "rst": ("input", [3]), "q": ("output", [4, 5])},
                  {"f0": ("DFF", {"CK": [2], "D": [20], "Q": [4]}),
                   "f1": ("DFF", {"CK": [2], "D": [21], "Q": [5]}),
                   "n": ("INV", {"A": [3], "Y": [6]}),
                   "i0": ("INV", {"A": [4], "Y": [10]}),           # q0 + 1
                   "x1": ("HA", {"A": [5], "B": [4], "S": [11], "C": [12]}),
                   "m0": ("AO", {"A": [10], "B": [6], "C": ["0"], "Y": [20]}),
                   "m1": ("AO", {"A": [11], "B": [6], "C": ["0"], "Y": [21]})})
    top = _module({"clk": ("input", [2]), "rst": ("input", [3]), "q": ("output", [7, 8])},
                  {"cnt": ("sub", {"clk": [2], "rst": [3], "q": [7, 8]})})
    return {"modules": {"top": top, "sub": sub}}


def test_counter_counts_after_reset_and_lanes_are_independent(cells):
    nl = gatesim.load(_reset_counter_netlist(), "top", cells)
    q0, q1 = nl.ports["q"][1]
    seen = {}

    def prog(name, reset_cycles):
        yield {"rst": 1}
        for _ in range(reset_cycles):
            yield ("posedge",)
        yield ("negedge",)
        yield {"rst": 0}
        yield ("window", True)
        values = []
        for _ in range(8):
            yield ("posedge",)
            yield ("negedge",)
            values.append((yield ("read", "q")))
        seen[name] = values
        yield ("window", False)

    lanes = [gatesim.Lane(prog("a", 1)), gatesim.Lane(prog("b", 3)), gatesim.Lane(prog("c", 1))]
    gatesim.run(nl, lanes)
    assert seen["a"] == [1, 2, 3, 0, 1, 2, 3, 0] == seen["c"]
    assert seen["b"] == seen["a"]
    for lane in lanes:
        # over 8 cycles q0 toggles every cycle, q1 every other; each is 1 half the time
        assert lane.window_cycles == 8
        assert lane.toggles[q0] == 8 and lane.toggles[q1] == 4
        assert lane.high[q0] == 8 and lane.high[q1] == 8
    assert np.array_equal(lanes[0].toggles, lanes[2].toggles)


def test_monitor_sees_falling_edges_after_the_inputs(cells):
    nl = gatesim.load(_reset_counter_netlist(), "top", cells)
    log = []

    def prog():
        yield {"rst": 1}
        yield ("posedge",)
        yield ("negedge",)
        yield {"rst": 0}
        for _ in range(3):
            yield ("negedge",)

    gatesim.run(nl, [gatesim.Lane(prog(), monitor=lambda read: log.append(read("q")))])
    # the last falling edge ends the program: no monitor call then (the testbench finishes)
    assert log == [0, 1, 2]


def test_unsupported_netlists_are_rejected(cells):
    base = _counter_netlist()
    bad = {"modules": {**base["modules"]}}
    bad["modules"]["top"] = _module({"clk": ("input", [2]), "y": ("output", [5])},
                                    {"a": ("INV", {"A": [5], "Y": [6]}),
                                     "b": ("INV", {"A": [6], "Y": [5]})})
    with pytest.raises(gatesim.Unsupported, match="combinational loop"):
        gatesim.load(bad, "top", cells)
    bad["modules"]["top"] = _module({"clk": ("input", [2]), "y": ("output", [5])},
                                    {"a": ("LAT", {"G": [2], "D": [2], "Q": [5]})})
    with pytest.raises(gatesim.Unsupported, match="latch"):
        gatesim.load(bad, "top", cells)
    bad["modules"]["top"] = _module({"clk": ("input", [2]), "g": ("input", [3]),
                                     "y": ("output", [5])},
                                    {"a": ("DFF", {"CK": [3], "D": [2], "Q": [5]})})
    with pytest.raises(gatesim.Unsupported, match="not clocked by the clk port"):
        gatesim.load(bad, "top", cells)
    bad["modules"]["top"] = _module({"clk": ("input", [2]), "y": ("output", [5])},
                                    {"a": ("NOPE", {"A": [2], "Y": [5]})})
    with pytest.raises(gatesim.Unsupported, match="NOPE is not in the liberty"):
        gatesim.load(bad, "top", cells)
    bad["modules"]["top"] = _module({"clk": ("input", [2]), "y": ("output", [5])},
                                    {"a": ("INV", {"A": [2], "Y": [5]}),
                                     "b": ("INV", {"A": [2], "Y": [5]})})
    with pytest.raises(gatesim.Unsupported, match="more than one driver"):
        gatesim.load(bad, "top", cells)


def test_run_rejects_bad_programs(cells):
    nl = gatesim.load(_counter_netlist(), "top", cells)

    def drives(port):
        def prog():
            yield {port: 1}
            yield ("posedge",)
        return prog()
    with pytest.raises(ValueError, match="no input port 'q'"):
        gatesim.run(nl, [gatesim.Lane(drives("q"))])
    with pytest.raises(ValueError, match="no input port 'clk'"):
        gatesim.run(nl, [gatesim.Lane(drives("clk"))])

    def forever():
        while True:
            yield ("posedge",)
    with pytest.raises(RuntimeError, match="did not end within 10 half cycles"):
        gatesim.run(nl, [gatesim.Lane(forever())], max_half_cycles=10)
