"""The regression's simulator plumbing without running a simulation: the child's cocotb build
command (public ports only on Verilator), the supervisor's log tail, JUnit (the child's
process group: tests/test_procgroup.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from dcim.sim import child, supervise
from dcim.sim.junit import parse_results, write_junit
from dcim.sim.runner import RunResult
from dcim.sim.simulators import sim_env

_DESIGN = ("module top(clk, d, q);\n  input clk;\n  input [1:0] d;\n  output q;\n"
           "  wire inner;\n  assign inner = d[0] ^ d[1];\n  reg r;\n"
           "  always @(posedge clk) r <= inner;\n  assign q = r;\nendmodule\n")


def _fake_verilator(bin_dir: Path, argv_file: Path) -> None:
    """A ``verilator`` that records its arguments and writes a ``Vtop.mk`` that does nothing,
    so that cocotb's build (verilator, then make) completes without compiling."""
    bin_dir.mkdir()
    exe = bin_dir / "verilator"
    exe.write_text("#!/bin/sh\n"
                   f"for a in \"$@\"; do printf '%s\\n' \"$a\"; done > {argv_file}\n"
                   "while [ \"$1\" != -Mdir ]; do shift; done\n"
                   "printf 'all:\\n\\t@true\\n' > \"$2/Vtop.mk\"\n")
    exe.chmod(0o755)


def test_verilator_build_makes_only_the_top_ports_visible(tmp_path, monkeypatch):
    """Through cocotb's public ``build()``: its own ``--public-flat-rw`` comes before the
    child's ``--no-public-flat-rw`` (Verilator takes the last), the control file is a source;
    then the real Verilator, given that command, registers only the ports for VPI."""
    v = tmp_path / "top.v"
    v.write_text(_DESIGN)
    argv_file = tmp_path / "argv.txt"
    _fake_verilator(tmp_path / "bin", argv_file)
    real = shutil.which("verilator", path=sim_env()["PATH"])
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    build_dir = tmp_path / "build"
    assert child.main(["build", "--sim", "verilator", "--verilog", str(v), "--top", "top",
                       "--build-dir", str(build_dir), "--log", str(tmp_path / "b.log")]) == 0
    argv = argv_file.read_text().splitlines()
    assert argv.index("--public-flat-rw") < argv.index("--no-public-flat-rw")
    assert argv[-1] == str(build_dir / "dcim_public.vlt") and str(v) in argv
    if real is None:
        pytest.skip("no verilator for the generated-code check")
    subprocess.run([real, *argv], check=True, capture_output=True, env=sim_env(), timeout=120)
    syms = (build_dir / "Vtop__Syms__Slow.cpp").read_text()
    names = set(re.findall(r'varInsert\("([^"]+)"', syms))
    assert names == {"clk", "d", "q"}


def test_tail_of_a_missing_file_is_empty(tmp_path):
    (tmp_path / "log").write_text("a\nb\nc\n")
    assert supervise.tail(tmp_path / "log", 2) == "b\nc"
    assert supervise.tail(tmp_path / "nope") == ""


_RESULTS = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="results"><testsuite name="all" package="all">
<testcase name="test_csr" classname="dcim.verif.test_core" time="1.5" sim_time_ns="2000.0"/>
<testcase name="test_random" classname="dcim.verif.test_core" time="0.25" sim_time_ns="9">
<failure message="AssertionError: 1 scoreboard error(s)">trace</failure></testcase>
<testcase name="test_crash" classname="dcim.verif.test_core" time="0"><error>boom </error>
</testcase>
<testcase name="test_throughput" classname="dcim.verif.test_core" time="0"><skipped/></testcase>
</testsuite></testsuites>
"""


def test_results_xml_is_read_without_the_skipped_cases(tmp_path):
    path = tmp_path / "results.xml"
    path.write_text(_RESULTS)
    cases, failures = parse_results(path)
    assert failures == ["test_random", "test_crash"]
    assert cases == [
        {"name": "test_csr", "time": 1.5, "sim_time_ns": 2000.0, "failed": False, "message": ""},
        {"name": "test_random", "time": 0.25, "sim_time_ns": 9.0, "failed": True,
         "message": "AssertionError: 1 scoreboard error(s)"},
        {"name": "test_crash", "time": 0.0, "sim_time_ns": 0.0, "failed": True,
         "message": "boom"}]


def test_regression_report_reads_back(tmp_path):
    """What ``dcim regress`` writes is JUnit the reader (and CI tools) understand: one case per
    test, a ``simulator`` error for a run that died, a ``regression`` failure per error."""
    ok = {"name": "test_csr", "time": 1.0, "sim_time_ns": 0.0, "failed": False, "message": ""}
    bad = {"name": "test_random", "time": 2.0, "sim_time_ns": 0.0, "failed": True,
           "message": "mismatch"}
    run = RunResult(ok=False, tests=2, failed=1, failures=["test_random"], stats={},
                    seconds=3.0, log=tmp_path / "sim.log", results_xml=tmp_path / "r.xml",
                    error="timed out after 10 s", cases=[ok, bad])
    summary = SimpleNamespace(sim="icarus", view="rtl", runs=[(7, run)],
                              errors=["outputs differ between rtl and fast"])
    path = tmp_path / "out" / "junit.xml"
    write_junit(path, "cfg_quick", [summary])
    cases, failures = parse_results(path)
    assert [(c["name"], c["failed"], c["message"]) for c in cases] == [
        ("test_csr", False, ""), ("test_random", True, "mismatch"),
        ("simulator", True, "timed out after 10 s"),
        ("regression", True, "outputs differ between rtl and fast")]
    assert failures == ["test_random", "simulator", "regression"]
    assert 'name="cfg_quick.icarus.rtl.seed7"' in path.read_text()
