"""`dcim farm` (issue 14): the grid file, one build per (configuration, simulator) reused by
its seeds as dask tasks, the merged reports, the first failure's reproduction command, a
SIGTERM that keeps what finished, and one real run on Icarus."""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from dcim.sim import cmd_farm, regress_runs, supervise
from dcim.sim.cli import main
from dcim.sim.runner import RunResult

GRID = """
[defaults]
rows = 8
cols = 4
[[config]]
[[config]]
weight_sets = 2
"""


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _grid(tmp_path: Path, text: str = GRID, name: str = "grid.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, message", [
    ("[[config]]\nrows = 8\n[other]\nx = 1\n", "unknown key(s) other; allowed: defaults, config"),
    ("[defaults]\nrows = 8\n", "needs at least one [[config]] table"),
    ("[[config]]\nrows = 8\n[[config]]\nrows = 9999\n", "config 2: rows must be"),
    ("[[config]]\nrows = 8\nbogus = 1\n", "config 1: unknown config key(s) bogus"),
    ("[[config]]\nrows = 8\n[[config]]\nrows = 8\n", "config 2 repeats config 1"),
    ("[[config]]\nrows = 8\narray_model = 'gate'\n", "config 1: array_model must be one of"),
])
def test_bad_grid_is_one_line(tmp_path, capsys, text, message):
    code, out, err = run_cli(capsys, "farm", "--configs", _grid(tmp_path, text), "-o",
                             tmp_path / "out")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("dcim: error: --configs ")
    assert message in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0"], "--seeds must be in [1, 10000], got 0"),
    (["--icarus-seeds", "-1"], "--icarus-seeds must be in [1, 10000], got -1"),
    (["--workers", "0"], "--workers must be in [1, 64], got 0"),
    (["--timeout", "inf"], "--timeout must be a finite number of seconds > 0, got inf"),
    (["--sim", "vcs"], "--sim must be one of icarus, verilator or all, got 'vcs'"),
    (["--scheduler", "nowhere"], "--scheduler must be an address like tcp://host:8786"),
])
def test_bad_options_are_one_line(tmp_path, capsys, argv, message):
    code, out, err = run_cli(capsys, "farm", "--configs", _grid(tmp_path), "-o",
                             tmp_path / "out", *argv)
    assert (code, out) == (2, "")
    assert err.startswith("dcim: error: ") and message in err and err.count("\n") == 1


def _run(ok: bool, seed: int, test_dir: Path, sim: str) -> RunResult:
    test_dir.mkdir(parents=True, exist_ok=True)
    cases = [{"name": "test_csr", "failed": not ok, "time": 0.1,
              "message": "" if ok else "AssertionError: result 3 != 4"}]
    return RunResult(ok=ok, tests=1, failed=int(not ok), failures=[] if ok else ["test_csr"],
                     seconds=0.1,
                     stats={"tests": {"test_csr": {"digest": f"{sim}{seed}", "checks": 5}},
                            "coverage": {"operands.w_zero": 1}},
                     log=test_dir / "sim.log", results_xml=test_dir / "results.xml",
                     cases=cases)


@pytest.fixture
def fake_sims(monkeypatch):
    """Builds and runs recorded instead of simulated; ``fail`` holds (sim, seed) to fail."""
    calls = {"build": collections.Counter(), "run": collections.Counter(), "fail": set()}
    lock = threading.Lock()

    def build(sim, verilog, top, bdir, **kw):
        with lock:
            calls["build"][(str(bdir), sim)] += 1
        return 0.5

    def run_tests(sim, top, bdir, test_dir, *, seed, **kw):
        with lock:
            calls["run"][(str(bdir), sim, seed, Path(test_dir).name)] += 1
        return _run((sim, seed) not in calls["fail"], seed, Path(test_dir), sim)

    monkeypatch.setattr(cmd_farm, "check_simulator", lambda sim: None)
    monkeypatch.setattr(regress_runs, "build", build)
    monkeypatch.setattr(regress_runs, "run_tests", run_tests)
    return calls


