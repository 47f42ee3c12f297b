"""The reports of a ``dcim regress`` run: the summary table, summary.json, JUnit XML, the
functional-coverage report, and on a failure the seed and the command that reproduces it.

Written for the runs that finished, also when a Ctrl-C or SIGTERM stopped the regression (its
records then say ``interrupted``).
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

from ..golden.config import CoreConfig
from ..golden.fileio import write_atomic
from ..golden.table import table
from .junit import write_junit

__all__ = ["print_failures", "write_reports"]


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def write_reports(cfg: CoreConfig, summaries: list, sims: list[str], seeds: list[int],
                  root: Path, args, wall: float) -> bool:
    """Write the coverage report, JUnit XML and summary.json of ``summaries`` under ``root``
    and print the table; True when every one passed.

    Parameters
    ----------
    summaries : list of dcim.sim.cmd_regress.SimSummary
        One per (simulator, array view), with the runs that finished.
    args : argparse.Namespace
        The options of ``dcim regress`` (``junit``, ``waves``).
    wall : float
        Seconds the runs took.
    """
    from ..verif.coverage import load_testplan, merge, report, summary

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
                     {"pass": "pass", "fail": "FAIL"}.get(s.result, s.result)])
        records.append({"config": cfg.name, "rows": cfg.rows, "cols": cfg.cols,
                        "simulator": s.sim, "array": s.view, "seeds": [sd for sd, _ in s.runs],
                        "tests": tests, "transactions": trans, "macs_verified": macs,
                        "coverage_hit": hit, "coverage_bins": total, "seconds": s.seconds,
                        "result": s.result, "interrupted": s.interrupted,
                        "errors": list(s.errors),
                        "compared_with": s.compared and s.compared[0],
                        "outputs_compared": s.compared[1] if s.compared else 0})
    total_hits = merge(all_hits)
    cov_path = root / "coverage.md"
    stopped = any(s.interrupted for s in summaries)
    what = "runs that finished before the interruption, " if stopped else ""
    write_atomic(cov_path, report(plan, cfg.fields(), total_hits,
                                  f"{cfg.name} {label}, {', '.join(sims)}, {what}seeds {seeds}"))
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
    return all(s.ok for s in summaries)


def _headline(message: str) -> str:
    """The exception line of a failure message (cocotb stores the whole traceback)."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    for ln in lines:
        if re.match(r"[\w.]*(Error|Exception|Timeout)\b", ln):
            return ln
    return lines[-1] if lines else ""


def print_failures(cfg: CoreConfig, summaries: list, args, config_args: list[str]) -> None:
    """Print every failure with its seed, the command that reproduces it (``config_args``:
    the options that rebuild ``cfg``) and its log; nothing for a run only interrupted."""
    failed = [s for s in summaries if s.result == "fail"]
    if not failed:
        return
    err = sys.stdout
    print("\nFAILURES", file=err)
    for s in failed:
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
            cmd = ["dcim", "regress", *config_args, "--sim", s.sim, "--seed", str(seed),
                   "--seeds", "1", "--array-model", s.view]
            if args.rtl is not None:
                cmd += ["--rtl", str(args.rtl)] + (["--rtl-edited"] if args.rtl_edited else [])
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
