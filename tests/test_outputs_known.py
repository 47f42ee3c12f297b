"""The generated Verilog has known outputs from time 0 under the cocotb runner's defaults.

cocotb's runner builds Icarus with ``-g2012`` and nothing else (``sim/runner.py`` adds no
language flag). Amaranth's own conversion prints combinational processes as ``always @*``
blocks that only Verilog-2005 rules evaluate at time 0; under ``-g2012`` outputs such as
``s_axil__bvalid`` stay X and cocotbext-axi fails. ``sim/build.py:convert`` must not have that
problem; the second case builds the same core with Amaranth's stock conversion and shows that
the check fails without the fix (if it ever passes, Amaranth fixed it upstream).
"""

from __future__ import annotations

import shutil

import pytest
from amaranth.back import verilog

from dcim.golden.config import CoreConfig
from dcim.sim import build as build_mod
from dcim.sim.runner import build, run_tests
from dcim.sim.simulators import sim_env

pytestmark = [pytest.mark.sim,
              pytest.mark.skipif(shutil.which("iverilog", path=sim_env()["PATH"]) is None,
                                 reason="iverilog not installed (make setup)")]


def _stock(elaboratable, name, *, ports=None):
    return verilog.convert(elaboratable, name=name, emit_src=False, ports=ports)


def _run(tmp_path, cfg):
    paths = build_mod.generate(cfg, tmp_path / "rtl")
    core_json = tmp_path / "core.json"
    cfg.save(core_json)
    build("icarus", paths["verilog"], cfg.name, tmp_path / "build", timeout=600)
    return run_tests("icarus", cfg.name, tmp_path / "build", tmp_path / "run",
                     config_json=core_json, regmap_json=paths["regs_json"], seed=1,
                     tests="test_outputs_known", timeout=600)


@pytest.mark.parametrize("kw", [dict(rows=4, cols=2), dict(rows=3, cols=5, dpu_residual=False,
                                                           tree_regs=1, y_stream_bits=96)],
                         ids=["4x2", "3x5-nores"])
def test_outputs_known_under_icarus_g2012(tmp_path, kw):
    result = _run(tmp_path, CoreConfig(**kw))
    assert result.ok and result.tests == 1, (result.error, result.failures,
                                             result.log.read_text()[-3000:])
    assert result.stats["tests"]["test_outputs_known"]["compared"] == 2


def test_stock_amaranth_conversion_fails_the_check(tmp_path, monkeypatch):
    monkeypatch.setattr(build_mod, "convert", _stock)
    result = _run(tmp_path, CoreConfig(rows=4, cols=2))
    assert not result.ok and result.failures == ["test_outputs_known"]
    message = result.cases[0]["message"]
    for port in ("s_axil__bvalid", "s_axil__rvalid", "m_axis_y__tdata"):
        assert f"{port}=X" in message, message
