"""Mutants of the generated core, the mcy way, and the regression run on each (``dcim mutate``).

Yosys reads the Verilog ``dcim generate`` wrote (``prep -top``, saved as :data:`DESIGN`), and
``mutate -list N -seed S`` picks N mutations of it (one line each: a ``mutate -mode ...``
command naming the module, cell, port and bit, and the ``-src`` locations in the Verilog). A
mutant is :data:`DESIGN` with one of those commands applied, printed by ``write_verilog`` into
a copy of the ``dcim generate`` directory; the *control* is :data:`DESIGN` printed with no
mutation, which must pass the regression (else a failure says nothing about the mutation).

Each mutant is built and run through the cocotb regression (:mod:`dcim.sim.runner`), which
stops at its first failing test (``max_failures`` 1). Its Verilog no longer matches the digest
its ``<name>.json`` records: it is accepted only through the explicit override
``check_generated(..., digests=False)`` (what ``dcim regress --rtl DIR --rtl-edited`` does).
A mutant that passes goes to Yosys' equivalence flow (:func:`equiv_script`); proven, it is
``equivalent`` (no test can kill it) and set apart from the score.

Every tool runs in its own process group (:mod:`dcim.golden.procgroup`): a timeout, a Ctrl-C
or a SIGTERM kills it whole. Yosys (YoWASP) sees only paths relative to its working
directory: every script here names files relative to the run directory ``root``.
"""

from __future__ import annotations

import re
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..golden import procgroup
from ..golden.config import CoreConfig
from ..golden.fileio import write_atomic, write_dir_atomic
from ..synth.tools import FlowError, quiet, run as run_tool, yosys_cmd
from .build import WRITE_VERILOG, check_generated
from .runner import RunResult, build, run_tests
from .simulators import SimulatorError

__all__ = ["DESIGN", "STATUSES", "Mutation", "MutantResult", "Run", "apply_script",
           "equiv_script", "list_mutations", "list_script", "parse_list", "prove_equivalent",
           "run_mutant"]

#: The design every mutation applies to (RTLIL, relative to the run directory).
DESIGN = "design.il"
#: The list ``mutate -list`` writes (relative to the run directory).
LIST_FILE = "mutations.txt"
#: Outcomes of a mutant. ``timeout`` counts as killed (the regression did not pass);
#: ``equivalent`` (proven) and ``error`` (the flow failed, not the testbench) are left out of
#: the score.
STATUSES = ("killed", "timeout", "survived", "equivalent", "error")


@dataclass(frozen=True)
class Mutation:
    """One line of ``mutate -list``: ``index`` (1-based) and the ``mutate`` command."""

    index: int
    command: str

    def options(self, name: str) -> list[str]:
        """Every value of option ``-name`` in the command, in order."""
        words = shlex.split(self.command, posix=False)
        return [words[i + 1] for i, w in enumerate(words[:-1]) if w == "-" + name]

    def _one(self, name: str) -> str:
        got = self.options(name)
        return got[0] if got else ""

    @property
    def mode(self) -> str:
        return self._one("mode")

    @property
    def module(self) -> str:
        return self._one("module")

    @property
    def target(self) -> str:
        """``cell.port[bit]`` the mutation changes, and the wire bit it drives if named."""
        text = f"{self._one('cell')}.{self._one('port')}[{self._one('portbit')}]"
        wire = self._one("wire")
        return text + (f" ({wire}[{self._one('wirebit')}])" if wire else "")

    @property
    def src(self) -> str:
        """The source location of the mutated cell (the last ``-src`` of the command: the
        first, when there are two, is the wire's declaration), ``file:line.col-line.col``."""
        got = self.options("src")
        return got[-1] if got else ""

    def src_line(self) -> tuple[str, int] | None:
        """``(file, line)`` of :attr:`src`, or None when it names none."""
        m = re.fullmatch(r"(.+):(\d+)\.\d+-\d+\.\d+", self.src)
        return (m.group(1), int(m.group(2))) if m else None


