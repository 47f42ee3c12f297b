"""Run the cocotb regression of a core on Icarus Verilog and/or Verilator.

Generates the Verilog for the configuration (or uses --rtl DIR from `dcim generate`), builds it
once per simulator in its own build directory, runs every test once per seed, and prints a
summary table (config, simulator, tests, transactions, MACs verified, coverage, seconds,
pass/fail). Writes JUnit XML, a functional-coverage report and the table as JSON
(summary.json). On Verilator each seed also randomizes every uninitialized value, and the first
seed is rerun with a second initial-value seed: both runs must give identical outputs. On a
failure it prints the seed and the exact command that reproduces it.

With --vectors DIR it replays, on the core the export names, the layer `dcim calibrate
--export-vectors DIR` wrote (only test_replay runs), every output bit-exact against the export.

Example: dcim regress --rows 64 --cols 32 --sim all --seeds 3
         dcim regress --vectors out/vec_conv3 --sim all
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import random
import threading
import time
from importlib import resources
from pathlib import Path

from ..golden import procgroup
from ..golden.config import CoreConfig
from ..golden.errors import InputError
from ..golden.fileio import check_output_dir, check_output_file, lock_dir
from .build import ARRAY_MODELS, check_array_model, check_generated
from .cli import add_config_args, check_regex, check_seconds, config_from_args
from .regress_report import print_failures, write_reports
from .regress_runs import (SimSummary, build_dir, build_error, build_sim, digests,
                          run_seed)
from .resources import check_memory
from .simulators import SIMULATORS, SimulatorError, check_simulator



def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``dcim regress``."""
    add_config_args(parser)
    add_run_options(parser, Path("build/regress"), "build and run directories",
                    "OUT/<config>/junit.xml")
    parser.add_argument("--seeds", type=int, default=1, metavar="N",
                        help="runs per simulator with seeds SEED..SEED+N-1 (default 1)")
    parser.add_argument("--waves", action="store_true",
                        help="record waves (FST on Icarus, VCD on Verilator) in each run dir")
    parser.add_argument("-j", "--jobs", type=int, default=1, metavar="JOBS",
                        help="simulators run in parallel (default 1)")
    parser.add_argument("--array-model", default=None, metavar="VIEW",
                        help="view of the array: rtl (synthesizable columns), fast (behavioural "
                             "column model) or both (each simulator runs both views; their "
                             "output digests must be identical); default: rtl up to 64x32, "
                             "fast above")
    parser.add_argument("--rtl", type=Path, default=None, metavar="DIR",
                        help="use the Verilog `dcim generate` wrote to DIR instead of generating")
    parser.add_argument("--rtl-edited", action="store_true",
                        help="accept files of --rtl DIR that differ from the digests its "
                             "<name>.json records (Verilog edited on purpose, a mutant)")
    parser.add_argument("--vectors", type=Path, default=None, metavar="DIR",
                        help="replay the layer `dcim calibrate --export-vectors DIR` wrote "
                             "(only test_replay runs; the core comes from DIR/manifest.json)")


def add_run_options(parser: argparse.ArgumentParser, out: Path, out_help: str,
                    junit: str) -> None:
    """Add the options ``dcim regress`` and ``dcim farm`` share: ``--sim``, ``--seed``,
    ``--tests``, ``-o/--out`` (default ``out``), ``--junit`` (default ``junit``) and
    ``--timeout`` (checked by :func:`check_run_options`)."""
    parser.add_argument("--sim", default="all", metavar="SIM",
                        help="icarus, verilator or all (default all)")
    parser.add_argument("--seed", type=int, default=None, metavar="SEED",
                        help="first seed (default: random; printed)")
    parser.add_argument("--tests", default=None, metavar="PATTERN",
                        help="regular expression selecting test names (default: all)")
    parser.add_argument("-o", "--out", "--output", dest="out", type=Path, default=out,
                        metavar="DIR", help=f"{out_help} (default {out})")
    parser.add_argument("--junit", type=Path, default=None, metavar="FILE",
                        help=f"JUnit XML path (default {junit})")
    parser.add_argument("--timeout", type=float, default=1800.0, metavar="SECONDS",
                        help="wall-clock limit of one simulator run (default 1800)")


