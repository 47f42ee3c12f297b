"""The ``dcim`` command line.

Every subcommand that needs a core takes the same configuration options, generated from the
fields of :class:`~dcim.golden.config.CoreConfig` (or ``--config FILE``). Bad input (a usage
error, an :class:`~dcim.golden.errors.InputError` from validation, an OSError on a file) ends in
one line on stderr, ``dcim: error: ...``, and exit code 2; never a traceback. Any other
exception is a bug: one line ``dcim: internal error: ...`` naming a log file that holds the
traceback, and exit code 1. Ctrl-C ends with exit code 130. ``DCIM_DEBUG=1`` lets every
exception through with its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

# One OpenBLAS thread unless the user sets another count, read when numpy first loads: on the
# shared 2-core machines two threads slowed GEMMs 2-60x whenever another process ran
# (../shared/toolchain.md); `dcim calibrate`'s integer path ran 1.5-1.9k images/s on the digits
# CNN with two threads and 3.3-4.6k with one, at load average 6.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from ..golden.config import (ROUNDING_MODES, SERIAL_BITS_CHOICES, TREE_STYLES,  # noqa: E402
                             CoreConfig)
from ..golden.errors import InputError  # noqa: E402

__all__ = ["SUBCOMMANDS", "add_config_args", "check_regex", "check_seconds", "config_from_args",
           "main"]

#: Exit codes of :func:`main`.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

_HELP = {
    "rows": "reduction length per pass (1..4096)",
    "cols": "output channels (1..4096)",
    "act_bits": "maximum activation precision (1..8)",
    "weight_bits": "weight precision (1..8)",
    "act_signed": "signed activations (true/false)",
    "weight_signed": "signed weights (true/false)",
    "serial_bits": f"activation bits per cycle ({', '.join(map(str, SERIAL_BITS_CHOICES))}; "
                   "divides act_bits)",
    "acc_bits": "pass accumulator width (default: the minimum that never overflows)",
    "psum_bits": "K-tiled partial-sum width (up to 32)",
    "dpu_lanes": "DPU lanes (divides cols; default: automatic, the fewest that keep up with "
                 "the array)",
    "dpu_residual": "include the DPU residual-add stage (true/false)",
    "rounding": f"requantization rounding mode ({', '.join(ROUNDING_MODES)})",
    "tree_regs": "pipeline register stages in each adder tree (up to its levels in the "
                 "tree style)",
    "tree_style": f"column adder trees ({', '.join(TREE_STYLES)}: two-input adders, or a "
                  "carry-save compressor tree and one adder)",
    "weight_sets": "weight sets per column: 1, or 2 for a shadow set (double-buffered weights)",
    "w_stream_bits": "weight stream width (multiple of 8)",
    "x_stream_bits": "activation stream width (multiple of 8; default: automatic, the smallest "
                     "power of two >= 64 that keeps up with the array)",
    "y_stream_bits": "result stream width (multiple of 32; default: automatic, the smallest "
                     "power of two >= 64 that keeps up with the array)",
    "name": "top module name (a Verilog identifier of at most 64 characters, not std)",
}


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE`` and one option per configuration field to ``parser``."""
    group = parser.add_argument_group("core configuration (over --config values)")
    group.add_argument("--config", type=Path, metavar="FILE",
                       help="configuration file (.json or .toml, as `dcim config` writes, or "
                            "the <name>.json of `dcim generate`); - reads standard input")
    for field in dataclasses.fields(CoreConfig):
        flag = "--" + field.name.replace("_", "-")
        if isinstance(field.default, bool):
            kind: Callable[[str], Any] = _parse_bool
        elif isinstance(field.default, str):  # names, and enums of names (rounding)
            kind = str
        else:
            kind = int
        group.add_argument(flag, dest="cfg_" + field.name, type=kind, default=None,
                           metavar=field.name.upper(),
                           help=_HELP[field.name] if field.default is None
                           else f"{_HELP[field.name]}; default {field.default}")


def config_from_args(args: argparse.Namespace) -> CoreConfig:
    """Build the one validated configuration from ``--config`` and the field options."""
    given = {f.name: getattr(args, "cfg_" + f.name) for f in dataclasses.fields(CoreConfig)}
    overrides = {name: value for name, value in given.items() if value is not None}
    if args.config is None:
        return CoreConfig(**overrides)
    return CoreConfig.load(args.config).replace(**overrides)


def check_seconds(option: str, value: float | None) -> None:
    """Check a time limit option: None (not given) or a finite number > 0.

    Raises
    ------
    InputError
        One line naming ``option``, the allowed range and ``value``.
    """
    import math

    if value is not None and not (math.isfinite(value) and value > 0):
        raise InputError(f"{option} must be a finite number of seconds > 0, got {value}")


def check_regex(option: str, pattern: str | None) -> None:
    """Check a regular-expression option (None: not given).

    Raises
    ------
    InputError
        ``pattern`` does not compile (one line naming ``option`` and the reason).
    """
    import re

    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise InputError(f"{option} is not a valid regular expression: {exc}") from None


#: Subcommands in help order; each is a module ``cmd_<name>`` of this package with a docstring
#: (its help), ``configure(parser)`` and ``run(args) -> int``. Absent modules are skipped.
SUBCOMMANDS = ("config", "golden", "generate", "regress", "farm", "prove", "mutate", "calibrate",
               "check", "synth")


def _commands():
    import importlib

    for name in SUBCOMMANDS:
        modname = f"{__package__}.cmd_{name}"
        try:
            module = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name != modname:
                raise
            continue
        yield name, module


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line (``<prog>: error: ... (see <prog> --help)``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _version() -> str:
    """The installed distribution's version ("unknown" when run from an uninstalled tree)."""
    from importlib import metadata

    try:
        return metadata.version("dcim")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    parser = _Parser(
        prog="dcim",
        description="RTL generator and verification environment for a digital SRAM "
                    "in-memory-compute core.")
    parser.add_argument("--version", action="version", version=f"dcim {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in _commands():
        summary = (module.__doc__ or "").strip().splitlines()[0]
        p = sub.add_parser(name, help=summary, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.configure(p)
        p.set_defaults(run=module.run)
    return parser


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _crash_log(argv: Sequence[str]) -> Path | None:
    """Write the traceback of the exception being handled to a new log file; its path, or None
    if no file can be written."""
    try:
        fd, name = tempfile.mkstemp(prefix="dcim-internal-error-", suffix=".log")
        with os.fdopen(fd, "w") as f:
            f.write(f"dcim {' '.join(argv)}\n")
            f.write(f"python {platform.python_version()} on {platform.platform()}\n\n")
            f.write(traceback.format_exc())
    except OSError:
        return None
    return Path(name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code.

    Returns
    -------
    int
        0 success; 1 a failed check, or an internal error (a bug: one line ``dcim: internal
        error: ...`` naming the log file with the traceback); 2 bad input (a usage error, an
        :class:`~dcim.golden.errors.InputError`, an OSError such as a missing file: one line
        ``dcim: error: ...``); 130 interrupted (Ctrl-C). With ``DCIM_DEBUG`` set, errors are
        raised with their traceback instead.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("dcim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (InputError, OSError) as exc:
        if os.environ.get("DCIM_DEBUG"):
            raise
        print(f"dcim: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        if os.environ.get("DCIM_DEBUG"):
            raise
        log = _crash_log(argv)
        if log is None:
            traceback.print_exc()
        where = f"traceback in {log}" if log else "traceback above"
        print(f"dcim: internal error: {type(exc).__name__}: {_one_line(exc)} (a bug in dcim; "
              f"{where}; DCIM_DEBUG=1 shows it here)", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
