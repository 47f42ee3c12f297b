"""Mutation score of the cocotb regression: Yosys mutants of the generated core, each run
through the regression.

Generates the core's Verilog (the rtl array view, as `dcim generate` writes it, in OUT/rtl),
lets Yosys pick N mutations of it (mcy's way: `prep`, then `mutate -list N -seed S`), writes
each mutant's Verilog with `write_verilog` into a copy of that directory (OUT/mutants/mNNNN/rtl)
and runs it through the regression on one simulator with seed S, stopping at the first failing
test. First the unmutated design, printed the same way, must pass (the control). A mutant is
killed (a test failed), timeout (killed: over --timeout), survived (every test passed),
equivalent (it passed and Yosys proves it equivalent to the design: set apart) or error (the
flow failed). Score = killed / (killed + survived), timeouts counted as killed. Writes
OUT/mutation.json and OUT/mutation.md and prints the table and the survivors by source
location (the `-src` of the mutation: file:line.col in OUT/rtl/<name>.v). Mutants run in
parallel with -j, every tool in its own process group; Ctrl-C kills them all.

Example: dcim mutate --rows 8 --cols 4 -n 200 -j 2 -o out/mutate8x4
"""

from __future__ import annotations

import argparse
import concurrent.futures
import shutil
import threading
import time
from pathlib import Path

from ..golden import procgroup
from ..golden.checks import check_int
from ..golden.errors import InputError
from ..golden.fileio import check_output_dir, lock_dir
from .build import check_generated, generate
from .cli import add_config_args, check_regex, check_seconds, config_from_args
from .cmd_regress import config_argv
from .mutate_report import write_report
from .mutation import MutantResult, Run, list_mutations, run_mutant
from .resources import check_memory
from .simulators import SIMULATORS, check_simulator

