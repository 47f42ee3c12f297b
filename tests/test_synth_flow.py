"""Synthesis tier: the Yosys/OpenSTA/Icarus flow on small configurations of the real core.

Each flat run of a small core takes about a minute (Yosys dominates), so the runs are shared
through module-scoped fixtures.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess

import pytest
from synth_tech import needs_osu018, osu018

from dcim.golden.config import CoreConfig
from dcim.sim.build import verilog_text
from dcim.sim.cli import main
from dcim.synth import activity as act
from dcim.synth import flow, tools
from dcim.synth.lef import liberty_areas
from dcim.synth.measure import measure_activity
from dcim.synth.netlist import BLOCKS

pytestmark = [
    pytest.mark.synth,
    pytest.mark.skipif(shutil.which("sta") is None or shutil.which("iverilog") is None,
                       reason="needs OpenSTA (sta) and Icarus (iverilog)"),
    needs_osu018,
]

SMALL = dict(dpu_residual=False, act_bits=4, weight_bits=4)


def _run(tmp_path_factory, name, cfg, **kw):
    d = tmp_path_factory.mktemp(name)
    v = d / f"{cfg.name}.v"
    v.write_text(verilog_text(cfg, array_model="rtl"))
    return flow.synthesize(cfg, v, d, **kw), d


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """8x4 with power on both workloads."""
    return _run(tmp_path_factory, "base", CoreConfig(rows=8, cols=4, **SMALL),
                vectors=4, clock_ns=5.0)


@pytest.fixture(scope="module")
def bigger(tmp_path_factory):
    """16x4 and 8x8, timing and area only."""
    a, _ = _run(tmp_path_factory, "rows", CoreConfig(rows=16, cols=4, **SMALL), workloads=(),
                clock_ns=5.0)
    b, _ = _run(tmp_path_factory, "cols", CoreConfig(rows=8, cols=8, **SMALL), workloads=(),
                clock_ns=5.0)
    return a, b


def test_figures_present_and_positive(base):
    r, d = base
    dv = r["derived"]
    assert dv["area_um2_total"] > 0 and dv["fmax_mhz"] > 0
    full = dv["by_runtime_bits"]["4"]
    assert full["tops_at_fmax"] > 0 and full["tops_per_mm2_total"] > 0
    assert full["tops_per_mm2_logic"] > full["tops_per_mm2_total"]
    for w in ("random", "sparse"):
        p = r["power"][w]
        assert p["results_seen"] == p["vectors"] == 4, "the workload must reach the outputs"
        assert p["total_w"] > 0 and p["switching_w"] > 0
        # the cycle-based simulator sees every net: every cell pin gets an activity
        assert p["simulator"] == "cycle"
        assert p["pins_annotated"] == p["pins_total"]
        assert dv["energy"][w]["energy_per_mac_pj"] > 0
    # a sparse (ReLU-like) workload toggles less than uniform random INT8
    assert dv["energy"]["sparse"]["energy_per_mac_pj"] < dv["energy"]["random"]["energy_per_mac_pj"]
    assert r["generic"]["cells"] > 0 and r["generic"]["transistors_cmos"]
    assert set(dv["scaled"]) == {"22nm", "12nm", "22nm classical", "12nm classical"}
    on_disk = json.loads((d / "synth.json").read_text())
    assert on_disk["derived"]["fmax_mhz"] == dv["fmax_mhz"]


def test_blocks_add_up_to_total(base):
    r, _ = base
    blocks = r["area"]["blocks"]
    assert set(BLOCKS) <= set(blocks)
    for b in BLOCKS:
        assert blocks[b]["area_um2"] > 0, b
    assert sum(b["area_um2"] for b in blocks.values()) == pytest.approx(r["area"]["total_um2"])
    assert sum(b["cells"] for b in blocks.values()) == r["area"]["cells"]
    # Yosys' own `stat -liberty` on the corrected liberty agrees with the LEF-area sum
    assert r["yosys_liberty_area_um2"] == pytest.approx(r["area"]["total_um2"])


def test_block_power_adds_up_to_opensta_total(base):
    """Every leaf cell's power lands in one block, and the blocks sum to OpenSTA's own total;
    every block but glue draws power. OpenSTA's instance rows and its total differ by up to
    ~2e-5 relative (measured: 1.6e-5 at 8x4, 1.0e-5 at 64x32), hence rel=1e-4."""
    r, _ = base
    for w in ("random", "sparse"):
        p = r["power"][w]
        assert set(p["blocks_w"]) == {*BLOCKS, "glue"}
        assert all(p["blocks_w"][b] > 0 for b in BLOCKS), p["blocks_w"]
        assert sum(p["blocks_w"].values()) == pytest.approx(p["total_w"], rel=1e-4)
        e = r["derived"]["energy"][w]
        assert sum(e["energy_per_mac_pj_by_block"].values()) == pytest.approx(
            e["energy_per_mac_pj"], rel=1e-4)


def test_clock_block_gating_and_utilization_curve(base):
    """The clock net is a block of its own; the modelled clock gate takes most of the weight
    store's energy; the curve's points reach their utilization and lose efficiency as it falls;
    the array's adder trees do not toggle while it is idle (their energy per MAC stays)."""
    r, _ = base
    dv = r["derived"]
    m = r["clock"]["gating"]
    # OpenSTA's energy of a weight flip-flop that is not written: the liberty's DFFPOSX1 CLK
    # pin (0.117 pJ at 0.06 ns) and its Q pin related to CLK (0.104-0.106 pJ at 0.005-0.01 pF)
    assert 0.215 < m["flop_clock_pj"] < 0.225, m
    lo, hi = r["clock"]["flop_clock_pj_range"]
    assert hi - lo < 0.01 * hi, "no weight is written in the window"
    for w in ("random", "sparse"):
        e = dv["energy"][w]
        ungated, gated = e["energy_per_mac_pj_by_block"], e["energy_per_mac_pj_by_block_gated"]
        assert ungated["clock"] > 0 and gated["clock"] < ungated["clock"]
        assert gated["weights"] < ungated["weights"] / 3
        assert {b: gated[b] for b in ("compute", "accum", "dpu", "ctrl")} == \
            {b: ungated[b] for b in ("compute", "accum", "dpu", "ctrl")}
        # the blocks sum to OpenSTA's total within its instance rows' rounding (above)
        assert e["energy_per_mac_pj"] == pytest.approx(
            e["energy_per_mac_pj_opensta"] + ungated["clock"], rel=1e-4)
    curve = dv["curve"]
    assert curve[0]["target_percent"] == 100 and curve[0]["gap"] == 0
    busy = [p["utilization"] for p in curve]
    assert busy == sorted(busy, reverse=True) and len(set(busy)) == len(busy)
    for p in curve:
        assert r["power"][p["workload"]]["results_seen"] == \
            r["power"][p["workload"]]["results_expected"]
        if p["target_percent"] < 100:
            # 4 vectors: the window's fill and drain weigh, the measured figure is lower
            assert 0.5 * p["target_percent"] / 100 < p["utilization"] \
                <= p["target_percent"] / 100 + 0.03, p
            assert p["relative"] < 1 and p["relative_gated"] < 1
            assert p["energy_per_mac_pj_by_block"]["compute"] == pytest.approx(
                curve[0]["energy_per_mac_pj_by_block"]["compute"], rel=0.05)


