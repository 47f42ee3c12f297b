"""Fast tests of the energy models of ``dcim synth``: liberty energy tables, the clock network
and the modelled clock gate of the weight cells, the utilization curve's workloads and figures,
and the Stillmaker & Baas scaling. Expected values are computed by hand from the inputs."""

from __future__ import annotations

import pytest

from dcim.golden.config import CoreConfig
from dcim.sim.cli import main
from dcim.synth import activity as act
from dcim.synth import curve as crv
from dcim.synth import clocking, ppa
from dcim.synth.libpower import EnergyTable, parse_cell_power
from dcim.synth.scaling import sb_factors

LIB = """library(t) {
  nom_voltage : 2.0;
  power_lut_template(e2) {
    variable_1 : total_output_net_capacitance;
    variable_2 : input_transition_time;
    index_1 ("1000.0, 1001.0");
    index_2 ("1000.0, 1001.0");
  }
  power_lut_template(p1) {
    variable_1 : input_transition_time;
    index_1 ("1000.0, 1001.0");
  }
  cell (FF) {
    cell_leakage_power : 2.0;
    ff (IQ, IQN) { next_state : "D"; clocked_on : "CLK"; }
    pin(CLK) {
      direction : input;
      capacitance : 0.03;
      internal_power() {
        rise_power(p1) { index_1 ("0.1, 0.3"); values ("0.01, 0.03"); }
        fall_power(p1) { index_1 ("0.1, 0.3"); values ("0.10, 0.20"); }
      }
    }
    pin(D) { direction : input; capacitance : 0.01; }
    pin(Q) {
      direction : output;
      function : "IQ";
      internal_power() {
        related_pin : "CLK";
        rise_power(e2) { index_1 ("0.0, 0.1"); index_2 ("0.1, 0.3");
                         values ("0.05, 0.07", "0.15, 0.17"); }
        fall_power(e2) { index_1 ("0.0, 0.1"); index_2 ("0.1, 0.3");
                         values ("0.01, 0.01", "0.01, 0.01"); }
      }
    }
  }
  cell (LATCH) {
    cell_leakage_power : 1.0;
    pin(CLK) {
      direction : input;
      capacitance : 0.02;
      internal_power() {
        rise_power(p1) { index_1 ("0.1, 0.3"); values ("0.02, 0.02"); }
        fall_power(p1) { index_1 ("0.1, 0.3"); values ("0.04, 0.04"); }
      }
    }
    pin(D) { direction : input; capacitance : 0.005; }
    pin(Q) {
      direction : output;
      internal_power() {
        related_pin : "CLK";
        rise_power(e2) { index_1 ("0.0, 0.1"); index_2 ("0.1, 0.3");
                         values ("0.003, 0.003", "0.003, 0.003"); }
        fall_power(e2) { index_1 ("0.0, 0.1"); index_2 ("0.1, 0.3");
                         values ("0.001, 0.001", "0.001, 0.001"); }
      }
      internal_power() {
        related_pin : "D";
        rise_power(e2) { index_1 ("0.0, 0.1"); index_2 ("0.1, 0.3");
                         values ("0.2, 0.2", "0.2, 0.2"); }
        fall_power(e2) { index_1 ("0.0, 0.1"); index_2 ("0.1, 0.3");
                         values ("0.1, 0.1", "0.1, 0.1"); }
      }
    }
  }
  cell (OR2X1) {
    cell_leakage_power : 3.0;
    pin(A) { direction : input; capacitance : 0.015; }
    pin(B) { direction : input; capacitance : 0.012; }
    pin(Y) {
      direction : output;
      function : "(A+B)";
      internal_power() {
        related_pin : "A";
        rise_power(e2) { index_1 ("0.0, 0.4"); index_2 ("0.1, 0.3");
                         values ("0.0, 0.0", "0.4, 0.4"); }
        fall_power(e2) { index_1 ("0.0, 0.4"); index_2 ("0.1, 0.3");
                         values ("0.0, 0.0", "0.2, 0.2"); }
      }
    }
  }
}
"""


@pytest.fixture(scope="module")
def cells():
    return parse_cell_power(LIB)