def test_farm_builds_once_and_merges(tmp_path, capsys, fake_sims):
    """2 configurations x 2 simulators: four builds, each used by its seeds (3 on Verilator,
    2 on Icarus), and one summary, one JUnit file and one coverage report of all of them."""
    out = tmp_path / "out"
    code, stdout, _ = run_cli(capsys, "farm", "--configs", _grid(tmp_path), "--seeds", "3",
                              "--icarus-seeds", "2", "--seed", "7", "-o", out, "-q")
    assert code == 0, stdout
    builds = fake_sims["build"]
    assert len(builds) == 4 and set(builds.values()) == {1}
    runs = fake_sims["run"]
    seeds = collections.defaultdict(list)
    for (bdir, sim, seed, name), n in runs.items():
        assert n == 1
        assert (bdir.rsplit("/", 1)[0], sim) in {(b.rsplit("/", 1)[0], s) for b, s in builds}
        seeds[bdir, sim].append(name)
    assert sorted(len(v) for v in seeds.values()) == [2, 2, 4, 4]  # + Verilator's init2 run
    rec = json.loads((out / "summary.json").read_text())
    assert rec["seed_runs"] == 10 and rec["failed_runs"] == 0
    jobs = {(j["describe"], j["simulator"]): j for j in rec["jobs"]}
    assert set(jobs) == {(d, s) for d in ("8x4", "8x4 weight_sets=2")
                         for s in ("icarus", "verilator")}
    assert jobs["8x4 weight_sets=2", "verilator"]["seeds"] == [7, 8, 9]
    assert jobs["8x4", "icarus"]["seeds"] == [7, 8]
    assert all(j["result"] == "pass" and j["transactions"] == 5 * len(j["seeds"])
               for j in rec["jobs"])
    suites = ET.parse(out / "junit.xml").getroot().findall("testsuite")
    assert len(suites) == 10
    assert len({s.get("name").split(".")[0] for s in suites}) == 2
    cov = (out / "coverage.md").read_text()
    assert cov.count("## Functional coverage: 8x4") == 2 and "10 seed runs, 0 failed" in cov
    assert "10 seed runs (0 failed)" in stdout and "seeds/hour" in stdout


def test_farm_failure_reproduces(tmp_path, capsys, fake_sims):
    """A failing seed fails the farm (exit 1) and is printed with its reproduction command."""
    fake_sims["fail"].add(("icarus", 8))
    out = tmp_path / "out"
    code, stdout, _ = run_cli(capsys, "farm", "--configs", _grid(tmp_path), "--seeds", "2",
                              "--sim", "icarus", "--seed", "7", "-o", out, "-q")
    assert code == 1
    assert "FAIL" in stdout and "result 3 != 4" in stdout
    assert re.search(r"reproduce: dcim regress --rows 8 --cols 4 .*--sim icarus --seed 8 "
                     r"--seeds 1 --array-model rtl --tests 'test_csr\$' --waves\n", stdout)
    rec = json.loads((out / "summary.json").read_text())
    assert rec["failed_runs"] == 2  # seed 8 of both configurations
    assert {j["result"] for j in rec["jobs"]} == {"fail"}
    assert "<failure" in (out / "junit.xml").read_text()


