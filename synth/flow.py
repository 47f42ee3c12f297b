"""The synthesis and PPA flow behind ``dcim synth``: Yosys, OpenSTA, gate-level activity.

The steps are in their own modules (:mod:`~dcim.synth.tech` the cell files,
:mod:`~dcim.synth.tools` running the tools, :mod:`~dcim.synth.netlist` areas and ports,
:mod:`~dcim.synth.sta` OpenSTA's output, :mod:`~dcim.synth.measure` the activity,
:mod:`~dcim.synth.ppa` the derived figures); this one runs them. One :func:`synthesize` call
on a Verilog file of the core runs, in its output directory:

1. Yosys (``synth.ys``): generic synthesis (cell counts, ``stat -tech cmos`` transistors), then
   mapping on the liberty whose cell areas were corrected from the LEF, hierarchy kept.
2. Area per block from the mapped netlist (``weights``, ``compute``, ``accum``, ``dpu``,
   ``ctrl`` and the top level's own ``glue`` cells), each the sum of its cells' LEF areas.
3. OpenSTA (``sta.tcl``) at the requested clock: worst slack, critical path, Fmax.
4. A gate-level simulation of the mapped netlist on each workload (:mod:`dcim.synth.gatesim`,
   cycle-based, every workload in one run; or Icarus) gives every net's toggle rate in the
   compute window; OpenSTA then reports power at Fmax with those activities set on every cell
   pin (``power.tcl``). The workloads include the utilization curve's (idle cycles between
   vectors, :func:`dcim.synth.activity.curve_workloads`).
5. The clock network's energy and the modelled clock gating of the weight cells
   (:mod:`dcim.synth.clocking`), from the netlist's clock pins and the liberty.

:func:`estimate` composes a large array from two small flat runs (see its doc).
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..golden import procgroup
from ..golden.config import CoreConfig
from ..golden.errors import InputError
from ..golden.fileio import write_atomic
from . import activity as act
from .clocking import clock_model
from .curve import CURVE_UTILIZATIONS, curve_gap, curve_workloads
from .lef import read_corrected
from .measure import ACTIVITY_SIMS, measure_activity
from .netlist import BLOCKS, block_areas, block_of, block_paths_tcl
from .ppa import derive
from .sta import parse_instance_power, parse_power, parse_timing
from .tech import tech_files
from .tools import FlowError, Progress, quiet, run, template, yosys_cmd

__all__ = ["ABC_LOAD_PF", "ABC_SCRIPTS", "ABC_SWEEP", "BUF_CELL", "estimate", "small_cols",
           "synthesize"]

#: Buffer cell (name, input pin, output pin) for port buffers and ABC's driving cell.
BUF_CELL = ("BUFX2", "A", "Y")
#: Load (pF) ABC assumes on module outputs when sizing and buffering.
ABC_LOAD_PF = 0.01
#: The ABC scripts of the two mappings (``;``-separated; ``{D}`` is ``-D <clock ps>``): Yosys'
#: default scripts for generic gates and for a liberty with ``-constr`` and ``-D``, without
#: their SAT sweep (:data:`ABC_SWEEP`, their second step). On the 256-row column's adder tree
#: the sweep was most of the run (WebAssembly ABC: 483 s CPU for the liberty call alone, 64 s
#: for both calls without it) and changed the column's mapped area by 0.2 %; ``scorr``,
#: ``dc2`` and ``&dch`` still merge equivalent logic (docs/synth.md, "ABC scripts").
ABC_SCRIPTS = {
    "generic": "strash; scorr; dc2; dretime; strash; &get -n; &dch -f; &nf; &put",
    "liberty": "strash; scorr; dc2; dretime; retime -o {D}; strash; &get -n; &dch -f; &nf {D}; "
               "&put; buffer; upsize {D}; dnsize {D}; stime -p",
}
#: The SAT sweep of Yosys' default scripts, put back after their first ``strash`` by
#: ``abc_sweep=True`` (which then runs exactly Yosys' default ``synth`` and
#: ``abc -D -constr -liberty``).
ABC_SWEEP = "&get -n; &fraig -x; &put; "


# ------------------------------------------------------------------------------------------------
# The whole flow
def synthesize(cfg: CoreConfig, verilog: Path, outdir: Path, *, liberty: str | Path = "osu018",
               clock_ns: float = 10.0, workloads: Sequence[str] = act.WORKLOADS,
               vectors: int = 16, progress: Progress = quiet,
               activity_sim: str = "auto", abc_sweep: bool = False,
               utilization: Sequence[int] = CURVE_UTILIZATIONS,
               emit_every: int = 1, curve_gaps: dict[int, int | None] | None = None,
               ) -> dict[str, Any]:
    """Synthesize ``verilog`` (top module ``cfg.name``) flat-hierarchical into ``outdir``.

    Parameters
    ----------
    cfg : CoreConfig
        The configuration the Verilog was generated from (for the derived figures).
    verilog : Path
        The core's Verilog.
    outdir : Path
        Work and output directory (created).
    liberty : "osu018" or path
        Standard-cell liberty (a ``.lef`` and ``.v`` with the same stem are used if present).
    clock_ns : float
        The user's clock period for timing and the "at your clock" figures.
    workloads : sequence of str
        Activity workloads for power (empty: no power analysis).
    vectors : int
        Activation vectors per workload.
    activity_sim : str
        The gate-level simulator of the activity (:data:`ACTIVITY_SIMS`).
    abc_sweep : bool
        Run ABC's SAT sweep too (:data:`ABC_SWEEP`; much slower on wide adder trees).
    utilization : sequence of int
        Target array utilizations (percent) of the TOPS/W curve, each a workload ``u<p>`` of
        ``vectors`` random vectors with idle cycles between them (empty, or no ``workloads``:
        no curve).
    emit_every : int
        The curve workloads' passes emit a result every ``emit_every`` vectors and accumulate
        otherwise (a K-tiled layer); must divide ``vectors``.
    curve_gaps : dict, optional
        The curve's idle cycles per point (default: :func:`dcim.synth.activity.curve_gap` of
        ``cfg``; :func:`estimate` passes those of the whole array to its parts).

    Returns
    -------
    dict
        Every figure (see docs/synth.md); also written to ``outdir/synth.json``.

    Raises
    ------
    FlowError
        A tool failed (the message names the log).
    ValueError
        ``clock_ns`` or ``vectors`` is out of range, or ``activity_sim`` is not one of
        :data:`ACTIVITY_SIMS`.
    """
    if not (isinstance(clock_ns, (int, float)) and 0.1 <= clock_ns <= 1e6):
        raise InputError(f"clock_ns must be in [0.1, 1e6] ns, got {clock_ns}")
    if not (isinstance(vectors, int) and 1 <= vectors <= 10000):
        raise InputError(f"vectors must be an int in [1, 10000], got {vectors}")
    if activity_sim not in ACTIVITY_SIMS:
        raise InputError(f"activity_sim must be one of {', '.join(ACTIVITY_SIMS)}, "
                         f"got {activity_sim!r}")
    if not (isinstance(emit_every, int) and emit_every >= 1 and vectors % emit_every == 0):
        raise InputError(f"emit_every must be an int >= 1 dividing vectors ({vectors}), "
                         f"got {emit_every}")
    for u in utilization:
        if not (isinstance(u, int) and 1 <= u <= 100):
            raise InputError(f"utilization points must be ints in [1, 100] percent, got {u!r}")
    t_start = time.monotonic()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    lib, lef = tech_files(liberty)
    lib_text, areas, corrections = read_corrected(lib, lef)
    (outdir / "cells.lib").write_text(lib_text)
    vname = f"{cfg.name}.v"
    if Path(verilog).resolve() != (outdir / vname).resolve():
        shutil.copyfile(verilog, outdir / vname)
    times: dict[str, float] = {}

    progress(f"yosys: synthesizing {cfg.rows}x{cfg.cols} ({vname})")
    t0 = time.monotonic()
    # ABC maps for the clock target with buffering and gate sizing (-D with -constr); without
    # them high-fanout nets (enables over whole arrays) dominate the critical path.
    (outdir / "abc.constr").write_text(f"set_driving_cell {BUF_CELL[0]}\nset_load {ABC_LOAD_PF}\n")
    delay = f"{clock_ns * 1000:.0f}"
    for kind, script in ABC_SCRIPTS.items():
        script = script.replace("strash; ", "strash; " + ABC_SWEEP, 1) if abc_sweep else script
        (outdir / f"abc_{kind}.abc").write_text(
            "\n".join(c.strip() for c in script.replace("{D}", f"-D {delay}").split(";")) + "\n")
    (outdir / "synth.ys").write_text(template(
        "synth.ys", verilog=vname, top=cfg.name, liberty="cells.lib",
        abc=f"abc -script abc_liberty.abc -D {delay} -constr abc.constr -liberty cells.lib",
        abc_generic="abc -script abc_generic.abc", bufcell=" ".join(BUF_CELL)))
    (outdir / "yosys.log").unlink(missing_ok=True)
    # Yosys writes its own log (-l): its standard output stops at the first ABC call under
    # WebAssembly; the console keeps the warnings and errors (-q)
    run(yosys_cmd() + ["-q", "-l", "yosys.log", "synth.ys"], outdir,
         outdir / "yosys_console.log", "yosys", progress,
         re.compile(r"^\d+(\.\d+)*\.\s+(Executing (SYNTH|ABC|DFFLIBMAP|STAT|JSON)|"
                    r"Extracting gate netlist of module)"), follow=outdir / "yosys.log")
    times["yosys_s"] = time.monotonic() - t0
    generic = json.loads((outdir / "generic_stat.json").read_text())["design"]
    mapped_stat = json.loads((outdir / "mapped_stat.json").read_text())["design"]
    netlist = json.loads((outdir / "netlist.json").read_text())
    area = block_areas(netlist, cfg.name, areas)

    progress("opensta: timing")
    t0 = time.monotonic()
    (outdir / "sta.tcl").write_text(template(
        "sta.tcl", liberty="cells.lib", netlist="netlist.v", top=cfg.name, period=clock_ns,
        blocks=block_paths_tcl(), activity=""))
    timing = parse_timing(run(["sta", "-no_init", "-exit", "sta.tcl"], outdir,
                               outdir / "sta_timing.log", "sta", progress), clock_ns)
    times["sta_s"] = time.monotonic() - t0

    power: dict[str, Any] = {}
    acts: dict[str, Any] = {}
    clock: dict[str, Any] = {}
    if workloads:
        t0 = time.monotonic()
        curve_wls = curve_workloads(cfg, vectors, utilization, emit_every, curve_gaps)
        acts = measure_activity(cfg, outdir, netlist, cfg.name, lib, workloads, vectors,
                                progress, activity_sim, extra=list(curve_wls.values()))
        times["activity_s"] = time.monotonic() - t0
        progress("opensta: power at Fmax")
        t0 = time.monotonic()
        names = [*workloads, *curve_wls]
        sources = "\n".join(
            template("power.tcl", workload=w, activity_file=f"activity_{w}.tcl")
            for w in names)
        (outdir / "sta_power.tcl").write_text(template(
            "sta.tcl", liberty="cells.lib", netlist="netlist.v", top=cfg.name,
            period=f"{timing['min_period_ns']:.4f}", blocks="", activity=sources))
        pw = parse_power(run(["sta", "-no_init", "-exit", "sta_power.tcl"], outdir,
                              outdir / "sta_power.log", "sta", progress))
        times["power_s"] = time.monotonic() - t0
        for w in names:
            if w not in pw:
                raise FlowError(f"OpenSTA printed no power for workload {w}; "
                                f"log: {outdir / 'sta_power.log'}")
            cells = parse_instance_power(
                (outdir / f"power_instances_{w}.txt").read_text(errors="replace"))
            blocks_w = {b: 0.0 for b in (*BLOCKS, "glue")}
            for name, watts in cells.items():
                blocks_w[block_of(name)] += watts
            power[w] = {**pw[w], **acts[w], "blocks_w": blocks_w}
            if not clock:
                clock = clock_model(cfg, netlist, lib_text, areas, cells,
                                    timing["min_period_ns"])

    result = {
        "config": cfg.to_dict(),
        "method": "flat",
        "liberty": str(lib),
        "lef": str(lef) if lef else None,
        "area_corrections": [c.to_dict() for c in corrections],
        "generic": {
            "cells": generic["num_cells"],
            "cells_by_type": generic["num_cells_by_type"],
            "transistors_cmos": generic.get("estimated_num_transistors"),
        },
        "area": area,
        "yosys_liberty_area_um2": mapped_stat.get("area"),
        "timing": timing,
        "power": power,
        "clock": clock,
    }
    result["derived"] = derive(cfg, result)
    times["total_s"] = time.monotonic() - t_start
    result["wall_time"] = times
    write_atomic(outdir / "synth.json", json.dumps(result, indent=2) + "\n")
    return result


# ------------------------------------------------------------------------------------------------
# Hierarchical estimate
def window_shift(big: CoreConfig, small: CoreConfig, n_vec: int, gap: int,
                 emit_every: int = 1) -> int:
    """Cycles the compute window of a workload is longer on ``big`` than on ``small`` (e.g.
    the whole array and a part of its estimate): ``n_vec`` vectors sent back to back with
    ``gap`` idle cycles after each, every ``emit_every``-th emitting a DPU result. The window
    spans each vector's interval (``max(pass_interval, x_beats + gap)``, emitting or not) and,
    after the last vector, its result's :meth:`~dcim.golden.schedule.Schedule.result_latency`
    and :meth:`~dcim.golden.schedule.Schedule.result_drain`; only their difference is used,
    so the fill and the testbench's fixed cycles cancel."""
    def span(c: CoreConfig) -> int:
        total = sum(max(c.pass_interval(emit=i % emit_every == emit_every - 1), c.x_beats + gap)
                    for i in range(n_vec - 1))
        return total + c.result_latency() + c.result_drain()
    return span(big) - span(small)