def test_lef_correction_applied(base):
    r, d = base
    corrected = {c["cell"] for c in r["area_corrections"]}
    assert {"LATCH", "OAI21X1", "NAND3X1"} <= corrected
    lib, _ = osu018()
    raw = liberty_areas(lib.read_text())
    counts = r["area"]["cells_by_type"]
    raw_total = sum(raw[c] * n for c, n in counts.items())
    delta = sum(counts.get(c["cell"], 0) * (c["lef_um2"] - c["liberty_um2"])
                for c in r["area_corrections"])
    assert r["area"]["total_um2"] == pytest.approx(raw_total + delta)
    assert liberty_areas((d / "cells.lib").read_text())["OAI21X1"] == 32.0


def test_area_grows_with_rows_and_cols(base, bigger):
    r, _ = base
    more_rows, more_cols = bigger
    a = r["area"]["total_um2"]
    assert more_rows["area"]["total_um2"] > a
    assert more_cols["area"]["total_um2"] > a
    assert more_rows["area"]["blocks"]["weights"]["area_um2"] > \
        1.8 * r["area"]["blocks"]["weights"]["area_um2"]
    assert more_cols["area"]["blocks"]["compute"]["area_um2"] > \
        1.8 * r["area"]["blocks"]["compute"]["area_um2"]


