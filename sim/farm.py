"""A regression farm: seeds x configurations x simulators as tasks on dask.distributed.

Each (configuration, simulator) is built once, by one task; its seeds are tasks that depend on
it and run on that build (:mod:`dcim.sim.regress_runs`, as ``dcim regress`` runs them). The
results are merged into one summary table and ``summary.json``, one JUnit file and one
functional-coverage report, and the first failure is printed with the command that reproduces
it.

The cluster is a :class:`distributed.LocalCluster` by default: one worker in this process with
``workers`` threads (a task's work is a simulator child process, so threads are enough, and a
Ctrl-C or SIGTERM kills every child through :mod:`dcim.golden.procgroup`, as in ``dcim
regress``). With ``scheduler`` the tasks go to an existing cluster, whose workers need dcim
installed and the output directory on a shared file system (the tasks pass absolute paths).

Ray serves too (tasks with dependencies, a local mode); dask.distributed was chosen because
its futures give the build -> seeds dependency and completion order directly, its
``LocalCluster`` runs in-process without a daemon, and it installs from PyPI as two pure-Python
wheels (Ray brings a 60+ MB binary wheel and a local object store).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..golden import procgroup
from ..golden.config import CoreConfig
from ..golden.configfile import read_config_data
from ..golden.errors import InputError
from .regress_runs import SimSummary, build_dir, build_error, build_sim, run_seed
from .simulators import SimulatorError

__all__ = ["FarmConfig", "Job", "load_grid", "run_farm"]

@dataclasses.dataclass(frozen=True)
class FarmConfig:
    """One configuration of the grid and the array view it runs."""

    cfg: CoreConfig
    view: str
    #: The fields the grid set besides ``rows`` and ``cols`` (``name=value``), for the reports.
    given: tuple[str, ...] = dataclasses.field(default=(), compare=False)

    @property
    def describe(self) -> str:
        """``<rows>x<cols>`` and the other fields the grid set."""
        return " ".join([f"{self.cfg.rows}x{self.cfg.cols}", *self.given])

    @property
    def label(self) -> str:
        """``<name>_<rows>x<cols>_<hash>``: unique per configuration and view."""
        h = hashlib.sha256((self.cfg.to_json() + self.view).encode()).hexdigest()[:8]
        return f"{self.cfg.name}_{self.cfg.rows}x{self.cfg.cols}_{h}"


def load_grid(path: Path, view_of: Callable[[str | None, CoreConfig], str]) -> list[FarmConfig]:
    """The configurations of a grid file.

    The file (``.toml`` or ``.json``) holds an optional ``defaults`` table of configuration
    fields and a list ``config`` of tables, each a configuration (its fields over the
    defaults) and optionally ``array_model`` (``rtl`` or ``fast``; default as ``dcim
    regress``)::

        [defaults]
        rows = 16
        [[config]]
        cols = 8
        [[config]]
        cols = 8
        weight_sets = 2

    Raises
    ------
    InputError
        The file cannot be parsed, has no configuration, has an unknown key, an invalid
        configuration (named by its index) or the same configuration twice.
    """
    data = read_config_data(path)
    unknown = sorted(set(data) - {"defaults", "config"})
    if unknown:
        raise InputError(f"--configs {path}: unknown key(s) {', '.join(unknown)}; allowed: "
                         "defaults, config")
    defaults = data.get("defaults", {})
    entries = data.get("config")
    if not isinstance(defaults, dict):
        raise InputError(f"--configs {path}: defaults must be a table of fields")
    if not isinstance(entries, list) or not entries:
        raise InputError(f"--configs {path}: needs at least one [[config]] table")
    out: list[FarmConfig] = []
    for i, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise InputError(f"--configs {path}: config {i} must be a table of fields")
        fields = {**defaults, **entry}
        view = fields.pop("array_model", None)
        try:
            cfg = CoreConfig.from_dict(fields)
            given = tuple(f"{k}={v}" for k, v in fields.items() if k not in ("rows", "cols"))
            fc = FarmConfig(cfg, view_of(view, cfg), given)
        except (InputError, TypeError, ValueError) as exc:
            raise InputError(f"--configs {path}: config {i}: {exc}") from None
        if fc in out:
            raise InputError(f"--configs {path}: config {i} repeats config "
                             f"{out.index(fc) + 1}")
        out.append(fc)
    return out


@dataclasses.dataclass
class Job:
    """One (configuration, simulator) of the farm: its build inputs and its results."""

    fc: FarmConfig
    root: Path
    verilog: Path
    regs: Path
    core_json: Path
    seeds: list[int]
    summary: SimSummary

    @property
    def bdir(self) -> Path:
        return build_dir(self.root, self.summary.sim, self.fc.view)


# ------------------------------------------------------------------------------------------
# The tasks (module-level functions: a remote worker imports them)
def build_task(sim: str, verilog: Path, top: str, bdir: Path, timeout: float,
               ) -> tuple[float, str | None]:
    """Build one (configuration, simulator): ``(seconds, error or None)``; a build a stop
    killed gives the error ``"interrupted"``."""
    t0 = time.perf_counter()
    try:
        return build_sim(sim, verilog, top, bdir, waves=False, timeout=timeout), None
    except SimulatorError as exc:
        return time.perf_counter() - t0, build_error(exc) or "interrupted"
    except procgroup.Stopped:
        return time.perf_counter() - t0, "interrupted"


def seed_task(built: tuple[float, str | None], sim: str, top: str, bdir: Path, seed: int,
              core_json: Path, regs: Path, tests: str | None, timeout: float,
              check_init: bool) -> Any:
    """Run one seed on a finished build (``built``: what :func:`build_task` returned); None
    when the build failed or a stop killed the run."""
    if built[1] is not None or procgroup.stopping():  # no build, or a stop: nothing to run
        return None
    try:
        return run_seed(sim, top, bdir, seed, core_json=core_json, regs=regs, tests=tests,
                        waves=False, timeout=timeout, check_init=check_init)
    except procgroup.Stopped:
        return None


# ------------------------------------------------------------------------------------------
def _client(scheduler: str | None, workers: int):
    """A dask client: on ``scheduler``, or on a new in-process LocalCluster."""
    import logging

    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.CRITICAL)  # errors: in the job records
    if scheduler is not None:
        return Client(scheduler, timeout="20s"), None
    cluster = LocalCluster(n_workers=1, threads_per_worker=workers, processes=False,
                           dashboard_address=":0")
    return Client(cluster), cluster


def run_farm(jobs: Sequence[Job], *, tests: str | None, timeout: float,
             scheduler: str | None, workers: int, say: Callable[[str], None],
             tick: Callable[[], None]) -> bool:
    """Run every job's build and seeds as tasks; fill each job's ``summary``.

    Every seed depends on its build; builds have a higher priority and a job's first seeds a
    higher one than its later ones, but dask takes priorities as hints (the recorded run,
    docs/verification.md, built its last configuration after 70 minutes, when the others had
    run their seeds). ``tick`` is called once per finished seed (a progress bar). A Ctrl-C or SIGTERM cancels what has not
    run, kills every simulator (in-process cluster) and marks the unfinished jobs interrupted;
    the exception then propagates.

    Returns
    -------
    bool
        True when every job has all its seeds.
    """
    from distributed import as_completed

    client, cluster = _client(scheduler, workers)
    futures = []
    try:
        with procgroup.guard():
            owner = {}
            for job in jobs:
                s = job.summary
                b = client.submit(build_task, s.sim, job.verilog, job.fc.cfg.name, job.bdir,
                                  timeout, pure=False, priority=10,
                                  key=f"build-{job.fc.label}-{s.sim}")
                owner[b.key] = (job, None)
                futures.append(b)
                for i, seed in enumerate(job.seeds):
                    f = client.submit(seed_task, b, s.sim, job.fc.cfg.name, job.bdir, seed,
                                      job.core_json, job.regs, tests, timeout, i == 0,
                                      pure=False, priority=-i,
                                      key=f"seed-{job.fc.label}-{s.sim}-{seed}")
                    owner[f.key] = (job, seed)
                    futures.append(f)
            for f in as_completed(futures):
                job, seed = owner[f.key]
                if f.status == "error":  # a bug or a lost worker: that job's error, not a stop
                    exc = f.exception()
                    what = "build" if seed is None else f"seed {seed}"
                    job.summary.errors.append(f"{what}: task failed: {type(exc).__name__}: "
                                              f"{exc}")
                    say(f"[{job.fc.label} {job.summary.sim}] {job.summary.errors[-1]}")
                else:
                    _record(job, seed, f.result(), say)
                if seed is not None:
                    tick()
    except BaseException:
        for f in futures:
            f.cancel()
        for job in jobs:
            s = job.summary
            s.interrupted = s.interrupted or (not s.errors and len(s.runs) < len(job.seeds))
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    for job in jobs:
        job.summary.runs.sort(key=lambda sr: sr[0])
    return all(len(j.summary.runs) == len(j.seeds) for j in jobs)


def _record(job: Job, seed: int | None, value: Any, say: Callable[[str], None]) -> None:
    """Put one finished task's result into its job's summary."""
    s = job.summary
    tag = f"[{job.fc.label} {s.sim}/{job.fc.view}]"
    if seed is None:  # the build
        s.build_s, err = value
        if err == "interrupted":
            s.interrupted = True
        elif err is not None:
            s.errors.append(err)
            say(f"{tag} build FAILED: {err}")
        return
    if value is None:
        if not s.errors:
            s.interrupted = True
        return
    s.runs.append((seed, value.result))
    if value.error:
        s.errors.append(value.error)
    if not value.result.ok:
        r = value.result
        say(f"{tag} seed {seed}: {r.failed} of {r.tests} tests FAILED (log: {r.log})")