def test_farm_task_error_is_that_jobs_failure(tmp_path, capsys, monkeypatch, fake_sims):
    """A task that raises (a bug, a lost worker) fails its job with the error; the other
    jobs still run and the reports are written."""
    fake = regress_runs.run_tests

    def run_tests(sim, top, bdir, test_dir, *, seed, **kw):
        if seed == 8 and "x4_" in str(bdir):
            raise RuntimeError("worker lost")
        return fake(sim, top, bdir, test_dir, seed=seed, **kw)

    monkeypatch.setattr(regress_runs, "run_tests", run_tests)
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "farm", "--configs", _grid(
        tmp_path, "[[config]]\nrows = 8\ncols = 4\n[[config]]\nrows = 8\ncols = 8\n"),
        "--sim", "icarus", "--seeds", "2", "--seed", "7", "-o", out, "-q")
    assert code == 1
    assert "seed 8: task failed: RuntimeError: worker lost" in err
    jobs = {j["describe"]: j for j in json.loads((out / "summary.json").read_text())["jobs"]}
    assert jobs["8x4"]["result"] == "fail" and jobs["8x4"]["seeds"] == [7]
    assert jobs["8x4"]["errors"] == ["seed 8: task failed: RuntimeError: worker lost"]
    assert jobs["8x8"]["result"] == "pass" and jobs["8x8"]["seeds"] == [7, 8]
    assert "worker lost" in (out / "junit.xml").read_text()


def test_farm_sigterm_keeps_what_finished(tmp_path, capsys, monkeypatch, fake_sims):
    """Seed 7 finishes; the next seed's simulator (a ``sleep``) runs when SIGTERM comes: it is
    killed within seconds, the reports of seed 7 are written, and the run ends with 143."""
    pidfile = tmp_path / "sim.pid"
    fake = regress_runs.run_tests

    started, sent = [], []

    def run_tests(sim, top, bdir, test_dir, *, seed, **kw):
        started.append(seed)
        if len(started) == 1:
            return fake(sim, top, bdir, test_dir, seed=seed, **kw)
        def stop():
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGTERM)
        threading.Timer(1.0, stop).start()
        code = supervise.run_child(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"],
                                   {"PATH": os.environ["PATH"]}, 100.0, tmp_path / "child.log",
                                   poll=0.1)
        return RunResult(ok=False, tests=0, failed=0, failures=[], stats={}, seconds=1.0,
                         log=tmp_path / "child.log", results_xml=tmp_path / "r.xml",
                         error=f"simulator exited with code {code}")

    monkeypatch.setattr(regress_runs, "run_tests", run_tests)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["farm", "--configs", str(_grid(tmp_path, "[[config]]\nrows = 8\ncols = 4\n")),
              "--sim", "icarus", "--seeds", "3", "--seed", "7", "--workers", "1", "-o",
              str(out), "-q"])
    assert exc.value.code == 143
    assert time.monotonic() - sent[0] < 15  # the signal to the end, reports written
    stdout, err = capsys.readouterr()
    assert "interrupted" in err and "FAILURES" not in stdout
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(int(pidfile.read_text()), 0)
    (job,) = json.loads((out / "summary.json").read_text())["jobs"]
    assert started[0] == 7  # the first seed first
    assert (job["seeds"], job["result"], job["errors"]) == ([7], "interrupted", [])
    assert "<failure" not in (out / "junit.xml").read_text()
    # the seed queued behind the stop did not start (no simulator, no run directory)
    assert started == [7, 8]


@pytest.mark.sim
def test_farm_on_icarus(tmp_path, capsys):
    """A real farm: two 4x4 configurations on Icarus, two seeds each, the CSR test: every run
    passes and compared something."""
    grid = _grid(tmp_path, "[defaults]\nrows = 4\ncols = 4\n[[config]]\n[[config]]\n"
                           "serial_bits = 2\n")
    out = tmp_path / "out"
    code, stdout, _ = run_cli(capsys, "farm", "--configs", grid, "--sim", "icarus", "--seeds",
                              "2", "--seed", "3", "--tests", "test_csr$", "-o", out, "-q")
    assert code == 0, stdout
    rec = json.loads((out / "summary.json").read_text())
    assert rec["seed_runs"] == 4 and rec["failed_runs"] == 0
    assert all(j["tests"] == 2 and j["transactions"] > 0 for j in rec["jobs"])
