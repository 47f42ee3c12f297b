"""``dcim prove`` and its harnesses (dcim.verif.prove*) on small configurations.

Every harness is proven on a small core and must reject a deliberately broken block with a
counterexample trace (VCD); the broken blocks are the shipped sources with one line changed.
"""

from __future__ import annotations

import inspect
import json
import types

import pytest

from dcim.golden.config import CoreConfig
from dcim.sim.cli import main
from dcim.verif.prove import parse_props
from dcim.verif.prove_accum import accum_proof
from dcim.verif.prove_axi import axil_proof, axis_proof, mapped_predicate
from dcim.verif.prove_dpu import dpu_proof

SMALL = CoreConfig(rows=2, cols=2, act_bits=4, weight_bits=4)
# RAW results of several beats (4 int32 lanes), DPU results of one (int8 lanes); 2 DPU groups
STREAM = CoreConfig(rows=2, cols=4, act_bits=2, weight_bits=2, y_stream_bits=32)


def _mutant(module, old: str, new: str, cls: str):
    """The class ``cls`` of ``module`` built from its source with ``old`` replaced by ``new``
    (once: the line must be there)."""
    src = inspect.getsource(module)
    assert src.count(old) == 1, old
    ns = types.ModuleType(module.__name__ + "_mutant")
    ns.__package__ = module.__package__
    exec(compile(src.replace(old, new), module.__file__ + " (mutant)", "exec"), ns.__dict__)
    return getattr(ns, cls)


def test_accum_proven(tmp_path):
    r = accum_proof(SMALL, tmp_path, timeout=300)
    assert r.passed, r.log
    # two passes at 4 bits (4 slices each) from reset, and their commits
    assert r.depth == str(2 * 4 + 0 + 3)
    assert r.trace is None


def test_accum_saturation_proven_and_reached(tmp_path):
    r = accum_proof(SMALL, tmp_path, saturating=True, timeout=300)
    assert r.passed, (r.note, r.log)
    # the cover of a saturating commit was reached (the proof is not vacuous)
    assert "Reached cover statement" in (tmp_path / "accum-sat-cover.log").read_text()


def test_accum_with_tree_registers(tmp_path):
    cfg = CoreConfig(rows=4, cols=1, act_bits=4, weight_bits=4, serial_bits=2, tree_regs=2)
    r = accum_proof(cfg, tmp_path, timeout=300)
    assert r.passed, r.log
    assert r.depth == str(2 * 2 + 2 + 3)


@pytest.mark.parametrize("old, new", [
    # saturation one below the top of the range
    ("over, under = total > hi, total < lo", "over, under = total >= hi, total < lo"),
    # the accumulate stage does not stand still while held
    ("with m.If(d_valid & ~hold):", "with m.If(d_valid):"),
], ids=["sat-off-by-one", "acc-ignores-hold"])
def test_broken_accum_fails_with_trace(old, new, tmp_path):
    from dcim.hdl import accum

    broken = _mutant(accum, old, new, "Accum")
    r = accum_proof(SMALL, tmp_path, saturating=True, dut=broken, timeout=300)
    assert not r.passed and r.note == "assert"
    assert r.trace is not None and r.trace.exists() and r.trace.suffix == ".vcd"
    assert "$enddefinitions" in r.trace.read_text()


def test_parse_props():
    assert parse_props(None) == ["column", "accum", "accum-sat", "axil", "axis-y",
                                 "dpu-stream"]
    assert parse_props("all") == ["column", "accum", "accum-sat", "axil", "axis-y",
                                  "axis-y-order", "dpu-stream"]
    assert parse_props("accum, column,accum") == ["accum", "column"]
    with pytest.raises(ValueError, match=r"--props must be .*column.*got 'nope'"):
        parse_props("nope")


