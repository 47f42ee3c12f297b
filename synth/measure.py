"""Switching activity of the mapped netlist from a gate-level simulation of each workload
(cycle-based, :mod:`dcim.synth.gatesim`, or Icarus through a VCD), written as OpenSTA commands
(``activity_<workload>.tcl``)."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..golden.config import CoreConfig
from . import activity as act
from .libcells import parse_liberty_cells
from .netlist import bit_names, instances, ports as netlist_ports
from .tech import cell_models
from .tools import FlowError, Progress, run

__all__ = ["ACTIVITY_SIMS", "measure_activity"]

#: Activity simulators: ``cycle`` (:mod:`dcim.synth.gatesim`, zero-delay cycle-based, all
#: workloads in one run), ``icarus`` (event-driven, a VCD per workload), ``auto`` (``cycle``
#: unless the netlist uses a cell it does not model, then ``icarus``).
ACTIVITY_SIMS = ("auto", "cycle", "icarus")


def measure_activity(cfg: CoreConfig, workdir: Path, netlist: dict, top: str, lib: Path,
                     workloads: Sequence[str], n_vectors: int, progress: Progress,
                     simulator: str = "auto", extra: Sequence[act.Workload] = (),
                     ) -> dict[str, dict[str, Any]]:
    """Simulate the mapped netlist on each workload (the named ones, drawn with
    ``n_vectors`` vectors, then the ``extra`` ones as given); write ``activity_<w>.tcl``.

    Both simulators run the same testbench (:func:`dcim.synth.activity.write_testbench`,
    :class:`dcim.synth.activity.Program`) and give the same toggle rates on every net both
    see (tests/test_synth_flow.py); the cycle-based one also sees the nets without a name in
    the VCD, so it annotates every cell pin.

    Returns per workload: cycles in the window, result packets seen and expected, MACs, the
    idle gap between vectors, annotated pins, the simulator used.

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
    ports = netlist_ports(netlist, top)
    wls = [act.workload(cfg, w, n_vectors) for w in workloads] + list(extra)
    if simulator != "icarus":
        from . import gatesim
        try:
            t0 = time.monotonic()
            nl = gatesim.load(netlist, top, parse_liberty_cells(lib.read_text()))
            progress(f"  cycle-based simulator: {nl.cells:,} cells in {len(nl.levels)} logic "
                     f"levels, {nl.n_nets:,} nets (loaded in {time.monotonic() - t0:.1f} s)")
        except gatesim.Unsupported as exc:
            if simulator == "cycle":
                raise FlowError(f"the cycle-based activity simulator cannot run this netlist: "
                                f"{exc}") from None
            progress(f"  cycle-based simulator not usable ({exc}); using Icarus")
        else:
            return _activity_cycle(cfg, workdir, nl, ports, wls, progress)
    return _activity_icarus(cfg, workdir, netlist, top, lib, ports, wls, progress)


def _summary(wl: act.Workload, cycles: int, seen: int, pins: int, pins_total: int,
             mean: float, simulator: str) -> dict[str, Any]:
    return {"window_cycles": cycles, "vectors": len(wl.vectors), "results_seen": seen,
            "results_expected": wl.results, "gap": wl.gap, "emit_every": wl.emit_every,
            "macs": wl.macs, "pins_annotated": pins, "pins_total": pins_total,
            "mean_toggle_rate": mean, "simulator": simulator}


def _activity_cycle(cfg: CoreConfig, workdir: Path, nl, ports: dict[str, tuple[str, int]],
                    wls: Sequence[act.Workload], progress: Progress,
                    ) -> dict[str, dict[str, Any]]:
    from . import gatesim

    progs = [act.Program(cfg, ports, wl) for wl in wls]
    lanes = [gatesim.Lane(iter(p), p.monitor) for p in progs]
    progress(f"  simulating the netlist on {', '.join(w.name for w in wls)} at once "
             f"({', '.join(str(len(w.vectors)) for w in wls)} vectors)")
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
        results[wl.name] = _summary(
            wl, cycles, prog.results, len(pin_rates), len(nl.pin_nets) + len(nl.const_pins),
            sum(r.activity for r in pin_rates.values()) / max(1, len(pin_rates)), "cycle")
    return results


def _activity_icarus(cfg: CoreConfig, workdir: Path, netlist: dict, top: str, lib: Path,
                     ports: dict[str, tuple[str, int]], wls: Sequence[act.Workload],
                     progress: Progress) -> dict[str, dict[str, Any]]:
    models = cell_models(lib)
    if models is None:
        raise FlowError(f"no Verilog cell models ({lib.with_suffix('.v')}) for the "
                        "gate-level activity simulation")
    if not shutil.which("iverilog"):
        raise FlowError("iverilog not found (Debian package iverilog)")
    mods = netlist["modules"]
    insts = instances(netlist, top)
    # which (scope, net, bit) feeds each cell pin
    pin_net: dict[str, tuple[str, str, int]] = {}
    const_pins: dict[str, act.BitRate] = {}
    for path, mod in insts:
        names = bit_names(mods[mod])
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
    for wl in wls:
        wname = wl.name
        vcd = f"activity_{wname}.vcd"
        tb = act.write_testbench(cfg, ports, wl, workdir, dump=vcd,
                                 scopes=[p for p, _ in insts])
        progress(f"  simulating the netlist on the {wname} workload ({len(wl.vectors)} "
                 "vectors)")
        vvp = workdir / f"tb_{wname}.vvp"
        run(["iverilog", "-g2005", "-o", vvp.name, tb.name, "netlist.v", str(models)],
             workdir, workdir / f"iverilog_{wname}.log", "iverilog", progress)
        out = run(["vvp", "-n", vvp.name], workdir, workdir / f"vvp_{wname}.log", "vvp",
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
        results[wname] = _summary(
            wl, cycles, int(res.group(1)), len(pin_rates), len(pin_net) + len(const_pins),
            sum(r.activity for r in pin_rates.values()) / max(1, len(pin_rates)), "icarus")
    return results