def _datapath_fmax(r):
    return r["derived"]["datapath_fmax_mhz"]


def test_fmax_falls_with_tree_depth_and_recovers_with_tree_regs(base, tmp_path_factory):
    """A 32-row adder tree is slower than the 8-row one of ``base``, and two tree register
    stages win most of it back. All at the 5 ns target, where ABC does not restructure the
    tree for speed and its depth stays visible (measured: 8x4 188 MHz, 32x2 152 MHz, 32x2 with
    tree_regs=2 188 MHz). The earlier form, at 1 ns with 8, 128 and 128 rows, took 1,128 s of
    a loaded run of the suite."""
    shallow, _ = base
    cfg = dict(cols=2, **SMALL)
    deep, _ = _run(tmp_path_factory, "t32", CoreConfig(rows=32, **cfg), workloads=(),
                   clock_ns=5.0)
    piped, _ = _run(tmp_path_factory, "t32p", CoreConfig(rows=32, tree_regs=2, **cfg),
                    workloads=(), clock_ns=5.0)
    f8, f32, f32p = map(_datapath_fmax, (shallow, deep, piped))
    assert f32 < 0.9 * f8, (f8, f32)
    assert f32p > 1.15 * f32, (f32, f32p)


def test_cli_writes_json_and_markdown(tmp_path, capsys):
    cfg = CoreConfig(rows=4, cols=2, **SMALL)
    v = tmp_path / "core.v"
    v.write_text(verilog_text(cfg, array_model="rtl"))
    args = ["synth", "--rows", "4", "--cols", "2", "--dpu-residual", "false", "--act-bits", "4",
            "--weight-bits", "4", "--verilog", str(v), "--vectors", "2", "-q",
            "-o", str(tmp_path / "out")]
    assert main(args) == 0
    out = capsys.readouterr().out
    for key in ("area:", "Fmax:", "TOPS (peak", "TOPS/mm2:", "energy/MAC (random",
                "energy/MAC (sparse", "blocks: weights"):
        assert key in out
    r = json.loads((tmp_path / "out" / "synth.json").read_text())
    assert r["area"]["total_um2"] > 0
    md = (tmp_path / "out" / "synth.md").read_text()
    assert "| weights |" in md and "Axelera" in md


def _rates(tcl):
    """``{pin or port: (activity, duty)}`` from an ``activity_<w>.tcl``."""
    out = {}
    for line in tcl.splitlines():
        m = re.match(r"foreach p \[get_pins \{(.*)\}\] \{ sta::set_power_pin_activity \$p (\S+) "
                     r"(\S+) \}", line) or re.match(
            r"set_power_activity -input_ports \[get_ports \{(.*)\}\] -activity (\S+) "
            r"-duty (\S+)", line)
        assert m, line
        for name in re.findall(r"\{([^}]*)\}", m.group(1)):
            out[name] = (float(m.group(2)), float(m.group(3)))
    return out


def test_cycle_based_activity_equals_icarus(base, tmp_path):
    """The two activity simulators run the same testbench on the same netlist: every pin and
    port both annotate gets the same toggle rate and duty, except the clock, whose last
    falling edge (at the end of the window) the VCD loses to $dumpoff."""
    r, d = base
    cfg = CoreConfig(rows=8, cols=4, **SMALL)
    for f in ("netlist.v", "netlist.json"):
        shutil.copy(d / f, tmp_path / f)
    netlist = json.loads((d / "netlist.json").read_text())
    lib, _ = osu018()
    ica = measure_activity(cfg, tmp_path, netlist, cfg.name, lib, ("random", "sparse"), 4,
                                lambda m: None, "icarus")
    for w in ("random", "sparse"):
        assert ica[w]["simulator"] == "icarus"
        for k in ("window_cycles", "results_seen", "macs"):
            assert ica[w][k] == r["power"][w][k], (w, k)
        a = _rates((d / f"activity_{w}.tcl").read_text())
        b = _rates((tmp_path / f"activity_{w}.tcl").read_text())
        assert set(b) <= set(a) and len(b) > 0.85 * len(a)
        cycles = r["power"][w]["window_cycles"]
        clock = {k for k, v in a.items() if v == (2.0, 0.5)}
        assert len(clock) > 100
        for k in clock & set(b):
            assert b[k] == (round((2 * cycles - 1) / cycles, 4), 0.5), k
        assert {k: a[k] for k in set(b) - clock} == {k: b[k] for k in set(b) - clock}


