"""Validate a core configuration and print or write it with its derived figures.

Also says on stderr what bounds its throughput with back-to-back vectors (CoreConfig's
``pass_interval``, ``array_utilization`` and ``pass_bound``), for DPU and RAW results.

Example: dcim config --rows 64 --cols 32 -o core.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..golden.fileio import check_output_file
from .cli import add_config_args, config_from_args


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``dcim config``."""
    add_config_args(parser)
    parser.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="write the configuration here (.json or .toml); "
                             "default: print JSON")


def throughput_line(cfg) -> str:
    """One line: the pass interval, array utilization and bound for DPU and RAW results, and,
    when DPU results do not keep up with the array, the fields that would balance it."""
    parts = []
    for raw, what in ((False, "DPU results"), (True, "raw results")):
        parts.append(f"{what}: a pass every {cfg.pass_interval(raw=raw)} cycles, array busy "
                     f"{100 * cfg.array_utilization(raw=raw):.1f} % (bound: "
                     f"{cfg.pass_bound(raw=raw)})")
    line = (f"throughput with back-to-back vectors ({cfg.cycles_per_pass()} compute cycles "
            f"per pass): " + "; ".join(parts))
    if cfg.pass_bound() != "array":
        fix = {k: v for k, v in cfg.balanced().items() if getattr(cfg, k) != v}
        line += ("; output-bound: balanced with " + ", ".join(f"{k}={v}" for k, v in fix.items())
                 if fix else "; bound by the activation stream's field limit")
    return line


def run(args: argparse.Namespace) -> int:
    """Build the configuration, then write or print it; the throughput line goes to stderr."""
    cfg = config_from_args(args)
    check_output_file("-o", args.output)
    if args.output is None:
        print(cfg.to_json(), end="")
    else:
        cfg.save(args.output)
        print(f"wrote {args.output}")
    print(throughput_line(cfg), file=sys.stderr)
    return 0
