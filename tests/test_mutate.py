"""`dcim mutate`: mutation lines, counts and score, errors, and (sim tier) a tiny run whose counts
add up and a stuck result-valid output that the regression must kill."""

import json
import re

import pytest

from dcim.golden.config import CoreConfig
from dcim.sim import mutation as mu
from dcim.sim.cli import main
from dcim.sim.mutate_report import counts, score
from dcim.sim.mutation import MutantResult, Mutation, parse_list

# A line as `mutate -list` prints it (Yosys 0.70), the wire's -src first, the cell's last.
LINE = ("mutate -mode cnot1 -module dcim_core.ctrl.csr -cell $procdff$2436 -port Q -portbit 11 "
        "-ctrlbit 2 -wire busy_cycles_count -wirebit 11 -src rtl/dcim_core.v:2404.14-2404.31 "
        "-src rtl/dcim_core.v:2812.3-2813.33")


def test_parse_list_reads_every_mutate_line():
    ms = parse_list(f"\n{LINE}\n  \nnot a command\n{LINE.replace('cnot1', 'inv')}\n")
    assert [m.index for m in ms] == [1, 2]
    m = ms[0]
    assert (m.mode, m.module) == ("cnot1", "dcim_core.ctrl.csr")
    assert m.target == "$procdff$2436.Q[11] (busy_cycles_count[11])"
    assert m.src == "rtl/dcim_core.v:2812.3-2813.33"
    assert m.src_line() == ("rtl/dcim_core.v", 2812)
    assert ms[1].mode == "inv"


def test_scripts_apply_the_mutation_to_the_saved_design():
    m = Mutation(1, LINE)
    script = mu.apply_script(m, "mutants/m0001/rtl/dcim_core.v").splitlines()
    assert script[0] == f"read_rtlil {mu.DESIGN}" and script[1] == LINE
    assert script[-1].startswith("write_verilog ") and script[-1].endswith(" mutants/m0001/rtl/"
                                                                          "dcim_core.v")
    assert LINE not in mu.apply_script(None, "control.v")
    eq = mu.equiv_script(m, "dcim_core")
    assert eq.count(LINE) == 1 and "equiv_make gold gate equiv" in eq
    assert "equiv_induct" in eq and "equiv_status" in eq


def test_counts_and_score_leave_out_equivalent_error_and_interrupted():
    statuses = ["killed"] * 5 + ["timeout"] + ["survived"] * 2 + ["equivalent"] * 3 + ["error"]
    results = [MutantResult(i + 1, s) for i, s in enumerate(statuses)]
    results.append(MutantResult(99, "survived", interrupted=True))
    c = counts(results)
    assert c == {"killed": 5, "timeout": 1, "survived": 2, "equivalent": 3, "error": 1}
    assert score(c) == pytest.approx(6 / 8)
    assert score(counts([MutantResult(1, "equivalent")])) is None


