"""Fast tests of the synthesis flow's pure-Python parts: LEF/liberty areas, scaling, activity,
report parsing, block areas and the ``dcim synth`` option checks."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from synth_tech import osu018

from dcim.golden.config import CoreConfig
from dcim.sim.cli import main
from dcim.sim.cmd_synth import parse_sweep
from dcim.synth import activity as act
from dcim.synth import flow, netlist, ppa, sta, tech
from dcim.synth.measure import measure_activity
from dcim.synth.tools import FlowError
from dcim.synth.lef import correct_liberty, liberty_areas, parse_lef_sizes, read_corrected
from dcim.synth.scaling import NODES, bitcell_area_um2, scale

LEF = """
SITE corner
  SIZE 0.800 BY 10.000 ;
END corner
MACRO INVX1
  CLASS CORE ;
  SIZE 1.600 BY 10.000 ;
  PIN A
  END A
END INVX1
MACRO LATCH
  SIZE 5.600 BY 10.000 ;
END LATCH
MACRO NOSIZE
END NOSIZE
"""

LIB = """library(x) {
  cell (INVX1) {
    area : 16;
    pin(A) { direction : input; }
  }
  cell (LATCH) {
    area : 0;
  }
  cell (ONLYLIB) {
    area : 7.5;
  }
}
"""


def test_lef_sizes_skip_sites_and_macros_without_size():
    assert parse_lef_sizes(LEF) == {"INVX1": (1.6, 10.0), "LATCH": (5.6, 10.0)}


def test_lef_unclosed_macro_rejected():
    with pytest.raises(ValueError, match=r"MACRO BAD is not closed"):
        parse_lef_sizes("MACRO BAD\n  SIZE 1 BY 1 ;\n")


def test_lef_nested_macro_rejected():
    with pytest.raises(ValueError, match=r"MACRO B starts inside MACRO A"):
        parse_lef_sizes("MACRO A\nMACRO B\nEND B\n")


def test_lef_nonpositive_size_rejected():
    with pytest.raises(ValueError, match=r"non-positive size"):
        parse_lef_sizes("MACRO A\n SIZE 0 BY 10 ;\nEND A\n")


def test_liberty_correction_replaces_only_wrong_areas():
    text, areas, corr = correct_liberty(LIB, LEF)
    assert [(c.cell, c.liberty_um2, c.lef_um2) for c in corr] == [("LATCH", 0.0, 56.0)]
    assert areas == {"INVX1": 16.0, "LATCH": 56.0, "ONLYLIB": 7.5}
    assert liberty_areas(text) == areas
    assert "area : 56;" in text


def test_osu018_known_errors_are_corrected():
    lib, lef = osu018()
    if lef is None:
        pytest.skip("no OSU018 LEF")
    _, areas, corr = read_corrected(lib, lef)
    got = {c.cell: (c.liberty_um2, c.lef_um2) for c in corr}
    # the three errors named in ../shared/toolchain.md
    assert got == {"LATCH": (0.0, 56.0), "OAI21X1": (23.0, 32.0), "NAND3X1": (36.0, 32.0)}
    assert areas["DFFPOSX1"] == pytest.approx(9.6 * 10.0)


def test_tech_files_missing_liberty(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"liberty file not found"):
        tech.tech_files(tmp_path / "none.lib")
    # no OSU018 anywhere: the message says where it looked and how to get it
    if Path("/usr/share/qflow/tech/osu018/osu018_stdcells.lib").is_file():
        pytest.skip("Debian's qflow OSU018 is installed")
    monkeypatch.setenv("DCIM_TECH_DIR", str(tmp_path))
    monkeypatch.setattr(tech, "_CHECKOUT", tmp_path / "checkout")
    with pytest.raises(FileNotFoundError, match=rf"OSU018 liberty not found in {tmp_path}, "
                                                rf"{tmp_path}/checkout/.tech/osu018, .*make setup"):
        tech.tech_files("osu018")


def test_bitcell_area_model():
    # 100 F^2 * 1.3 at F = 0.18 um
    assert bitcell_area_um2(1) == pytest.approx(100 * 0.18 ** 2 * 1.3)
    assert bitcell_area_um2(1000, eight_t=False) == pytest.approx(1000 * 3.24)
    with pytest.raises(ValueError, match=r"bits must be >= 0, got -1"):
        bitcell_area_um2(-1)
    with pytest.raises(ValueError, match=r"feature_nm must be > 0, got 0"):
        bitcell_area_um2(1, feature_nm=0)


def test_scaling_equations():
    s = scale(1800.0, 9.0, 1.0, NODES["180nm"], NODES["12nm"])
    assert s["S"] == pytest.approx(15.0)
    assert s["U"] == pytest.approx(1.8 / 0.8)
    assert s["area_um2"] == pytest.approx(1800.0 / 225.0)
    assert s["delay_ns"] == pytest.approx(9.0 / 15.0)
    assert s["energy_pj"] == pytest.approx(1.0 / (15.0 * (1.8 / 0.8) ** 2))
    same = scale(5.0, 2.0, 3.0, NODES["22nm"], NODES["22nm"])
    assert (same["area_um2"], same["delay_ns"], same["energy_pj"]) == (5.0, 2.0, 3.0)


VCD = """$timescale 1ps $end
$scope module tb $end
$scope module dut $end
$var wire 1 ! clk $end
$var wire 4 " bus [3:0] $end
$scope module weights $end
$var wire 2 # q [1:0] $end
$upscope $end
$upscope $end
$upscope $end
$enddefinitions $end
#0
0!
b0 "
b11 #
#5
1!
#10
0!
b101 "
#15
1!
#20
0!
b100 "
b10 #
#40
"""


def test_toggle_rates_counts_bits_and_duty(tmp_path):
    path = tmp_path / "a.vcd"
    path.write_text(VCD)
    want = [("", "clk", 0), ("", "bus", 0), ("", "bus", 2), ("", "bus", 1),
            ("weights", "q", 0), ("weights", "q", 1), ("weights", "nope", 0)]
    r = act.toggle_rates(path, want, cycles=4)
    assert r[("", "clk", 0)].activity == pytest.approx(4 / 4)
    assert r[("", "bus", 0)].activity == pytest.approx(2 / 4)   # 0 -> 1 -> 0
    assert r[("", "bus", 2)].activity == pytest.approx(1 / 4)   # 0 -> 1, then stays
    assert r[("", "bus", 1)].activity == 0
    assert r[("weights", "q", 0)].activity == pytest.approx(1 / 4)
    assert r[("weights", "q", 1)].activity == 0
    # bus[2] is 1 from t=10 to t=40: 30 of 40 ps
    assert r[("", "bus", 2)].duty == pytest.approx(30 / 40)
    assert r[("weights", "q", 1)].duty == pytest.approx(1.0)
    assert ("weights", "nope", 0) not in r
    with pytest.raises(ValueError, match=r"cycles must be >= 1, got 0"):
        act.toggle_rates(path, want, cycles=0)


# x and z, a vector written short (b1 for 3 bits), two names on one code, a bit range not
# starting at 0, an escaped name, $dumpvars and $dumpoff, the first time stamp after 0
VCD_X = """$timescale 1ps $end
$scope module tb $end
$scope module dut $end
$var wire 1 ! \\a.b $end
$var wire 3 " v [4:2] $end
$var wire 3 " w [4:2] $end
$scope module sub $end
$var wire 2 # s [1:0] $end
$upscope $end
$upscope $end
$upscope $end
$enddefinitions $end
#100
$dumpvars
x!
bx "
b0 #
$end
#110
1!
b1 "
#120
0!
b101 "
b1x #
#140
1!
bz10 "
b11 #
#145
b011 "
#150
$dumpoff
x!
bx "
bx #
$end
#200
"""


def test_toggle_rates_by_hand_with_x_z_aliases_and_ranges(tmp_path):
    path = tmp_path / "x.vcd"
    path.write_text(VCD_X)
    want = [("", "a.b", 0), ("", "v", 2), ("", "v", 3), ("", "v", 4), ("", "w", 2),
            ("", "v", 5), ("sub", "s", 0), ("sub", "s", 1)]
    r = act.toggle_rates(path, want, cycles=5)
    # (toggles, time at 1) counted by hand over the 100 ps from #100 to #200; a change from or
    # to x or z is no toggle, and x is not 1
    by_hand = {
        ("", "a.b", 0): (2, 20),  # x 1 0 1 x: 1->0 at 120, 0->1 at 140; 1 in 110-120, 140-150
        ("", "v", 2): (2, 35),    # x 1 1 0 1 x: at 140 and 145; 1 in 110-140, 145-150
        ("", "v", 3): (1, 10),    # x 0 0 1 1 x: at 140; 1 in 140-150
        ("", "v", 4): (1, 20),    # x 0 1 z 0 x: at 120 (1->z and z->0 are none); 1 in 120-140
        ("", "w", 2): (2, 35),    # the same code as v
        ("sub", "s", 0): (0, 10),  # 0 x 1 x: none; 1 in 140-150
        ("sub", "s", 1): (1, 30),  # 0 1 1 x: at 120; 1 in 120-150
    }
    assert set(r) == set(by_hand)  # v[5] is outside [4:2]
    for key, (toggles, high_ps) in by_hand.items():
        assert r[key] == act.BitRate(toggles / 5, high_ps / 100), key


def test_activity_tcl_uses_pin_api_and_input_ports():
    text = act.activity_tcl({"weights/_1_/Q": act.BitRate(0.25, 0.5),
                             "weights/_2_/Q": act.BitRate(0.25, 0.5)},
                            {"rst": act.BitRate(0.0, 0.0)})
    lines = text.strip().splitlines()
    assert len(lines) == 2
    assert "sta::set_power_pin_activity $p 0.25 0.5" in text
    assert "{weights/_1_/Q} {weights/_2_/Q}" in text
    assert "set_power_activity -input_ports [get_ports {{rst}}] -activity 0.0 -duty 0.0" in text


def test_workloads_are_in_range_and_sparse_is_sparse():
    cfg = CoreConfig(rows=16, cols=4)
    r = act.workload(cfg, "random", 8)
    s = act.workload(cfg, "sparse", 8)
    assert r.macs == 8 * 16 * 4
    flat = [v for vec in s.vectors for v in vec]
    assert min(flat) >= 0 and max(flat) <= 127
    assert sum(v == 0 for v in flat) / len(flat) > 0.4
    wl, wh = cfg.weight_range
    assert all(wl <= w <= wh for row in r.weights for w in row)
    with pytest.raises(ValueError, match=r"workload must be one of random, sparse, got 'x'"):
        act.workload(cfg, "x", 1)
    with pytest.raises(ValueError, match=r"vectors must be >= 1, got 0"):
        act.workload(cfg, "random", 0)


def test_ports_from_the_yosys_json_netlist():
    nl = {"modules": {"other": {"ports": {"a": {"direction": "input", "bits": [2]}}},
                      "top": {"ports": {"clk": {"direction": "input", "bits": [2]},
                                        "d": {"direction": "input", "bits": [3, 4, 5, 6]},
                                        "q": {"direction": "output", "bits": ["0", 7]}}}}}
    assert netlist.ports(nl, "top") == {"clk": ("input", 1), "d": ("input", 4),
                                        "q": ("output", 2)}
    with pytest.raises(ValueError, match=r"module 'nope' not found"):
        netlist.ports(nl, "nope")


def test_read_ports_through_yosys(tmp_path):
    v = tmp_path / "two.v"
    v.write_text("module other(a);\n input a;\nendmodule\n"
                 "module top(clk, d, q, \\e.x );\n  input clk;\n  input [7:0] d;\n"
                 "  output reg [3:0] q;\n  input [2:1] \\e.x ;\n"
                 "  always @(posedge clk) q <= d[3:0];\nendmodule\n")
    assert netlist.read_ports(v, "top") == {"clk": ("input", 1), "d": ("input", 8),
                                            "q": ("output", 4), "e.x": ("input", 2)}
    with pytest.raises(ValueError, match=r"module 'nope' not found"):
        netlist.read_ports(v, "nope")
    (tmp_path / "bad.v").write_text("module top(; endmodule\n")
    with pytest.raises(FlowError, match=r"yosys cannot read .*bad\.v"):
        netlist.read_ports(tmp_path / "bad.v", "top")


STA_OUT = """DCIM_WNS 1.250000
Startpoint: compute/_12_ (rising edge-triggered flip-flop clocked by clk)
Endpoint: accum/_99_ (rising edge-triggered flip-flop clocked by clk)
   8.5000   data arrival time
