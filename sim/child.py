"""The child process of a simulator run: one :mod:`cocotb_tools.runner` build or test.

:mod:`dcim.sim.runner` starts ``python -m dcim.sim.child build|test ...`` under
:func:`dcim.sim.supervise.run_child`, so that a hung or crashed simulator is killed with its
whole process group and its output goes to a file. Everything here uses cocotb's public runner
API (``get_runner``, ``build(sources=..., build_args=...)``, ``test(...)``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .build import SIM_ARGS, WAIVERS
from .simulators import SIMULATORS

__all__ = ["TEST_MODULES", "TIMESCALE", "main", "verilator_public_ports"]

#: The cocotb test modules, run in this order.
TEST_MODULES = ("dcim.verif.test_core", "dcim.verif.test_perf", "dcim.verif.test_swaps",
                "dcim.verif.test_dpu")
#: Timescale of every build: Amaranth's Verilog has none, and cocotb's clock needs ps precision.
TIMESCALE = ("1ns", "1ps")


def verilator_public_ports(top: str, verilog: Path, build_dir: Path) -> tuple[list[str], Path]:
    """Build arguments and a control file that make only the top-level ports of ``top``
    visible to cocotb instead of every signal.

    cocotb's Verilator runner always passes ``--public-flat-rw``, which keeps every internal
    signal as a VPI-writable variable and stops Verilator from optimizing them away; it has no
    option to leave that flag out. Verilator takes the last of ``--public-flat-rw`` and
    ``--no-public-flat-rw``, and cocotb puts ``build_args`` after its own flags, so the returned
    ``--no-public-flat-rw`` turns it off again, and the control file (a build source) marks just
    the ports, by name. (A pattern such as ``-var "*"`` also marks the top module's internal
    nets; Verilator must then assume VPI may write them at any time and re-evaluates all logic
    they feed, the array's column sums included, on every evaluation of the design.) The ports
    are read by Yosys (:func:`dcim.synth.netlist.read_ports`, the Verilog's module interfaces);
    if they cannot be read, every variable of ``top`` is marked.

    Returns
    -------
    (list of str, Path)
        The extra build arguments and the control file written to ``build_dir``.
    """
    from ..synth.netlist import read_ports
    from ..synth.tools import FlowError

    build_dir.mkdir(parents=True, exist_ok=True)
    vlt = build_dir / "dcim_public.vlt"
    try:
        ports = list(read_ports(verilog, top)) or ["*"]
    except (ValueError, FlowError):  # no such module, or Yosys cannot read it (the build says)
        ports = ["*"]
    vlt.write_text("`verilator_config\n" + "".join(
        f'public_flat_rw -module "{top}" -var "{p}"\n' for p in ports))
    return ["--no-public-flat-rw"], vlt


def _build(ns: argparse.Namespace) -> int:
    from cocotb_tools.runner import VerilatorControlFile, get_runner

    build_dir = Path(ns.build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    # What the generated Verilog needs (the same flags `dcim generate` writes to <name>.json),
    # then the testbench's own choices.
    build_args = [a.format(vlt=WAIVERS) for a in SIM_ARGS[ns.sim]]
    sources: list = [ns.verilog]
    waves = ns.waves
    if ns.sim == "verilator":
        build_args += ["--x-assign", "unique", "--x-initial", "unique"]
        if ns.waves:
            build_args.append("--trace-structs")
        args, vlt = verilator_public_ports(ns.top, Path(ns.verilog), build_dir)
        build_args += args
        sources.append(VerilatorControlFile(vlt))
    elif ns.waves:
        # cocotb's own Icarus dump module needs SystemVerilog `string`; this one is
        # Verilog-2005 and dumps into the run directory (the simulator's working directory).
        dump = build_dir / "dcim_waves.v"
        dump.write_text("module dcim_waves;\ninitial begin\n  $dumpfile(\"waves.fst\");\n"
                        f"  $dumpvars(0, {ns.top});\nend\nendmodule\n")
        sources.append(dump)
        build_args += ["-s", "dcim_waves"]
        waves = False
    get_runner(ns.sim).build(sources=sources, hdl_toplevel=ns.top, build_dir=build_dir,
                             build_args=build_args, timescale=TIMESCALE, waves=waves,
                             log_file=ns.log)
    return 0


def _test(ns: argparse.Namespace) -> int:
    from cocotb_tools.runner import get_runner

    plusargs = []
    if ns.sim == "verilator" and ns.init_seed is not None:
        plusargs = [f"+verilator+seed+{ns.init_seed}", "+verilator+rand+reset+2"]
    get_runner(ns.sim).test(
        test_module=list(TEST_MODULES), hdl_toplevel=ns.top, hdl_toplevel_lang="verilog",
        build_dir=ns.build_dir, test_dir=ns.test_dir, seed=ns.seed, test_filter=ns.tests,
        waves=ns.waves, plusargs=plusargs, results_xml=str(ns.results), log_file=ns.log,
        timescale=TIMESCALE)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (the options :mod:`dcim.sim.runner` passes) and run one build or test.

    Returns 0, or the runner's exit code (1 if it had none) with one line on stderr when
    cocotb's runner raised RuntimeError or SystemExit (a failed build, a missing simulator).
    """
    parser = argparse.ArgumentParser(prog="python -m dcim.sim.child")
    parser.add_argument("action", choices=("build", "test"))
    parser.add_argument("--sim", required=True, choices=SIMULATORS)
    parser.add_argument("--top", required=True)
    parser.add_argument("--verilog", type=Path)
    parser.add_argument("--build-dir", type=Path, required=True)
    parser.add_argument("--test-dir", type=Path)
    parser.add_argument("--log", type=Path)
    parser.add_argument("--results", type=Path)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--tests")
    parser.add_argument("--waves", action="store_true")
    parser.add_argument("--init-seed", type=int)
    ns = parser.parse_args(argv)
    try:
        return _build(ns) if ns.action == "build" else _test(ns)
    except (RuntimeError, SystemExit) as exc:
        code = exc.code if isinstance(exc, SystemExit) else 1
        print(f"{ns.action} failed: {exc}", file=sys.stderr)
        return int(code or 1) if isinstance(code, int) else 1


if __name__ == "__main__":
    sys.exit(main())