@pytest.mark.parametrize(("argv", "message"), [
    (["-n", "0"], "-n must be in [1, 100000], got 0"),
    (["--sim", "all"], "--sim must be one of icarus, verilator, got 'all'"),
    (["-j", "65"], "-j must be in [1, 64], got 65"),
    (["--seed", "-1"], "--seed must be in [0, 2147483647], got -1"),
    (["--timeout", "0"], "--timeout must be a finite number of seconds > 0, got 0.0"),
    (["--tests", "test_("], "--tests is not a valid regular expression"),
    (["--rows", "0"], "rows must be in [1, 4096], got 0"),
])
def test_bad_options_are_one_line(capsys, tmp_path, argv, message):
    code = main(["mutate", *argv, "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("dcim: error: " + message) and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


TINY = ["--rows", "4", "--cols", "2"]


@pytest.mark.sim
def test_tiny_run_counts_add_up(tmp_path, capsys):
    out = tmp_path / "mut"
    code = main(["mutate", *TINY, "-n", "3", "--seed", "7", "-j", "2", "-o", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    data = json.loads((out / "mutation.json").read_text())
    assert data["mutants"] == 3 and len(data["records"]) == 3
    assert sum(data["counts"].values()) == 3
    killed = data["counts"]["killed"] + data["counts"]["timeout"]
    if killed + data["counts"]["survived"]:
        assert data["score"] == pytest.approx(killed / (killed + data["counts"]["survived"]))
    assert (out / "mutants" / "control" / "rtl" / "dcim_core.v").is_file()
    md = (out / "mutation.md").read_text()
    assert md.startswith("# Mutation score of dcim_core 4x2")
    assert re.search(r"dcim_core 4x2 +icarus +3 ", text)


@pytest.mark.sim
def test_stuck_result_valid_is_killed_and_not_equivalent(tmp_path):
    """``m_axis_y__tvalid`` tied to 0 in the top module: no result ever leaves the core, so
    the regression must fail and the equivalence check must not prove it."""
    from dcim.sim.build import generate

    cfg = CoreConfig(rows=4, cols=2)
    root = tmp_path
    generate(cfg, root / "rtl", array_model="rtl")
    listed = mu.list_mutations(root, "rtl/dcim_core.v", cfg.name, 100000, 1)
    stuck = [m for m in listed if m.mode == "const0" and m.module == cfg.name
             and m.options("wire") == ["m_axis_y__tvalid"]]
    assert stuck, "Yosys listed no const0 mutation of m_axis_y__tvalid"
    cfg.save(root / "core.json")
    run = mu.Run(cfg, root, root / "rtl", "icarus", 1, None, 300.0, 300.0, root / "core.json")
    control = mu.run_mutant(run, None)
    assert control.status == "survived", control.detail
    r = mu.run_mutant(run, stuck[0])
    assert r.status in ("killed", "timeout"), r.detail
    mdir = root / "mutants" / f"m{stuck[0].index:04d}"
    proven, detail = mu.prove_equivalent(run, stuck[0], mdir)
    assert not proven and "unproven" in detail


def _fake_run(tmp_path, monkeypatch, result, equiv=None):
    """run_mutant with the mutant's Verilog and its regression replaced by ``result``."""
    from pathlib import Path

    from dcim.sim.runner import RunResult

    def regress(run, rtl, mdir):
        ok, failures, error = result
        return RunResult(ok=ok, tests=3, failed=len(failures), failures=failures, stats={},
                         seconds=0.1, log=Path("sim.log"), results_xml=Path("r.xml"),
                         error=error)
    monkeypatch.setattr(mu, "_write_mutant", lambda run, m, mdir: mdir)
    monkeypatch.setattr(mu, "_regress", regress)
    if equiv is not None:
        monkeypatch.setattr(mu, "prove_equivalent", equiv)
    from dcim.golden import procgroup

    run = mu.Run(CoreConfig(rows=4, cols=2), tmp_path, tmp_path / "rtl", "icarus", 1, None,
                 10.0, 10.0, tmp_path / "core.json")
    with procgroup.guard():  # as dcim mutate runs it (a new run: an earlier stop is over)
        return mu.run_mutant(run, Mutation(3, LINE))


def test_outcomes_of_a_mutant(tmp_path, monkeypatch):
    r = _fake_run(tmp_path, monkeypatch, (False, ["test_csr", "test_random"], ""))
    assert (r.status, r.detail, r.index) == ("killed", "test_csr", 3)
    r = _fake_run(tmp_path, monkeypatch, (False, [], "timed out after 10 s (log: x)"))
    assert r.status == "timeout"
    r = _fake_run(tmp_path, monkeypatch, (True, [], ""), lambda *a: (True, "proven"))
    assert (r.status, r.detail) == ("equivalent", "proven")
    r = _fake_run(tmp_path, monkeypatch, (True, [], ""), lambda *a: (False, "3 unproven"))
    assert r.status == "survived"


def test_equivalence_timeout_leaves_a_survivor(tmp_path, monkeypatch):
    from dcim.synth.tools import FlowError

    def slow(*a):
        raise FlowError("yosys timed out after 10 s; log: equiv.log")
    r = _fake_run(tmp_path, monkeypatch, (True, [], ""), slow)
    assert r.status == "survived" and "timed out" in r.detail