def test_energy_table_interpolates_and_extrapolates():
    t = EnergyTable([0.0, 1.0], [0.0, 2.0], [[0.0, 2.0], [10.0, 12.0]])
    assert t(1.0, 0.5) == pytest.approx(6.0)  # middle of the four corners
    assert t(0.0, 0.0) == 0.0 and t(2.0, 1.0) == 12.0
    assert t(4.0, 0.0) == pytest.approx(4.0)  # linear beyond the last slew
    assert t(0.0, 2.0) == pytest.approx(20.0)  # and beyond the last load
    passive = EnergyTable([0.0], [0.1, 0.3], [[0.01, 0.03]])
    assert passive(0.2) == pytest.approx(0.02)


def test_liberty_cell_power(cells):
    ff = cells["FF"]
    assert ff.capacitance == {"CLK": 0.03, "D": 0.01}
    assert ff.leakage == 2.0
    # CLK passive: rise 0.01 + fall 0.10 at 0.1 ns; 0.02 + 0.15 at 0.2 ns
    assert ff.transition_energy("CLK", None, 0.1) == pytest.approx(0.11)
    assert ff.transition_energy("CLK", None, 0.2) == pytest.approx(0.17)
    # Q from CLK at load 0.05 (halfway), slew 0.1: rise 0.10, fall 0.01
    assert ff.transition_energy("Q", "CLK", 0.1, 0.05) == pytest.approx(0.11)
    assert ff.transition_energy("D", None, 0.1) == 0.0  # no table: no energy
    with pytest.raises(KeyError, match=r"cell FF has no pin X"):
        ff.transition_energy("X", None, 0.1)


def _netlist():
    """top: clk -> ff0 (glue), a submodule ``array`` whose column ``col0`` has cells ``cells``
    with two FFs on the clock and one on another net."""
    return {"modules": {
        "top": {"ports": {"clk": {"direction": "input", "bits": [2]},
                          "d": {"direction": "input", "bits": [3]}},
                "cells": {"ff0": {"type": "FF", "connections": {"CLK": [2], "D": [3], "Q": [4]}},
                          "array": {"type": "arr", "connections": {"c": [2], "x": [3]}}}},
        "arr": {"ports": {"c": {"direction": "input", "bits": [5]},
                          "x": {"direction": "input", "bits": [6]}},
                "cells": {"col0": {"type": "col", "connections": {"k": [5], "y": [6]}}}},
        "col": {"ports": {"k": {"direction": "input", "bits": [7]},
                          "y": {"direction": "input", "bits": [8]}},
                "cells": {"cells": {"type": "wc", "connections": {"ck": [7], "v": [8]}},
                          "f": {"type": "FF", "connections": {"CLK": [7], "D": [8]}}}},
        "wc": {"ports": {"ck": {"direction": "input", "bits": [9]},
                         "v": {"direction": "input", "bits": [10]}},
               "cells": {"w0": {"type": "FF", "connections": {"CLK": [9], "D": [10]}},
                         "w1": {"type": "FF", "connections": {"CLK": [9], "D": [10]}},
                         "n": {"type": "FF", "connections": {"CLK": [10], "D": [10]}}}},
    }}


def test_clock_pins_by_block_and_their_energy(cells):
    pins, weights = clocking.clock_pins(_netlist(), "top")
    assert pins == {"glue": {"FF/CLK": 1}, "compute": {"FF/CLK": 1},
                    "weights": {"FF/CLK": 2}}
    assert sorted(weights) == ["array/col0/cells/w0", "array/col0/cells/w1"]
    # 2 clock pins of 0.03 pF at 2 V: 0.06 * 4
    assert clocking.clock_energy_pj(pins["weights"], cells, 2.0) == pytest.approx(0.24)
    with pytest.raises(ValueError, match=r"no one-bit clock port 'ck'"):
        clocking.clock_pins(_netlist(), "top", "ck")


