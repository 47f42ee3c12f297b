"""Prove properties of the core's blocks with Yosys and an SMT solver (bounded, from reset).

Each property is a formal harness around one block (docs/verification.md, "Formal"): the
column views' equivalence (an unbounded induction proof), the accumulators against a reference
of the exact pass value and the saturating partial sums, the stream and AXI4-Lite protocols,
the DPU's stages. Prints one row per property (depth, result, seconds); a failing property
names its counterexample trace (VCD) under -o. Exit 0 when every property is proven, 1 when
one fails.

Examples:
  dcim prove --rows 8 --cols 4
  dcim prove --rows 16 --cols 8 --props accum,axil -o prove-out --depth 12
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from ..golden.errors import InputError
from ..golden.fileio import check_output_dir, write_atomic, write_dir_atomic
from .cli import add_config_args, config_from_args

__all__ = ["configure", "run"]

#: Largest --depth (cycles from reset; the solver's time grows with it).
MAX_DEPTH = 200


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``dcim prove``."""
    add_config_args(parser)
    g = parser.add_argument_group("proof")
    g.add_argument("-o", "--output", type=Path, metavar="DIR",
                   help="directory for the models, logs, counterexample traces and "
                        "prove.json/prove.md, written as one directory when the run ends "
                        "(default: a temporary directory, kept only if a property fails)")
    g.add_argument("--props", metavar="LIST",
                   help="comma-separated properties to prove, or all (default: every "
                        "property but those --list marks as not default)")
    g.add_argument("--depth", type=int, metavar="N",
                   help=f"cycles from reset for every bounded property, 1..{MAX_DEPTH} "
                        "(default: each property's own; for the column equivalence, the "
                        "induction length)")
    g.add_argument("--timeout", type=float, default=1800.0, metavar="S",
                   help="wall-clock limit per property in seconds (default 1800)")
    g.add_argument("--solver", default="yices", metavar="NAME",
                   help="SMT solver for yosys-smtbmc (default yices)")
    g.add_argument("--list", action="store_true", help="list the properties and exit")


def _table(rows: list[dict]) -> str:
    from tabulate import tabulate

    return tabulate([[r["property"], r["depth"], r["result"], f"{r['seconds']:.1f}"]
                     for r in rows], headers=["property", "depth", "result", "seconds"],
                    tablefmt="github", disable_numparse=True)


def run(args: argparse.Namespace) -> int:
    """Prove the selected properties and print the summary table."""
    from ..verif.prove import FormalError, parse_props, properties

    if args.list:
        for name, prop in properties().items():
            print(f"{name:13} {prop.summary}{'' if prop.default else ' [not default]'}")
        return 0
    cfg = config_from_args(args)
    names = parse_props(args.props)
    if args.depth is not None and not 1 <= args.depth <= MAX_DEPTH:
        raise InputError(f"--depth must be in [1, {MAX_DEPTH}], got {args.depth}")
    if not args.timeout > 0:
        raise InputError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    check_output_dir("-o", args.output)
    final = Path(args.output) if args.output is not None else Path(
        tempfile.mkdtemp(prefix="dcim-prove-"))
    rows = []
    with write_dir_atomic(final, last=("prove.json",)) as tmp:
        for name in names:
            prop = properties()[name]
            why_not = prop.applies(cfg)
            if why_not:
                rows.append({"property": name, "depth": "-", "result": f"skipped ({why_not})",
                             "seconds": 0.0, "trace": None})
                continue
            work = tmp / name
            try:
                r = prop.run(cfg, work, args.depth, args.timeout, args.solver)
            except FormalError as exc:
                rows.append({"property": name, "depth": str(args.depth or "-"),
                             "result": f"error: {exc}", "seconds": 0.0, "trace": None})
                continue
            trace = None if r.trace is None else str(final / r.trace.relative_to(tmp))
            result = "proven" if r.passed else f"FAILED ({r.note})" if r.note else "FAILED"
            rows.append({"property": name, "depth": r.depth, "result": result,
                         "seconds": round(r.seconds, 2), "trace": trace})
            print(f"{name}: {result} in {r.seconds:.1f} s", file=sys.stderr, flush=True)
        report = {"config": cfg.fields(), "properties": rows}
        write_atomic(tmp / "prove.md", _table(rows) + "\n")
        write_atomic(tmp / "prove.json", json.dumps(report, indent=2, default=str) + "\n")
    print(_table(rows))
    failed = [r for r in rows if not (r["result"] == "proven"
                                      or r["result"].startswith("skipped"))]
    for r in failed:
        if r["trace"]:
            print(f"dcim: {r['property']}: counterexample {r['trace']}", file=sys.stderr)
        else:
            print(f"dcim: {r['property']}: {r['result']}", file=sys.stderr)
    if args.output is None:
        if failed:
            print(f"dcim: the run's files are kept in {final}", file=sys.stderr)
        else:
            shutil.rmtree(final, ignore_errors=True)
    return 1 if failed else 0