# --------------------------------------------------------------------------------------------
def config_argv(cfg: CoreConfig) -> list[str]:
    """The ``dcim`` options that rebuild ``cfg`` (its fields that differ from the defaults)."""
    default = CoreConfig()
    out = []
    for name, value in cfg.fields().items():
        if value is None:  # automatic (acc_bits): the default
            continue
        if value != getattr(default, name) or name in ("rows", "cols"):
            text = str(value).lower() if isinstance(value, bool) else str(value)
            out += ["--" + name.replace("_", "-"), text]
    return out


def _vectors_config(args) -> CoreConfig:
    """The configuration of a ``--vectors`` export; config options given too must agree."""
    from ..golden.quant.export import MANIFEST, load_vectors

    if not (args.vectors / MANIFEST).is_file():
        raise InputError(f"--vectors {args.vectors}: no {MANIFEST} (write one with dcim calibrate "
                         "--export-vectors)")
    cfg, _, _ = load_vectors(args.vectors)
    given = CoreConfig.load(args.config).fields() if args.config is not None else {}
    for name in cfg.fields():
        value = getattr(args, "cfg_" + name)
        if value is not None:
            given[name] = value
    have = {**cfg.fields(), "acc_bits": cfg.acc_width}  # an automatic width matches its value
    diff = [f"{k} {v!r} != {given[k]!r}" for k, v in have.items()
            if given.get(k) is not None and given[k] != v]
    if diff:
        raise InputError(f"--vectors {args.vectors} was exported for another core "
                         f"({'; '.join(diff[:3])}); drop the config options or match them")
    return cfg


def config_tag(cfg: CoreConfig) -> str:
    """The run directory of a configuration: its name, size and a hash of its fields and of
    the generator's sources (a changed generator gets new builds)."""
    h = hashlib.sha256(cfg.to_json().encode())
    # the generator's sources and data files, wherever the package is installed
    hdl = [f for f in resources.files("dcim.hdl").iterdir() if f.is_file()]
    for src in sorted((f for f in hdl if f.name.endswith((".py", ".v", ".vlt"))),
                      key=lambda f: f.name):
        h.update(src.read_bytes())
    return f"{cfg.name}_{cfg.rows}x{cfg.cols}_{h.hexdigest()[:10]}"


def _check_rtl(cfg: CoreConfig, rtl: Path, edited: bool = False) -> tuple[Path, Path, str]:
    """The Verilog, register map and array view of a ``dcim generate`` directory for ``cfg``.

    Raises
    ------
    InputError
        A file is missing, the directory's files do not match (an interrupted or mixed
        output: :func:`dcim.sim.build.check_generated`; not checked if ``edited``), or they
        are for another configuration.
    """
    verilog = rtl / f"{cfg.name}.v"
    regs = rtl / f"{cfg.name}_regs.json"
    for p in (verilog, regs):
        if not p.is_file():
            raise InputError(f"--rtl {rtl}: {p.name} not found (run dcim generate -o {rtl} with "
                             "the same configuration)")
    data = check_generated(rtl, cfg, digests=not edited)
    view = data.get("array_model", "rtl")
    if not isinstance(view, str) or view not in ARRAY_MODELS:
        raise InputError(f"{rtl / (cfg.name + '.json')}: array_model must be one of "
                         f"{', '.join(ARRAY_MODELS)}, got {view!r}")
    return verilog, regs, view


def generated_rtl(cfg: CoreConfig, root: Path, say, view: str) -> tuple[Path, Path, str]:
    """The Verilog, register map and view of ``cfg``'s ``view`` under ``root/view/rtl``,
    generated there unless a whole earlier generation is found (:func:`_check_rtl`)."""
    from .build import generate

    rtl = root / view / "rtl"
    try:
        return _check_rtl(cfg, rtl)
    except InputError:  # none yet, or an interrupted one: generate it (whole or not at all)
        pass
    say(f"generating Verilog for {cfg.name} {cfg.rows}x{cfg.cols} ({view} array) ...")
    t0 = time.perf_counter()
    generate(cfg, rtl, array_model=view)
    say(f"generated in {time.perf_counter() - t0:.1f} s")
    return _check_rtl(cfg, rtl)


