"""Run the regression of a grid of configurations as a farm of tasks on dask.distributed.

Reads the configurations from --configs FILE (TOML or JSON: an optional [defaults] table of
configuration fields and one [[config]] table per configuration, each with its fields and
optionally array_model = "rtl" or "fast"). Every (configuration, simulator) is built once by
one task; its seeds are tasks on that build, run by a LocalCluster in this process (--workers
threads) or by the cluster at --scheduler ADDRESS (its workers need dcim installed and OUT on a
shared file system). Writes one summary table and OUT/summary.json, one JUnit file
(OUT/junit.xml) and one coverage report (OUT/coverage.md), and prints the first failure with
the command that reproduces it. A Ctrl-C or SIGTERM kills every simulator and still writes the
reports of the seeds that finished.

Example: dcim farm --configs grid.toml --seeds 100 --icarus-seeds 20 -o build/farm
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import threading
import time
from pathlib import Path

from ..golden.errors import InputError
from ..golden.fileio import check_output_dir, check_output_file, lock_dir, write_atomic
from ..golden.table import table
from .build import check_array_model
from .cmd_regress import (add_run_options, check_run_options, config_argv, config_tag,
                          generated_rtl)
from .farm import Job, load_grid, run_farm
from .regress_report import print_failures
from .regress_runs import SimSummary
from .resources import check_memory
from .simulators import check_simulator

#: Most seeds per (configuration, simulator).
MAX_SEEDS = 10000


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``dcim farm``."""
    parser.add_argument("--configs", type=Path, required=True, metavar="FILE",
                        help="the grid of configurations (.toml or .json; see above)")
    add_run_options(parser, Path("build/farm"), "build and run directories and the reports",
                    "OUT/junit.xml")
    parser.add_argument("--seeds", type=int, default=10, metavar="N",
                        help="seeds per configuration and simulator (default 10)")
    parser.add_argument("--icarus-seeds", type=int, default=None, metavar="N",
                        help="seeds per configuration on Icarus (default: --seeds)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="a dask.distributed scheduler (e.g. tcp://host:8786); default: a "
                             "LocalCluster in this process")
    parser.add_argument("--workers", type=int, default=2, metavar="N",
                        help="LocalCluster threads, i.e. simulators at once (default 2)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _check_args(args):
    """Every option and the grid checked before any work: ``(configs, simulators)``."""
    sims = check_run_options(args.sim, args.timeout, args.tests)
    for opt, n in (("--seeds", args.seeds), ("--icarus-seeds", args.icarus_seeds)):
        if n is not None and not 1 <= n <= MAX_SEEDS:
            raise InputError(f"{opt} must be in [1, {MAX_SEEDS}], got {n}")
    if not 1 <= args.workers <= 64:
        raise InputError(f"--workers must be in [1, 64], got {args.workers}")
    if args.scheduler is not None and not re.fullmatch(r"[a-z]+://\S+|\S+:\d+", args.scheduler):
        raise InputError(f"--scheduler must be an address like tcp://host:8786, got "
                         f"{args.scheduler!r}")
    configs = load_grid(args.configs, check_array_model)
    check_output_dir("--out", args.out)
    check_output_file("--junit", args.junit, parents=True)
    for sim in sims:
        check_simulator(sim)
    for fc in configs:
        for sim in sims:
            try:
                check_memory(sim, fc.view, fc.cfg, hint="choose a smaller array or the fast view")
            except MemoryError as exc:
                raise InputError(f"--configs {fc.cfg.rows}x{fc.cfg.cols}: {exc}") from None
    return configs, sims


def run(args: argparse.Namespace) -> int:
    """Run the farm; 0 when every seed of every configuration passed, 1 on a failure.

    A Ctrl-C or SIGTERM writes the reports of the seeds that finished, then ends the run
    (exit 130, or 143 for SIGTERM).
    """
    configs, sims = _check_args(args)
    base = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1 << 30)
    lock = threading.Lock()

    def say(msg: str) -> None:
        with lock:
            print(msg, file=sys.stderr, flush=True)

    with lock_dir(args.out, "--out"):
        out = args.out.resolve()
        jobs = []
        for fc in configs:
            root = out / config_tag(fc.cfg)
            root.mkdir(parents=True, exist_ok=True)
            verilog, regs, _ = generated_rtl(fc.cfg, root, lambda m: None, fc.view)
            core_json = root / "core.json"
            fc.cfg.save(core_json)
            for sim in sims:
                n = args.icarus_seeds if sim == "icarus" and args.icarus_seeds else args.seeds
                jobs.append(Job(fc, root, verilog, regs, core_json,
                                [base + i for i in range(n)], SimSummary(sim, fc.view)))
        total = sum(len(j.seeds) for j in jobs)
        say(f"farm: {len(configs)} configuration(s) x {', '.join(sims)}, {total} seed runs "
            f"from seed {base}, on {args.scheduler or f'a LocalCluster of {args.workers}'} "
            f"(dir {out})")
        t0 = time.perf_counter()
        stop: BaseException | None = None
        from tqdm import tqdm

        with tqdm(total=total, unit="seed", disable=args.quiet, file=sys.stderr) as bar:
            try:
                run_farm(jobs, tests=args.tests, timeout=args.timeout, scheduler=args.scheduler,
                         workers=args.workers, say=lambda m: bar.write(m, file=sys.stderr),
                         tick=bar.update)
            except (KeyboardInterrupt, SystemExit) as exc:
                stop = exc
        if stop is not None:
            say("interrupted: killed every simulator; writing the reports of the seeds that "
                "finished")
        ok = write_farm_reports(jobs, out, args.junit or out / "junit.xml",
                                time.perf_counter() - t0)
        if not ok:
            _first_failure(jobs)
    if stop is not None:
        raise stop
    return 0 if ok else 1


def _first_failure(jobs: list[Job]) -> None:
    """Print the failures of the first failed job, with the command that reproduces them."""
    for job in jobs:
        if job.summary.result == "fail":
            ns = argparse.Namespace(tests=None, rtl=None, rtl_edited=False, vectors=None,
                                    out=Path("build/regress"), waves=False)
            print_failures(job.fc.cfg, [job.summary], ns, config_argv(job.fc.cfg))
            return


def write_farm_reports(jobs: list[Job], out: Path, junit: Path, wall: float) -> bool:
    """Write OUT/summary.json, the JUnit file and OUT/coverage.md of every job and print the
    table with the throughput; True when every job passed with all its seeds."""
    from ..verif.coverage import load_testplan, merge, report, summary
    from .junit import write_junit_groups

    plan = load_testplan()
    rows, records, sections = [], [], []
    by_cfg: dict[str, list[Job]] = {}
    for job in jobs:
        by_cfg.setdefault(job.fc.label, []).append(job)
    for label, group in by_cfg.items():
        cfg = group[0].fc.cfg
        hits_all = []
        for job in group:
            s = job.summary
            hits = merge(r.stats.get("coverage", {}) for _, r in s.runs)
            hits_all.append(hits)
            hit, nbins = summary(plan, cfg.fields(), hits)
            tests, trans, macs = s.totals()
            rows.append([job.fc.describe, s.sim, s.view, f"{len(s.runs)}/{len(job.seeds)}",
                         str(tests), f"{trans:,}", f"{macs:,}", f"{hit}/{nbins}",
                         f"{s.seconds:.1f}",
                         {"pass": "pass", "fail": "FAIL"}.get(s.result, s.result)])
            records.append({"config": label, "describe": job.fc.describe,
                            "fields": cfg.fields(), "simulator": s.sim,
                            "array": s.view, "seeds": [sd for sd, _ in s.runs],
                            "seeds_planned": len(job.seeds), "tests": tests,
                            "failed": sum(r.failed for _, r in s.runs),
                            "transactions": trans, "macs_verified": macs,
                            "coverage_hit": hit, "coverage_bins": nbins,
                            "seconds": s.seconds, "build_seconds": s.build_s,
                            "result": s.result, "errors": list(s.errors)})
        text = report(plan, cfg.fields(), merge(hits_all),
                      f"{group[0].fc.describe} ({label}), "
                      f"{', '.join(j.summary.sim for j in group)}")
        sections.append("#" + text)  # one section per configuration
    runs = sum(len(j.summary.runs) for j in jobs)
    failed = sum(1 for j in jobs for _, r in j.summary.runs if not r.ok)
    head = (f"# Functional coverage of a dcim farm\n\n{len(by_cfg)} configuration(s), {runs} "
            f"seed runs, {failed} failed.\n\n")
    cov = write_atomic(out / "coverage.md", head + "\n".join(sections))
    write_junit_groups(junit, "dcim farm", [(j.fc.label, [j.summary]) for j in jobs])
    rate = runs / wall * 3600 if wall > 0 else 0.0
    summary_path = write_atomic(out / "summary.json", json.dumps(
        {"wall_seconds": wall, "seed_runs": runs, "failed_runs": failed,
         "seeds_per_hour": rate, "jobs": records}, indent=1) + "\n")
    print("\n".join(table(rows, ["config", "simulator", "array", "seeds", "tests",
                                 "transactions", "MACs verified", "coverage", "seconds",
                                 "result"], "lllrrrrrrr", indent="")))
    print(f"\n{runs} seed runs ({failed} failed) in {wall:.1f} s wall: {rate:,.0f} seeds/hour; "
          f"coverage: {cov}; JUnit: {junit}; summary: {summary_path}")
    return all(j.summary.ok and len(j.summary.runs) == len(j.seeds) for j in jobs)