def test_gating_model_by_hand(cells):
    # the OR2X1 ICG's names are the library's; word of 4 flip-flops, 2 V, 10 ns
    m = clocking.gating_model(cells, "FF", "CLK", 4, 2.0, 10.0, flop_clock_pj=0.5,
                              slew_ns=0.1)
    assert m["flop_clock_pj"] == 0.5 and m["flop_clock_cap_pf"] == 0.03
    # latch CLK 0.02 + 0.04, its Q from CLK 0.003 + 0.001, leakage (1 + 3) nW x 10 ns
    assert m["gate_cycle_pj"] == pytest.approx(0.06 + 0.004 + 4.0 * 10.0 * 1e-6)
    assert m["gate_clock_cap_pf"] == pytest.approx(0.02 + 0.015)
    # OR output into 4 x 0.03 = 0.12 pF (0.3 of the way to 0.4): 0.12 + 0.06; latch Q from D
    assert m["gate_write_pj"] == pytest.approx(0.18 + 0.3)
    g = clocking.gated_energy_pj(m, 10, 0.5)
    # 40 flip-flops, 2 of them written per cycle (0.5 words x 4)
    assert g["weights_saved"] == pytest.approx(38 * 0.5)
    assert g["weights_added"] == pytest.approx(10 * m["gate_cycle_pj"] + 0.5 * 0.48)
    assert g["clock_ungated"] == pytest.approx(40 * 0.03 * 4.0)
    assert g["clock_gated"] == pytest.approx((10 * 0.035 + 2 * 0.03) * 4.0)
    with pytest.raises(ValueError, match=r"writes_per_cycle must be in \[0, 10\], got 11"):
        clocking.gated_energy_pj(m, 10, 11)
    # a gate per 5 words (2 gates): a write clocks the 20 flip-flops of its gate
    g5 = clocking.gated_energy_pj(m, 10, 0.5, words_per_gate=5)
    assert g5["weights_saved"] == pytest.approx(30 * 0.5)
    assert g5["weights_added"] == pytest.approx(2 * m["gate_cycle_pj"] + 0.5 * 0.48)
    assert g5["clock_gated"] == pytest.approx((2 * 0.035 + 10 * 0.03) * 4.0)
    with pytest.raises(ValueError, match=r"words_per_gate must divide the words \(10\), got 3"):
        clocking.gated_energy_pj(m, 10, 0.5, words_per_gate=3)


def _model():
    return {"flop": "FF", "word_bits": 2, "vdd": 1.0, "flop_clock_pj": 1.0,
            "flop_clock_cap_pf": 0.5, "gate_cycle_pj": 0.25, "gate_clock_cap_pf": 0.25,
            "gate_write_pj": 1.0, "gate_cells": "LATCH + OR2X1", "gate_area_um2": 88.0}


def test_derive_adds_the_clock_and_the_gated_weights():
    cfg = CoreConfig(rows=2, cols=2, act_bits=8)
    blocks_w = {"weights": 2e-3, "compute": 1e-3, "accum": 0.0, "dpu": 0.0, "ctrl": 0.0,
                "glue": 0.0}
    r = {"area": {"total_um2": 1000.0, "blocks": {"weights": {"area_um2": 100.0}}},
         "timing": {"fmax_mhz": 100.0, "clock_ns": 10.0, "min_period_ns": 10.0},
         "power": {"u100": {"total_w": 3e-3, "window_cycles": 40, "macs": 20, "vectors": 5,
                            "blocks_w": blocks_w},
                   "u25": {"total_w": 3e-3, "window_cycles": 160, "macs": 20, "vectors": 5,
                           "blocks_w": blocks_w, "gap": 24}},
         "clock": {"energy_pj_per_cycle": {"weights": 4.0, "ctrl": 1.0}, "words": 4,
                   "words_per_column": 2, "gating": _model()}}
    d = ppa.derive(cfg, r)
    e = d["energy"]["u100"]
    # 2 mW x 10 ns = 20 pJ per cycle, 40 cycles / 20 MACs: 40 pJ/MAC; compute 20
    assert e["utilization"] == 1.0  # 20 MACs in 40 cycles at 0.5 MACs per cycle
    assert e["energy_per_mac_pj_by_block"]["weights"] == pytest.approx(40.0)
    assert e["energy_per_mac_pj_opensta"] == pytest.approx(60.0)
    # the clock net: 5 pJ per cycle, 2 cycles per MAC
    assert e["energy_per_mac_pj_by_block"]["clock"] == pytest.approx(10.0)
    assert e["energy_per_mac_pj"] == pytest.approx(70.0)
    g = e["energy_per_mac_pj_by_block_gated"]
    # 8 flip-flops save 1 pJ each, 4 gates cost 0.25: weights 20 - 8 + 1 pJ per cycle
    assert g["weights"] == pytest.approx(13.0 * 2)
    # clock: the weights' 8 x 0.5 pF (4 pJ at 1 V) become 4 x 0.25 pF
    assert g["clock"] == pytest.approx((5.0 - 4.0 + 1.0) * 2)
    assert e["energy_per_mac_pj_gated"] == pytest.approx(26.0 + 20.0 + 4.0)
    assert e["tops_per_w_gated"] == pytest.approx(2 / 50.0)
    # a gate per column (2 gates): weights 20 - 8 + 0.5, clock 5 - 4 + 0.5 pJ per cycle
    gc = e["energy_per_mac_pj_by_block_gated_column"]
    assert (gc["weights"], gc["clock"]) == (pytest.approx(12.5 * 2), pytest.approx(1.5 * 2))
    assert e["energy_per_mac_pj_gated_column"] == pytest.approx(25.0 + 20.0 + 3.0)
    # the curve: the same energy per cycle over 4x the cycles per MAC
    c = d["curve"]
    assert [p["target_percent"] for p in c] == [100, 25]
    assert c[1]["utilization"] == pytest.approx(0.25)
    assert c[1]["relative"] == pytest.approx(70.0 / 280.0)
    assert c[1]["relative_gated"] == pytest.approx(50.0 / 200.0)
    assert c[1]["gap"] == 24
    # scaled: every energy by the same factor, so TOPS/W ratios are kept
    s12 = d["scaled"]["12nm"]
    assert s12["tops_per_w_u100_gated"] / s12["tops_per_w_u100"] == pytest.approx(70.0 / 50.0)
    assert s12["area_um2_logic"] == pytest.approx(900.0 * 0.0093)


