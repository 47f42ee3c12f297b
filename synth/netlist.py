"""The hierarchical Yosys JSON netlist: area and cell counts per block, the module instances,
net names and the top module's ports."""

from __future__ import annotations

import fnmatch
import json
import subprocess
from pathlib import Path
from typing import Any

from .tools import FlowError, yosys_cmd

__all__ = ["ARRAY_INSTANCE", "BLOCKS", "BLOCK_PATHS", "CELLS_INSTANCE", "bit_names",
           "block_areas", "block_of", "block_paths_tcl", "instances", "ports", "read_ports"]

#: The core's submodules reported on their own (the contract's names), then the top's glue.
BLOCKS = ("weights", "compute", "accum", "dpu", "ctrl")


#: The top-level instance of the array, and the instance name of each column's weight cells.
ARRAY_INSTANCE, CELLS_INSTANCE = "array", "cells"
#: OpenSTA instance-path patterns of each block, ``(include, exclude)`` (``-``: nothing).
BLOCK_PATHS = {"weights": (f"{ARRAY_INSTANCE}/*/{CELLS_INSTANCE}/*", "-"),
               "compute": (f"{ARRAY_INSTANCE}/*", f"{ARRAY_INSTANCE}/*/{CELLS_INSTANCE}/*"),
               "accum": ("accum/*", "-"), "dpu": ("dpu/*", "-"), "ctrl": ("ctrl/*", "-")}


def block_of(instance: str) -> str:
    """The block (:data:`BLOCKS`) of the leaf cell at OpenSTA path ``instance`` by
    :data:`BLOCK_PATHS` (the patterns ``sta.tcl`` matches with Tcl's ``string match``);
    ``glue`` when none matches."""
    for b in BLOCKS:
        inc, exc = BLOCK_PATHS[b]
        if fnmatch.fnmatchcase(instance, inc) and (exc == "-" or
                                                   not fnmatch.fnmatchcase(instance, exc)):
            return b
    return "glue"


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
    mods = netlist["modules"]
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



def instances(netlist: dict, top: str) -> list[tuple[str, str]]:
    """``[(path, module)]`` of every module instance below ``top`` (path "" is the top)."""
    mods = netlist["modules"]
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


def bit_names(mod: dict) -> dict[int, tuple[str, int]]:
    """Net bit id -> (net name, bit index), preferring short public names."""
    names: dict[int, tuple[str, int]] = {}
    for name, net in sorted(mod["netnames"].items(), key=lambda kv: (kv[1]["hide_name"],
                                                                     len(kv[0]))):
        off = net.get("offset", 0)
        for i, b in enumerate(net["bits"]):
            if isinstance(b, int) and b not in names:
                names[b] = (name, i + off)
    return names



def ports(netlist: dict, top: str) -> dict[str, tuple[str, int]]:
    """Return ``{port: (direction, width)}`` of module ``top`` of a Yosys JSON netlist.

    Names are as Yosys keeps them (an escaped Verilog identifier without its backslash),
    in the module's port order; direction is ``"input"``, ``"output"`` or ``"inout"``.

    Raises
    ------
    ValueError
        Module ``top`` is not in the netlist.
    """
    mod = netlist["modules"].get(top)
    if mod is None:
        raise ValueError(f"module {top!r} not found in the netlist")
    return {name: (p["direction"], len(p["bits"])) for name, p in mod["ports"].items()}


def read_ports(verilog: Path, top: str) -> dict[str, tuple[str, int]]:
    """:func:`ports` of module ``top`` of the Verilog file ``verilog``, as Yosys reads it.

    Yosys reads the file's module interfaces only (``read_verilog -lib``, under a second for
    the generated core) and writes them as JSON.

    Raises
    ------
    ValueError
        Module ``top`` is not in the file.
    FlowError
        Yosys cannot be found or cannot read the file.
    """
    verilog = Path(verilog).resolve()
    # run in the file's directory: the WebAssembly Yosys sees only the working directory
    proc = subprocess.run(yosys_cmd() + ["-q", "-p", f'read_verilog -lib "{verilog.name}"; '
                                         "write_json -"],
                          cwd=verilog.parent, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise FlowError(f"yosys cannot read {verilog}: {proc.stderr.strip()[-400:]}")
    return ports(json.loads(proc.stdout), top)
