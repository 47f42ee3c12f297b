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
from dcim.verif.prove import parse_props, properties
from dcim.verif.prove_accum import accum_proof

SMALL = CoreConfig(rows=2, cols=2, act_bits=4, weight_bits=4)


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
    assert parse_props(None) == list(properties())
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