def test_cli_prove_table_and_files(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["prove", "--rows", "2", "--cols", "1", "--act-bits", "2", "--weight-bits", "2",
               "--props", "accum,column", "-o", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert [c.strip() for c in lines[0].split("|")[1:5]] == ["property", "depth", "result",
                                                             "seconds"]
    assert [ln.split("|")[1].strip() for ln in lines[1:]] == ["accum", "column"]
    assert all(ln.split("|")[3].strip() == "proven" for ln in lines[1:])
    report = json.loads((out / "prove.json").read_text())
    assert [p["property"] for p in report["properties"]] == ["accum", "column"]
    assert report["properties"][0]["depth"] == str(2 * 2 + 3)
    assert report["properties"][1]["depth"] == "k=1 (unbounded)"


def test_cli_prove_failure_names_trace(tmp_path, capsys):
    # a depth too short for the saturating cover: the property is not proven
    out = tmp_path / "out"
    rc = main(["prove", "--rows", "2", "--cols", "1", "--props", "accum-sat", "--depth", "2",
               "-o", str(out)])
    cap = capsys.readouterr()
    assert rc == 1
    assert "FAILED (cover)" in cap.out
    assert "accum-sat" in cap.err


@pytest.mark.parametrize("argv, message", [
    (["--depth", "0"], "--depth must be in [1, 200], got 0"),
    (["--props", "accum,bogus"], "--props must be a comma-separated list of"),
    (["--rows", "0"], "rows must be"),
])
def test_cli_prove_bad_input(argv, message, capsys):
    assert main(["prove", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_axil_proven(tmp_path):
    r = axil_proof(SMALL, tmp_path, timeout=300)
    assert r.passed, (r.note, r.log)
    # both covers (an unmapped read taken, an unmapped write answered) were reached
    assert (tmp_path / "axil-cover.log").read_text().count("Reached cover statement") == 2


@pytest.mark.parametrize("old, new", [
    # the table entries one past cols answer OKAY
    ("entry_ok = word < self.cfg.cols", "entry_ok = word <= self.cfg.cols"),
    # the read response does not wait for rready
    ("                with m.If(bus.rready):\n                    m.next = \"IDLE\"",
     "                m.next = \"IDLE\""),
], ids=["table-past-cols", "rvalid-dropped"])
def test_broken_csr_fails_with_trace(old, new, tmp_path):
    from dcim.hdl import csr

    broken = _mutant(csr, old, new, "CsrBlock")
    r = axil_proof(SMALL, tmp_path, dut=broken, timeout=300)
    assert not r.passed and r.note == "assert"
    assert r.trace is not None and r.trace.exists()


def test_mapped_predicate_matches_hand_counted_map():
    # region 0 has the registers; the three tables (0x4000, 0x8000, 0xC000) have cols words
    from amaranth.hdl import Const, Module
    from amaranth.sim import Simulator

    from dcim.hdl.regmap import RegMap

    cfg = CoreConfig(rows=4, cols=3)
    regs = {r.offset for r in RegMap(cfg).registers}
    expect = {a for a in range(0, 1 << 16, 4)
              if a in regs or (a >> 14 in (1, 2, 3) and (a & 0x3FFF) // 4 < 3)}

    hits = []

    async def bench(ctx):
        for a in [0, 4, 0x3FFC, 0x4000, 0x4008, 0x400C, 0x8004, 0xC008, 0xC00C, 0xFFFC,
                  *sorted(regs)]:
            hits.append((a, ctx.get(mapped_predicate(cfg, Const(a, 16)))))

    sim = Simulator(Module())
    sim.add_testbench(bench)
    sim.run()
    assert [a for a, hit in hits if hit] == [a for a, _ in hits if a in expect]


def test_result_stream_proven(tmp_path):
    assert (STREAM.y_beats(raw=False), STREAM.y_beats(raw=True), STREAM.dpu_groups) == (1, 4, 2)
    r = axis_proof(STREAM, tmp_path, depth=10, timeout=300)
    assert r.passed, (r.note, r.log)
    assert (tmp_path / "axis-y-cover.log").read_text().count("Reached cover statement") == 2


def test_broken_packer_fails_with_trace(tmp_path):
    from dcim.hdl import packer

    # the beat index advances without the handshake: tdata changes while stalled
    broken = _mutant(packer, "                m.d.sync += yb.eq(yb + 1)",
                     "                m.d.sync += yb.eq(yb + 1)\n"
                     "        with m.If(y.tvalid & ~y.tready & ~y.tlast):\n"
                     "            m.d.sync += yb.eq(yb + 1)", "OutputPacker")
    r = axis_proof(STREAM, tmp_path, depth=10, dut=broken, timeout=300)
    assert not r.passed and r.note == "assert"
    assert r.trace is not None and r.trace.exists()


def test_column_config_clips_rows_only():
    from dcim.verif.prove import COLUMN_ROWS, column_config

    cfg = CoreConfig(rows=16, cols=8, tree_regs=3, serial_bits=2)
    col = column_config(cfg)
    assert (col.rows, col.cols, col.serial_bits, col.weight_bits) == (COLUMN_ROWS, 8, 2, 8)
    assert col.tree_regs == 2  # a 4-row ripple tree has 2 levels
    assert column_config(SMALL) is SMALL


# one DPU lane, no residual path: the smallest DPU
DPU = CoreConfig(rows=2, cols=2, act_bits=2, weight_bits=2, dpu_residual=False)


def test_dpu_stream_proven(tmp_path):
    assert DPU.dpu_lanes == 1
    # 11 cycles: a group through the 7 stages, a stall, the handshake (the cover)
    r = dpu_proof(DPU, tmp_path, depth=11, timeout=300)
    assert r.passed, (r.note, r.log)
    assert "Reached cover statement" in (tmp_path / "dpu-stream-cover.log").read_text()


def test_broken_dpu_fails_with_trace(tmp_path):
    from dcim.hdl import dpu

    # the output stage ignores o.ready: a stalled result is overwritten (lost)
    broken = _mutant(dpu, "nxt = self.o.ready if k == n_stages else en[k + 1]",
                     "nxt = 1 if k == n_stages else en[k + 1]", "Dpu")
    r = dpu_proof(DPU, tmp_path, depth=11, dut=broken, timeout=300)
    assert not r.passed and r.note == "assert"
    assert r.trace is not None and r.trace.exists()
