"""The analog what-if of ``dcim calibrate --weight-noise``: options, table and plot.

The noise model and the sweep are :mod:`dcim.golden.quant.noise`; this module parses the
sigma list, prints the table beside the exact digital result and writes the PNG curve.
"""

from __future__ import annotations

import argparse
import io
import math
from pathlib import Path
from typing import Any

from ..golden.errors import InputError
from ..golden.table import table

__all__ = ["add_noise_args", "check_noise_args", "format_noise", "parse_sigmas", "write_plot"]


def add_noise_args(parser: argparse.ArgumentParser) -> None:
    """Add the options of the analog what-if to ``dcim calibrate``."""
    g = parser.add_argument_group("analog in-memory-compute what-if (docs/calibration.md)")
    g.add_argument("--weight-noise", metavar="SIGMAS",
                   help="run the best calibrator's model with Gaussian weight deviations of "
                        "these sigmas relative to the weight range: a list (0.01,0.02,0.05,0.1) "
                        "or a range START:STOP:STEP (0.01:0.1:0.01, STOP included)")
    g.add_argument("--noise-seed", type=int, default=0, metavar="N",
                   help="seed of the weight deviations (default 0)")
    g.add_argument("--adc-bits", type=int, metavar="B",
                   help="also run with every bit-serial column sum quantized to B bits over its "
                        "full range before shift-and-add")
    g.add_argument("--noise-offset-cal", action="store_true",
                   help="subtract each column's zero-point offset of the deviations (a chip "
                        "that measures its column offsets after programming)")
    g.add_argument("--plot", type=Path, metavar="FILE.png",
                   help="write the curve of top-1 and agreement against sigma (PNG)")


def parse_sigmas(text: str) -> list[float]:
    """The sigmas of ``--weight-noise``: ``a,b,c`` or ``start:stop:step`` (stop included).

    Raises
    ------
    InputError
        Not numbers, or a sigma outside [0, 1] (one line naming the option and the value).
    """
    try:
        numbers = [float(v) for v in text.split(":" if ":" in text else ",")]
    except ValueError:
        numbers = []
    if not numbers or (":" in text and len(numbers) != 3):
        raise InputError("--weight-noise must be a comma-separated list or START:STOP:STEP of "
                         f"numbers in [0, 1], got {text!r}")
    if ":" in text:
        start, stop, step = numbers
        if not step > 0 or stop < start:
            raise InputError(f"--weight-noise range START:STOP:STEP needs STEP > 0 and STOP "
                             f">= START, got {text!r}")
        n = int(math.floor((stop - start) / step + 1e-9))
        sigmas = [round(start + i * step, 12) for i in range(n + 1)]
    else:
        sigmas = numbers
    for s in sigmas:
        if not (math.isfinite(s) and 0.0 <= s <= 1.0):
            raise InputError(f"--weight-noise sigma must be in [0, 1] (relative to the weight "
                             f"range), got {s:g}")
    return sigmas


def check_noise_args(args: argparse.Namespace) -> list[float] | None:
    """Validate the what-if options before the long work; the sigmas, or None if not asked.

    Raises
    ------
    InputError
    """
    asked = args.weight_noise is not None
    for opt, value in (("--adc-bits", args.adc_bits), ("--plot", args.plot)):
        if value is not None and not asked:
            raise InputError(f"{opt} needs --weight-noise")
    if args.noise_offset_cal and not asked:
        raise InputError("--noise-offset-cal needs --weight-noise")
    if not asked:
        return None
    if args.noise_seed < 0:
        raise InputError(f"--noise-seed must be an int >= 0, got {args.noise_seed}")
    if args.adc_bits is not None and not 1 <= args.adc_bits <= 24:
        raise InputError(f"--adc-bits must be in [1, 24], got {args.adc_bits}")
    return parse_sigmas(args.weight_noise)


def _label(row: dict[str, Any]) -> str:
    if row["sigma"] == 0 and row["adc_bits"] is None:
        return "exact digital INT8"
    adc = "exact sums" if row["adc_bits"] is None else f"{row['adc_bits']}-bit ADC"
    return f"analog, {adc}"


def format_noise(r: dict[str, Any], method: str) -> str:
    """The what-if table: one row per (sigma, ADC) run, the exact digital result first."""
    cal = "offsets calibrated" if r["calibrated_offsets"] else "offsets not calibrated"
    out = [f"Analog what-if ({method}): weight deviation sigma relative to the weight range "
           f"({r['weight_range']} codes), seed {r['seed']}, {cal}"]
    rows = [[_label(row), f"{100 * row['sigma']:.1f}%", f"{100 * row['accuracy']:.2f}%",
             f"{100 * row['top1_agreement_with_fp32']:.2f}%",
             f"{100 * row['top1_agreement_with_int8']:.2f}%", row["ties"],
             "exact" if row["logit_sqnr_db"] == math.inf else f"{row['logit_sqnr_db']:.2f} dB",
             f"{100 * row['logit_codes_changed']:.2f}%"] for row in r["rows"]]
    out += table(rows, ["array", "sigma", "top-1", "agree FP32", "agree INT8", "ties",
                        "logit SQNR", "codes changed"], "lrrrrrrr")
    first = r["rows"][0]
    same = first["logit_codes_changed"] == 0.0
    out.append("  the analog model at sigma 0 with exact sums "
               + ("reproduces the digital logit codes bit for bit" if same
                  else f"differs from the digital path in {first['logit_codes_changed']:.2%} "
                       "of the logit codes"))
    return "\n".join(out)


def write_plot(r: dict[str, Any], path: Path, title: str) -> None:
    """The curve (top-1 and agreement with FP32 and with exact INT8 against sigma, per ADC
    setting; the exact digital top-1 as a line) as a PNG written atomically to ``path``.

    Raises
    ------
    InputError
        matplotlib is not installed (the ``plot`` extra).
    """
    from ..golden.fileio import write_atomic

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        raise InputError("--plot needs matplotlib (pip install dcim[plot])") from None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.axhline(100 * r["digital"]["accuracy"], color="black", lw=1, ls=":",
               label="exact digital INT8 top-1")
    for bits in sorted({row["adc_bits"] for row in r["rows"]}, key=lambda b: b or 0):
        pts = [row for row in r["rows"] if row["adc_bits"] == bits]
        sig = [100 * row["sigma"] for row in pts]
        tag = "exact sums" if bits is None else f"{bits}-bit ADC"
        line, = ax.plot(sig, [100 * row["accuracy"] for row in pts], "o-",
                        label=f"top-1, {tag}")
        ax.plot(sig, [100 * row["top1_agreement_with_fp32"] for row in pts], "s--",
                color=line.get_color(), label=f"agreement with FP32, {tag}")
        ax.plot(sig, [100 * row["top1_agreement_with_int8"] for row in pts], "^:",
                color=line.get_color(), label=f"agreement with INT8, {tag}")
    ax.set_xlabel("weight deviation sigma / weight range (%)")
    ax.set_ylabel("%")
    ax.set_ylim(0, 101)
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    write_atomic(path, lambda fh: fh.write(buf.getvalue()))