#: Wall-clock limit of the control's build and run (seconds) when --timeout is not given.
CONTROL_TIMEOUT = 1800.0


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``dcim mutate``."""
    add_config_args(parser)
    parser.add_argument("--sim", default="icarus", metavar="SIM",
                        help=f"simulator: {' or '.join(SIMULATORS)} (default icarus)")
    parser.add_argument("-n", "--mutants", type=int, default=200, metavar="N",
                        help="mutations Yosys picks (default 200)")
    parser.add_argument("--seed", type=int, default=1, metavar="S",
                        help="seed of mutate -list and of the regression (default 1)")
    parser.add_argument("--tests", default=None, metavar="PATTERN",
                        help="regular expression selecting the regression's tests (default all)")
    parser.add_argument("-j", "--jobs", type=int, default=1, metavar="J",
                        help="mutants run in parallel (default 1)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="wall-clock limit of one mutant's build and of its run; over it "
                             "the mutant counts as killed (timeout) (default: 10 x the "
                             "control's run, at least 60)")
    parser.add_argument("--equiv-timeout", type=float, default=300.0, metavar="SECONDS",
                        help="wall-clock limit of the equivalence check of a survivor "
                             "(default 300; over it the mutant stays a survivor)")
    parser.add_argument("-o", "--out", "--output", dest="out", type=Path,
                        default=Path("build/mutate"), metavar="DIR",
                        help="output directory (default build/mutate)")


def _check_args(args):
    cfg = config_from_args(args)
    if args.sim not in SIMULATORS:
        raise InputError(f"--sim must be one of {', '.join(SIMULATORS)}, got {args.sim!r}")
    check_int("-n", args.mutants, 1, 100_000)
    check_int("--seed", args.seed, 0, (1 << 31) - 1)
    check_int("-j", args.jobs, 1, 64)
    check_seconds("--timeout", args.timeout)
    check_seconds("--equiv-timeout", args.equiv_timeout)
    check_regex("--tests", args.tests)
    check_output_dir("-o", args.out)
    check_simulator(args.sim)
    try:
        check_memory(args.sim, "rtl", cfg, hint="choose a smaller array")
    except MemoryError as exc:
        raise InputError(str(exc)) from None
    return cfg


def _design(cfg, root: Path, say) -> Path:
    """``root/rtl``: the rtl view of ``cfg`` as ``dcim generate`` writes it (kept if whole)."""
    rtl = root / "rtl"
    try:
        if check_generated(rtl, cfg).get("array_model") == "rtl":
            return rtl
    except InputError:  # none yet, another configuration or an interrupted one
        pass
    say(f"generating Verilog for {cfg.name} {cfg.rows}x{cfg.cols} (rtl array) ...")
    generate(cfg, rtl, array_model="rtl")
    return rtl


def run(args: argparse.Namespace) -> int:
    """Run the mutants and write the report; 0 when every mutant ran, 1 when the control
    failed or a mutant ended in an error of the flow.

    A Ctrl-C or SIGTERM kills every tool, writes the report of the mutants that finished
    (``interrupted``), then ends the run. Two runs into one ``-o`` are refused.
    """
    cfg = _check_args(args)
    lock = threading.Lock()

    def say(msg: str) -> None:
        with lock:
            print(msg, flush=True)

    with lock_dir(args.out, "dcim mutate -o"):
        root = args.out.resolve()
        shutil.rmtree(root / "mutants", ignore_errors=True)  # an earlier run's mutants
        t0 = time.perf_counter()
        rtl = _design(cfg, root, say)
        mutations = list_mutations(root, f"rtl/{cfg.name}.v", cfg.name, args.mutants, args.seed)
        say(f"yosys picked {len(mutations)} mutation(s) (seed {args.seed}) in "
            f"{time.perf_counter() - t0:.1f} s")
        cfg.save(root / "core.json")
        ctx = Run(cfg, root, rtl, args.sim, args.seed, args.tests,
                  args.timeout or CONTROL_TIMEOUT, args.equiv_timeout, root / "core.json")
        with procgroup.guard():
            control = run_mutant(ctx, None)
        if control.status != "survived":
            say(f"the unmutated design ({root / 'mutants/control'}) does not pass the "
                f"regression: {control.detail}; no mutant is run")
            return 1
        if args.timeout is None:
            ctx.timeout = max(60.0, 10 * control.sim_seconds)
        say(f"control (no mutation) passed in {control.sim_seconds:.1f} s; {len(mutations)} "
            f"mutant(s), -j {args.jobs}, limit {ctx.timeout:.0f} s each")
        t1 = time.perf_counter()
        results, stop = _run_all(ctx, mutations, args.jobs, say)
        wall = time.perf_counter() - t1
        info = {"sim": args.sim, "seed": args.seed, "tests": args.tests,
                "requested": args.mutants, "jobs": args.jobs, "wall_s": round(wall, 1),
                "setup_s": round(t1 - t0, 1),
                "control_s": round(control.sim_seconds, 2), "timeout_s": ctx.timeout,
                "interrupted": stop is not None}
        reproduce = [*config_argv(cfg), "--sim", args.sim, "--seed", str(args.seed),
                     "--seeds", "1"] + (["--tests", args.tests] if args.tests else [])
        data = write_report(cfg, root, mutations, results, info, reproduce)
    if stop is not None:
        raise stop
    return 1 if data["counts"]["error"] else 0


def _run_all(ctx: Run, mutations, jobs: int, say):
    """Run every mutant, ``jobs`` at a time; ``(results, stop)``: ``stop`` is the Ctrl-C or
    SIGTERM that ended the run early (the results then hold the mutants that finished)."""
    results: list[MutantResult] = []
    stop: BaseException | None = None
    n = len(mutations)
    try:
        # the guard inside the pool's block: its exit waits for threads that start nothing new
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool, procgroup.guard():
            futures = {pool.submit(run_mutant, ctx, m): m for m in mutations}
            for f in concurrent.futures.as_completed(futures):
                r = f.result()
                results.append(r)
                if not r.interrupted:
                    m = futures[f]
                    say(f"[{len(results)}/{n}] m{m.index:04d} {r.status:10s} {r.seconds:5.1f} s "
                        f"{m.src}  {r.detail[:70]}")
    except (KeyboardInterrupt, procgroup.Terminated) as exc:
        stop = exc
        say("interrupted: killed every tool; writing the report of the mutants that finished")
    return sorted(results, key=lambda r: r.index), stop