DCIM_BLOCK weights 0
DCIM_BLOCK accum 207
max_delay/setup group clk

                                      Required    Actual
Endpoint                                 Delay     Delay     Slack
------------------------------------------------------------------
accum/_4734_/D (DFFPOSX1)               9.8384    5.9540    3.8844 (MET)

DCIM_BLOCKS_END
DCIM_POWER_BEGIN random
Total                1.0e-02 2.0e-03 4.0e-07 1.20004e-02 100.0%
DCIM_POWER_END random
"""


def test_parse_timing_and_power():
    t = sta.parse_timing(STA_OUT, 10.0)
    assert t["min_period_ns"] == pytest.approx(8.75)
    assert t["fmax_mhz"] == pytest.approx(1000 / 8.75)
    assert t["critical_path"] == {"start": "compute/_12_", "end": "accum/_99_",
                                  "arrival_ns": 8.5}
    assert t["by_endpoint_block"]["weights"] == {"register_inputs": 0}
    assert t["by_endpoint_block"]["accum"]["endpoint"] == "accum/_4734_/D"
    assert t["by_endpoint_block"]["accum"]["fmax_mhz"] == pytest.approx(1000 / (10 - 3.8844))
    p = sta.parse_power(STA_OUT)
    assert p["random"]["total_w"] == pytest.approx(1.20004e-2)
    assert p["random"]["leakage_w"] == pytest.approx(4e-7)
    with pytest.raises(FlowError, match=r"no constrained path"):
        sta.parse_timing("DCIM_WNS INF\n", 10.0)
    with pytest.raises(FlowError, match=r"no worst slack"):
        sta.parse_timing("", 10.0)


def _netlist():
    def cell(t):
        return {"type": t, "connections": {}}
    return {"modules": {
        "top": {"cells": {"weights": cell("top.weights"), "compute": cell("top.compute"),
                          "b1": cell("BUF")}, "netnames": {}},
        "top.weights": {"cells": {"f1": cell("FF"), "f2": cell("FF")}, "netnames": {}},
        "top.compute": {"cells": {"col": cell("top.col"), "x": cell("INV")}, "netnames": {}},
        "top.col": {"cells": {"a": cell("INV"), "b": cell("BUF")}, "netnames": {}},
    }}


def test_block_areas_sum_to_total_and_recurse():
    areas = {"FF": 96.0, "INV": 16.0, "BUF": 24.0}
    a = netlist.block_areas(_netlist(), "top", areas)
    assert a["blocks"]["weights"]["area_um2"] == 192.0
    assert a["blocks"]["compute"]["area_um2"] == 16.0 + 16.0 + 24.0
    assert a["blocks"]["glue"]["area_um2"] == 24.0
    assert a["total_um2"] == 192.0 + 56.0 + 24.0
    assert sum(b["area_um2"] for b in a["blocks"].values()) == a["total_um2"]
    assert a["flops"] == 0 and a["cells"] == 6
    with pytest.raises(KeyError, match=r"cell type FF has no area"):
        netlist.block_areas(_netlist(), "top", {"INV": 1.0, "BUF": 1.0})


def test_small_cols_for_the_estimate():
    # the default's 32 lanes on 256 columns: one lane per 8 columns, kept exactly by 8 and 16
    assert flow.small_cols(CoreConfig(rows=8, cols=256)) == (8, 16)
    assert flow.small_cols(CoreConfig(rows=8, cols=256, dpu_lanes=1)) == (4, 8)
    # 2 lanes on 16 columns: exact only at 8 and 16, which is not smaller: the floor of 1 lane
    assert flow.small_cols(CoreConfig(rows=32, cols=16)) == (4, 8)
    assert flow.small_cols(CoreConfig(rows=32, cols=32)) == (8, 16)
    assert flow.small_cols(CoreConfig(rows=8, cols=32, dpu_lanes=8)) == (4, 8)
    assert flow.small_cols(CoreConfig(rows=8, cols=6)) == (1, 2)
    assert flow.small_cols(CoreConfig(rows=8, cols=64, dpu_lanes=64)) == (4, 8)
    with pytest.raises(ValueError, match=r"cols \(3\) with dpu_lanes 1 cannot be composed"):
        flow.small_cols(CoreConfig(rows=8, cols=3))


def test_derive_figures_by_hand():
    cfg = CoreConfig(rows=4, cols=2, act_bits=8, serial_bits=1)
    r = {"area": {"total_um2": 2000.0, "blocks": {"weights": {"area_um2": 500.0}}},
         "timing": {"fmax_mhz": 100.0, "clock_ns": 20.0, "min_period_ns": 10.0},
         "power": {"random": {"total_w": 1e-3, "window_cycles": 100, "macs": 40,
                              "vectors": 4}}}
    d = ppa.derive(cfg, r)
    full = d["by_runtime_bits"]["8"]
    # 4*2 MACs per 8 cycles at 100 MHz, 2 ops per MAC
    assert full["tops_at_fmax"] == pytest.approx(2 * 1 * 100e6 / 1e12)
    assert full["tops_at_clock"] == pytest.approx(2 * 1 * 50e6 / 1e12)
    assert full["tops_per_mm2_total"] == pytest.approx(full["tops_at_fmax"] / 2000e-6)
    assert full["tops_per_mm2_logic"] == pytest.approx(full["tops_at_fmax"] / 1500e-6)
    assert d["by_runtime_bits"]["1"]["cycles_per_pass"] == 1
    # 1 mW for 100 cycles of 10 ns = 1 nJ over 40 MACs = 25 pJ/MAC
    assert d["energy"]["random"]["energy_per_mac_pj"] == pytest.approx(25.0)
    assert d["energy"]["random"]["tops_per_w"] == pytest.approx(2 / 25e-12 / 1e12)
    # 40 MACs in 100 cycles against a peak of 1 MAC per cycle (4x2 at 8 cycles per pass)
    assert d["energy"]["random"]["utilization"] == pytest.approx(0.4)
    # classical: delay / S with S = 180 / 12 = 15
    assert d["scaled"]["12nm classical"]["fmax_mhz"] == pytest.approx(1500.0)
    # Stillmaker & Baas, 14 nm HP at 0.8 V: delay 4.5096 / 79.006 of the 180 nm polynomial
    # (hand-computed from the paper's coefficients: -40.66*0.512 + 109.2*0.64 - 100.6*0.8
    # + 35.92 and 97.09*3.24 - 356.7*1.8 + 406.5)
    assert d["scaled"]["12nm"]["fmax_mhz"] == pytest.approx(100.0 * 79.006 / 4.50968, rel=1e-4)
    assert d["datapath_fmax_mhz"] is None
    # 64 bits of 8T cells: 100 F^2 x 1.3 each at F = 0.18 um
    assert math.isclose(d["bitcell_area_um2"], 64 * 100 * 0.18 ** 2 * 1.3)
    # exactly the peak: 100 MACs in 100 cycles at 1 MAC per cycle
    r["power"]["random"]["macs"] = 100
    assert ppa.derive(cfg, r)["energy"]["random"]["utilization"] == 1.0


@pytest.mark.parametrize("macs, window, message", [
    # more MACs than the array can do in the window (1000 % busy)
    (1000, 100, r"1000 MACs in 100 cycles is 1000% of the peak 1 MACs/cycle"),
    (101, 100, r"101 MACs in 100 cycles is 101% of the peak"),
    (0, 100, r"0 MACs in 100 cycles; the activity window or its MAC count is wrong"),
    (-40, 100, r"-40 MACs in 100 cycles; the activity"),
    (40, 0, r"40 MACs in 0 cycles; the activity"),
])
def test_derive_rejects_a_utilization_outside_0_to_100_percent(macs, window, message):
    """The utilization is computed from the measured window: outside (0, 1] it is an internal
    error (AssertionError, which ``dcim`` reports as such), not a user error or a figure."""
    cfg = CoreConfig(rows=4, cols=2, act_bits=8, serial_bits=1)
    r = {"area": {"total_um2": 2000.0, "blocks": {"weights": {"area_um2": 500.0}}},
         "timing": {"fmax_mhz": 100.0, "clock_ns": 20.0, "min_period_ns": 10.0},
         "power": {"random": {"total_w": 1e-3, "window_cycles": window, "macs": macs,
                              "vectors": 4}}}
    with pytest.raises(AssertionError, match=message):
        ppa.derive(cfg, r)


def test_parse_sweep():
    assert parse_sweep(["rows=32,64", "cols=16"]) == [{"rows": 32, "cols": 16},
                                                      {"rows": 64, "cols": 16}]
    from dcim.golden.errors import InputError
    with pytest.raises(InputError, match=r"--sweep item must be FIELD=V1,V2"):
        parse_sweep(["rows"])
    with pytest.raises(InputError, match=r"--sweep field must be one of .* got 'name'"):
        parse_sweep(["name=a"])
    with pytest.raises(InputError, match=r"--sweep values of rows must be integers, got 'x'"):
        parse_sweep(["rows=x"])
    assert parse_sweep(["tree_style=ripple,csa"]) == [{"tree_style": "ripple"},
                                                       {"tree_style": "csa"}]


def test_sweep_points_keep_the_other_options(tmp_path, monkeypatch):
    """Each sweep point is the command line's configuration with the swept fields replaced: an
    explicit --acc-bits stays, a derived one follows the point's rows."""
    from dcim.sim import cmd_synth
    from dcim.synth import report

    seen = []
    monkeypatch.setattr(cmd_synth, "_one", lambda cfg, *a: seen.append(cfg) or {})
    monkeypatch.setattr(report, "sweep_row", lambda r: {})
    monkeypatch.setattr(report, "sweep_markdown", lambda rows: "")
    monkeypatch.setattr(report, "plot_sweep", lambda rows, path: None)
    base = ["synth", "--cols", "4", "--serial-bits", "2", "-q", "-o", str(tmp_path)]
    assert main(base + ["--acc-bits", "30", "--sweep", "rows=8,64"]) == 0
    assert [(c.rows, c.cols, c.serial_bits, c.acc_width) for c in seen] == [(8, 4, 2, 30),
                                                                         (64, 4, 2, 30)]
    seen.clear()
    assert main(base + ["--sweep", "rows=8,64"]) == 0
    # the minimum accumulator: the largest sum, rows x (-128)^2 = 2^(14 + log2 rows), takes
    # 16 + log2(rows) signed bits
    assert [c.acc_width for c in seen] == [16 + 3, 16 + 6]
    assert [c.acc_bits for c in seen] == [None, None]  # automatic stays automatic