def test_idle_gap_and_k_tiling_same_in_both_simulators(base, tmp_path):
    """A curve workload (idle cycles between vectors, a result every second vector) runs the
    same in the cycle-based simulator and in Icarus: the same window, the results it expects,
    the same toggle rates on every pin both annotate (the clock aside, as above)."""
    _, d = base
    cfg = CoreConfig(rows=8, cols=4, **SMALL)
    netlist = json.loads((d / "netlist.json").read_text())
    lib, _ = osu018()
    wl = dataclasses.replace(act.workload(cfg, "random", 4, emit_every=2), name="k2", gap=5)
    res, rates = {}, {}
    for sim in ("cycle", "icarus"):
        sub = tmp_path / sim
        sub.mkdir()
        for f in ("netlist.v", "netlist.json"):
            shutil.copy(d / f, sub / f)
        res[sim] = measure_activity(cfg, sub, netlist, cfg.name, lib, (), 4, lambda m: None,
                                    sim, extra=[wl])["k2"]
        rates[sim] = _rates((sub / "activity_k2.tcl").read_text())
    a, b = res["cycle"], res["icarus"]
    assert a["results_seen"] == b["results_seen"] == a["results_expected"] == 2
    assert a["window_cycles"] == b["window_cycles"] >= 4 * (cfg.x_beats + 5)
    clock = {k for k, v in rates["cycle"].items() if v == (2.0, 0.5)}
    both = set(rates["icarus"]) - clock
    assert len(both) > 100
    assert {k: rates["cycle"][k] for k in both} == {k: rates["icarus"][k] for k in both}


def test_abc_sweep_runs_yosys_default_scripts(tmp_path):
    """``abc_sweep=True`` puts back exactly what the flow leaves out of Yosys' default ABC
    scripts: the same netlist as plain ``synth`` and ``abc -D -constr -liberty``."""
    (tmp_path / "t.v").write_text("module t(input clk, input [7:0] a, b, c, input s, "
                                  "output reg [9:0] y);\n  always @(posedge clk) "
                                  "y <= s ? a + b + c : a * b;\nendmodule\n")
    lib, _ = osu018()
    shutil.copy(lib, tmp_path / "cells.lib")
    (tmp_path / "abc.constr").write_text("set_driving_cell BUFX2\nset_load 0.01\n")
    for kind, script in flow.ABC_SCRIPTS.items():
        full = script.replace("strash; ", "strash; " + flow.ABC_SWEEP, 1)
        (tmp_path / f"{kind}.abc").write_text(
            "\n".join(c.strip() for c in full.replace("{D}", "-D 3000").split(";")) + "\n")
    tail = "; rename -enumerate; write_verilog -noattr {}"
    scripts = {
        "default.v": "read_verilog t.v; synth -top t; dfflibmap -liberty cells.lib; "
                     "abc -D 3000 -constr abc.constr -liberty cells.lib",
        "flow.v": "read_verilog t.v; synth -top t -noabc; abc -script generic.abc; opt -fast; "
                  "dfflibmap -liberty cells.lib; abc -script liberty.abc -D 3000 "
                  "-constr abc.constr -liberty cells.lib",
    }
    for out, script in scripts.items():
        subprocess.run(tools.yosys_cmd() + ["-q", "-p", script + tail.format(out)],
                       cwd=tmp_path, check=True)
    assert (tmp_path / "default.v").read_text() == (tmp_path / "flow.v").read_text()
