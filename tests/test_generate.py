"""`dcim generate`: deterministic, lint-clean Verilog with the documented ports; files; errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from dcim.golden.config import CoreConfig
from dcim.sim import cli
from dcim.sim.build import WAIVERS, generate, lint
from dcim.sim.simulators import sim_env

_VERILATOR = shutil.which("verilator", path=sim_env()["PATH"])
needs_verilator = pytest.mark.skipif(_VERILATOR is None, reason="verilator not installed")

LINT_FAST = [dict(rows=8, cols=4, tree_regs=1)]
LINT_SLOW = [dict(rows=1, cols=2, act_bits=1, weight_bits=1, dpu_residual=False),
             dict(rows=64, cols=32),
             dict(rows=5, cols=3, act_bits=4, serial_bits=4, act_signed=False,
                  weight_signed=False, x_stream_bits=16, y_stream_bits=32),
             dict(rows=12, cols=6, serial_bits=2, tree_regs=4, dpu_lanes=3, rounding="double"),
             dict(rows=16, cols=16, serial_bits=8, dpu_lanes=16, rounding="rne",
                  w_stream_bits=256, y_stream_bits=512, psum_bits=24)]


def _ids(kw):
    return "-".join(f"{k}{v}" for k, v in kw.items())


def test_generate_is_byte_identical_across_directories(tmp_path, monkeypatch):
    cfg = CoreConfig(rows=8, cols=4, name="core_a")
    monkeypatch.chdir(tmp_path)
    first = generate(cfg, "a")
    (tmp_path / "deeper" / "dir").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "deeper" / "dir")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1")
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    second = generate(cfg, tmp_path / "b")
    assert set(first) == set(second) == {"verilog", "config", "waivers", "regs_md", "regs_json",
                                         "regs_h"}
    for key in first:
        a = (tmp_path / first[key]).read_bytes()
        b = second[key].read_bytes()
        assert a == b, key
        assert str(tmp_path).encode() not in a and b"/work/" not in a
    text = second["verilog"].read_text()
    assert "src =" not in text
    assert re.search(r"^module core_a\(", text, re.M)
    assert re.search(r"^module core_a_column\(", text, re.M)
    for inst in (r"\\core_a.array  array", r"\\core_a.accum  accum",
                 r"\\core_a.dpu  dpu", r"\\core_a.ctrl  ctrl"):
        assert re.search(rf"^  {inst} \($", text, re.M), inst
    # the column is converted once and instantiated by the array once per column
    assert len(re.findall(r"^module core_a_column\(", text, re.M)) == 1
    assert len(re.findall(r"^  core_a_column col\d+ \($", text, re.M)) == cfg.cols
    assert "ywire" not in text
    for port in ("s_axis_w__tdata", "s_axis_x__tuser", "s_axis_r__tready", "m_axis_y__tlast",
                 "s_axil__awaddr", "s_axil__rresp", "clk", "rst"):
        assert re.search(rf"^\s*(input|output) (\[\d+:0\] )?{port};", text, re.M), port
    info = json.loads(second["config"].read_text())
    assert CoreConfig.from_dict({k: v for k, v in info.items()
                                 if k not in ("figures", "files", "sha256", "tools", "array_model")}) == cfg
    assert info["array_model"] == "rtl"
    assert info["figures"]["pass_latency"]["8"] == 8 + 3  # compute cycles + 3 (no tree regs)
    assert info["figures"]["cycles_per_pass"]["3"] == 3


@needs_verilator
@pytest.mark.parametrize("kw", LINT_FAST, ids=_ids)
def test_lint_clean(tmp_path, kw):
    cfg = CoreConfig(**kw)
    paths = generate(cfg, tmp_path)
    result = lint(paths["verilog"], cfg.name)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "%Warning" not in result.stderr and "%Error" not in result.stderr


@needs_verilator
@pytest.mark.slow
@pytest.mark.parametrize("kw", LINT_SLOW, ids=_ids)
def test_lint_clean_grid(tmp_path, kw):
    test_lint_clean(tmp_path, kw)


def test_no_combinational_always_blocks(tmp_path):
    """Combinational logic is continuous assignments: no `always @*` block, which Icarus
    `-g2012` would not evaluate at time 0 (tests/test_outputs_known.py runs it)."""
    text = generate(CoreConfig(rows=4, cols=3, tree_regs=1, dpu_lanes=3), tmp_path)[
        "verilog"].read_text()
    assert "always @*" not in text and "always @(*)" not in text
    assert re.search(r"^\s*always @\(posedge clk\)", text, re.M)


def test_stream_counts_and_tool_flags_next_to_the_verilog(tmp_path):
    """<name>.json has every stream count and the tool command lines; the waivers are next to
    the Verilog; the written command lines work from the output directory."""
    # 20 rows, 12 columns; 3 weights, 5 activations per beat; 64-bit results: 8 int8 lanes,
    # 2 int32 lanes.
    cfg = CoreConfig(rows=20, cols=12, w_stream_bits=24, x_stream_bits=40, y_stream_bits=64,
                     name="bundle")
    paths = generate(cfg, tmp_path)
    info = json.loads(paths["config"].read_text())
    assert info["figures"]["streams"] == {
        "w_beats": 4, "x_beats": 4, "r_beats": 3, "y_beats_int8": 2, "y_beats_int32": 6,
        "w_lanes": 3, "x_lanes": 5, "y_lanes_int8": 8, "y_lanes_int32": 2}
    assert info["files"]["waivers"] == "bundle.vlt"
    assert paths["waivers"].read_bytes() == WAIVERS.read_bytes()
    tools = info["tools"]
    assert tools["lint"] == ["verilator", "--lint-only", "-Wall", "bundle.vlt", "--top-module",
                             "bundle", "bundle.v"]
    assert tools["icarus"] == ["iverilog", "-g2012", "-s", "bundle", "bundle.v"]
    assert tools["verilator"][:1] == ["verilator"] and "bundle.vlt" in tools["verilator"]
    nores = CoreConfig(rows=4, cols=2, dpu_residual=False, name="nores")
    streams = json.loads(generate(nores, tmp_path / "n")["config"].read_text())[
        "figures"]["streams"]
    assert "r_beats" not in streams and streams["x_beats"] == 1
    env = sim_env()
    for tool in ("icarus", "lint", "verilator"):
        exe = shutil.which(tools[tool][0], path=env["PATH"])
        if exe is None:
            continue
        proc = subprocess.run([exe, *tools[tool][1:]], cwd=tmp_path, capture_output=True,
                              text=True, env=env)
        assert proc.returncode == 0, (tool, proc.stdout[-2000:], proc.stderr[-2000:])
        assert "%Warning" not in proc.stderr, (tool, proc.stderr[-2000:])


@needs_verilator
def test_every_waiver_is_needed(tmp_path):
    """Each rule of hdl/verilator.vlt is needed: without it the lint fails on that rule."""
    cfg = CoreConfig(rows=8, cols=4, tree_regs=1)
    verilog = generate(cfg, tmp_path)["verilog"]
    text = WAIVERS.read_text()
    rules = re.findall(r"^lint_off -rule (\w+)$", text, re.M)
    assert len(rules) >= 4
    env = sim_env()
    for rule in rules:
        vlt = tmp_path / f"without_{rule}.vlt"
        vlt.write_text(text.replace(f"lint_off -rule {rule}\n", ""))
        proc = subprocess.run([_VERILATOR, "--lint-only", "-Wall", "--top-module", cfg.name,
                               str(vlt), str(verilog)], capture_output=True, text=True, env=env)
        assert proc.returncode != 0 and f"%Warning-{rule}" in proc.stderr, rule


def test_lint_catches_a_real_problem(tmp_path):
    """The waivers leave real problems visible (an undriven output)."""
    if _VERILATOR is None:
        pytest.skip("verilator not installed")
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input clk, output [3:0] y);\nendmodule\n")
    result = lint(bad, "bad")
    assert result.returncode != 0 and "UNDRIVEN" in result.stderr


def test_cli_generate(tmp_path, capsys):
    assert cli.main(["generate", "--rows", "4", "--cols", "2", "-q", "-o",
                     str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and (tmp_path / "o" / "dcim_core.v").is_file()
    assert (tmp_path / "o" / "dcim_core_regs.h").read_text().startswith("/* Register map")


@pytest.mark.parametrize(("argv", "pattern"), [
    (["--rows", "0"], r"^dcim: error: rows must be in \[1, 4096\], got 0$"),
    (["--cols", "6", "--dpu-lanes", "4"], r"^dcim: error: dpu_lanes must divide cols \(6\), "
                                          r"got 4$"),
    (["--name", "module"], r"^dcim: error: name must be a Verilog identifier .*'module'$"),
])
def test_cli_generate_errors(tmp_path, capsys, argv, pattern):
    assert cli.main(["generate", *argv, "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.match(pattern, err), err


def test_cli_generate_unwritable(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["generate", "--rows", "2", "--cols", "2", "-o", str(blocker / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dcim: error: ") and len(err.strip().splitlines()) == 1, err