# --------------------------------------------------------------------------------------------
def _run_sim(summ: SimSummary, cfg: CoreConfig, verilog: Path, regs: Path, core_json: Path,
             root: Path, seeds: list[int], args, say) -> SimSummary:
    """Build and run every seed of one simulator and view into ``summ`` (filled as the runs
    finish, so that what finished is there when a Ctrl-C or SIGTERM stops the run: then the
    run that was killed is left out and ``summ.interrupted`` set)."""
    try:
        return _run_seeds(summ, cfg, verilog, regs, core_json, root, seeds, args, say)
    except procgroup.Stopped:  # a Ctrl-C or SIGTERM: no new simulator starts
        summ.interrupted = True
        return summ


def _run_seeds(summ: SimSummary, cfg: CoreConfig, verilog: Path, regs: Path, core_json: Path,
               root: Path, seeds: list[int], args, say) -> SimSummary:
    sim, view = summ.sim, summ.view
    bdir = build_dir(root, sim, view, args.waves)
    tag = f"{sim}/{view}"
    try:
        summ.build_s = build_sim(sim, verilog, cfg.name, bdir, waves=args.waves,
                                 timeout=args.timeout)
    except SimulatorError as exc:
        err = build_error(exc)
        if err is None:
            summ.interrupted = True
        else:
            summ.errors.append(err)
        return summ
    say(f"[{tag}] built in {summ.build_s:.1f} s")
    for i, seed in enumerate(seeds):
        run = run_seed(sim, cfg.name, bdir, seed, core_json=core_json, regs=regs,
                       tests=args.tests, waves=args.waves, timeout=args.timeout,
                       replay=args.vectors, check_init=i == 0,
                       progress=lambda msg, s=seed: say(f"[{tag}] seed {s}: {msg}"))
        if run is None:
            summ.interrupted = True
            return summ
        r = run.result
        summ.runs.append((seed, r))
        state = "ok" if r.ok else "FAILED"
        say(f"[{tag}] seed {seed} ({i + 1}/{len(seeds)}): {r.tests} tests, {r.failed} failed, "
            f"{r.seconds:.1f} s {state}")
        rep = r.stats.get("tests", {}).get("test_replay")
        if rep:
            say(f"[{tag}] seed {seed}: replayed layer {rep['layer']}: {rep['tiles']} tile(s), "
                f"{rep['outputs']} outputs bit-exact ({rep['schedule']}, {rep['compared']} "
                "result packets)")
        if run.error:
            summ.errors.append(run.error)
        elif sim == "verilator" and i == 0 and r.ok:
            say(f"[{tag}] seed {seed}: identical outputs under two random init seeds")
    return summ


def _views(option: str | None, cfg: CoreConfig) -> list[str]:
    """The array views ``--array-model`` selects (``both`` is every view)."""
    if option == "both":
        return list(ARRAY_MODELS)
    try:
        return [check_array_model(option, cfg)]
    except ValueError:
        raise InputError(f"--array-model must be one of {', '.join(ARRAY_MODELS)} or both, "
                         f"got {option!r}") from None


def _compare_views(summaries: list[SimSummary], say) -> None:
    """Every view must give the same output digests as the first one, per simulator, seed and
    test; a difference (or a test one view lacks) is an error of the later view."""
    first: dict[str, SimSummary] = {}
    for s in summaries:
        ref = first.setdefault(s.sim, s)
        if ref is s:
            continue
        compared = 0
        for (seed, r), (seed0, r0) in zip(s.runs, ref.runs):
            d, d0 = digests(r), digests(r0)
            diff = sorted(k for k in set(d) | set(d0) if d.get(k) != d0.get(k))
            compared += len(d0)
            s.compared = (ref.view, compared)
            if diff:
                s.errors.append(f"seed {seed}: the {s.view} array gave other outputs than the "
                                f"{ref.view} array in {', '.join(diff[:3])}")
        if compared == 0:
            s.errors.append(f"no test outputs to compare between the {ref.view} and {s.view} "
                            "arrays")
        elif not s.errors:
            say(f"[{s.sim}] {s.view} and {ref.view} arrays: identical outputs in {compared} "
                "test run(s)")


