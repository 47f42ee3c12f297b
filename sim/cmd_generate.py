"""Generate the core's Verilog, its configuration JSON and the register map.

Writes DIR/<name>.v (byte-identical for equal configurations, lint-clean under
`verilator --lint-only -Wall` with the waivers it copies to DIR/<name>.vlt), DIR/<name>.json
(configuration, derived widths, cycles per pass, latencies, peak MACs/cycle, every stream
count, the Icarus/Verilator/lint command lines, the array view) and DIR/<name>_regs.{md,json,h}.
The array view (--array-model) is rtl, the synthesizable columns, or fast, the behavioural
column model for simulation; the default is rtl up to 64x32 and fast above. Every file is
made before any is written, then they replace DIR's as one directory: an interrupted run leaves
DIR as it was, and DIR/<name>.json records the SHA-256 of every other file, which
`dcim regress --rtl DIR` checks.

Example: dcim generate --rows 64 --cols 32 -o out
         dcim generate --rows 256 --cols 256 --array-model rtl -o out256
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..golden.fileio import check_output_dir
from .build import ARRAY_MODELS, check_array_model, generate
from .cli import add_config_args, config_from_args


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``dcim generate``."""
    add_config_args(parser)
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                        help="output directory (created if missing; written whole or not at all)")
    parser.add_argument("--array-model", default=None, metavar="VIEW",
                        help=f"view of the array: {' or '.join(ARRAY_MODELS)} (default: rtl up "
                             "to 64x32 bit-cell words, fast above)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print no progress")


def run(args: argparse.Namespace) -> int:
    """Build the configuration and write the generated files."""
    cfg = config_from_args(args)
    view = check_array_model(args.array_model, cfg)
    check_output_dir("-o", args.output)
    t0 = time.monotonic()

    def progress(msg: str) -> None:
        if not args.quiet:
            print(f"[{time.monotonic() - t0:6.1f} s] {msg}", file=sys.stderr, flush=True)

    progress(f"{cfg.name}: {cfg.rows} x {cfg.cols}, {cfg.act_bits}-bit activations, "
             f"{cfg.weight_bits}-bit weights, serial_bits {cfg.serial_bits}, {view} array")
    paths = generate(cfg, args.output, progress, array_model=view)
    for path in paths.values():
        print(f"wrote {path}")
    return 0
