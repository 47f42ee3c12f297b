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
import json
import random
import re
import shlex
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..golden import procgroup
from ..golden.config import CoreConfig
from ..golden.errors import InputError
from ..golden.fileio import write_atomic
from ..golden.table import table
from .cli import add_config_args, config_from_args
from .junit import write_junit
from .build import ARRAY_MODELS, check_array_model
from .resources import check_memory
from .runner import RunResult, build, run_tests
from .simulators import SIMULATORS, SimulatorError, check_simulator



def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``dcim regress``."""
    add_config_args(parser)
    parser.add_argument("--sim", default="all", metavar="SIM",
                        help="icarus, verilator or all (default all)")
    parser.add_argument("--seeds", type=int, default=1, metavar="N",
                        help="runs per simulator with seeds SEED..SEED+N-1 (default 1)")
    parser.add_argument("--seed", type=int, default=None, metavar="SEED",
                        help="first seed (default: random; printed)")
    parser.add_argument("--tests", default=None, metavar="PATTERN",
                        help="regular expression selecting test names (default: all)")
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
    parser.add_argument("-o", "--out", "--output", dest="out", type=Path,
                        default=Path("build/regress"), metavar="DIR",
                        help="build and run directories (default build/regress)")
    parser.add_argument("--junit", type=Path, default=None, metavar="FILE",
                        help="JUnit XML path (default OUT/<config>/junit.xml)")
    parser.add_argument("--timeout", type=float, default=1800.0, metavar="SECONDS",
                        help="wall-clock limit of one simulator run (default 1800)")
    parser.add_argument("--vectors", type=Path, default=None, metavar="DIR",
                        help="replay the layer `dcim calibrate --export-vectors DIR` wrote "
                             "(only test_replay runs; the core comes from DIR/manifest.json)")


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


def _tag(cfg: CoreConfig) -> str:
    h = hashlib.sha256(cfg.to_json().encode())
    # the generator's sources and data files, wherever the package is installed
    hdl = [f for f in resources.files("dcim.hdl").iterdir() if f.is_file()]
    for src in sorted((f for f in hdl if f.name.endswith((".py", ".v", ".vlt"))),
                      key=lambda f: f.name):
        h.update(src.read_bytes())
    return f"{cfg.name}_{cfg.rows}x{cfg.cols}_{h.hexdigest()[:10]}"


def _check_rtl(cfg: CoreConfig, rtl: Path) -> tuple[Path, Path, str]:
    verilog = rtl / f"{cfg.name}.v"
    info = rtl / f"{cfg.name}.json"
    regs = rtl / f"{cfg.name}_regs.json"
    for p in (verilog, info, regs):
        if not p.is_file():
            raise InputError(f"--rtl {rtl}: {p.name} not found (run dcim generate -o {rtl} with "
                             "the same configuration)")
    try:
        data = json.loads(info.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{info}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{info}: not a JSON object")
    fields = {k: v for k, v in data.items() if k in cfg.fields()}
    view = data.get("array_model", "rtl")
    if view not in ARRAY_MODELS:
        raise InputError(f"{info}: array_model must be one of {', '.join(ARRAY_MODELS)}, "
                         f"got {view!r}")
    diff = [f"{k} {fields.get(k)!r} != {v!r}" for k, v in cfg.fields().items()
            if fields.get(k) != v]
    if diff:
        raise InputError(f"stale Verilog: {verilog} was generated for another configuration "
                         f"({'; '.join(diff[:3])}); rerun dcim generate")
    return verilog, regs, view


def _generate(cfg: CoreConfig, root: Path, say, view: str) -> tuple[Path, Path, str]:
    from .build import generate

    rtl = root / view / "rtl"
    stamp = rtl / "done"
    if not stamp.exists():
        say(f"generating Verilog for {cfg.name} {cfg.rows}x{cfg.cols} ({view} array) ...")
        t0 = time.perf_counter()
        generate(cfg, rtl, array_model=view)
        stamp.write_text("ok\n")
        say(f"generated in {time.perf_counter() - t0:.1f} s")
    return _check_rtl(cfg, rtl)


# --------------------------------------------------------------------------------------------
@dataclass
class SimSummary:
    """Results of one simulator on one configuration."""

    sim: str
    view: str = "rtl"
    build_s: float = 0.0
    runs: list[tuple[int, RunResult]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: The view this one's output digests were compared with, and how many were compared.
    compared: tuple[str, int] | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.runs) and all(r.ok for _, r in self.runs)

    @property
    def seconds(self) -> float:
        return self.build_s + sum(r.seconds for _, r in self.runs)

    def totals(self) -> tuple[int, int, int]:
        tests = sum(r.tests for _, r in self.runs)
        trans = macs = 0
        for _, r in self.runs:
            for t in r.stats.get("tests", {}).values():
                trans += t.get("compared", 0) + t.get("checks", 0)
                macs += t.get("macs", 0)
        return tests, trans, macs


def _digests(r: RunResult) -> dict[str, str]:
    return {k: v["digest"] for k, v in r.stats.get("tests", {}).items()}


def _run_sim(sim: str, view: str, cfg: CoreConfig, verilog: Path, regs: Path, core_json: Path,
             root: Path, seeds: list[int], args, say) -> SimSummary:
    summ = SimSummary(sim, view)
    bdir = root / view / (sim + ("_waves" if args.waves else ""))
    tag = f"{sim}/{view}"
    try:
        summ.build_s = build(sim, verilog, cfg.name, bdir / "build", waves=args.waves,
                             timeout=args.timeout)
    except SimulatorError as exc:
        summ.errors.append(str(exc))
        return summ
    say(f"[{tag}] built in {summ.build_s:.1f} s")
    for i, seed in enumerate(seeds):
        init = (seed * 2654435761) % (1 << 31) if sim == "verilator" else None
        r = run_tests(sim, cfg.name, bdir / "build", bdir / f"seed{seed}",
                      config_json=core_json, regmap_json=regs, seed=seed, tests=args.tests,
                      waves=args.waves, init_seed=init, timeout=args.timeout,
                      progress=lambda msg, s=seed: say(f"[{tag}] seed {s}: {msg}"),
                      replay=args.vectors)
        summ.runs.append((seed, r))
        state = "ok" if r.ok else "FAILED"
        say(f"[{tag}] seed {seed} ({i + 1}/{len(seeds)}): {r.tests} tests, {r.failed} failed, "
            f"{r.seconds:.1f} s {state}")
        rep = r.stats.get("tests", {}).get("test_replay")
        if rep:
            say(f"[{tag}] seed {seed}: replayed layer {rep['layer']}: {rep['tiles']} tile(s), "
                f"{rep['outputs']} outputs bit-exact ({rep['schedule']}, {rep['compared']} "
                "result packets)")
        if sim == "verilator" and i == 0 and r.ok:
            r2 = run_tests(sim, cfg.name, bdir / "build", bdir / f"seed{seed}_init2",
                           config_json=core_json, regmap_json=regs, seed=seed,
                           tests=args.tests, init_seed=init + 1, timeout=args.timeout,
                           replay=args.vectors)
            d1, d2 = _digests(r), _digests(r2)
            diff = sorted(k for k in d1 if d2.get(k) != d1[k])
            if not r2.ok or diff:
                summ.errors.append(f"seed {seed}: a second random initial-value seed gave "
                                   f"different outputs in {', '.join(diff[:3]) or 'the run'} "
                                   f"(log: {r2.log})")
            else:
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
            d, d0 = _digests(r), _digests(r0)
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


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def run(args: argparse.Namespace) -> int:
    """Run the regression; 0 when everything passed, 1 on a failure."""
    from ..verif.coverage import load_testplan, merge, report, summary

    if args.vectors is not None:
        if args.tests is not None:
            raise InputError("--tests cannot be combined with --vectors (only test_replay runs)")
        cfg = _vectors_config(args)
        args.tests = "test_replay$"
    else:
        cfg = config_from_args(args)
    if args.sim == "all":
        sims = list(SIMULATORS)
    elif args.sim in SIMULATORS:
        sims = [args.sim]
    else:
        raise InputError(f"--sim must be one of {', '.join(SIMULATORS)} or all, got {args.sim!r}")
    if args.rtl is not None and args.array_model is not None:
        raise InputError("--array-model cannot be combined with --rtl (the view is the one "
                         "dcim generate wrote to DIR)")
    views = _views(args.array_model, cfg)
    if not 1 <= args.seeds <= 1000:
        raise InputError(f"--seeds must be in [1, 1000], got {args.seeds}")
    if not 1 <= args.jobs <= 64:
        raise InputError(f"--jobs must be in [1, 64], got {args.jobs}")
    if args.tests is not None:
        try:
            re.compile(args.tests)
        except re.error as exc:
            raise InputError(f"--tests is not a valid regular expression: {exc}") from None
    for sim in sims:
        check_simulator(sim)
    base = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1 << 30)
    seeds = [base + i for i in range(args.seeds)]
    lock = threading.Lock()

    def say(msg: str) -> None:
        with lock:
            print(msg, flush=True)

    rtl_source = _check_rtl(cfg, args.rtl.resolve()) if args.rtl is not None else None
    for view in [rtl_source[2]] if rtl_source else views:
        for sim in sims:
            try:
                check_memory(sim, view, cfg, hint="use --array-model fast" if view == "rtl"
                             else "choose a smaller array")
            except MemoryError as exc:
                raise InputError(str(exc)) from None
    root = args.out.resolve() / _tag(cfg)
    root.mkdir(parents=True, exist_ok=True)
    if rtl_source is not None:
        sources = [rtl_source]
    else:
        sources = [_generate(cfg, root, say, view) for view in views]
    core_json = root / "core.json"
    cfg.save(core_json)
    say(f"regression of {cfg.name} {cfg.rows}x{cfg.cols} on {', '.join(sims)}, "
        f"{' and '.join(v for _, _, v in sources)} array, seeds {seeds[0]}..{seeds[-1]} "
        f"(dir {root})")
    t0 = time.perf_counter()
    # a Ctrl-C or SIGTERM reaches this (main) thread only: the guard kills every simulator of
    # the workers (inside the pool's block: the pool's exit waits for its threads)
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool, procgroup.guard():
        futures = [pool.submit(_run_sim, sim, view, cfg, verilog, regs, core_json, root, seeds,
                               args, say) for verilog, regs, view in sources for sim in sims]
        summaries = [f.result() for f in futures]
    wall = time.perf_counter() - t0
    _compare_views(summaries, say)

    plan = load_testplan()
    label = f"{cfg.rows}x{cfg.cols}"
    rows = []
    records = []
    all_hits = []
    for s in summaries:
        hits = merge(r.stats.get("coverage", {}) for _, r in s.runs)
        all_hits.append(hits)
        hit, total = summary(plan, cfg.fields(), hits)
        tests, trans, macs = s.totals()
        rows.append([f"{cfg.name} {label}", s.sim, s.view, str(tests), _fmt_int(trans),
                     _fmt_int(macs), f"{hit}/{total}", f"{s.seconds:.1f}",
                     "pass" if s.ok else "FAIL"])
        records.append({"config": cfg.name, "rows": cfg.rows, "cols": cfg.cols,
                        "simulator": s.sim, "array": s.view, "seeds": [sd for sd, _ in s.runs],
                        "tests": tests, "transactions": trans, "macs_verified": macs,
                        "coverage_hit": hit, "coverage_bins": total, "seconds": s.seconds,
                        "result": "pass" if s.ok else "fail", "errors": list(s.errors),
                        "compared_with": s.compared and s.compared[0],
                        "outputs_compared": s.compared[1] if s.compared else 0})
    total_hits = merge(all_hits)
    cov_path = root / "coverage.md"
    write_atomic(cov_path, report(plan, cfg.fields(), total_hits,
                                  f"{cfg.name} {label}, {', '.join(sims)}, seeds {seeds}"))
    junit = args.junit or root / "junit.xml"
    write_junit(junit, f"{cfg.name}_{label}", summaries)
    # the table below, for programs (farms, CI): one record per simulator and view
    summary_path = write_atomic(root / "summary.json", json.dumps(records, indent=1) + "\n")
    print()
    print("\n".join(table(rows, ["config", "simulator", "array", "tests", "transactions",
                                 "MACs verified", "coverage", "seconds", "result"], "lllrrrrrr",
                           indent="")))
    hit, total = summary(plan, cfg.fields(), total_hits)
    print(f"\ncoverage {hit}/{total} bins (report: {cov_path}); JUnit: {junit}; "
          f"summary: {summary_path}; wall {wall:.1f} s")
    if args.waves:
        for s in summaries:
            for _, r in s.runs:
                for w in sorted(r.log.parent.glob("*.fst")) + sorted(r.log.parent.glob("*.vcd")):
                    print(f"waves: {w}")
    ok = all(s.ok for s in summaries)
    if not ok:
        _print_failures(cfg, summaries, args)
    return 0 if ok else 1


def _headline(message: str) -> str:
    """The exception line of a failure message (cocotb stores the whole traceback)."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    for ln in lines:
        if re.match(r"[\w.]*(Error|Exception|Timeout)\b", ln):
            return ln
    return lines[-1] if lines else ""