@pytest.mark.parametrize("argv, message", [
    (["--workloads", "bogus"], r"--workloads must list random, sparse or be none, got 'bogus'"),
    (["--vectors", "0"], r"--vectors must be in \[1, 10000\], got 0"),
    (["--flat-limit", "0"], r"--flat-limit must be >= 1, got 0"),
    (["--verilog", "/nonexistent.v"], r"Verilog file not found: /nonexistent.v"),
    (["--sweep", "rows=8", "--verilog", "x.v"], r"--sweep generates every size"),
    (["--method", "estimate", "--verilog", __file__],
     r"--method estimate generates smaller arrays and cannot use --verilog$"),
    (["--clock-ns", "0", "--verilog", __file__], r"--clock-ns must be in \[0.1, 1e6\] ns, got 0.0$"),
    (["--liberty", "/nonexistent.lib", "--verilog", __file__],
     r"liberty file not found: /nonexistent.lib"),
    # before any work: a flat run of 256x256 cannot fit (the later --rows wins over --rows 4)
    (["--rows", "256", "--cols", "256", "--method", "flat"],
     r"a flat synthesis of the rtl array at 256x256 needs about \d+ GiB \(estimated from the "
     r"size\); this machine has \d+ GiB; use --method estimate$"),
    (["--rows", "4096", "--cols", "256"],
     r"a flat synthesis of the rtl array at 4096x16 needs about \d+ GiB .*; the estimate "
     r"synthesizes 4096x16 flat; use fewer rows$"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, argv, message):
    import re

    rc = main(["synth", "--rows", "4", "--cols", "2", "-q", "-o", str(tmp_path / "o")] + argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.count("\n") == 0 and err.startswith("dcim: error: ")
    assert re.search(message, err)


def test_estimate_composes_blocks_linearly_in_cols(tmp_path, monkeypatch):
    """With block areas and energy per cycle exactly linear in cols, the estimate of a bigger
    array is exact; the window is the larger part's, shifted by the schedule."""
    seen = []

    def fake_synthesize(cfg, verilog, outdir, **kw):
        c = cfg.cols
        seen.append((cfg.rows, c, cfg.dpu_lanes))
        blocks = {"weights": {"area_um2": 100.0 * c, "cells": 10 * c},
                  "ctrl": {"area_um2": 500.0 + 3.0 * c, "cells": 50 + c},
                  "glue": {"area_um2": 24.0, "cells": 1}}
        period = 10.0 - 0.01 * c
        window = 40 + 2 * c
        energy_cycle = 1e-3 * (10 + c) * 10.0  # W x ns, linear in c
        r = {"liberty": "x.lib", "area_corrections": [], "generic": {"cells": 5 * c},
             "area": {"total_um2": sum(b["area_um2"] for b in blocks.values()),
                      "cells": sum(b["cells"] for b in blocks.values()), "flops": 8 * c,
                      "blocks": blocks},
             "timing": {"fmax_mhz": 1000 / period, "min_period_ns": period, "clock_ns": 10.0,
                        "worst_slack_ns": 10.0 - period, "critical_path": {},
                        "by_endpoint_block": {}},
             "power": {"random": {"total_w": energy_cycle / period, "window_cycles": window,
                                  "vectors": 4, "macs": 4 * cfg.rows * c}},
             "wall_time": {"total_s": 1.0}}
        return r

    monkeypatch.setattr(flow, "synthesize", fake_synthesize)
    cfg = CoreConfig(rows=8, cols=64, dpu_lanes=8)
    r = flow.estimate(cfg, lambda c, d: d / "x.v", tmp_path, jobs=1)
    assert seen == [(8, 8, 1), (8, 16, 2)]  # one lane per 8 columns, as on the array
    # the two flat runs at once compose to the same figures
    r2 = flow.estimate(cfg, lambda c, d: d / "x.v", tmp_path, jobs=2)
    assert sorted(seen[2:]) == [(8, 8, 1), (8, 16, 2)]
    assert {k: v for k, v in r2.items() if k != "wall_time"} == \
        {k: v for k, v in r.items() if k != "wall_time"}
    assert r2["wall_time"]["jobs"] == 2 and r2["wall_time"]["parts_s"] == [1.0, 1.0]
    for bad in (0, 3, True, 2.0):
        with pytest.raises(ValueError, match=rf"jobs must be 1 or 2, got {bad!r}"):
            flow.estimate(cfg, lambda c, d: d / "x.v", tmp_path, jobs=bad)
    assert r["area"]["blocks"]["weights"]["area_um2"] == pytest.approx(6400.0)
    assert r["area"]["blocks"]["ctrl"]["area_um2"] == pytest.approx(500.0 + 3.0 * 64)
    assert r["area"]["total_um2"] == pytest.approx(6400.0 + 692.0 + 24.0)
    assert r["area"]["cells"] == 640 + 114 + 1
    # Fmax: the slower of the two runs (here the 8-column one)
    assert r["timing"]["min_period_ns"] == pytest.approx(10.0 - 0.08)
    p = r["power"]["random"]
    # the window is not linear in cols: the 16-column part's (40 + 2 * 16), shifted by the
    # schedule: the array's last result starts 19 cycles after its vector (8 + 3, one group of
    # 8 lanes, the DPU's 7) and ends 7 beats later; the part's starts after 22 (4 groups of 2
    # lanes for its first beat of 8 values) and ends 4 cycles later (its other 4 groups): 0
    assert p["window_cycles"] == 40 + 2 * 16
    assert p["total_w"] * p["window_cycles"] * r["timing"]["min_period_ns"] == \
        pytest.approx(1e-3 * (10 + 64) * 10.0 * (40 + 2 * 16))
    assert p["macs"] == 4 * 8 * 64
    assert r["method"].startswith("estimate")


def test_synthesize_checks_the_activity_simulator_before_any_work(tmp_path):
    with pytest.raises(ValueError, match=r"activity_sim must be one of auto, cycle, icarus, "
                                         r"got 'vcs'"):
        flow.synthesize(CoreConfig(rows=4, cols=2), tmp_path / "none.v", tmp_path / "out",
                        activity_sim="vcs")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match=r"activity simulator must be one of"):
        measure_activity(CoreConfig(rows=4, cols=2), tmp_path, {}, "x", tmp_path / "x.lib",
                              ("random",), 1, lambda m: None, "vcs")


def test_abc_scripts_are_the_defaults_without_the_sweep():
    for kind, script in flow.ABC_SCRIPTS.items():
        assert "fraig" not in script
        full = script.replace("strash; ", "strash; " + flow.ABC_SWEEP, 1)
        assert full.startswith("strash; &get -n; &fraig -x; &put; scorr; dc2; dretime; ")
    assert flow.ABC_SCRIPTS["liberty"].endswith("buffer; upsize {D}; dnsize {D}; stime -p")


def test_instance_power_rows_and_blocks():
    from dcim.synth.netlist import block_of
    from dcim.synth.sta import parse_instance_power

    text = """        Internal       Switching         Leakage           Total
           Power           Power           Power           Power
----------------------------------------------------------------
 2.4e-05 2.7e-05 1.6e-10 5.1e-05 ctrl/seq/_3881_
 1.0e-06 0.0e+00 1.0e-10 1.0e-06 array/col3/cells/_12_
 2.0e-06 1.0e-06 1.0e-10 3.0e-06 array/col3/_7_
 4.0e-06 0.0e+00 0.0e+00 4.0e-06 _5_
"""
    cells = parse_instance_power(text)
    assert cells == {"ctrl/seq/_3881_": 5.1e-05, "array/col3/cells/_12_": 1.0e-06,
                     "array/col3/_7_": 3.0e-06, "_5_": 4.0e-06}
    assert [block_of(n) for n in cells] == ["ctrl", "weights", "compute", "glue"]
    assert block_of("accum/_1_") == "accum" and block_of("dpu/lane0/_2_") == "dpu"



def test_estimate_window_shift_matches_measured_parts():
    """The estimate's window model explains the windows the activity simulation measured for
    the two parts of the 256x256 default (``dcim synth --rows 256 --cols 256``: 151 cycles at
    256x4, 155 at 256x8, one DPU lane, 16 back-to-back vectors), and by hand the whole array:
    its 32 lanes and 256-bit result stream end the last result 4 cycles after the 256x4 part's
    (latency 19 against 22, drain 7 against 0)."""
    p4, p8 = (CoreConfig(rows=256, cols=c, dpu_lanes=1) for c in (4, 8))
    assert flow.window_shift(p8, p4, 16, 0) == 155 - 151
    assert flow.window_shift(CoreConfig(rows=256, cols=256), p4, 16, 0) == 4
    # one lane on 256 columns: a result every 256 cycles instead of 8, and its drain
    one = CoreConfig(rows=256, cols=256, dpu_lanes=1)
    assert flow.window_shift(one, p4, 16, 0) == 15 * (256 - 8) + (11 + 8 + 7 + 248) - 22
    # gaps longer than the DPU's interval set the pace on both
    assert flow.window_shift(one, p4, 4, 300) == (11 + 8 + 7 + 248) - 22