def _small_lanes(cfg: CoreConfig, c: int) -> int:
    return max(1, cfg.dpu_lanes * c // cfg.cols)


def part_config(cfg: CoreConfig, c: int) -> CoreConfig:
    """The configuration of an estimate's part of ``c`` columns: ``cfg`` with the DPU lanes
    scaled in proportion (at least 1)."""
    return cfg.replace(cols=c, dpu_lanes=_small_lanes(cfg, c))


def small_cols(cfg: CoreConfig) -> tuple[int, int]:
    """Two small column counts ``(c, 2c)``, both dividing ``cols``, ``2c < cols``, with the DPU
    lanes scaled in proportion (at least 1, dividing the columns): the smallest ``c >= 4`` at
    which the proportion is exact (``dpu_lanes * c / cols`` lanes, so that the parts' DPU grows
    by lanes as the array's does and drains a result in the same cycles), else the smallest
    ``c >= 4``, else the smallest.

    Raises
    ------
    ValueError
        No such pair exists (e.g. ``cols`` odd).
    """
    cands = [c for c in range(1, cfg.cols // 2)
             if cfg.cols % (2 * c) == 0 and c % _small_lanes(cfg, c) == 0
             and (2 * c) % _small_lanes(cfg, 2 * c) == 0]
    if not cands:
        raise InputError(f"cols ({cfg.cols}) with dpu_lanes {cfg.dpu_lanes} cannot be composed "
                         "from two smaller arrays of c and 2c columns; use flat synthesis")
    big = [c for c in cands if c >= 4]
    exact = [c for c in big if cfg.dpu_lanes * c % cfg.cols == 0]
    c = (exact or big or cands)[0]
    return c, 2 * c


def estimate(cfg: CoreConfig, generate: Callable[[CoreConfig, Path], Path], outdir: Path,
             *, jobs: int = 2, **kw: Any) -> dict[str, Any]:
    """Estimate a large array from two flat runs with fewer columns.

    Every block grows linearly with ``cols`` at a fixed ``rows`` (each column has its own
    weights, adder tree, accumulators and DPU table entries; ``dpu_lanes`` is scaled in
    proportion). Two flat runs at ``c`` and ``2c`` columns give, per block, a fixed part and a
    per-column part, which are composed for ``cols``. The energy per clock cycle is composed
    the same way; the workload's window (cycles) is the ``2c`` run's, shifted by what the
    core's schedule says differs on the whole array (:func:`window_shift`: the DPU lanes and
    streams of the parts are not those of the array, so the window is not linear in the
    columns). Fmax is the smaller Fmax of the two runs (it ignores the growing fan-out of the
    activation bits).

    Parameters
    ----------
    generate : callable
        ``generate(cfg, directory) -> verilog path`` for the small configurations.
    jobs : int
        How many of the two flat runs go at once (1 or 2); each is single-threaded.
    kw
        Passed on to :func:`synthesize`.

    Raises
    ------
    ValueError
        ``jobs`` is not 1 or 2, or ``cols`` cannot be composed (see :func:`small_cols`).
    """
    if not (isinstance(jobs, int) and not isinstance(jobs, bool) and jobs in (1, 2)):
        raise ValueError(f"jobs must be 1 or 2, got {jobs!r}")
    t_start = time.monotonic()
    say = kw.pop("progress", quiet)
    lock = threading.Lock()

    def progress(msg: str) -> None:  # one line at a time from the two runs
        with lock:
            say(msg)
    c1, c2 = small_cols(cfg)

    util = kw.get("utilization", CURVE_UTILIZATIONS)
    kw["curve_gaps"] = {p: curve_gap(cfg, p, kw.get("emit_every", 1)) for p in util}

    def part(c: int) -> dict[str, Any]:
        small = part_config(cfg, c)
        d = Path(outdir) / f"part_{cfg.rows}x{c}"
        d.mkdir(parents=True, exist_ok=True)
        tag = f"{cfg.rows}x{c}"
        progress(f"estimate: flat run of {tag}")
        return synthesize(small, generate(small, d), d,
                          progress=lambda msg: progress(f"[{tag}] {msg}"), **kw)

    # a Ctrl-C or SIGTERM reaches this (main) thread only: the guard kills the tools of both
    # (inside the pool's block: the pool's exit waits for its threads)
    with ThreadPoolExecutor(max_workers=jobs) as pool, procgroup.guard():
        r1, r2 = pool.map(part, (c1, c2))
    k = (cfg.cols - c1) / (c2 - c1)
    small2 = part_config(cfg, c2)

    def lin(a: float, b: float) -> float:
        return a + (b - a) * k

    blocks = {}
    for name in r2["area"]["blocks"]:
        b1 = r1["area"]["blocks"].get(name, {"area_um2": 0.0, "cells": 0})
        b2 = r2["area"]["blocks"][name]
        blocks[name] = {"area_um2": lin(b1["area_um2"], b2["area_um2"]),
                        "cells": round(lin(b1["cells"], b2["cells"]))}
    area = {"total_um2": sum(b["area_um2"] for b in blocks.values()),
            "cells": sum(b["cells"] for b in blocks.values()),
            "flops": round(lin(r1["area"]["flops"], r2["area"]["flops"])),
            "blocks": blocks}
    t1, t2 = r1["timing"], r2["timing"]
    worst = t1 if t1["fmax_mhz"] < t2["fmax_mhz"] else t2
    timing = {**worst, "clock_ns": kw.get("clock_ns", 10.0)}
    clock: dict[str, Any] = {}
    if r1.get("clock") and r2.get("clock"):
        k1, k2 = r1["clock"], r2["clock"]
        clock = {**k2, "words": cfg.rows * cfg.cols,
                 "energy_pj_per_cycle": {
                     b: lin(k1["energy_pj_per_cycle"].get(b, 0.0), e)
                     for b, e in k2["energy_pj_per_cycle"].items()},
                 "pins": {b: {c: round(lin(k1["pins"].get(b, {}).get(c, 0), n))
                              for c, n in p.items()} for b, p in k2["pins"].items()}}
    power = {}
    for w in r2["power"]:
        p1, p2 = r1["power"][w], r2["power"][w]
        # energy per clock cycle (power x period) and the workload's window length are both
        # linear in the columns (with one DPU lane the results take cols cycles each)
        e_cycle = lin(p1["total_w"] * t1["min_period_ns"], p2["total_w"] * t2["min_period_ns"])
        window = max(1, p2["window_cycles"] + window_shift(
            cfg, small2, p2["vectors"], p2.get("gap", 0), p2.get("emit_every", 1)))
        blocks_w = {b: lin(p1["blocks_w"][b] * t1["min_period_ns"],
                           p2["blocks_w"][b] * t2["min_period_ns"]) / timing["min_period_ns"]
                    for b in p2.get("blocks_w", {})}
        power[w] = {"total_w": e_cycle / timing["min_period_ns"], "window_cycles": window,
                    "vectors": p2["vectors"], "macs": p2["macs"] * cfg.cols // c2,
                    "simulator": p2.get("simulator", "icarus"), "blocks_w": blocks_w,
                    "gap": p2.get("gap", 0), "emit_every": p2.get("emit_every", 1)}
    result = {
        "config": cfg.to_dict(),
        "method": f"estimate: linear in cols from flat runs at {cfg.rows}x{c1} and "
                  f"{cfg.rows}x{c2}",
        "liberty": r2["liberty"],
        "area_corrections": r2["area_corrections"],
        "generic": {"cells": round(lin(r1["generic"]["cells"], r2["generic"]["cells"]))},
        "area": area,
        "timing": timing,
        "power": power,
        "clock": clock,
        "parts": [f"part_{cfg.rows}x{c1}", f"part_{cfg.rows}x{c2}"],
    }
    result["derived"] = derive(cfg, result)
    result["wall_time"] = {"total_s": time.monotonic() - t_start, "jobs": jobs,
                           "parts_s": [r["wall_time"]["total_s"] for r in (r1, r2)],
                           "parts_steps": [r["wall_time"] for r in (r1, r2)]}
    write_atomic(Path(outdir) / "synth.json", json.dumps(result, indent=2) + "\n")
    return result