def parse_list(text: str) -> list[Mutation]:
    """The mutations of a ``mutate -list`` output (one ``mutate -mode`` command per line)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("mutate ")]
    return [Mutation(i + 1, ln) for i, ln in enumerate(lines)]


def list_script(verilog: str, top: str, n: int, seed: int) -> str:
    """Yosys script: read ``verilog``, ``prep -top top``, save :data:`DESIGN`, list ``n``
    mutations with ``seed`` into :data:`LIST_FILE` (mcy's ``mutations.ys``)."""
    return "\n".join([f"read_verilog {verilog}", f"prep -top {top}", f"write_rtlil {DESIGN}",
                      f"mutate -list {n} -seed {seed} -o {LIST_FILE} -s sources.txt", ""])


def apply_script(mutation: Mutation | None, out: str) -> str:
    """Yosys script: :data:`DESIGN` with ``mutation`` applied (none: the control) printed to
    ``out`` by the ``write_verilog`` of ``dcim generate``."""
    lines = [f"read_rtlil {DESIGN}"]
    if mutation is not None:
        lines.append(mutation.command)
    return "\n".join([*lines, f"{WRITE_VERILOG} {out}", ""])


def _flat(top: str, name: str) -> list[str]:
    # One flat module `name`; memories as flip-flops (SAT has no model of $mem); every wire
    # but the ports and the flip-flop outputs unnamed, so that equiv_make matches the state and
    # the ports only (an internal signal a mutation changes but nothing observes is no match).
    return [f"hierarchy -top {top}", "flatten", f"hierarchy -top {top}", "memory_map",
            "opt_clean", "select -set regq t:$*dff* %x:+[Q] w:* %i",
            "rename -hide w:* x:* %d @regq %d", f"rename {top} {name}"]


def equiv_script(mutation: Mutation, top: str, seq: int = 2) -> str:
    """Yosys script proving ``mutation`` equivalent to :data:`DESIGN`: both flattened, ports
    and flip-flop outputs matched by name (``equiv_make``), then ``equiv_simple -seq`` and
    ``equiv_induct -seq`` and ``equiv_status``. Proven means: once the two agree for ``seq``
    cycles (from reset, as the passing regression shows), they never diverge (Yosys' weak
    equivalence of ``equiv_induct``). Unproven is not a proof of a difference."""
    return "\n".join([
        f"read_rtlil {DESIGN}", mutation.command, *_flat(top, "gate"), "design -stash gate",
        f"read_rtlil {DESIGN}", *_flat(top, "gold"), "design -copy-from gate -as gate gate",
        "equiv_make gold gate equiv", "hierarchy -top equiv", f"equiv_simple -seq {seq}",
        f"equiv_induct -seq {seq}", "equiv_status", ""])


def _yosys(root: Path, script: str, name: str, timeout: float) -> str:
    """Run ``script``, written to ``root/name`` (a relative path), in ``root``; return its
    log (``name`` with ``.log`` for ``.ys``; the console output goes beside it)."""
    write_atomic(root / name, script)
    log = name.removesuffix(".ys") + ".log"
    run_tool(yosys_cmd() + ["-q", "-l", log, name], root, root / (log + ".console"), "yosys",
             quiet, timeout=timeout)
    return (root / log).read_text(errors="replace")


def list_mutations(root: Path, verilog: str, top: str, n: int, seed: int,
                   timeout: float = 600.0) -> list[Mutation]:
    """Write :data:`DESIGN` and the list of ``n`` mutations under ``root``; the mutations
    (fewer than ``n`` if the design has fewer candidates).

    Raises
    ------
    FlowError
        Yosys failed or timed out (the message names its log).
    """
    (root / LIST_FILE).unlink(missing_ok=True)
    _yosys(root, list_script(verilog, top, n, seed), "mutations.ys", timeout)
    return parse_list((root / LIST_FILE).read_text())


@dataclass
class Run:
    """What every mutant of one ``dcim mutate`` run shares: the configuration, the run
    directory ``root`` (holding :data:`DESIGN`), the ``dcim generate`` directory ``rtl`` (under
    ``root``), the simulator, the regression's seed and test filter, and the limits."""

    cfg: CoreConfig
    root: Path
    rtl: Path
    sim: str
    seed: int
    tests: str | None
    timeout: float
    equiv_timeout: float
    core_json: Path


@dataclass
class MutantResult:
    """The outcome of one mutant (``index`` 0: the control, no mutation).

    ``status`` is one of :data:`STATUSES` (``survived`` for a control that passed);
    ``detail`` says why (the first failing test, the error, the equivalence result);
    ``seconds`` is the whole wall time, ``equiv_seconds`` that of the equivalence check.
    """

    index: int
    status: str
    detail: str = ""
    seconds: float = 0.0
    sim_seconds: float = 0.0
    equiv_seconds: float = 0.0
    interrupted: bool = False


def _write_mutant(run: Run, mutation: Mutation | None, mdir: Path) -> Path:
    """The ``dcim generate`` directory of ``mutation`` (``mdir/rtl``, written whole): the
    files of ``run.rtl`` with the Verilog replaced by the mutant's."""
    name = run.cfg.name
    rtl = mdir / "rtl"
    with write_dir_atomic(rtl, last=(f"{name}.json",)) as tmp:
        for f in sorted(run.rtl.iterdir()):
            if f.is_file() and f.name != f"{name}.v":
                write_atomic(tmp / f.name, f.read_bytes())
        script = apply_script(mutation, str((tmp / f"{name}.v").relative_to(run.root)))
        _yosys(run.root, script, str((mdir / "mutate.ys").relative_to(run.root)), run.timeout)
    return rtl


def prove_equivalent(run: Run, mutation: Mutation, mdir: Path) -> tuple[bool, str]:
    """Run :func:`equiv_script` for ``mutation`` (script and log in ``mdir``, an existing
    directory under ``run.root``); ``(proven, detail)``.

    Raises
    ------
    FlowError
        Yosys failed or ran over ``run.equiv_timeout``.
    """
    out = _yosys(run.root, equiv_script(mutation, run.cfg.name),
                 str((mdir / "equiv.ys").relative_to(run.root)), run.equiv_timeout)
    m = re.search(r"Found a total of (\d+) unproven \$equiv cells", out)
    if m:
        return False, f"not proven equivalent ({m.group(1)} unproven $equiv cell(s))"
    if "Equivalence successfully proven" in out:
        return True, "proven equivalent (equiv_simple + equiv_induct)"
    return False, f"equivalence check gave no verdict (log: {mdir / 'equiv.log'})"


def _regress(run: Run, rtl: Path, mdir: Path) -> RunResult:
    check_generated(rtl, run.cfg, digests=False)  # the override: a mutant, edited on purpose
    name = run.cfg.name
    bdir = mdir / "build"
    try:
        build(run.sim, rtl / f"{name}.v", name, bdir, timeout=run.timeout)
        init = (run.seed * 2654435761) % (1 << 31) if run.sim == "verilator" else None
        return run_tests(run.sim, name, bdir, mdir / "run", config_json=run.core_json,
                         regmap_json=rtl / f"{name}_regs.json", seed=run.seed,
                         tests=run.tests, init_seed=init, timeout=run.timeout, max_failures=1)
    finally:
        shutil.rmtree(bdir, ignore_errors=True)  # a mutant's build is never reused


def run_mutant(run: Run, mutation: Mutation | None) -> MutantResult:
    """Make, build and run one mutant (``None``: the control) in ``root/mutants/<id>``.

    Never raises for a failure of the mutant or the flow (they are its ``status``; an
    equivalence check that fails or runs over ``run.equiv_timeout`` leaves a survivor); a
    Ctrl-C or SIGTERM that stops the run gives ``interrupted`` (its status then means
    nothing).
    """
    index = 0 if mutation is None else mutation.index
    mdir = run.root / "mutants" / ("control" if mutation is None else f"m{index:04d}")
    mdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    res = MutantResult(index, "error")
    try:
        rtl = _write_mutant(run, mutation, mdir)
        t1 = time.perf_counter()
        r = _regress(run, rtl, mdir)
        res.sim_seconds = time.perf_counter() - t1
        if procgroup.stopping():
            res.interrupted = True
        elif r.ok:
            res.status, res.detail = "survived", f"{r.tests} tests passed"
            if mutation is not None:
                t2 = time.perf_counter()
                try:
                    proven, res.detail = prove_equivalent(run, mutation, mdir)
                except FlowError as exc:  # no proof (a timeout): it stays a survivor
                    proven, res.detail = False, f"no equivalence proof: {exc}"[:300]
                res.equiv_seconds = time.perf_counter() - t2
                res.status = "equivalent" if proven else "survived"
        elif r.error.startswith("timed out"):
            res.status, res.detail = "timeout", r.error
        else:
            res.status = "killed"
            res.detail = r.failures[0] if r.failures else r.error
    except procgroup.Stopped:
        res.interrupted = True
    except (FlowError, SimulatorError, OSError) as exc:
        res.interrupted = procgroup.stopping()
        res.status, res.detail = "error", " ".join(str(exc).split())[:300]
    res.seconds = time.perf_counter() - t0
    return res
