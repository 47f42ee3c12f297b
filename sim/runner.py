"""Build and run the cocotb testbench of one core on Icarus Verilog or Verilator.

The regression (``dcim regress``) calls :func:`build` once per (configuration, simulator), each
in its own build directory, then :func:`run_tests` once per seed. Both run the simulator through
:mod:`cocotb_tools.runner` in a child process (:mod:`dcim.sim.child`) supervised by
:func:`dcim.sim.supervise.run_child`, so that a hung or crashed simulation is killed after a
wall-clock timeout and its log goes to a file, never to the terminal. The testbench
(:mod:`dcim.verif.test_core`) learns the configuration, the register map and where to write its
statistics from the environment variables of :mod:`dcim.verif.env`. Simulator discovery is
:mod:`dcim.sim.simulators`, the results file is read by :mod:`dcim.sim.junit`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..verif.env import ENV_CONFIG, ENV_REGMAP, ENV_REPLAY, ENV_SIM, ENV_STATS
from .junit import ParseError, parse_results
from .simulators import SimulatorError, sim_env, verilator_make_flags
from .supervise import report_progress, run_child, tail

__all__ = ["RunResult", "build", "run_tests"]


@dataclass
class RunResult:
    """Outcome of one simulator run (one seed of one (configuration, simulator)).

    Attributes
    ----------
    ok : bool
        Every test passed, the simulator exited cleanly and the stats file was written.
    tests, failed : int
        Test cases run and failed (from cocotb's results XML).
    failures : list of str
        Names of the failed tests.
    stats : dict
        What the testbench wrote to :data:`ENV_STATS` (transactions, MACs, coverage hits,
        output digest); empty if the run crashed.
    seconds : float
        Wall-clock time of the run.
    log : Path
        The simulator log.
    results_xml : Path
        cocotb's JUnit results.
    error : str
        Why the run failed, if it did without a failing test (timeout, crash).
    cases : list of dict
        Every test case run (:func:`dcim.sim.junit.parse_results`).
    """

    ok: bool
    tests: int
    failed: int
    failures: list[str]
    stats: dict
    seconds: float
    log: Path
    results_xml: Path
    error: str = ""
    cases: list[dict] = field(default_factory=list)


def _child_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "dcim.sim.child", *args]


def build(sim: str, verilog: Path, top: str, build_dir: Path, *, waves: bool = False,
          timeout: float = 3600.0) -> float:
    """Compile ``verilog`` (top module ``top``) for ``sim`` into ``build_dir``.

    Both simulators get :data:`dcim.sim.build.SIM_ARGS` (Verilator: the lint waivers, so that
    no warning is fatal), Verilator also randomizable initial values (each test run picks its
    own initial-value seed). An unchanged build is skipped by the simulator's own checks.

    Returns
    -------
    float
        Seconds spent.

    Raises
    ------
    SimulatorError
        The build failed or timed out (the message names the log file).
    """
    build_dir, verilog = Path(build_dir).resolve(), Path(verilog).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    log = build_dir / "build.log"
    t0 = time.perf_counter()
    cmd = _child_cmd("build", "--sim", sim, "--verilog", str(verilog), "--top", top,
                     "--build-dir", str(build_dir), "--log", str(log))
    if waves:
        cmd.append("--waves")
    env = sim_env({"MAKEFLAGS": verilator_make_flags()} if sim == "verilator" else None)
    try:
        code = run_child(cmd, env, timeout, build_dir / "child.log")
    except subprocess.TimeoutExpired:
        raise SimulatorError(f"{sim} build timed out after {timeout:.0f} s (log: {log})") from None
    if code != 0:
        detail = tail(log, 5) or tail(build_dir / "child.log", 2)
        raise SimulatorError(f"{sim} build failed (log: {log}): {detail!s:.300}")
    return time.perf_counter() - t0


def run_tests(sim: str, top: str, build_dir: Path, test_dir: Path, *, config_json: Path,
              regmap_json: Path, seed: int, tests: str | None = None, waves: bool = False,
              init_seed: int | None = None, timeout: float = 3600.0,
              progress: Callable[[str], None] | None = None,
              replay: Path | None = None, max_failures: int | None = None) -> RunResult:
    """Run the testbench once on a finished build.

    Parameters
    ----------
    sim, top, build_dir
        As given to :func:`build`.
    test_dir : Path
        Where the log, results XML, stats and waves of this run go.
    config_json, regmap_json : Path
        The configuration and register map the testbench reads.
    seed : int
        cocotb's random seed (every random test seeds numpy from it).
    tests : str, optional
        A regular expression selecting test names (cocotb's test filter).
    waves : bool
        Record waves (FST on Icarus, VCD on Verilator; needs a build with ``waves``).
    init_seed : int, optional
        Verilator only: randomize every uninitialized value with this seed.
    timeout : float
        Wall-clock limit; the run is killed and reported failed after it.
    progress : callable, optional
        Called every 30 s with the test the simulator is running (``"test_k_tiled (7/19)"``).
    replay : Path, optional
        An export directory of ``dcim calibrate --export-vectors`` for ``test_replay``.
    max_failures : int, optional
        Stop the run after this many failed tests (cocotb's ``COCOTB_MAX_FAILURES``; the tests
        after the stop do not run): ``dcim mutate`` stops a mutant at its first failure.
    """
    # The simulator runs in test_dir: every path it is given must be absolute.
    build_dir, test_dir = Path(build_dir).resolve(), Path(test_dir).resolve()
    config_json, regmap_json = Path(config_json).resolve(), Path(regmap_json).resolve()
    test_dir.mkdir(parents=True, exist_ok=True)
    log = test_dir / "sim.log"
    results = test_dir / "results.xml"
    stats_path = test_dir / "stats.json"
    for stale in (results, stats_path):
        stale.unlink(missing_ok=True)
    cmd = _child_cmd("test", "--sim", sim, "--top", top, "--build-dir", str(build_dir),
                     "--test-dir", str(test_dir), "--log", str(log), "--seed", str(seed),
                     "--results", str(results))
    if tests:
        cmd += ["--tests", tests]
    if waves:
        cmd.append("--waves")
    if init_seed is not None:
        cmd += ["--init-seed", str(init_seed)]
    env = sim_env({ENV_CONFIG: str(config_json), ENV_REGMAP: str(regmap_json),
                   ENV_STATS: str(stats_path), ENV_SIM: sim,
                   **({ENV_REPLAY: str(Path(replay).resolve())} if replay else {})})
    if not replay:
        env.pop(ENV_REPLAY, None)
    env.pop("COCOTB_MAX_FAILURES", None)
    if max_failures is not None:
        env["COCOTB_MAX_FAILURES"] = str(max_failures)
    t0 = time.perf_counter()
    error = ""
    try:
        code = run_child(cmd, env, timeout, test_dir / "child.log",
                         None if progress is None else lambda: report_progress(log, progress))
        if code != 0 and not results.exists():
            error = f"simulator exited with code {code} (log: {log})"
    except subprocess.TimeoutExpired:
        error = f"timed out after {timeout:.0f} s (log: {log})"
    seconds = time.perf_counter() - t0
    cases, failures = ([], [])
    if results.exists():
        try:
            cases, failures = parse_results(results)
        except ParseError as exc:
            error = error or f"unreadable results XML {results}: {exc}"
    elif not error:
        error = f"no results written (log: {log})"
    stats: dict = {}
    if stats_path.exists():
        stats = json.loads(stats_path.read_text())
    if not cases and not error:
        error = f"no test ran: none matched, or each one that did was skipped (log: {log})"
    ok = not error and not failures
    return RunResult(ok=ok, tests=len(cases), failed=len(failures), failures=failures,
                     stats=stats, seconds=seconds, log=log, results_xml=results, error=error,
                     cases=cases)
