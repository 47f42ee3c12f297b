"""Validate a core configuration and print or write it with its derived figures.

Example: dcim config --rows 64 --cols 32 -o core.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .cli import add_config_args, config_from_args


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``dcim config``."""
    add_config_args(parser)
    parser.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="write the configuration here (.json or .toml); "
                             "default: print JSON")


def run(args: argparse.Namespace) -> int:
    """Build the configuration, then write or print it."""
    cfg = config_from_args(args)
    if args.output is None:
        print(cfg.to_json(), end="")
    else:
        cfg.save(args.output)
        print(f"wrote {args.output}")
    return 0