def _print_failures(cfg: CoreConfig, summaries: list[SimSummary], args) -> None:
    err = sys.stdout
    print("\nFAILURES", file=err)
    for s in summaries:
        for e in s.errors:
            print(f"  [{s.sim}/{s.view}] {e}", file=err)
        for seed, r in s.runs:
            if r.ok:
                continue
            if r.error:
                print(f"  [{s.sim}] seed {seed}: {r.error}", file=err)
            for c in r.cases:
                if c["failed"]:
                    msg = _headline(c["message"])
                    print(f"  [{s.sim}] seed {seed} {c['name']}: {msg[:300]}", file=err)
            names = [c["name"] for c in r.cases if c["failed"]]
            pattern = "|".join(re.escape(n) + "$" for n in names) or args.tests
            cmd = ["dcim", "regress", *config_argv(cfg), "--sim", s.sim, "--seed", str(seed),
                   "--seeds", "1", "--array-model", s.view]
            if args.rtl is not None:
                cmd += ["--rtl", str(args.rtl)]
            if args.vectors is not None:
                cmd += ["--vectors", str(args.vectors)]
                pattern = None
            if args.out != Path("build/regress"):
                cmd += ["--out", str(args.out)]
            if pattern:
                cmd += ["--tests", pattern]
            cmd.append("--waves")
            print(f"  reproduce: {shlex.join(cmd)}", file=err)
            print(f"  log: {r.log}", file=err)
            if args.waves:
                print(f"  waves: {r.log.parent}", file=err)