def _check_args(args) -> tuple[CoreConfig, list[str], list[str]]:
    """Every option checked before any work: ``(cfg, simulators, views)``."""
    if args.vectors is not None:
        if args.tests is not None:
            raise InputError("--tests cannot be combined with --vectors (only test_replay runs)")
        cfg = _vectors_config(args)
        args.tests = "test_replay$"
    else:
        cfg = config_from_args(args)
    sims = check_run_options(args.sim, args.timeout, args.tests)
    if args.rtl_edited and args.rtl is None:
        raise InputError("--rtl-edited needs --rtl DIR")
    if args.rtl is not None and args.array_model is not None:
        raise InputError("--array-model cannot be combined with --rtl (the view is the one "
                         "dcim generate wrote to DIR)")
    views = _views(args.array_model, cfg)
    if not 1 <= args.seeds <= 1000:
        raise InputError(f"--seeds must be in [1, 1000], got {args.seeds}")
    if not 1 <= args.jobs <= 64:
        raise InputError(f"--jobs must be in [1, 64], got {args.jobs}")
    check_output_dir("--out", args.out)
    check_output_file("--junit", args.junit, parents=True)
    for sim in sims:
        check_simulator(sim)
    return cfg, sims, views


def check_run_options(sim: str, timeout: float, tests: str | None) -> list[str]:
    """The simulators ``--sim`` names (``all``: every one), with ``--timeout`` and ``--tests``
    checked (``dcim regress`` and ``dcim farm``).

    Raises
    ------
    InputError
        An unknown simulator, a timeout that is not finite and > 0, or a pattern that is not
        a regular expression.
    """
    if sim == "all":
        sims = list(SIMULATORS)
    elif sim in SIMULATORS:
        sims = [sim]
    else:
        raise InputError(f"--sim must be one of {', '.join(SIMULATORS)} or all, got {sim!r}")
    check_seconds("--timeout", timeout)
    check_regex("--tests", tests)
    return sims


def run(args: argparse.Namespace) -> int:
    """Run the regression; 0 when everything passed, 1 on a failure.

    A Ctrl-C or SIGTERM kills every simulator, writes the reports of the runs that finished
    (marked interrupted), then ends the run (exit 130, or 143 for SIGTERM). Two regressions
    into one ``--out`` are refused (:func:`dcim.golden.fileio.lock_dir`).
    """
    cfg, sims, views = _check_args(args)
    base = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1 << 30)
    seeds = [base + i for i in range(args.seeds)]
    lock = threading.Lock()

    def say(msg: str) -> None:
        with lock:
            print(msg, flush=True)

    rtl_source = (_check_rtl(cfg, args.rtl.resolve(), args.rtl_edited)
                  if args.rtl is not None else None)
    for view in [rtl_source[2]] if rtl_source else views:
        for sim in sims:
            try:
                check_memory(sim, view, cfg, hint="use --array-model fast" if view == "rtl"
                             else "choose a smaller array")
            except MemoryError as exc:
                raise InputError(str(exc)) from None
    with lock_dir(args.out, "--out"):
        root = args.out.resolve() / config_tag(cfg)
        root.mkdir(parents=True, exist_ok=True)
        if rtl_source is not None:
            sources = [rtl_source]
        else:
            sources = [generated_rtl(cfg, root, say, view) for view in views]
        core_json = root / "core.json"
        cfg.save(core_json)
        say(f"regression of {cfg.name} {cfg.rows}x{cfg.cols} on {', '.join(sims)}, "
            f"{' and '.join(v for _, _, v in sources)} array, seeds {seeds[0]}..{seeds[-1]} "
            f"(dir {root})")
        t0 = time.perf_counter()
        summaries = [SimSummary(sim, view) for _, _, view in sources for sim in sims]
        todo = [(s, v, r) for (v, r, view) in sources for s in summaries if s.view == view]
        stop: BaseException | None = None
        try:
            # a Ctrl-C or SIGTERM reaches this (main) thread only: the guard kills every
            # simulator of the workers (inside the pool's block: the pool's exit waits for its
            # threads, which start no new simulator once it did)
            with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool, \
                    procgroup.guard():
                futures = [pool.submit(_run_sim, s, cfg, verilog, regs, core_json, root, seeds,
                                       args, say) for s, verilog, regs in todo]
                for f in futures:
                    f.result()
        except (KeyboardInterrupt, procgroup.Terminated) as exc:
            stop = exc
            for s in summaries:
                s.interrupted = s.interrupted or len(s.runs) < len(seeds)
            say("interrupted: killed every simulator; writing the reports of the runs that "
                "finished")
        wall = time.perf_counter() - t0
        if stop is None:
            _compare_views(summaries, say)
        ok = write_reports(cfg, summaries, sims, seeds, root, args, wall)
        if not ok:
            print_failures(cfg, summaries, args, config_argv(cfg))
    if stop is not None:
        raise stop
    return 0 if ok else 1