def test_curve_workloads_and_gaps():
    # 8 cycles per pass, 8 beats of a 64-bit stream per 64-row vector, one DPU lane: a
    # DPU-bound pass interval (32 cycles)
    cfg = CoreConfig(rows=64, cols=32, dpu_lanes=1, x_stream_bits=64, y_stream_bits=64)
    u0 = crv.back_to_back_utilization(cfg)
    assert u0 == pytest.approx(8 / cfg.pass_interval())
    assert crv.curve_gap(cfg, 100) == 0  # stands for the highest reached
    assert crv.curve_gap(cfg, 50) is None  # above what back-to-back vectors reach
    # 10 %: a vector every 80 cycles, 8 of them its beats
    assert crv.curve_gap(cfg, 10) == 72
    # all accumulating but the last of 4: the schedule's mean interval
    acc, emit = cfg.pass_interval(emit=False), cfg.pass_interval()
    assert crv.back_to_back_utilization(cfg, 4) == pytest.approx(8 / ((3 * acc + emit) / 4))
    wls = crv.curve_workloads(cfg, 4, (100, 50, 10), emit_every=2)
    assert list(wls) == ["u100", "u10"] and wls["u10"].gap == 72
    assert wls["u100"].vectors == act.workload(cfg, "random", 4).vectors
    assert [wls["u10"].user(i) for i in range(4)] == [0, 3, 0, 3]  # replace, acc + emit
    assert wls["u10"].results == 2
    with pytest.raises(ValueError, match=r"emit_every must be >= 1 and divide the vectors"):
        act.workload(cfg, "random", 3, emit_every=2)


def test_stillmaker_baas_factors_by_hand():
    f = sb_factors("HP14", 0.8)
    # delay: (-40.66*0.512 + 109.2*0.64 - 100.6*0.8 + 35.92) / (97.09*3.24 - 356.7*1.8 + 406.5)
    assert f["delay"] == pytest.approx(4.51008 / 79.0116, rel=1e-5)
    # energy: (0.2363*0.64 - 0.09675*0.8 + 0.02239) / (24.64*1.8 - 17.98)
    assert f["energy"] == pytest.approx(0.096222 / 26.372, rel=1e-5)
    assert f["area"] == 0.0093
    with pytest.raises(ValueError, match=r"node must be one of .*got 'HP12'"):
        sb_factors("HP12", 0.8)


@pytest.mark.parametrize("value, message", [
    ("0", r"--utilization must list integers in \[1, 100\] \(percent\) or be none, got '0'"),
    ("100,x", r"got 'x'"),
])
def test_cli_rejects_bad_utilization(tmp_path, capsys, value, message):
    import re
    assert main(["synth", "--rows", "4", "--cols", "2", "--utilization", value,
                 "-o", str(tmp_path)]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_cli_rejects_emit_every_not_dividing_vectors(tmp_path, capsys):
    assert main(["synth", "--rows", "4", "--cols", "2", "--vectors", "6", "--emit-every", "4",
                 "-o", str(tmp_path)]) == 2
    assert "--emit-every must be >= 1 and divide --vectors (6), got 4" in capsys.readouterr().err
