"""The runs of a regression: one build per (configuration, simulator, array view), one run per
seed on it, and their results (:class:`SimSummary`). ``dcim regress`` runs them on threads;
``dcim farm`` as tasks of a dask.distributed cluster (:mod:`dcim.sim.farm`).

A Ctrl-C or SIGTERM (:mod:`dcim.golden.procgroup`) kills the simulator that is running; a run
killed by it is not a result: :func:`run_seed` returns ``None`` for it, and no later run starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..golden import procgroup
from .runner import RunResult, build, run_tests
from .simulators import SimulatorError

__all__ = ["SeedRun", "SimSummary", "build_dir", "build_error", "build_sim", "digests",
           "run_seed"]


@dataclass
class SimSummary:
    """Results of one simulator on one configuration."""

    sim: str
    view: str = "rtl"
    build_s: float = 0.0
    runs: list[tuple[int, RunResult]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: The view this one's output digests were compared with, and how many were compared.
    compared: tuple[str, int] | None = None
    #: A Ctrl-C or SIGTERM stopped it: ``runs`` holds the seeds that finished.
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return (not self.errors and not self.interrupted and bool(self.runs)
                and all(r.ok for _, r in self.runs))

    @property
    def result(self) -> str:
        """``pass``, ``fail`` or ``interrupted`` (stopped with no failure among its runs)."""
        if self.ok:
            return "pass"
        failed = self.errors or any(not r.ok for _, r in self.runs)
        return "fail" if failed or not self.interrupted else "interrupted"

    @property
    def seconds(self) -> float:
        return self.build_s + sum(r.seconds for _, r in self.runs)

    def totals(self) -> tuple[int, int, int]:
        """``(tests, transactions, MACs verified)`` over the runs."""
        tests = sum(r.tests for _, r in self.runs)
        trans = macs = 0
        for _, r in self.runs:
            for t in r.stats.get("tests", {}).values():
                trans += t.get("compared", 0) + t.get("checks", 0)
                macs += t.get("macs", 0)
        return tests, trans, macs


@dataclass
class SeedRun:
    """One seed's run (:func:`run_seed`): its result and, on Verilator's first seed, the error
    of the second initial-value run (empty when both gave identical outputs)."""

    seed: int
    result: RunResult
    error: str = ""


def digests(r: RunResult) -> dict[str, str]:
    """The output digest of every test of a run."""
    return {k: v["digest"] for k, v in r.stats.get("tests", {}).items()}


def build_dir(root: Path, sim: str, view: str, waves: bool = False) -> Path:
    """The directory of one (simulator, view) under a configuration's ``root``: its ``build``
    and one ``seed<N>`` folder per run."""
    return root / view / (sim + ("_waves" if waves else ""))


def build_sim(sim: str, verilog: Path, top: str, bdir: Path, *, waves: bool,
              timeout: float) -> float:
    """Build ``verilog`` for ``sim`` in ``bdir/build``; the seconds it took.

    Raises
    ------
    SimulatorError
        The build failed, or a stop killed it.
    """
    return build(sim, verilog, top, bdir / "build", waves=waves, timeout=timeout)


def run_seed(sim: str, top: str, bdir: Path, seed: int, *, core_json: Path, regs: Path,
             tests: str | None, waves: bool, timeout: float, replay: Path | None = None,
             check_init: bool = False, progress: Callable[[str], None] | None = None,
             ) -> SeedRun | None:
    """Run every selected test once with ``seed`` on the build in ``bdir/build``.

    On Verilator every uninitialized value is randomized from the seed; with ``check_init``
    (the first seed) a passing run is repeated with another initial-value seed and both must
    give identical output digests (``SeedRun.error`` says where they differ).

    Returns
    -------
    SeedRun or None
        None when a Ctrl-C or SIGTERM killed the run (not a result).
    """
    init = (seed * 2654435761) % (1 << 31) if sim == "verilator" else None
    r = run_tests(sim, top, bdir / "build", bdir / f"seed{seed}", config_json=core_json,
                  regmap_json=regs, seed=seed, tests=tests, waves=waves, init_seed=init,
                  timeout=timeout, progress=progress, replay=replay)
    if not r.ok and procgroup.stopping():  # killed by the stop, not a failure
        return None
    out = SeedRun(seed, r)
    if sim == "verilator" and check_init and r.ok:
        r2 = run_tests(sim, top, bdir / "build", bdir / f"seed{seed}_init2",
                       config_json=core_json, regmap_json=regs, seed=seed, tests=tests,
                       init_seed=init + 1, timeout=timeout, replay=replay)
        if not r2.ok and procgroup.stopping():
            return None
        d1, d2 = digests(r), digests(r2)
        diff = sorted(k for k in d1 if d2.get(k) != d1[k])
        if not r2.ok or diff:
            out.error = (f"seed {seed}: a second random initial-value seed gave different "
                         f"outputs in {', '.join(diff[:3]) or 'the run'} (log: {r2.log})")
    return out


def build_error(exc: SimulatorError) -> str | None:
    """The error a failed build records, or None when a stop killed it."""
    return None if procgroup.stopping() else str(exc)
